using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The real host binary in a child process, so SIGKILL kills everything in it. A start that fails
/// (exit, timeout, cancelled test) kills the child before it throws, and a ProcessExit hook kills
/// it if the test run itself ends first: no server outlives its test.
/// </summary>
public sealed partial class ServerProcess(string data, int port, bool demo = true, int startSeconds = 60)
{
    private Process? _process;

    public bool IsRunning => _process is { HasExited: false };

    public int Port => port;

    /// <summary>A command the server starts under (its arguments follow), e.g. setpriv to drop a capability.</summary>
    public IReadOnlyList<string> Launcher { get; init; } = [];

    /// <summary>Variables set for the server alone (a secret kept out of ps), not for the test
    /// process, whose environment every test running beside it would see.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>Lines the server wrote to stderr (start-up errors).</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Errors { get; } = new();
    /// <summary>Lines the server wrote to stdout (the banner, log lines such as the drain's).</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Output { get; } = new();

    public async Task StartAsync(params string[] extraArguments)
    {
        try
        {
            await StartOnceAsync(extraArguments);
        }
        catch
        {
            Kill();
            throw;
        }
    }

    private async Task StartOnceAsync(string[] extraArguments)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "analytics.dll");
        var start = new ProcessStartInfo(Launcher.Count > 0 ? Launcher[0] : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (Launcher.Count > 0)
        {
            foreach (var argument in Launcher.Skip(1)) start.ArgumentList.Add(argument);
            start.ArgumentList.Add("dotnet");
        }
        foreach (var argument in new[] { dll, "serve", "--data", data, "--urls", $"http://127.0.0.1:{port}", "--quiet" }) start.ArgumentList.Add(argument);
        if (demo) start.ArgumentList.Add("--demo");
        foreach (var (key, value) in Environment) start.Environment[key] = value;
        foreach (var argument in extraArguments) start.ArgumentList.Add(argument);
        _process = Process.Start(start)!;
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) Output.Enqueue(e.Data); };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            Errors.Enqueue(e.Data);
            TestContext.Current.TestOutputHelper?.WriteLine($"server :{port}: " + e.Data);
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddSeconds(startSeconds);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited) throw new InvalidOperationException($"server exited with {_process.ExitCode}");
            try
            {
                if ((await http.GetAsync($"http://127.0.0.1:{port}/healthz", TestContext.Current.CancellationToken)).IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
        throw new TimeoutException("server did not start");
    }

    /// <summary>An access token of the demo merchant: client credentials of the demo client that
    /// `serve --demo` saved in the data directory (as its banner tells a user to do).</summary>
    public async Task<string> DemoTokenAsync()
    {
        var saved = System.Text.Json.JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(data, "demo-client.json"), TestContext.Current.CancellationToken)).RootElement;
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        return await Analytics.Tests.Shared.TestTokens.ClientCredentialsAsync(http, saved.GetProperty("clientId").GetString()!, saved.GetProperty("clientSecret").GetString()!);
    }

    /// <summary>The public id of the demo site (--demo): the demo merchant's site list.</summary>
    public async Task<string> DemoSitePublicIdAsync()
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/v1/sites");
        request.Headers.Authorization = new("Bearer", await DemoTokenAsync());
        using var response = await http.SendAsync(request, TestContext.Current.CancellationToken);
        var sites = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement;
        return sites.EnumerateArray().Single().GetProperty("id").GetString()!;
    }

    /// <summary>The first line of stdout or stderr containing <paramref name="text"/>, waiting up
    /// to <paramref name="within"/> for it (the console logger writes from a queue of its own, so a
    /// start-up warning can arrive after the server answers); null if none came.</summary>
    public async Task<string?> LogLineAsync(string text, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            string? line = Output.Concat(Errors).FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal));
            if (line is not null || DateTime.UtcNow >= deadline) return line;
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
    }

    /// <summary>Waits until `/readyz` answers 200 (started, and the store reachable for roles that use it).</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process is not { HasExited: false }) throw new InvalidOperationException("server is not running");
            try
            {
                if ((await http.GetAsync($"http://127.0.0.1:{port}/readyz", TestContext.Current.CancellationToken)).IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
        throw new TimeoutException($"server on port {port} did not become ready");
    }

    /// <summary>
    /// Sends SIGTERM (what Kubernetes and systemd send) and waits for the exit. Returns the exit
    /// code and how long it took; a server still running after <paramref name="bound"/> is killed
    /// and the call throws, so a drain that hangs fails the test instead of hanging it.
    /// </summary>
    public async Task<(int ExitCode, TimeSpan Elapsed)> TerminateAsync(TimeSpan bound)
    {
        var process = _process ?? throw new InvalidOperationException("not started");
        var clock = Stopwatch.StartNew();
        if (Signal(process.Id, Sigterm) != 0) throw new InvalidOperationException($"kill(SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
        using var timeout = new CancellationTokenSource(bound);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
            throw new TimeoutException($"server on port {port} still running {bound.TotalSeconds:0.#} s after SIGTERM");
        }
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        return (process.ExitCode, clock.Elapsed);
    }

    private const int Sigterm = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Signal(int pid, int signal);

    /// <summary>Process.Kill sends SIGKILL on Unix: no shutdown code runs.</summary>
    public void Kill()
    {
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
    }

    private void OnProcessExit(object? sender, EventArgs e) => Kill();
}

public static class Ports
{
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
