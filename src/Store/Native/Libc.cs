// The few libc calls needed to keep the .NET runtime's signal handling intact around chDB.
using System.Runtime.InteropServices;

namespace Analytics.Store.Native;

internal static unsafe partial class Libc
{
    internal const string LibraryName = "libc";

    /// <summary>glibc <c>sigaction(int, const struct sigaction*, struct sigaction*)</c>; 0 on success.</summary>
    [LibraryImport(LibraryName, EntryPoint = "sigaction", SetLastError = true)]
    internal static partial int SigAction(int signal, void* act, void* oldAct);

    /// <summary><c>pthread_sigmask(int how, const sigset_t*, sigset_t*)</c>; returns an errno value, 0 on success.</summary>
    [LibraryImport(LibraryName, EntryPoint = "pthread_sigmask")]
    internal static partial int PthreadSigMask(int how, void* set, void* oldSet);

    /// <summary><c>sigaltstack(const stack_t*, stack_t*)</c>; 0 on success.</summary>
    [LibraryImport(LibraryName, EntryPoint = "sigaltstack", SetLastError = true)]
    internal static partial int SigAltStack(void* stack, void* oldStack);

    /// <summary><c>kill(pid_t, int)</c>; 0 on success.</summary>
    [LibraryImport(LibraryName, EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);

    internal const int SIGCHLD = 17; // Linux x86_64

    internal const int SIG_SETMASK = 2; // Linux value (asm-generic); SIG_BLOCK = 0, SIG_UNBLOCK = 1.
}
