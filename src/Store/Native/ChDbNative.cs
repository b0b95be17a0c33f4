// P/Invoke surface of libchdb.so (npm @chdb/lib-linux-x64-gnu@26.5.3, see scripts/fetch-chdb.sh).
//
// Contract: the declarations mirror chdb.h of that exact version. chdb_connect returns a
// POINTER to a connection handle (chdb_connection*): chdb_query* take the handle itself (read
// it with Marshal.ReadIntPtr), chdb_close_conn takes the pointer. Every chdb_result* returned
// by chdb_query* must be released with chdb_destroy_query_result, error or not.
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Analytics.Store.Native;

internal static unsafe partial class ChDbNative
{
    internal const string LibraryName = "chdb";

    /// <summary>Returns <c>chdb_connection*</c>, or null on failure (the reason goes to the engine log).</summary>
    [LibraryImport(LibraryName, EntryPoint = "chdb_connect")]
    internal static partial nint Connect(int argc, byte** argv);

    [LibraryImport(LibraryName, EntryPoint = "chdb_close_conn")]
    internal static partial void CloseConnection(nint connectionPointer);

    /// <summary>Binary-safe query: neither string needs a terminating zero.</summary>
    [LibraryImport(LibraryName, EntryPoint = "chdb_query_n")]
    internal static partial nint QueryN(nint connection, byte* query, nuint queryLength, byte* format, nuint formatLength);

    [LibraryImport(LibraryName, EntryPoint = "chdb_result_buffer")]
    internal static partial byte* ResultBuffer(nint result);

    [LibraryImport(LibraryName, EntryPoint = "chdb_result_length")]
    internal static partial nuint ResultLength(nint result);

    /// <summary>Zero-terminated UTF-8 message, or null when the query succeeded.</summary>
    [LibraryImport(LibraryName, EntryPoint = "chdb_result_error")]
    internal static partial byte* ResultError(nint result);

    [LibraryImport(LibraryName, EntryPoint = "chdb_result_rows_read")]
    internal static partial ulong ResultRowsRead(nint result);

    [LibraryImport(LibraryName, EntryPoint = "chdb_result_rows_written")]
    internal static partial ulong ResultRowsWritten(nint result);

    [LibraryImport(LibraryName, EntryPoint = "chdb_destroy_query_result")]
    internal static partial void DestroyQueryResult(nint result);

    // The resolver must be registered before the first call into either library; a module
    // initializer runs when the assembly loads, so no code path can race ahead of it.
    // SetDllImportResolver may be called only once per assembly: all native names this
    // assembly uses go through ResolveLibrary.
    [ModuleInitializer]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2255", Justification = "Registering the DllImport resolver must precede any P/Invoke in this assembly.")]
    internal static void RegisterResolver() =>
        NativeLibrary.SetDllImportResolver(typeof(ChDbNative).Assembly, ResolveLibrary);

    private static nint ResolveLibrary(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (libraryName == LibraryName)
            return NativeLibrary.Load(LibChDbLocator.Locate());
        // "libc" would make the runtime probe libc.so, which on glibc is a linker script that
        // dlopen rejects; the real soname is libc.so.6.
        if (libraryName == Libc.LibraryName && OperatingSystem.IsLinux())
            return NativeLibrary.Load("libc.so.6");
        return 0;
    }
}

/// <summary>Finds libchdb.so: <c>CHDB_LIB_PATH</c> first, then <c>.cache/chdb/libchdb.so</c> in
/// the application directory or any directory above it (the repository root in development).</summary>
public static class LibChDbLocator
{
    public const string EnvironmentVariable = "CHDB_LIB_PATH";
    private static readonly string RelativeCachePath = Path.Combine(".cache", "chdb", "libchdb.so");

    public static string Locate() => Locate(Environment.GetEnvironmentVariable(EnvironmentVariable));

    /// <summary>Locates the library as <see cref="Locate()"/> does with <paramref name="fromEnv"/> as
    /// the variable's value (a test can ask without changing the process's environment, which
    /// tests running beside it read).</summary>
    public static string Locate(string? fromEnv)
    {
        if (!string.IsNullOrEmpty(fromEnv))
        {
            if (File.Exists(fromEnv))
                return Path.GetFullPath(fromEnv);
            throw new DllNotFoundException(
                $"{EnvironmentVariable} is set to '{fromEnv}', but no file exists there. " +
                "Run scripts/fetch-chdb.sh and point the variable at the path it prints, or unset it.");
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, RelativeCachePath);
            if (File.Exists(candidate))
                return candidate;
        }

        throw new DllNotFoundException(
            $"libchdb.so (the embedded ClickHouse engine) was not found: {EnvironmentVariable} is not set and no " +
            $"{RelativeCachePath} exists in {AppContext.BaseDirectory} or any directory above it. " +
            $"Run scripts/fetch-chdb.sh from the repository root (it downloads the library into .cache/chdb/), " +
            $"or set {EnvironmentVariable} to the full path of libchdb.so.");
    }
}
