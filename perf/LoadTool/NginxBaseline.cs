using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Analytics.LoadTool;

/// <summary>
/// <c>--baseline nginx</c>: Debian's nginx answering <c>return 204</c> on a free loopback port, the
/// ceiling for one-event HTTP requests on this machine (issue #17). It runs as our child process
/// from a generated configuration in a temporary directory (pid file, error log and temp paths
/// there; the package's service and /etc/nginx are not used): <c>daemon off</c> and
/// <c>master_process off</c>, so it is one process whose CPU time /proc gives exactly and which
/// one kill stops. No access log, as the server under test writes none per request. Keep-alive
/// without a request limit, so no reconnect happens inside a measured window. Dispose (and, as a
/// last resort, the tool's ProcessExit) kills it and deletes the directory.
/// </summary>
internal sealed class NginxBaseline : IAsyncDisposable
{
    public const string Binary = "/usr/sbin/nginx";

    private readonly Process _process;
    private readonly string _directory;
    private int _stopped;

    private NginxBaseline(Process process, string directory, Uri baseAddress)
    {
        _process = process;
        _directory = directory;
        BaseAddress = baseAddress;
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
    }

    public Uri BaseAddress { get; }

    /// <summary>nginx's CPU time, user + system (one process: master_process off).</summary>
    public TimeSpan CpuTime => _process.HasExited ? TimeSpan.Zero : _process.TotalProcessorTime;

    /// <summary>One line for the report: the binary and how it runs.</summary>
    public string Description { get; private set; } = "";

    public static async Task<NginxBaseline> StartAsync(CancellationToken ct)
    {
        if (!File.Exists(Binary))
            throw new FileNotFoundException($"{Binary} is missing: apt-get install -y nginx (perf/run-all.sh and test.sh install it)");
        string directory = Path.Combine(Path.GetTempPath(), $"analytics-nginx-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        int port = ServerProcess.FreeLoopbackPort();
        string config = Path.Combine(directory, "nginx.conf");
        await File.WriteAllTextAsync(config, Config(directory, port), ct);
        var info = new ProcessStartInfo(Binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // -p: prefix for relative paths; -e: the error log before the configuration is read (else /var/log/nginx).
        foreach (string arg in (string[])["-p", directory + "/", "-c", config, "-e", Path.Combine(directory, "error.log")]) info.ArgumentList.Add(arg);
        var process = new Process { StartInfo = info };
        var nginx = new NginxBaseline(process, directory, new Uri($"http://127.0.0.1:{port}"));
        try
        {
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            await nginx.WaitListeningAsync(port, ct);
            nginx.Description = $"{Binary} {Version()} (one process, `return 204`, keep-alive, no access log)";
            return nginx;
        }
        catch
        {
            await nginx.DisposeAsync();
            throw;
        }
    }

    private static string Config(string directory, int port) => string.Create(CultureInfo.InvariantCulture, $$"""
        daemon off;
        master_process off;
        worker_processes 1;
        pid {{directory}}/nginx.pid;
        error_log {{directory}}/error.log warn;
        events { worker_connections 4096; }
        http {
            access_log off;
            client_body_temp_path {{directory}}/body;
            proxy_temp_path {{directory}}/proxy;
            fastcgi_temp_path {{directory}}/fastcgi;
            uwsgi_temp_path {{directory}}/uwsgi;
            scgi_temp_path {{directory}}/scgi;
            keepalive_requests 1000000000;
            keepalive_timeout 600s;
            server {
                listen 127.0.0.1:{{port}};
                location / { return 204; }
            }
        }
        """);

    private async Task WaitListeningAsync(int port, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + 30 * Stopwatch.Frequency;
        while (true)
        {
            if (_process.HasExited) throw new InvalidOperationException($"nginx exited with code {_process.ExitCode} at start: {ErrorLog()}");
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port, ct);
                return;
            }
            catch (SocketException) when (Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(50, ct);
            }
        }
    }

    private string ErrorLog()
    {
        string log = Path.Combine(_directory, "error.log");
        return File.Exists(log) ? File.ReadAllText(log).Trim() : "(no error log)";
    }

    // "nginx version: nginx/1.22.1" on stderr.
    private static string Version()
    {
        using var version = Process.Start(new ProcessStartInfo(Binary, "-v") { RedirectStandardError = true, UseShellExecute = false })!;
        string text = version.StandardError.ReadToEnd().Trim();
        version.WaitForExit();
        return text.Split('/').LastOrDefault() ?? "";
    }

    private void OnProcessExit(object? sender, EventArgs e) => Stop();

    private void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0) return;
        ServerProcess.KillAndDelete(_process, _directory);
    }

    public ValueTask DisposeAsync()
    {
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        Stop();
        return ValueTask.CompletedTask;
    }
}
