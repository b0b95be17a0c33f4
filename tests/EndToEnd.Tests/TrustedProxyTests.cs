using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using Analytics.Contracts.V1;
using Analytics.FastIngest.Transport;
using Analytics.Host;
using Google.Protobuf;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Real client addresses behind trusted proxies, over real sockets: the test client connects
/// from 127.0.0.1 and plays the proxy by sending X-Forwarded-For / Forwarded itself, over the
/// WebSocket upgrade and over HTTP POST. What is checked is what Rollup stored: events_raw's
/// ip_prefix (the /24 or /48 FastIngest keeps) and visitor_id (hashed from the full address).
/// </summary>
public class TrustedProxyTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Through_a_trusted_proxy_the_forwarded_address_is_the_clients_on_both_the_websocket_and_http_paths()
    {
        await using var host = await TestHost.StartAsync(engine, trustedProxies: ["127.0.0.1"]);
        await SendOverWebSocketAsync(host, "/ws-a", ("X-Forwarded-For", "198.51.100.7"));
        await SendOverWebSocketAsync(host, "/ws-a-again", ("X-Forwarded-For", "198.51.100.7"));
        await SendOverWebSocketAsync(host, "/ws-b", ("X-Forwarded-For", "198.51.100.8"));
        await SendOverHttpAsync(host, "/http-c", ("X-Forwarded-For", "203.0.113.9"));

        var stored = await StoredAsync(host, expected: 4);
        Assert.Equal("198.51.100.0/24", stored["/ws-a"].Prefix);
        Assert.Equal("198.51.100.0/24", stored["/ws-b"].Prefix);
        Assert.Equal("203.0.113.0/24", stored["/http-c"].Prefix);
        // The visitor id comes from the forwarded full address: the same client is one visitor,
        // a neighbour in the same /24 another.
        Assert.Equal(stored["/ws-a"].Visitor, stored["/ws-a-again"].Visitor);
        Assert.NotEqual(stored["/ws-a"].Visitor, stored["/ws-b"].Visitor);
        Assert.NotEqual(stored["/ws-a"].Visitor, stored["/http-c"].Visitor);
    }

    [Theory]
    [InlineData("10.0.0.0/8")]     // proxies configured, but the test's peer 127.0.0.1 is not one of them
    [InlineData("")]               // the default: no proxy is trusted
    public async Task From_an_untrusted_peer_forwarded_headers_are_ignored(string trusted)
    {
        await using var host = await TestHost.StartAsync(engine, trustedProxies: [trusted]);
        await SendOverWebSocketAsync(host, "/ws", ("X-Forwarded-For", "198.51.100.7"));
        await SendOverHttpAsync(host, "/http", ("X-Forwarded-For", "198.51.100.7"));
        await SendOverHttpAsync(host, "/http-rfc7239", ("Forwarded", "for=198.51.100.7"));
        await SendOverWebSocketAsync(host, "/ws-plain");

        var stored = await StoredAsync(host, expected: 4);
        Assert.All(stored.Values, s => Assert.Equal("127.0.0.0/24", s.Prefix));
        // Headers that were ignored do not change who the visitor is either.
        Assert.Single(stored.Values.Select(s => s.Visitor).Distinct());
    }

    [Fact]
    public async Task A_spoofed_chain_uses_only_the_right_most_address_that_is_not_a_trusted_proxy()
    {
        await using var host = await TestHost.StartAsync(engine, trustedProxies: ["127.0.0.1", "10.0.0.0/8"]);
        // The client wrote "1.2.3.4" itself; our one proxy appended the address it saw.
        await SendOverWebSocketAsync(host, "/one-hop", ("X-Forwarded-For", "1.2.3.4, 198.51.100.7"));
        await SendOverHttpAsync(host, "/one-hop-http", ("X-Forwarded-For", "1.2.3.4, 198.51.100.7"));
        // Two of our proxies: the balancer (10.1.2.3) appended the client, the local proxy the balancer.
        await SendOverHttpAsync(host, "/two-hops", ("X-Forwarded-For", "1.2.3.4, 203.0.113.9, 10.1.2.3"));

        var stored = await StoredAsync(host, expected: 3);
        Assert.Equal("198.51.100.0/24", stored["/one-hop"].Prefix);
        Assert.Equal("198.51.100.0/24", stored["/one-hop-http"].Prefix);
        Assert.Equal("203.0.113.0/24", stored["/two-hops"].Prefix);
    }

    [Fact]
    public async Task The_standard_Forwarded_header_from_a_trusted_proxy_names_the_client_too()
    {
        await using var host = await TestHost.StartAsync(engine, trustedProxies: ["127.0.0.1"], forwardedHeader: ClientAddressHeader.Forwarded);
        await SendOverHttpAsync(host, "/v4", ("Forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43"));
        await SendOverWebSocketAsync(host, "/v6", ("Forwarded", "for=\"[2001:db8:cafe::17]:4711\""));
        await SendOverHttpAsync(host, "/chain", ("Forwarded", "for=1.2.3.4, for=198.51.100.7;proto=https"));
        await SendOverHttpAsync(host, "/obfuscated", ("Forwarded", "for=_hidden"));

        var stored = await StoredAsync(host, expected: 4);
        Assert.Equal("192.0.2.0/24", stored["/v4"].Prefix);
        Assert.Equal("2001:db8:cafe::/48", stored["/v6"].Prefix);
        Assert.Equal("198.51.100.0/24", stored["/chain"].Prefix);
        // An address the proxy hid cannot be used: the proxy's own address stays.
        Assert.Equal("127.0.0.0/24", stored["/obfuscated"].Prefix);
    }

    /// <summary>A proxy writes one of the two headers and passes the other through as the client
    /// sent it: only the configured one is believed. Before, behind a proxy that writes
    /// Forwarded, a client's own X-Forwarded-For won (it was read first), so a client chose its
    /// address: its visitor id, its place, its per-IP limits.</summary>
    [Fact]
    public async Task Only_the_header_the_proxies_write_is_believed_never_the_one_a_client_sent_through_them()
    {
        await using (var forwarded = await TestHost.StartAsync(engine, trustedProxies: ["127.0.0.1"], forwardedHeader: ClientAddressHeader.Forwarded))
        {
            await SendOverHttpAsync(forwarded, "/spoofed-xff", ("X-Forwarded-For", "1.2.3.4"), ("Forwarded", "for=198.51.100.7"));
            await SendOverWebSocketAsync(forwarded, "/spoofed-xff-ws", ("X-Forwarded-For", "1.2.3.4"), ("Forwarded", "for=198.51.100.7"));
            var stored = await StoredAsync(forwarded, expected: 2);
            Assert.Equal("198.51.100.0/24", stored["/spoofed-xff"].Prefix);
            Assert.Equal("198.51.100.0/24", stored["/spoofed-xff-ws"].Prefix);
        }
        await using var xff = await TestHost.StartAsync(engine, trustedProxies: ["127.0.0.1"]);
        await SendOverHttpAsync(xff, "/spoofed-forwarded", ("X-Forwarded-For", "198.51.100.7"), ("Forwarded", "for=1.2.3.4"));
        await SendOverHttpAsync(xff, "/forwarded-only", ("Forwarded", "for=1.2.3.4"));
        var xffStored = await StoredAsync(xff, expected: 2);
        Assert.Equal("198.51.100.0/24", xffStored["/spoofed-forwarded"].Prefix);
        // Forwarded is not read at all: the proxy's own address stays.
        Assert.Equal("127.0.0.0/24", xffStored["/forwarded-only"].Prefix);
    }

    [Theory]
    [InlineData("10.0.0.0/33")]
    [InlineData("10.0.0.1/8")]
    [InlineData("proxy.internal")]
    public async Task A_bad_trusted_proxy_entry_stops_the_server_at_start_with_one_clear_line(string entry)
    {
        Assert.False(TrustedProxies.TryParse([entry], out _, out _, out string? error));
        Assert.Contains(entry, error);

        string data = Directory.CreateTempSubdirectory("analytics-e2e-proxies-").FullName;
        try
        {
            var start = new ProcessStartInfo("dotnet")
            {
                ArgumentList = { Path.Combine(AppContext.BaseDirectory, "analytics.dll"), "serve", "--data", data, "--urls", "http://127.0.0.1:0", "--trusted-proxies", "127.0.0.1," + entry },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync(Ct);
            var stdout = process.StandardOutput.ReadToEndAsync(Ct);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(60));
            try { await process.WaitForExitAsync(timeout.Token); }
            finally { if (!process.HasExited) process.Kill(entireProcessTree: true); }
            Assert.Equal(2, process.ExitCode);
            string[] lines = (await stderr).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal($"analytics serve: {error}", Assert.Single(lines));
            Assert.Equal("", await stdout);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    // ---- helpers ----

    private static EventBatch Batch(TestHost host, string path)
    {
        var batch = new EventBatch { SiteKey = host.Site.SiteKey, Seq = 1 };
        batch.Events.Add(Wire.Pageview(path));
        return batch;
    }

    private static async Task SendOverWebSocketAsync(TestHost host, string path, params (string Name, string Value)[] headers)
    {
        using var socket = await host.ConnectAsync(TestHost.BrowserUserAgent, headers);
        var ack = await Wire.SendAsync(socket, Batch(host, path));
        Assert.Equal(AckStatus.Ok, ack.Status);
        Assert.Equal(1u, ack.Accepted);
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
    }

    private static async Task SendOverHttpAsync(TestHost host, string path, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/events") { Content = new ByteArrayContent(Batch(host, path).ToByteArray()) };
        request.Content.Headers.ContentType = new("application/x-protobuf");
        request.Headers.UserAgent.ParseAdd(TestHost.BrowserUserAgent);
        foreach (var (name, value) in headers) request.Headers.TryAddWithoutValidation(name, value);
        using var response = await host.Http.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1u, Ack.Parser.ParseFrom(await response.Content.ReadAsByteArrayAsync(Ct)).Accepted);
    }

    /// <summary>Stored raw events by page path: (ip_prefix, visitor_id), once Rollup stored them all.</summary>
    private async Task<Dictionary<string, (string Prefix, string Visitor)>> StoredAsync(TestHost host, int expected)
    {
        string sql = $"SELECT path(url), ip_prefix, toString(visitor_id) FROM {host.Database}.events_raw ORDER BY 1";
        var deadline = DateTime.UtcNow.AddSeconds(30);
        IReadOnlyList<System.Text.Json.JsonElement[]> rows;
        do
        {
            rows = await engine.Store.QueryRowsAsync(sql, Ct);
            if (rows.Count >= expected) break;
            await Task.Delay(100, Ct);
        }
        while (DateTime.UtcNow < deadline);
        Assert.Equal(expected, rows.Count);
        return rows.ToDictionary(r => r[0].GetString()!, r => (r[1].GetString()!, r[2].GetString()!));
    }
}
