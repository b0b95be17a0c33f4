using System.Runtime.InteropServices;

namespace Analytics.EventLog.Local;

/// <summary>
/// fsync of a directory, so a created or renamed file's directory entry survives a power loss.
/// .NET cannot open a directory as a file handle, hence the small P/Invoke. On Windows there is
/// no equivalent (NTFS journals metadata), so it is a no-op there.
/// </summary>
internal static partial class DirectorySync
{
    private const int EINVAL = 22; // some file systems do not support fsync on directories

    public static void Flush(string directory)
    {
        if (!(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD()))
        {
            return;
        }
        int fd = Open(directory, 0 /* O_RDONLY */);
        if (fd < 0)
        {
            throw new IOException($"open('{directory}') for fsync failed, errno {Marshal.GetLastPInvokeError()}.");
        }
        try
        {
            if (Fsync(fd) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno != EINVAL)
                {
                    throw new IOException($"fsync('{directory}') failed, errno {errno}.");
                }
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
