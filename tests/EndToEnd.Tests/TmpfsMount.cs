using System.Diagnostics;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// A small tmpfs mounted on a directory for the life of the object: a real file system a test can
/// fill to its last byte (ENOSPC from the kernel, not an injected exception). Mounting needs root,
/// which this machine and CI have; where mount(8) is refused the test fails with one line saying
/// so (no skip: the test would prove nothing). Dispose unmounts, lazily if something still holds
/// a file there, so no mount outlives its test.
/// </summary>
public sealed class TmpfsMount : IDisposable
{
    private TmpfsMount(string directory) => Directory = directory;

    public string Directory { get; }

    public static TmpfsMount Create(string directory, int megabytes)
    {
        System.IO.Directory.CreateDirectory(directory);
        var (code, output) = Run("mount", "-t", "tmpfs", "-o", $"size={megabytes}m,mode=0700", "tmpfs", directory);
        if (code != 0)
            throw new Xunit.Sdk.XunitException($"cannot mount a {megabytes} MiB tmpfs on {directory} (the full-disk test needs root: mount -t tmpfs): {output.Trim()}");
        return new TmpfsMount(directory);
    }

    /// <summary>Writes <paramref name="path"/> (on this file system) until the kernel refuses a
    /// single byte more; returns the bytes written.</summary>
    public static long Fill(string path)
    {
        long written = 0;
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 0);
        foreach (int size in new[] { 64 * 1024, 512, 1 })
        {
            var chunk = new byte[size];
            try
            {
                while (true)
                {
                    file.Write(chunk);
                    written += size;
                }
            }
            catch (IOException) { } // ENOSPC: try a smaller piece
        }
        return written;
    }

    public void Dispose()
    {
        if (Run("umount", Directory).Code != 0) Run("umount", "--lazy", Directory);
    }

    private static (int Code, string Output) Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        try
        {
            using var process = Process.Start(start)!;
            string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            if (!process.WaitForExit(10_000)) process.Kill();
            return (process.HasExited ? process.ExitCode : -1, output);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, $"{program}: {e.Message}");
        }
    }
}
