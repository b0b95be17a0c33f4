using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Analytics.Contracts.V1;
using Analytics.FastIngest;
using Analytics.FastIngest.Validation;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Hostile traffic over real sockets against the in-process host: foreign origins, rotated and
/// revoked site keys, connection and event-rate limits, slow senders, and the dead letters a
/// merchant reads back. Expected statuses and codes are the documented ones (README's limits
/// table, schemas/events.proto), not read from the code.
/// </summary>
public class HostileTrafficTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static EventBatch Batch(string key, int events = 1, ulong seq = 1)
    {
        var batch = new EventBatch { SiteKey = key, Seq = seq };
        for (int i = 0; i < events; i++) batch.Events.Add(Wire.Pageview());
        return batch;
    }

    private static async Task<HttpResponseMessage> PostAsync(TestHost host, EventBatch batch, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/events") { Content = new ByteArrayContent(batch.ToByteArray()) };
        request.Content.Headers.ContentType = new("application/x-protobuf");
        request.Headers.TryAddWithoutValidation("User-Agent", TestHost.BrowserUserAgent);
        foreach (var (name, value) in headers) request.Headers.TryAddWithoutValidation(name, value);
        return await host.Http.SendAsync(request, Ct);
    }

    private static async Task<JsonElement> RejectionsAsync(TestHost host, Func<JsonElement, bool> done)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        JsonElement last;
        do
        {
            last = await host.Http.GetFromJsonAsync<JsonElement>($"/v1/sites/{host.Site.PublicId}/rejections", Ct);
            if (done(last)) return last;
            await Task.Delay(200, Ct);
        }
        while (DateTime.UtcNow < deadline);
        return last;
    }

    [Fact]
    public async Task A_batch_from_a_foreign_origin_is_refused_counted_and_readable_by_the_merchant()
    {
        await using var host = await TestHost.StartAsync(engine);
        // The site's domain is shop.example and it lists no origins: the domain and its subdomains only.
        using var foreign = await host.ConnectAsync(headers: ("Origin", "https://evil.example"));
        var ack = await Wire.SendAsync(foreign, Batch(host.Site.SiteKey, events: 3, seq: 7));
        Assert.Equal(AckStatus.ForbiddenOrigin, ack.Status);
        Assert.Equal(7ul, ack.Seq);
        Assert.Equal(0u, ack.Accepted);

        using var own = await host.ConnectAsync(headers: ("Origin", "https://www.shop.example"));
        Assert.Equal(1u, (await Wire.SendAsync(own, Batch(host.Site.SiteKey))).Accepted);
        // A look-alike domain is not a subdomain.
        using var lookalike = await host.ConnectAsync(headers: ("Origin", "https://notshop.example"));
        Assert.Equal(AckStatus.ForbiddenOrigin, (await Wire.SendAsync(lookalike, Batch(host.Site.SiteKey))).Status);

        // Over HTTP: 403 with the Ack, no CORS grant; the Referer counts when there is no Origin.
        var http = await PostAsync(host, Batch(host.Site.SiteKey, events: 2), ("Referer", "http://attacker.example/page?x=1"));
        Assert.Equal(HttpStatusCode.Forbidden, http.StatusCode);
        Assert.Equal(AckStatus.ForbiddenOrigin, Ack.Parser.ParseFrom(await http.Content.ReadAsByteArrayAsync(Ct)).Status);
        Assert.False(http.Headers.Contains("Access-Control-Allow-Origin"));
        var allowed = await PostAsync(host, Batch(host.Site.SiteKey), ("Origin", "https://shop.example"));
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal("https://shop.example", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());

        Assert.Equal(3, await host.MetricAsync("analytics_ingest_refused_total{reason=\"ForbiddenOrigin\"}"));
        var rejections = await RejectionsAsync(host, j => j.GetProperty("rejections").GetArrayLength() >= 3);
        var rows = rejections.GetProperty("rejections").EnumerateArray().ToList();
        Assert.Equal(3, rows.Count);
        Assert.All(rows, r => Assert.Equal("FORBIDDEN_ORIGIN", r.GetProperty("reason").GetString()));
        Assert.Equal(["http://attacker.example", "https://evil.example", "https://notshop.example"],
            rows.Select(r => r.GetProperty("origin").GetString()).Order(StringComparer.Ordinal));
        var counted = rejections.GetProperty("reasons").EnumerateArray().Single();
        Assert.Equal(6, counted.GetProperty("events").GetInt64()); // 3 + 1 + 2 events refused
        // Only the two allowed pageviews count.
        Assert.Equal(2, (await host.WaitForAggregateAsync(r => r["pageviews"] >= 2))["pageviews"]);
    }

    [Fact]
    public async Task Allowed_origins_set_through_the_api_replace_the_domain_default_and_answer_cors_preflights()
    {
        await using var host = await TestHost.StartAsync(engine);
        var add = await host.Http.PostAsJsonAsync($"/v1/sites/{host.Site.PublicId}/origins", new { origin = "https://*.cdn.example" }, Ct);
        Assert.Equal(HttpStatusCode.Created, add.StatusCode);
        var bad = await host.Http.PostAsJsonAsync($"/v1/sites/{host.Site.PublicId}/origins", new { origin = "shop.example/path" }, Ct);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);

        using var cdn = await host.ConnectAsync(headers: ("Origin", "https://a.cdn.example"));
        Assert.Equal(AckStatus.Ok, (await Wire.SendAsync(cdn, Batch(host.Site.SiteKey))).Status);
        using var domain = await host.ConnectAsync(headers: ("Origin", "https://shop.example"));
        Assert.Equal(AckStatus.ForbiddenOrigin, (await Wire.SendAsync(domain, Batch(host.Site.SiteKey))).Status);

        async Task<HttpResponseMessage> Preflight(string origin)
        {
            using var request = new HttpRequestMessage(HttpMethod.Options, $"/v1/events?site={host.Site.SiteKey}");
            request.Headers.Add("Origin", origin);
            request.Headers.Add("Access-Control-Request-Method", "POST");
            return await host.Http.SendAsync(request, Ct);
        }
        var granted = await Preflight("https://b.cdn.example");
        Assert.Equal(HttpStatusCode.NoContent, granted.StatusCode);
        Assert.Equal("https://b.cdn.example", granted.Headers.GetValues("Access-Control-Allow-Origin").Single());
        var refused = await Preflight("https://shop.example");
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.False(refused.Headers.Contains("Access-Control-Allow-Origin"));

        Assert.Equal(HttpStatusCode.NoContent, (await host.Http.DeleteAsync($"/v1/sites/{host.Site.PublicId}/origins?origin=https://*.cdn.example", Ct)).StatusCode);
        using var again = await host.ConnectAsync(headers: ("Origin", "https://shop.example"));
        Assert.Equal(AckStatus.Ok, (await Wire.SendAsync(again, Batch(host.Site.SiteKey))).Status);
    }

    [Fact]
    public async Task A_rotated_key_works_through_its_grace_period_and_a_revoked_key_is_refused_at_once()
    {
        await using var host = await TestHost.StartAsync(engine);
        string old = host.Site.SiteKey;
        var rotated = await (await host.Http.PostAsJsonAsync($"/v1/sites/{host.Site.PublicId}/keys/rotate", new { graceHours = 1 }, Ct)).Content.ReadFromJsonAsync<JsonElement>(Ct);
        string fresh = rotated.GetProperty("siteKey").GetString()!;
        Assert.NotEqual(old, fresh);
        Assert.Equal(old, rotated.GetProperty("retiredKeys")[0].GetProperty("siteKey").GetString());

        using var socket = await host.ConnectAsync();
        Assert.Equal(AckStatus.Ok, (await Wire.SendAsync(socket, Batch(old))).Status);
        Assert.Equal(AckStatus.Ok, (await Wire.SendAsync(socket, Batch(fresh))).Status);

        Assert.Equal(HttpStatusCode.OK, (await host.Http.DeleteAsync($"/v1/sites/{host.Site.PublicId}/keys/{old}", Ct)).StatusCode);
        Assert.Equal(AckStatus.UnknownSite, (await Wire.SendAsync(socket, Batch(old))).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await PostAsync(host, Batch(old))).StatusCode);
        Assert.Equal(AckStatus.Ok, (await Wire.SendAsync(socket, Batch(fresh))).Status);

        // Revoking the current key replaces it with a new one, with no grace.
        var replaced = await (await host.Http.DeleteAsync($"/v1/sites/{host.Site.PublicId}/keys/{fresh}", Ct)).Content.ReadFromJsonAsync<JsonElement>(Ct);
        string third = replaced.GetProperty("siteKey").GetString()!;
        Assert.Equal(0, replaced.GetProperty("retiredKeys").GetArrayLength());
        Assert.Equal(AckStatus.UnknownSite, (await Wire.SendAsync(socket, Batch(fresh))).Status);
        Assert.Equal(AckStatus.Ok, (await Wire.SendAsync(socket, Batch(third))).Status);
        Assert.Equal(4, (await host.WaitForAggregateAsync(r => r["pageviews"] >= 4))["pageviews"]);
    }

    [Fact]
    public async Task A_key_revoked_in_the_control_plane_by_another_process_is_refused_within_the_cache_ttl()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var socket = await host.ConnectAsync();
        Assert.Equal(AckStatus.Ok, (await Wire.SendAsync(socket, Batch(host.Site.SiteKey))).Status);
        // The CLI opens the same SQLite control plane, as an operator would beside the server.
        var revoke = await HostCommand.RunAsync("sites", "keys", "revoke", "--data", host.DataDirectory, "--site", host.Site.PublicId, "--key", host.Site.SiteKey);
        Assert.True(revoke.ExitCode == 0, revoke.ToString());
        var clock = Stopwatch.StartNew();
        AckStatus status;
        do
        {
            status = (await Wire.SendAsync(socket, Batch(host.Site.SiteKey))).Status;
            if (status != AckStatus.Ok) break;
            await Task.Delay(200, Ct);
        }
        while (clock.Elapsed < Analytics.ControlPlane.SiteRegistry.CacheTtl + TimeSpan.FromSeconds(5));
        Assert.Equal(AckStatus.UnknownSite, status);
        Assert.True(clock.Elapsed <= Analytics.ControlPlane.SiteRegistry.CacheTtl + TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
    }

    /// <summary>A raw keep-alive TCP connection to the host; <paramref name="ask"/> sends a GET and
    /// reads the answer's head (status line and headers).</summary>
    private sealed class RawConnection : IDisposable
    {
        private readonly TcpClient _tcp = new();
        private NetworkStream Stream => _tcp.GetStream();

        public static Task<RawConnection> OpenAsync(TestHost host) => OpenAsync(new Uri(host.BaseAddress).Port);

        public static async Task<RawConnection> OpenAsync(int port)
        {
            var raw = new RawConnection();
            await raw._tcp.ConnectAsync("127.0.0.1", port, Ct);
            return raw;
        }

        public async Task<string> AskAsync(string path = "/healthz")
        {
            await Stream.WriteAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), Ct);
            var head = new StringBuilder();
            var buffer = new byte[1];
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal) && await Stream.ReadAsync(buffer, timeout.Token) == 1) head.Append((char)buffer[0]);
            // The body too, so the next answer starts at its status line.
            var length = System.Text.RegularExpressions.Regex.Match(head.ToString(), @"Content-Length: (\d+)\r\n", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
            if (length.Success) await Stream.ReadExactlyAsync(new byte[int.Parse(length.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)], timeout.Token);
            if (head.ToString().Contains("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase))
            {
                var body = new StringBuilder();
                while (!body.ToString().EndsWith("0\r\n\r\n", StringComparison.Ordinal) && await Stream.ReadAsync(buffer, timeout.Token) == 1) body.Append((char)buffer[0]);
            }
            return head.ToString();
        }

        /// <summary>Reads until the server closes the connection: true if it did within <paramref name="within"/>.</summary>
        public async Task<bool> ClosedByServerAsync(TimeSpan within)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            timeout.CancelAfter(within);
            var buffer = new byte[4096];
            try
            {
                while (await Stream.ReadAsync(buffer, timeout.Token) > 0) { }
                return true;
            }
            catch (IOException) { return true; } // reset
            catch (OperationCanceledException) when (!Ct.IsCancellationRequested) { return false; }
        }

        public void Dispose() => _tcp.Dispose();
    }

    [Fact]
    public async Task Tcp_connections_over_the_per_address_limit_get_429_and_are_closed_and_idle_ones_are_dropped()
    {
        await using var host = await TestHost.StartAsync(engine, new IngestLimits { MaxPeerConnectionsPerIp = 3 });
        var held = new List<RawConnection>();
        try
        {
            for (int i = 0; i < 3; i++) held.Add(await ServedConnectionAsync(host));
            // A fourth: its request (any endpoint) gets 429 with Retry-After, and the connection closes.
            await AssertRefusedAndClosedAsync(host, "429");
            // A WebSocket is a TCP connection too: refused before its upgrade.
            var refused = await Assert.ThrowsAsync<WebSocketException>(() => host.ConnectAsync());
            Assert.Contains("429", refused.Message + refused.InnerException?.Message);
            // A connection over the limit that asks nothing is dropped after 5 s, not kept for the
            // keep-alive timeout (130 s).
            using (var quiet = await RawConnection.OpenAsync(host))
            {
                var clock = Stopwatch.StartNew();
                Assert.True(await quiet.ClosedByServerAsync(TimeSpan.FromSeconds(15)), "the idle connection over the limit stayed open");
                Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(10));
            }
            // The held connections were never disturbed, and a closed one frees its slot.
            Assert.StartsWith("HTTP/1.1 200", await held[0].AskAsync(), StringComparison.Ordinal);
            held[2].Dispose();
            held.RemoveAt(2);
            await AssertServedAgainAsync(host);
        }
        finally
        {
            foreach (var connection in held) connection.Dispose();
        }
        Assert.True(await host.MetricAsync("analytics_ingest_refused_total{reason=\"PeerConnectionsFull\"}") >= 3);

        // A trusted proxy's connections carry many clients: not counted.
        await using var behindProxy = await TestHost.StartAsync(engine, new IngestLimits { MaxPeerConnectionsPerIp = 1 }, trustedProxies: ["127.0.0.1"]);
        using var first = await RawConnection.OpenAsync(behindProxy);
        using var second = await RawConnection.OpenAsync(behindProxy);
        Assert.StartsWith("HTTP/1.1 200", await first.AskAsync(), StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 200", await second.AskAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tcp_connections_over_the_total_get_503_and_are_closed_whoever_opens_them()
    {
        // 127.0.0.1 is a trusted proxy here, so the per-address limit does not count it: only the
        // total can refuse.
        await using var host = await TestHost.StartAsync(engine, new IngestLimits { MaxTcpConnections = 2, MaxPeerConnectionsPerIp = 1 }, trustedProxies: ["127.0.0.1"]);
        var held = new List<RawConnection>();
        try
        {
            // The host's own start-up connection (its token request) may not be closed yet.
            for (int i = 0; i < 2; i++) held.Add(await ServedConnectionAsync(host));
            await AssertRefusedAndClosedAsync(host, "503");
            // A full server is alive: the liveness probe is answered, then the connection closes.
            using (var probe = await RawConnection.OpenAsync(host))
            {
                string head = await probe.AskAsync("/livez");
                Assert.StartsWith("HTTP/1.1 200", head, StringComparison.Ordinal);
                Assert.Contains("Connection: close\r\n", head, StringComparison.Ordinal);
                Assert.True(await probe.ClosedByServerAsync(TimeSpan.FromSeconds(5)), "the probe's connection stayed open");
            }
            var refused = await Assert.ThrowsAsync<WebSocketException>(() => host.ConnectAsync());
            Assert.Contains("503", refused.Message + refused.InnerException?.Message);
            // The held connections were never disturbed, and a closed one frees its slot.
            Assert.StartsWith("HTTP/1.1 200", await held[0].AskAsync(), StringComparison.Ordinal);
            held[1].Dispose();
            held.RemoveAt(1);
            await AssertServedAgainAsync(host);
        }
        finally
        {
            foreach (var connection in held) connection.Dispose();
        }
        // Read in the process: a /metrics request could itself meet the total of 2.
        Assert.True(host.App.Services.GetRequiredService<IngestMetrics>().RefusedCount(BatchRefusal.TcpConnectionsFull) >= 3);
    }

    [Fact]
    public async Task The_total_stays_below_the_open_files_limit_so_a_connection_past_it_gets_503_not_silence()
    {
        // 1,100 open files (prlimit): 1,100 - max(512, 1,100 / 5) = 588 connections, documented in
        // IngestLimits and docs/security.md; 5,000 asked for, so the server says it lowered them.
        const int Expected = 1_100 - 512;
        string data = Path.Combine(Path.GetTempPath(), "analytics-nofile-" + Guid.NewGuid().ToString("N"));
        var server = new ServerProcess(data, Ports.Free(), demo: false) { Launcher = ["prlimit", "--nofile=1100:1100"] };
        var held = new List<RawConnection>();
        try
        {
            await server.StartAsync("--max-tcp-connections", "5000", "--max-peer-connections-per-ip", "0");
            string? warning = await server.LogLineAsync("Open TCP connections limited", TimeSpan.FromSeconds(5));
            Assert.NotNull(warning);
            Assert.Contains($"limited to {Expected} instead of 5000", warning, StringComparison.Ordinal);
            Assert.Contains("may open 1100 files", warning, StringComparison.Ordinal);
            // --max-connections (100,000 WebSockets by default) cannot be reached under that total.
            string? unreachable = await server.LogLineAsync("Ingest WebSockets can reach", TimeSpan.FromSeconds(5));
            Assert.NotNull(unreachable);
            Assert.Contains($"can reach {Expected}, not --max-connections 100000", unreachable, StringComparison.Ordinal);
            for (int i = 0; i < Expected; i++)
            {
                held.Add(await RawConnection.OpenAsync(server.Port));
                Assert.StartsWith("HTTP/1.1 200", await held[i].AskAsync(), StringComparison.Ordinal);
            }
            using (var past = await RawConnection.OpenAsync(server.Port))
            {
                string head = await past.AskAsync();
                Assert.StartsWith("HTTP/1.1 503", head, StringComparison.Ordinal);
                Assert.Contains("Retry-After: 5\r\n", head, StringComparison.Ordinal);
            }
            // Connections over the total that wait silently for their 5 s hold descriptors too: at
            // most an eighth of the reserve (512 / 8 = 64) at once; the next is closed at once.
            // Which ones the server reaches first is its business: 8 more than the bound are opened,
            // and within 2.5 s (before any 5 s deadline) 8 are closed, the bound's worth still open
            // (one fewer if the 503 connection's slot is not released yet).
            const int Refusing = 512 / 8, Extra = 8;
            // A connection closed at once can be reset before its connect completes on this side
            // (the reset is then the connect's error): closed at once all the same.
            var silent = new List<RawConnection>();
            int resetWhileConnecting = 0;
            for (int i = 0; i < Refusing + Extra; i++)
            {
                try { silent.Add(await RawConnection.OpenAsync(server.Port)); }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { resetWhileConnecting++; }
            }
            held.AddRange(silent);
            var closed = await Task.WhenAll(silent.Select(c => c.ClosedByServerAsync(TimeSpan.FromSeconds(2.5))));
            Assert.InRange(closed.Count(c => c) + resetWhileConnecting, Extra, Extra + 1);
        }
        finally
        {
            foreach (var connection in held) connection.Dispose();
            server.Kill();
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>A new connection's request (any endpoint) gets <paramref name="status"/> with
    /// Retry-After and Connection: close, as problem+json, and the server closes it.</summary>
    private static async Task AssertRefusedAndClosedAsync(TestHost host, string status)
    {
        using var refused = await RawConnection.OpenAsync(host);
        string head = await refused.AskAsync("/v1/query");
        Assert.StartsWith("HTTP/1.1 " + status, head, StringComparison.Ordinal);
        Assert.Contains("Retry-After: 5\r\n", head, StringComparison.Ordinal);
        Assert.Contains("Connection: close\r\n", head, StringComparison.Ordinal);
        Assert.Contains("Content-Type: application/problem+json", head, StringComparison.Ordinal);
        Assert.True(await refused.ClosedByServerAsync(TimeSpan.FromSeconds(5)), "the refused connection stayed open");
    }

    /// <summary>A slot freed by a closed connection is taken by a new one within 5 s.</summary>
    private static async Task AssertServedAgainAsync(TestHost host) => (await ServedConnectionAsync(host)).Dispose();

    /// <summary>A new connection served 200 within 5 s (a slot may take a moment to be freed by a
    /// connection closed just before), kept open.</summary>
    private static async Task<RawConnection> ServedConnectionAsync(TestHost host)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (true)
        {
            var next = await RawConnection.OpenAsync(host);
            string head = await next.AskAsync();
            if (head.StartsWith("HTTP/1.1 200", StringComparison.Ordinal)) return next;
            next.Dispose();
            Assert.True(DateTime.UtcNow < deadline, "no connection served within 5 s: " + head);
        }
    }

    [Fact]
    public async Task Connections_over_the_per_ip_limit_get_429_and_over_the_total_get_503()
    {
        await using var host = await TestHost.StartAsync(engine, new IngestLimits { MaxConnectionsPerIp = 2, MaxConnections = 1_000 });
        using var a = await host.ConnectAsync();
        using var b = await host.ConnectAsync();
        var refused = await Assert.ThrowsAsync<WebSocketException>(() => host.ConnectAsync());
        Assert.Contains("429", refused.Message + refused.InnerException?.Message);
        using var raw = new HttpClient { BaseAddress = new Uri(host.BaseAddress) };
        // The same refusal seen as HTTP, with its Retry-After.
        using var upgrade = new HttpRequestMessage(HttpMethod.Get, "/v1/ws");
        upgrade.Headers.Add("Connection", "Upgrade");
        upgrade.Headers.Add("Upgrade", "websocket");
        upgrade.Headers.Add("Sec-WebSocket-Version", "13");
        upgrade.Headers.Add("Sec-WebSocket-Key", Convert.ToBase64String(new byte[16]));
        var answer = await raw.SendAsync(upgrade, Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, answer.StatusCode);
        Assert.NotNull(answer.Headers.RetryAfter);
        // A closed connection frees its slot.
        await a.CloseAsync(WebSocketCloseStatus.NormalClosure, "", Ct);
        var deadline = DateTime.UtcNow.AddSeconds(5);
        ClientWebSocket? c = null;
        while (c is null)
        {
            try { c = await host.ConnectAsync(); }
            catch (WebSocketException) when (DateTime.UtcNow < deadline) { await Task.Delay(50, Ct); }
        }
        c.Dispose();
        Assert.True(await host.MetricAsync("analytics_ingest_refused_total{reason=\"IpConnectionsFull\"}") >= 2);

        await using var small = await TestHost.StartAsync(engine, new IngestLimits { MaxConnections = 1, MaxConnectionsPerIp = 0 });
        using var only = await small.ConnectAsync();
        var full = await Assert.ThrowsAsync<WebSocketException>(() => small.ConnectAsync());
        Assert.Contains("503", full.Message + full.InnerException?.Message);
        Assert.Equal(1, await small.MetricAsync("analytics_ingest_refused_total{reason=\"ServerConnectionsFull\"}"));
    }

    [Fact]
    public async Task Events_over_the_per_ip_rate_get_a_rate_limited_retry_on_websocket_and_429_on_http()
    {
        await using var host = await TestHost.StartAsync(engine, new IngestLimits { MaxEventsPerSecondPerIp = 10, EventBurstPerIp = 20 });
        using var one = await host.ConnectAsync();
        using var two = await host.ConnectAsync();
        Assert.Equal(20u, (await Wire.SendAsync(one, Batch(host.Site.SiteKey, events: 20))).Accepted);
        // The bucket belongs to the address, not the socket: the second socket finds it empty.
        var limited = await Wire.SendAsync(two, Batch(host.Site.SiteKey, events: 10, seq: 2));
        Assert.Equal(AckStatus.Retry, limited.Status);
        Assert.Equal(RetryReason.RateLimitedIp, limited.RetryReason);
        Assert.InRange(limited.RetryAfterMs, 100u, 2_000u);
        Assert.Equal(0u, limited.Accepted);

        var http = await PostAsync(host, Batch(host.Site.SiteKey, events: 10));
        Assert.Equal(HttpStatusCode.TooManyRequests, http.StatusCode);
        Assert.InRange(http.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 2);
        Assert.Equal(RetryReason.RateLimitedIp, Ack.Parser.ParseFrom(await http.Content.ReadAsByteArrayAsync(Ct)).RetryReason);

        // After the wait it asked for, the resend is accepted; nothing of the refused batches counted.
        await Task.Delay(TimeSpan.FromMilliseconds(limited.RetryAfterMs + 100), Ct);
        Assert.Equal(10u, (await Wire.SendAsync(two, Batch(host.Site.SiteKey, events: 10, seq: 3))).Accepted);
        Assert.Equal(30, (await host.WaitForAggregateAsync(r => r["pageviews"] >= 30))["pageviews"]);
        Assert.Equal(2, await host.MetricAsync("analytics_ingest_refused_total{reason=\"RateLimitedIp\"}"));
    }

    [Fact]
    public async Task A_page_may_read_every_refusal_that_depends_on_no_site_with_its_retry_after_but_no_403()
    {
        // Cross-origin, a browser hands the agent only answers that name its origin in
        // Access-Control-Allow-Origin, and only the headers listed in -Expose-Headers besides the
        // safelisted ones (Retry-After is not one). Every HTTP answer is checked as a browser does.
        await using var host = await TestHost.StartAsync(engine, new IngestLimits { MaxEventsPerSecondPerIp = 10, EventBurstPerIp = 20, MaxMessageBytes = 4096 });
        const string page = "https://www.shop.example";
        static (string? Origin, string? Exposed) Cors(HttpResponseMessage r) => (
            r.Headers.TryGetValues("Access-Control-Allow-Origin", out var o) ? o.Single() : null,
            r.Headers.TryGetValues("Access-Control-Expose-Headers", out var e) ? string.Join(",", e) : null);
        var readable = (page, "Retry-After");

        // 415: not an EventBatch content type.
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/events") { Content = new StringContent("x", Encoding.UTF8, "application/json") })
        {
            request.Headers.TryAddWithoutValidation("Origin", page);
            var unsupported = await host.Http.SendAsync(request, Ct);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, unsupported.StatusCode);
            Assert.Equal(readable, Cors(unsupported));
        }
        // 413: over the size limit (the agent drops such a batch instead of resending it forever).
        var big = Batch(host.Site.SiteKey);
        big.Events[0].Props.Add(new Property { Key = "note", Value = new string('x', 5000) });
        var tooLarge = await PostAsync(host, big, ("Origin", page));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
        Assert.Equal(readable, Cors(tooLarge));
        // 400: not an EventBatch at all.
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/events") { Content = new ByteArrayContent([0xFF, 0xFF, 0xFF]) })
        {
            request.Content.Headers.ContentType = new("application/x-protobuf");
            request.Headers.TryAddWithoutValidation("Origin", page);
            var malformed = await host.Http.SendAsync(request, Ct);
            Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
            Assert.Equal(readable, Cors(malformed));
        }
        // 200 from the site's own page; then 429 from the IP's bucket, before the key is looked up.
        var ok = await PostAsync(host, Batch(host.Site.SiteKey, events: 20), ("Origin", page));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(readable, Cors(ok));
        var limited = await PostAsync(host, Batch(host.Site.SiteKey, events: 10), ("Origin", page));
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.Equal(RetryReason.RateLimitedIp, Ack.Parser.ParseFrom(await limited.Content.ReadAsByteArrayAsync(Ct)).RetryReason);
        Assert.NotNull(limited.Headers.RetryAfter);
        Assert.Equal(readable, Cors(limited));

        // 403 stays unreadable: a foreign page learns nothing, nor does a page with an unknown key.
        await Task.Delay(2_100, Ct); // the IP's bucket refills
        var foreign = await PostAsync(host, Batch(host.Site.SiteKey), ("Origin", "https://evil.example"));
        Assert.Equal(HttpStatusCode.Forbidden, foreign.StatusCode);
        Assert.Equal((null, null), Cors(foreign));
        var unknown = await PostAsync(host, Batch("sk_" + new string('a', 24)), ("Origin", page));
        Assert.Equal(HttpStatusCode.Forbidden, unknown.StatusCode);
        Assert.Equal((null, null), Cors(unknown));

        // 503 while the node drains.
        host.App.Services.GetRequiredService<Analytics.FastIngest.Transport.IngestDrain>().Begin();
        var draining = await PostAsync(host, Batch(host.Site.SiteKey), ("Origin", page));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, draining.StatusCode);
        Assert.NotNull(draining.Headers.RetryAfter);
        Assert.Equal(readable, Cors(draining));
    }

    [Fact]
    public async Task Events_over_the_per_site_rate_are_limited_whatever_the_address()
    {
        await using var host = await TestHost.StartAsync(engine, new IngestLimits { MaxEventsPerSecondPerSite = 10, EventBurstPerSite = 20 },
            trustedProxies: ["127.0.0.1"]);
        // Two "addresses" through a trusted proxy: the site's bucket is shared by both.
        using var one = await host.ConnectAsync(headers: ("X-Forwarded-For", "198.51.100.1"));
        using var two = await host.ConnectAsync(headers: ("X-Forwarded-For", "198.51.100.2"));
        Assert.Equal(15u, (await Wire.SendAsync(one, Batch(host.Site.SiteKey, events: 15))).Accepted);
        var limited = await Wire.SendAsync(two, Batch(host.Site.SiteKey, events: 15));
        Assert.Equal(AckStatus.Retry, limited.Status);
        Assert.Equal(RetryReason.RateLimitedSite, limited.RetryReason);
        Assert.True(limited.RetryAfterMs > 0);
    }

    [Fact]
    public async Task A_client_ignoring_rate_limited_retries_is_answered_once_per_wait_and_paused_not_closed_while_another_address_is_served()
    {
        // Per address: 50 events/s, burst 50. The flooder's batches hold 50 events, so no batch of
        // it ever waits more than 1 s (a whole burst at 50/s), and at most burst + rate x time
        // events are accepted.
        const int perSecond = 50, batchEvents = 50;
        const double longestWaitMs = 1_000.0 * batchEvents / perSecond;
        await using var host = await TestHost.StartAsync(engine, new IngestLimits { MaxEventsPerSecondPerIp = perSecond, EventBurstPerIp = batchEvents },
            trustedProxies: ["127.0.0.1"]);
        var output = TestContext.Current.TestOutputHelper;
        using var flooder = await host.ConnectAsync(headers: ("X-Forwarded-For", "203.0.113.9"));
        using var client = await host.ConnectAsync(headers: ("X-Forwarded-For", "198.51.100.20"));

        async Task<List<double>> WellBehavedAsync(ulong seqBase)
        {
            var latencies = new List<double>();
            for (int i = 0; i < 20; i++)
            {
                var watch = Stopwatch.StartNew();
                var ack = await Wire.SendAsync(client, Batch(host.Site.SiteKey, events: 2, seq: seqBase + (ulong)i));
                latencies.Add(watch.Elapsed.TotalMilliseconds);
                Assert.Equal(AckStatus.Ok, ack.Status); // 2 events per ~100 ms: well under its own address's 50/s
                await Task.Delay(100, Ct);
            }
            return latencies;
        }
        var quiet = await WellBehavedAsync(100);

        // ~100 KB per batch (2 KB URLs), so the buffers between the flooder and the server fill at once.
        var flood = new EventBatch { SiteKey = host.Site.SiteKey, Seq = 1 };
        for (int i = 0; i < batchEvents; i++) flood.Events.Add(Wire.Pageview("/" + new string('f', 1_900)));
        byte[] payload = flood.ToByteArray();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var clock = Stopwatch.StartNew();
        long sent = 0;
        var answers = new List<(TimeSpan At, Ack Ack)>();
        string? closed = null;
        // Hostile: sends batch after batch without waiting for answers (another task reads them), so every wait is ignored.
        var sending = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    await flooder.SendAsync(payload, WebSocketMessageType.Binary, true, stop.Token);
                    Interlocked.Increment(ref sent);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException or ObjectDisposedException) { }
        }, Ct);
        var receiving = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var ack = await Wire.ReceiveAckAsync(flooder);
                    lock (answers) answers.Add((clock.Elapsed, ack));
                }
            }
            catch (WebSocketException e) { closed = e.Message; }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException) { }
        }, Ct);
        try
        {
            var abused = await WellBehavedAsync(200);
            // Held back once the socket buffers on both ends are full: how long that takes depends on
            // the kernel's buffer autotuning and on how long the well-behaved client took (a fast run
            // left 30 batches a second still going into the buffers after 2 s). A server that read
            // every batch would let the flooder go on at hundreds a second for the whole 15 s.
            long sentLastSecond;
            var holdBack = System.Diagnostics.Stopwatch.StartNew();
            do
            {
                long sentBefore = Interlocked.Read(ref sent);
                await Task.Delay(TimeSpan.FromSeconds(1), Ct);
                sentLastSecond = Interlocked.Read(ref sent) - sentBefore;
            }
            while (sentLastSecond > 10 && holdBack.Elapsed < TimeSpan.FromSeconds(15));
            var at = clock.Elapsed;
            (TimeSpan At, Ack Ack)[] seen;
            lock (answers) seen = [.. answers];
            var state = flooder.State;
            string? closedThen = closed;

            var refused = seen.Where(a => a.Ack.Status == AckStatus.Retry).ToList();
            int accepted = seen.Count(a => a.Ack.Status == AckStatus.Ok);
            long sentTotal = Interlocked.Read(ref sent);
            output?.WriteLine($"flooder: {sentTotal} batches sent ({sentTotal * payload.Length / 1048576.0:0.0} MiB), {sentLastSecond} in the last second (held back after {holdBack.Elapsed.TotalSeconds:0} s); " +
                $"answered in {at.TotalSeconds:0.0} s: {accepted} OK, {refused.Count} RETRY waiting {string.Join(", ", refused.Select(a => a.Ack.RetryAfterMs))} ms; " +
                $"answers at {string.Join(", ", seen.Select(a => a.At.TotalMilliseconds.ToString("0", System.Globalization.CultureInfo.InvariantCulture)))} ms");
            output?.WriteLine($"well-behaved client on another address, ack ms: quiet p50 {Median(quiet):0.0} max {quiet.Max():0.0}; during the flood p50 {Median(abused):0.0} max {abused.Max():0.0}");

            Assert.Equal(seen.Length, refused.Count + accepted);
            Assert.All(refused, a => Assert.Equal(RetryReason.RateLimitedIp, a.Ack.RetryReason));
            Assert.All(refused, a => Assert.InRange(a.Ack.RetryAfterMs, 1u, (uint)longestWaitMs));
            Assert.InRange(accepted, 1, (int)((batchEvents + perSecond * at.TotalSeconds) / batchEvents) + 1);
            // Answered again after each wait, and never sooner: the waits of every RETRY but the last
            // fit in the time (one answer per wait, not one per batch sent).
            Assert.True(refused.Count >= 2, $"{refused.Count} RETRY answers");
            double waited = refused.Take(refused.Count - 1).Sum(a => (double)a.Ack.RetryAfterMs);
            Assert.True(waited <= at.TotalMilliseconds, $"waits of {waited} ms answered within {at.TotalMilliseconds} ms");
            // Paused, not closed.
            Assert.Equal(WebSocketState.Open, state);
            Assert.Null(closedThen);
            // It sent far more than it was answered, until TCP flow control blocked it: what the server
            // read in the last second (a batch or two) let at most a few more through.
            Assert.True(sentTotal > 5 * seen.Length, $"{sentTotal} batches sent, {seen.Length} answered");
            Assert.True(sentLastSecond <= 10, $"{sentLastSecond} batches sent in the last second after {holdBack.Elapsed.TotalSeconds:0} s: the sender was not held back");
            // The pause holds no thread and nothing shared: another address is served as before.
            Assert.True(Median(abused) < longestWaitMs / 2, $"well-behaved client's median ack {Median(abused)} ms during the flood");
            // Counted as before (the flood goes on while /metrics answers: a wait or two more).
            Assert.InRange(await host.MetricAsync("analytics_ingest_refused_total{reason=\"RateLimitedIp\"}"), refused.Count, refused.Count + 2);
        }
        finally
        {
            await stop.CancelAsync();
            flooder.Abort();
            await Task.WhenAll(sending, receiving);
        }
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    [Fact]
    public async Task A_websocket_message_trickling_in_is_closed_with_1008_after_its_deadline()
    {
        var timeout = TimeSpan.FromSeconds(1);
        await using var host = await TestHost.StartAsync(engine, new IngestLimits { MessageReceiveTimeout = timeout });
        using var tcp = new TcpClient();
        var uri = new Uri(host.BaseAddress);
        await tcp.ConnectAsync(uri.Host, uri.Port, Ct);
        var stream = tcp.GetStream();
        string handshake = $"GET /v1/ws HTTP/1.1\r\nHost: {uri.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            $"Sec-WebSocket-Key: {Convert.ToBase64String(new byte[16])}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: {TestHost.BrowserUserAgent}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(handshake), Ct);
        var response = new byte[4096];
        int n = await stream.ReadAsync(response, Ct);
        Assert.StartsWith("HTTP/1.1 101", Encoding.ASCII.GetString(response, 0, n));

        // A masked binary frame announcing 100 bytes, sent one byte every 300 ms.
        byte[] frame = [0x82, 0x80 | 100, 1, 2, 3, 4, .. new byte[100]];
        var clock = Stopwatch.StartNew();
        int sent = 0;
        var closeFrame = new byte[128];
        int read = 0;
        var reading = stream.ReadAsync(closeFrame, Ct).AsTask();
        while (!reading.IsCompleted && sent < frame.Length && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            try { await stream.WriteAsync(frame.AsMemory(sent++, 1), Ct); }
            catch (IOException) { break; }
            await Task.WhenAny(reading, Task.Delay(300, Ct));
        }
        read = await reading.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        var elapsed = clock.Elapsed;
        Assert.True(read >= 4, $"read {read} bytes");
        Assert.Equal(0x88, closeFrame[0]); // close frame
        Assert.Equal(1008, closeFrame[2] << 8 | closeFrame[3]);
        Assert.InRange(elapsed, timeout - TimeSpan.FromMilliseconds(100), timeout + TimeSpan.FromSeconds(2));
        Assert.Equal(1, await host.MetricAsync("analytics_ingest_refused_total{reason=\"SlowSender\"}"));
    }

    [Fact]
    public async Task An_http_body_trickling_in_gets_408_after_its_deadline()
    {
        var timeout = TimeSpan.FromSeconds(1);
        await using var host = await TestHost.StartAsync(engine, new IngestLimits { MessageReceiveTimeout = timeout });
        using var tcp = new TcpClient();
        var uri = new Uri(host.BaseAddress);
        await tcp.ConnectAsync(uri.Host, uri.Port, Ct);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /v1/events HTTP/1.1\r\nHost: {uri.Authority}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n"), Ct);
        var clock = Stopwatch.StartNew();
        var answer = new byte[4096];
        var reading = stream.ReadAsync(answer, Ct).AsTask();
        while (!reading.IsCompleted && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            try { await stream.WriteAsync(new byte[] { 0x0A }, Ct); }
            catch (IOException) { break; }
            await Task.WhenAny(reading, Task.Delay(300, Ct));
        }
        int n = await reading.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.StartsWith("HTTP/1.1 408", Encoding.ASCII.GetString(answer, 0, n));
        Assert.InRange(clock.Elapsed, timeout - TimeSpan.FromMilliseconds(100), timeout + TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task Events_rejected_by_validation_are_kept_as_dead_letters_with_their_reason()
    {
        await using var host = await TestHost.StartAsync(engine);
        using var socket = await host.ConnectAsync();
        var batch = Batch(host.Site.SiteKey, events: 2);
        var noId = Wire.Custom("signup");
        noId.Id = ByteString.CopyFrom(new byte[3]);
        batch.Events.Add(noId);
        var ack = await Wire.SendAsync(socket, batch);
        Assert.Equal(2u, ack.Accepted);
        var rejections = await RejectionsAsync(host, j => j.GetProperty("rejections").GetArrayLength() >= 1);
        var row = Assert.Single(rejections.GetProperty("rejections").EnumerateArray());
        Assert.Equal("INVALID_ID", row.GetProperty("reason").GetString());
        Assert.Equal("event 2: signup", row.GetProperty("detail").GetString());
        Assert.Equal(1, row.GetProperty("events").GetInt64());

        // A row an older version wrote, with the C# name: read back, and counted, under the contract's.
        await host.App.Services.GetRequiredService<Analytics.Store.IColumnStore>().ExecuteAsync(
            $"INSERT INTO {host.Database}.ingest_rejections (merchant_id, site_id, received_at, reason, origin, events, detail) " +
            $"VALUES ({host.Site.MerchantId}, {host.Site.SiteId}, now64(3), 'PropKeyInvalid', '', 1, 'event 0: older')", Ct);
        rejections = await RejectionsAsync(host, j => j.GetProperty("rejections").GetArrayLength() >= 2);
        Assert.Equal(["INVALID_ID", "PROP_KEY_INVALID"], rejections.GetProperty("rejections").EnumerateArray().Select(r => r.GetProperty("reason").GetString()).Order());
        Assert.Equal(["INVALID_ID", "PROP_KEY_INVALID"], rejections.GetProperty("reasons").EnumerateArray().Select(r => r.GetProperty("reason").GetString()));
    }
}
