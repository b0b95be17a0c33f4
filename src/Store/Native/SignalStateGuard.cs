// Saves and restores the process's signal dispositions around chdb_connect.
//
// Contract: Capture() snapshots sigaction for every signal 1..64, the calling thread's signal mask
// and its alternate signal stack; Restore() writes all of them back. Why: chdb_connect installs
// ClickHouse's own handlers (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTERM, SIGINT and the real-time
// signals among them). The .NET runtime turns SIGSEGV on a null dereference into a
// NullReferenceException, and suspends threads for GC with a real-time signal; with ClickHouse's
// handlers in place an NRE hangs or kills the process. chdb_set_signal_handlers_enabled(0) and
// chdb_reset_signal_handlers() do not fix it (docs/chdb.md); restoring every disposition does,
// guarded by SignalHandlingTests. Trade-off: a crash inside the engine no longer gets
// ClickHouse's stack-trace handler, it gets the .NET runtime's.
using System.Runtime.InteropServices;

namespace Analytics.Store.Native;

internal sealed unsafe class SignalStateGuard : IDisposable
{
    // Linux has signals 1..64 (SIGRTMAX = 64); glibc reserves 32 and 33 for itself and refuses
    // them with EINVAL, which is harmless here: nobody else can change them either.
    private const int MaxSignal = 64;

    // struct sigaction is 152 bytes on x86_64 glibc (handler 8 + sa_mask 128 + flags 4 + pad 4
    // + restorer 8). 256 leaves room for other ABIs rather than trusting one layout.
    private const int SigActionSize = 256;

    // sigset_t is 128 bytes in glibc; stack_t is 24 bytes on 64-bit Linux.
    private const int SigSetSize = 256;
    private const int StackSize = 64;

    private byte* _memory;
    private readonly bool[] _captured = new bool[MaxSignal + 1];
    private bool _maskCaptured;
    private bool _altStackCaptured;

    private SignalStateGuard()
    {
        var total = (nuint)((MaxSignal + 1) * SigActionSize + SigSetSize + StackSize);
        _memory = (byte*)NativeMemory.AllocZeroed(total);
    }

    private byte* ActionSlot(int signal) => _memory + signal * SigActionSize;
    private byte* MaskSlot => _memory + (MaxSignal + 1) * SigActionSize;
    private byte* AltStackSlot => MaskSlot + SigSetSize;

    public static SignalStateGuard Capture()
    {
        var guard = new SignalStateGuard();
        for (var signal = 1; signal <= MaxSignal; signal++)
            guard._captured[signal] = Libc.SigAction(signal, null, guard.ActionSlot(signal)) == 0;
        guard._maskCaptured = Libc.PthreadSigMask(Libc.SIG_SETMASK, null, guard.MaskSlot) == 0;
        guard._altStackCaptured = Libc.SigAltStack(null, guard.AltStackSlot) == 0;
        return guard;
    }

    /// <summary>Writes every captured disposition back; returns how many signals were restored.</summary>
    public int Restore()
    {
        var restored = 0;
        for (var signal = 1; signal <= MaxSignal; signal++)
        {
            // SIGKILL and SIGSTOP capture fine but cannot be set: EINVAL, ignored on purpose.
            if (_captured[signal] && Libc.SigAction(signal, ActionSlot(signal), null) == 0)
                restored++;
        }
        if (_maskCaptured)
            _ = Libc.PthreadSigMask(Libc.SIG_SETMASK, MaskSlot, null);
        if (_altStackCaptured)
            _ = Libc.SigAltStack(AltStackSlot, null);
        // A child that exited while chDB's handlers were installed sent its SIGCHLD to chDB, not
        // to the .NET runtime, which then never reaps it: Process.WaitForExit hangs on a zombie
        // (seen in the test run, where hosts connect while other tests kill child processes).
        // A spurious SIGCHLD is harmless (the runtime polls its children), so send one now.
        _ = Libc.Kill(Environment.ProcessId, Libc.SIGCHLD);
        return restored;
    }

    /// <summary>Signals whose current sigaction differs from the captured one (for tests and
    /// diagnostics). Compares the fields the kernel keeps, at their x86_64 glibc offsets: handler
    /// (0), the first 8 bytes of sa_mask (8; the kernel's mask covers 64 signals, and glibc copies
    /// uninitialised stack bytes into the rest of the 128-byte sigset_t), sa_flags (136) and
    /// sa_restorer (144).</summary>
    public IReadOnlyList<int> ChangedSignals()
    {
        var changed = new List<int>();
        var current = stackalloc byte[SigActionSize];
        for (var signal = 1; signal <= MaxSignal; signal++)
        {
            if (!_captured[signal] || Libc.SigAction(signal, null, current) != 0)
                continue;
            var before = new ReadOnlySpan<byte>(ActionSlot(signal), SigActionSize);
            var now = new ReadOnlySpan<byte>(current, SigActionSize);
            if (!now[..16].SequenceEqual(before[..16]) || !now[136..140].SequenceEqual(before[136..140]) || !now[144..152].SequenceEqual(before[144..152]))
                changed.Add(signal);
        }
        return changed;
    }

    public void Dispose()
    {
        NativeMemory.Free(_memory);
        _memory = null;
    }
}
