using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Analytics.LoadTool;

/// <summary>
/// The server under test as a child process: <c>dotnet analytics.dll serve --demo --echo --quiet</c>
/// (plus <c>--roles</c> and any <c>--server-args</c>) on a free loopback port with a fresh temporary data
/// directory. Disposing kills the process tree and deletes the directory; a ProcessExit hook
/// does the same as a last resort if the tool exits before the normal path runs.
/// </summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    // Enough output to explain a failed start without keeping a chatty server's log in memory.
    private const int KeptOutputLines = 40;

    private readonly Process _process;
    private readonly string _dataDirectory;
    private readonly Queue<string> _output = new();
    private int _disposed;

    private ServerProcess(Process process, string dataDirectory, Uri baseAddress)
    {
        _process = process;
        _dataDirectory = dataDirectory;
        BaseAddress = baseAddress;
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
    }

    public Uri BaseAddress { get; }

    /// <summary>The server's data directory (the bootstrap admin client is saved there).</summary>
    public string DataDirectory => _dataDirectory;

    /// <summary>
    /// CPU time the server has used, user + system, all threads: on Linux .NET reads utime + stime
    /// from /proc/PID/stat on every call (nothing cached). `dotnet x.dll` runs the app in-process,
    /// so the child's PID is the server's.
    /// </summary>
    public TimeSpan CpuTime => _process.TotalProcessorTime;

    /// <summary>Resident set size now, from /proc (Linux): what the OS really holds for the server.</summary>
    public long ResidentBytes() => StatusBytes("VmRSS:");

    /// <summary>Peak resident set size since the server started (VmHWM, the RSS high-water mark).</summary>
    public long PeakResidentBytes() => StatusBytes("VmHWM:");

    // /proc/PID/status lines look like "VmRSS:\t  123456 kB".
    private long StatusBytes(string field)
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line[field.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        throw new InvalidOperationException($"{field} not found in /proc/{_process.Id}/status");
    }

    public static async Task<ServerProcess> StartAsync(string serverDll, string? roles, IReadOnlyList<string> extraArgs, HttpClient http, CancellationToken cancellationToken)
    {
        int port = FreeLoopbackPort();
        var baseAddress = new Uri($"http://127.0.0.1:{port}");
        string data = Path.Combine(Path.GetTempPath(), $"analytics-load-{Guid.NewGuid():N}");
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // Every load comes from this one address and one site: the per-IP connection limit is
        // lifted (10,000 idle sockets), the per-IP and per-site event buckets stay on, set far
        // above any rate reached here, so their cost is in every figure but they never refuse.
        // (Unless --server-args sets limits itself, e.g. all 0 to measure without them.)
        bool ownLimits = extraArgs.Any(a => a.StartsWith("--max-connections", StringComparison.Ordinal) || a.StartsWith("--events-per-second", StringComparison.Ordinal));
        string[] limits = ownLimits ? [] : ["--max-connections-per-ip", "0", "--max-peer-connections-per-ip", "0", "--events-per-second-per-ip", "100000000", "--events-per-second-per-site", "100000000"];
        foreach (string arg in (string[])[serverDll, "serve", "--data", data, "--urls", baseAddress.ToString().TrimEnd('/'), "--demo", "--echo", "--quiet", .. limits])
        {
            info.ArgumentList.Add(arg);
        }
        if (roles is not null)
        {
            info.ArgumentList.Add("--roles");
            info.ArgumentList.Add(roles);
        }
        foreach (string arg in extraArgs) info.ArgumentList.Add(arg);
        var process = new Process { StartInfo = info };
        var server = new ServerProcess(process, data, baseAddress);
        process.OutputDataReceived += (_, e) => server.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => server.Keep(e.Data);
        try
        {
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            await server.WaitHealthyAsync(http, TimeSpan.FromSeconds(60), cancellationToken);
            // After the server has created the demo merchant (id 1): the admin client's merchant comes next.
            await AdminClient.BootstrapAsync(serverDll, data, cancellationToken);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    private async Task WaitHealthyAsync(HttpClient http, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var healthz = new Uri(BaseAddress, "/healthz");
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"server exited with code {_process.ExitCode} before it was healthy:\n{RecentOutput()}");
            }
            try
            {
                using var response = await http.GetAsync(healthz, cancellationToken);
                if (response.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"server not healthy at {healthz} after {timeout.TotalSeconds:0} s:\n{RecentOutput()}");
            }
            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>
    /// Asks the OS for a free port, then releases it for the server. A small race (another process
    /// could take it in between) is acceptable for a benchmark; the start fails loudly if it happens.
    /// </summary>
    internal static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private void Keep(string? line)
    {
        if (line is null) return;
        lock (_output)
        {
            if (_output.Count == KeptOutputLines) _output.Dequeue();
            _output.Enqueue(line);
        }
    }

    public string RecentOutput()
    {
        lock (_output) return string.Join('\n', _output);
    }

    private void OnProcessExit(object? sender, EventArgs e) => Stop();

    private void Stop()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        KillAndDelete(_process, _dataDirectory);
    }

    /// <summary>Kills a child process with its tree, waits for it, disposes it and deletes its directory
    /// (a few attempts: files can stay open for a moment after the kill). Also used for nginx.</summary>
    internal static void KillAndDelete(Process process, string directory)
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
            // Never started.
        }
        for (int attempt = 0; attempt < 5 && Directory.Exists(directory); attempt++)
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
                Thread.Sleep(200);
            }
            catch (UnauthorizedAccessException)
            {
                Thread.Sleep(200);
            }
        }
        process.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        Stop();
        return ValueTask.CompletedTask;
    }
}
