using System.Net;
using System.Net.Sockets;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// A real Varnish (Debian's varnish, xkey from varnish-modules) owned by one test, running
/// deploy/varnish/default.vcl with its backend pointed at a test host: its working directory
/// temporary, listening on a free loopback port, no management port. Dispose (or the end of the
/// test process, should Dispose never run) kills it and its child and deletes the directory; a
/// start that fails kills it before throwing.
/// </summary>
public sealed class VarnishServer : IDisposable
{
    public const string Binary = "/usr/sbin/varnishd";
    public const string Xkey = "/usr/lib/x86_64-linux-gnu/varnish/vmods/libvmod_xkey.so";
    private const string TemplateBackendPort = ".port = \"5080\";";

    private readonly string _directory;
    private readonly ChildProcess _process;

    private VarnishServer(string directory, ChildProcess process, int port)
    {
        _directory = directory;
        _process = process;
        Url = new Uri($"http://127.0.0.1:{port}/");
    }

    public Uri Url { get; }

    public string Log => _process.Log;

    /// <summary>Starts varnishd on 127.0.0.1:<paramref name="port"/> (from <see cref="ChildProcess.FreePort"/>:
    /// the product must know the edge's URL before the edge knows the product's port) in front of
    /// 127.0.0.1:<paramref name="backendPort"/>.</summary>
    public static async Task<VarnishServer> StartAsync(int port, int backendPort, CancellationToken ct)
    {
        foreach (string needed in new[] { Binary, Xkey })
        {
            if (!File.Exists(needed))
                throw new InvalidOperationException($"{needed} is missing: apt-get install -y varnish varnish-modules (test.sh does this).");
        }
        string vcl = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "deploy", "varnish", "default.vcl"), ct);
        Assert.Contains(TemplateBackendPort, vcl);
        string directory = Path.Combine(Path.GetTempPath(), "analytics-varnish-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        string vclFile = Path.Combine(directory, "default.vcl");
        await File.WriteAllTextAsync(vclFile, vcl.Replace(TemplateBackendPort, $".port = \"{backendPort}\";", StringComparison.Ordinal), ct);
        // -F: foreground, so killing the process tree ends it; -j none: no privilege drop (the
        // working directory stays ours); -T none: no management port.
        var server = new VarnishServer(directory, ChildProcess.Start(Binary,
            ["-F", "-j", "none", "-T", "none", "-n", Path.Combine(directory, "work"), "-a", $"127.0.0.1:{port}", "-f", vclFile, "-s", "malloc,32m"]), port);
        try
        {
            await server._process.WaitUntilAsync(async () =>
            {
                try
                {
                    using var probe = new TcpClient();
                    await probe.ConnectAsync(IPAddress.Loopback, port, ct);
                    return true;
                }
                catch (SocketException) { return false; }
            }, "listening", ct);
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        _process.Dispose();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
