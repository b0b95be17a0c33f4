using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The real host binary in a child process, so SIGKILL kills everything in it. A start that fails
/// (exit, timeout, cancelled test) kills the child before it throws, and a ProcessExit hook kills
/// it if the test run itself ends first: no server outlives its test.
/// </summary>
public sealed class ServerProcess(string data, int port, bool demo = true)
{
    private Process? _process;

    public bool IsRunning => _process is { HasExited: false };

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
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { dll, "serve", "--data", data, "--urls", $"http://127.0.0.1:{port}", "--quiet" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (demo) start.ArgumentList.Add("--demo");
        foreach (var argument in extraArguments) start.ArgumentList.Add(argument);
        _process = Process.Start(start)!;
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) TestContext.Current.TestOutputHelper?.WriteLine("server: " + e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddSeconds(60);
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
