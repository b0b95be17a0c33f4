// Start-up mistakes as one line each, and the data directory's checks and lock.
//
// Contract: what an operator can get wrong before the server runs (a taken port, a data
// directory that is a file, unwritable or used by another running server, a missing or
// unloadable engine library) is reported as one line that names the thing and what to do; the
// caller prints it and exits non-zero. Anything else is reported by its message alone, still on
// one line: a stack trace helps the developer of this code, not the person starting it.
using System.Net.Sockets;
using Analytics.Store;

namespace Analytics.Host.Cli;

public static class StartupErrors
{
    public static string Describe(Exception e) => OneLine(e switch
    {
        StartupException or UsageException => e.Message,
        IOException when e.InnerException is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse } || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase)
            => $"{e.Message.TrimEnd('.')} (another server is running there; stop it or choose another address with --urls)",
        DllNotFoundException => $"the ClickHouse engine library could not be loaded: {e.Message}",
        ChDbException => $"the ClickHouse engine did not start: {e.Message}",
        UnauthorizedAccessException => $"permission denied: {e.Message}",
        _ => e.Message,
    });

    private static string OneLine(string message) =>
        string.Join(' ', message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}

/// <summary>
/// The data directory of one running command, checked and locked. One process per directory: the
/// local log, the registry and the engine's files are each written by one process only, so a second
/// server (or an embedded `migrate`) on the same directory is refused instead of corrupting them.
/// The lock is an exclusive advisory lock (flock) on `analytics.lock`, which .NET takes for
/// FileShare.None on Unix; the kernel releases it when the process exits, however it exits.
/// </summary>
public sealed class DataDirectoryLock : IDisposable
{
    public const string FileName = "analytics.lock";
    private readonly FileStream _lock;

    private DataDirectoryLock(FileStream @lock) => _lock = @lock;

    /// <summary>Creates the directory if needed and takes its lock.</summary>
    /// <exception cref="StartupException">Not a directory, not writable, or in use.</exception>
    public static DataDirectoryLock Acquire(string directory)
    {
        Prepare(directory);
        string path = Path.Combine(directory, FileName);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (UnauthorizedAccessException)
        {
            throw new StartupException($"the data directory {directory} is not writable (choose another with --data)");
        }
        catch (IOException)
        {
            // Only the lock is shared: a reader would need the lock itself (.NET takes a shared flock
            // for every open), so the holder's pid cannot be read from the file.
            throw new StartupException(
                $"the data directory {directory} is in use by another running analytics process; stop it or choose another directory with --data");
        }
        return new DataDirectoryLock(stream);
    }

    /// <summary>Creates the directory (and parents) or explains why it cannot be one.</summary>
    /// <exception cref="StartupException">The path is a file, below a file, or not creatable.</exception>
    public static void Prepare(string directory)
    {
        if (File.Exists(directory))
            throw new StartupException($"the data directory {directory} is a file, not a directory (choose another with --data)");
        for (var parent = Path.GetDirectoryName(directory); !string.IsNullOrEmpty(parent); parent = Path.GetDirectoryName(parent))
        {
            if (File.Exists(parent))
                throw new StartupException($"the data directory {directory} cannot be created: {parent} is a file (choose another with --data)");
        }
        try
        {
            CreateOwnerOnly(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StartupException($"the data directory {directory} cannot be created: {e.Message}");
        }
    }

    /// <summary>The data directory holds visitor salts and secret hashes: a new one is the owner's
    /// only (0700). An existing one keeps the mode its operator chose.</summary>
    public static void CreateOwnerOnly(string directory)
    {
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(directory);
        else Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public void Dispose() => _lock.Dispose();
}
