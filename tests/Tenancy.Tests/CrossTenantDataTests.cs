using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.Tenancy.Tests;

/// <summary>
/// What <see cref="CrossTenantTests"/>' sweep cannot reach, because there merchant A aims at B's
/// own URLs with a client token: A's owner (a user token, which may revoke keys) naming B's key;
/// A's own site in the URL with B's goal or funnel id; and two merchants' events in one store,
/// where every answer A gets must be made of A's events only (and B's of B's). Expected numbers
/// are counted by hand from the traffic each test sends, not by the code under test.
/// </summary>
public class CrossTenantDataTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string Password = "correct horse battery";
    private const string BrowserUserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    [Fact]
    public async Task An_owner_cannot_revoke_another_merchants_key_which_keeps_working()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (a, aSite) = host.NewMerchant("Alpha Only");
        var (b, bSite) = host.NewMerchant("Bravo Secret");
        host.NewUser(a.Id, "owner@alpha-only.example", Password);
        host.NewUser(b.Id, "owner@bravo-secret.example", Password);
        string aOwner = (await host.SignInAsync("owner@alpha-only.example", Password)).GetProperty("access_token").GetString()!;
        string bOwner = (await host.SignInAsync("owner@bravo-secret.example", Password)).GetProperty("access_token").GetString()!;
        var (bPrefix, bKey) = await CreateKeyAsync(host, bOwner);
        var (aPrefix, aKey) = await CreateKeyAsync(host, aOwner);
        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(bSite), bKey)).StatusCode);

        // A's owner names B's key: 404, exactly like a key that does not exist.
        var (foreign, foreignBody) = await SendAsync(host, HttpMethod.Delete, "/v1/keys/" + bPrefix, aOwner);
        Assert.True(foreign == HttpStatusCode.NotFound, $"A's owner revoking B's key: {(int)foreign} {foreignBody}");
        var (unknown, unknownBody) = await SendAsync(host, HttpMethod.Delete, "/v1/keys/nosuchprefix", aOwner);
        Assert.Equal(HttpStatusCode.NotFound, unknown);
        Assert.Equal(JsonDocument.Parse(unknownBody).RootElement.GetProperty("title").GetString(),
            JsonDocument.Parse(foreignBody).RootElement.GetProperty("title").GetString());

        // B's key is not revoked: in the control plane, and over HTTP once any cached check has expired.
        Assert.Null(host.Store.FindApiKey(bPrefix)!.Value.Key.RevokedAt);
        await Task.Delay(AuthHost.RevocationCache * 3, Ct);
        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(bSite), bKey)).StatusCode);
        var (listed, bList) = await SendAsync(host, HttpMethod.Get, "/v1/keys", bOwner);
        Assert.Equal(HttpStatusCode.OK, listed);
        var bRow = JsonDocument.Parse(bList).RootElement.EnumerateArray().Single(k => k.GetProperty("prefix").GetString() == bPrefix);
        Assert.Equal(JsonValueKind.Null, bRow.GetProperty("revokedAt").ValueKind);

        // The same request on A's own key succeeds: the refusal above was the merchant check,
        // not a token that may not revoke at all.
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(host, HttpMethod.Delete, "/v1/keys/" + aPrefix, aOwner)).Status);
        await Task.Delay(AuthHost.RevocationCache * 3, Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.GetAsync(AuthHost.AggregatePath(aSite), aKey)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(bSite), bKey)).StatusCode);
    }

    [Fact]
    public async Task Another_merchants_goal_or_funnel_id_under_ones_own_site_answers_404_and_stays_unchanged()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (a, aSite) = host.NewMerchant("Alpha Only");
        var (b, bSite) = host.NewMerchant("Bravo Secret");
        string aToken = await host.ClientTokenAsync(a.Id, "stats:read sites:write");
        string bToken = await host.ClientTokenAsync(b.Id, "stats:read sites:write");
        string aGoals = $"/v1/sites/{aSite.PublicId}/goals", aFunnels = $"/v1/sites/{aSite.PublicId}/funnels";
        string bGoals = $"/v1/sites/{bSite.PublicId}/goals", bFunnels = $"/v1/sites/{bSite.PublicId}/funnels";

        long aHome = await CreatedIdAsync(host, aGoals, aToken, new { name = "Alpha home", kind = "page", match = "/alpha-home" });
        await CreatedIdAsync(host, aGoals, aToken, new { name = "Alpha pricing", kind = "page", match = "/alpha-pricing" });
        long aFunnel = await CreatedIdAsync(host, aFunnels, aToken, new { name = "Alpha funnel", steps = new[] { "Alpha home", "Alpha pricing" } });
        long bGoal = await CreatedIdAsync(host, bGoals, bToken, new { name = "Bravo secret goal", kind = "event", match = "bravo-secret-event" });
        await CreatedIdAsync(host, bGoals, bToken, new { name = "Bravo second goal", kind = "page", match = "/bravo-secret-page" });
        long bFunnel = await CreatedIdAsync(host, bFunnels, bToken, new { name = "Bravo secret funnel", steps = new[] { "Bravo secret goal", "Bravo second goal" } });
        // In no funnel: nothing but the ownership check stands between a DELETE and this goal.
        long bLone = await CreatedIdAsync(host, bGoals, bToken, new { name = "Bravo lone goal", kind = "event", match = "bravo-secret-lone" });
        string bGoalsBefore = (await SendAsync(host, HttpMethod.Get, bGoals, bToken)).Text;
        string bFunnelsBefore = (await SendAsync(host, HttpMethod.Get, bFunnels, bToken)).Text;
        Assert.Contains("Bravo lone goal", bGoalsBefore);
        Assert.Contains("Bravo secret funnel", bFunnelsBefore);

        // Valid bodies for A's site (A's goal names): only the id in the URL is wrong.
        var goalBody = new { name = "Hijacked goal", kind = "page", match = "/hijacked" };
        var funnelBody = new { name = "Hijacked funnel", steps = new[] { "Alpha home", "Alpha pricing" } };
        (HttpMethod Method, string Path, object? Body)[] attempts =
        [
            (HttpMethod.Put, $"{aGoals}/{bGoal}", goalBody),
            (HttpMethod.Delete, $"{aGoals}/{bLone}", null),
            (HttpMethod.Put, $"{aFunnels}/{bFunnel}", funnelBody),
            (HttpMethod.Delete, $"{aFunnels}/{bFunnel}", null),
        ];
        foreach (var (method, path, body) in attempts)
        {
            var (status, text) = await SendAsync(host, method, path, aToken, body);
            Assert.True(status == HttpStatusCode.NotFound, $"{method} {path} with A's token: {(int)status} {text}");
            Assert.DoesNotContain("Bravo", text, StringComparison.OrdinalIgnoreCase);
        }

        // B reads back exactly what it had; A's own lists never show B's.
        Assert.Equal(bGoalsBefore, (await SendAsync(host, HttpMethod.Get, bGoals, bToken)).Text);
        Assert.Equal(bFunnelsBefore, (await SendAsync(host, HttpMethod.Get, bFunnels, bToken)).Text);
        Assert.Equal(bSite.SiteId, host.Store.GetGoal(bLone)!.SiteId);
        Assert.Equal(bSite.SiteId, host.Store.GetFunnel(bFunnel)!.SiteId);
        foreach (string list in new[] { aGoals, aFunnels })
            Assert.DoesNotContain("Bravo", (await SendAsync(host, HttpMethod.Get, list, aToken)).Text, StringComparison.OrdinalIgnoreCase);

        // The same requests on A's own ids succeed: the 404s above were the ownership checks.
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(host, HttpMethod.Put, $"{aFunnels}/{aFunnel}", aToken, funnelBody)).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(host, HttpMethod.Put, $"{aGoals}/{aHome}", aToken, goalBody)).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(host, HttpMethod.Delete, $"{aFunnels}/{aFunnel}", aToken)).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(host, HttpMethod.Delete, $"{aGoals}/{aHome}", aToken)).Status);
        Assert.Equal(bGoalsBefore, (await SendAsync(host, HttpMethod.Get, bGoals, bToken)).Text);
        Assert.Equal(bFunnelsBefore, (await SendAsync(host, HttpMethod.Get, bFunnels, bToken)).Text);
    }

    /// <summary>One merchant's traffic, sent through the real WebSocket ingest, and what its answers must be.</summary>
    private sealed record Tenant(string Name, Merchant Merchant, Site Site, string Token, string Marker)
    {
        public long Events, Rejected;
    }

    /// <summary>
    /// Traffic (each event its own batch, 20 ms apart; visitors told apart by User-Agent):
    ///   A  a1: /alpha-only-home, /alpha-only-pricing, alpha_only_signup (on /alpha-only-pricing)
    ///      a2: /alpha-only-home
    ///      rejected: an event with a 3-byte id named alpha_only_rejected; a batch of 2 from https://alpha-only-origin.example
    ///   B  b1: /bravo-secret-home, /bravo-secret-pricing, bravo_secret_purchase (on /bravo-secret-pricing)
    ///      b2: /bravo-secret-home, /bravo-secret-pricing
    ///      b3: /bravo-secret-home, /bravo-secret-landing
    ///      rejected: an event with a 3-byte id named bravo_secret_rejected; a batch of 3 from https://bravo-secret-origin.example
    /// A: visitors 2, visits 2, pageviews 3, events 4, bounce rate 50 (a2's visit of one page).
    /// B: visitors 3, visits 3, pageviews 6, events 7, bounce rate 0.
    /// Both sites have goals "Any page" (page /**) and "Pricing" (page /*pricing), which match the
    /// other merchant's events too: the funnel is A 2 → 1, B 3 → 2 (both together would be 5 → 3).
    /// </summary>
    [Fact]
    public async Task Each_merchants_query_funnel_and_rejections_show_only_its_own_events()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (a, aSite) = host.NewMerchant("Alpha Only");
        var (b, bSite) = host.NewMerchant("Bravo Secret");
        var alpha = new Tenant("A", a, aSite, await host.ClientTokenAsync(a.Id, "stats:read sites:write"), "alpha");
        var bravo = new Tenant("B", b, bSite, await host.ClientTokenAsync(b.Id, "stats:read sites:write"), "bravo");
        foreach (var t in new[] { alpha, bravo })
        {
            await CreatedIdAsync(host, $"/v1/sites/{t.Site.PublicId}/goals", t.Token, new { name = "Any page", kind = "page", match = "/**" });
            await CreatedIdAsync(host, $"/v1/sites/{t.Site.PublicId}/goals", t.Token, new { name = "Pricing", kind = "page", match = "/*pricing" });
        }

        await SendVisitorAsync(host, alpha, "a1", Page("/alpha-only-home"), Page("/alpha-only-pricing"), Custom("alpha_only_signup", "/alpha-only-pricing"));
        await SendVisitorAsync(host, bravo, "b1", Page("/bravo-secret-home"), Page("/bravo-secret-pricing"), Custom("bravo_secret_purchase", "/bravo-secret-pricing"));
        await SendVisitorAsync(host, alpha, "a2", Page("/alpha-only-home"));
        await SendVisitorAsync(host, bravo, "b2", Page("/bravo-secret-home"), Page("/bravo-secret-pricing"));
        await SendVisitorAsync(host, bravo, "b3", Page("/bravo-secret-home"), Page("/bravo-secret-landing"));
        await SendRejectedAsync(host, alpha, "alpha_only_rejected", "https://alpha-only-origin.example", 2);
        await SendRejectedAsync(host, bravo, "bravo_secret_rejected", "https://bravo-secret-origin.example", 3);
        Assert.Equal((4, 7), (alpha.Events, bravo.Events));
        // Both merchants' events and dead letters are stored before either is asked.
        foreach (var t in new[] { alpha, bravo }) await WaitForStoredAsync(host, t);
        foreach (var t in new[] { alpha, bravo }) await WaitForRejectionsAsync(host, t, rows: 2);

        // Whole UTC days around now (the host's clock is the real one).
        string[] days = [DateTime.UtcNow.AddDays(-1).ToString("yyyy-MM-dd"), DateTime.UtcNow.AddDays(1).ToString("yyyy-MM-dd")];

        async Task CheckAsync(Tenant own, Tenant other, string totals, string bounceRate, string byPage, string byEvent, string funnel, string rejections)
        {
            var bodies = new List<string>();
            async Task<JsonElement> Ask(string path, object query)
            {
                var (status, text) = await SendAsync(host, HttpMethod.Post, path, own.Token, query);
                Assert.True(status == HttpStatusCode.OK, $"{own.Name} {path}: {(int)status} {text}");
                bodies.Add(text);
                return JsonDocument.Parse(text).RootElement;
            }
            object Query(string[] metrics, string[] dimensions, object[]? filters = null) =>
                new { site_id = own.Site.PublicId, date_range = days, metrics, dimensions, filters = filters ?? [] };

            // Each store path the service has: the dimension rollup (totals, page, event), the visit
            // rollup (bounce_rate), the scan of enriched events (the funnel; a contains filter).
            Assert.Equal(totals, Rows(await Ask("/v1/query", Query(["visitors", "visits", "pageviews", "events"], []))));
            Assert.Equal(totals + "," + bounceRate, Rows(await Ask("/v1/query", Query(["visitors", "visits", "pageviews", "events", "bounce_rate"], []))));
            Assert.Equal(byPage, Rows(await Ask("/v1/query", Query(["visitors", "pageviews", "events"], ["page"]))));
            Assert.Equal(byEvent, Rows(await Ask("/v1/query", Query(["visitors", "events"], ["event"]))));
            var f = await Ask("/v1/funnel", new { site_id = own.Site.PublicId, date_range = days, steps = new[] { "Any page", "Pricing" } });
            Assert.Equal(funnel, string.Join(" → ", f.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("visitors").GetInt64())));
            Assert.Equal(byPage, Rows(await Ask("/v1/query", Query(["visitors", "pageviews", "events"], ["page"], [new object[] { "contains", "page", new[] { "/" } }]))));

            var (status, text) = await SendAsync(host, HttpMethod.Get, $"/v1/sites/{own.Site.PublicId}/rejections", own.Token);
            Assert.True(status == HttpStatusCode.OK, $"{own.Name} rejections: {(int)status} {text}");
            bodies.Add(text);
            var r = JsonDocument.Parse(text).RootElement;
            Assert.Equal(rejections, string.Join(" | ", r.GetProperty("rejections").EnumerateArray()
                .Select(x => $"{x.GetProperty("reason").GetString()},{x.GetProperty("origin").GetString()},{x.GetProperty("events").GetInt64()},{x.GetProperty("detail").GetString()}")
                .Order(StringComparer.Ordinal)));
            Assert.Equal(own.Rejected, r.GetProperty("reasons").EnumerateArray().Sum(x => x.GetProperty("events").GetInt64()));

            foreach (string body in bodies)
            {
                Assert.False(body.Contains(other.Marker, StringComparison.OrdinalIgnoreCase), $"{own.Name} was shown {other.Name}'s data: {body}");
                Assert.DoesNotContain(other.Site.PublicId, body);
            }
        }

        await CheckAsync(alpha, bravo, ":2,2,3,4", "50", "/alpha-only-home:2,2,2 | /alpha-only-pricing:1,1,2", "alpha_only_signup:1,1 | pageview:2,3", "2 → 1",
            "FORBIDDEN_ORIGIN,https://alpha-only-origin.example,2, | INVALID_ID,,1,event 0: alpha_only_rejected");
        await CheckAsync(bravo, alpha, ":3,3,6,7", "0", "/bravo-secret-home:3,3,3 | /bravo-secret-landing:1,1,1 | /bravo-secret-pricing:2,2,3", "bravo_secret_purchase:1,1 | pageview:3,6", "3 → 2",
            "FORBIDDEN_ORIGIN,https://bravo-secret-origin.example,3, | INVALID_ID,,1,event 0: bravo_secret_rejected");
    }

    /// <summary>An answer's rows, sorted, as "dimensions:metrics".</summary>
    private static string Rows(JsonElement body) => string.Join(" | ", body.GetProperty("results").EnumerateArray().Select(r =>
        string.Join(",", r.GetProperty("dimensions").EnumerateArray().Select(d => d.ToString())) + ":" +
        string.Join(",", r.GetProperty("metrics").EnumerateArray().Select(m => m.GetRawText()))).Order(StringComparer.Ordinal));

    private static Event Page(string path) => new()
    {
        Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
        Name = "pageview",
        Url = "https://shop.example" + path,
        ScreenWidth = 1280,
    };

    private static Event Custom(string name, string path) => new()
    {
        Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
        Name = name,
        Url = "https://shop.example" + path,
        ScreenWidth = 1280,
    };

    private static async Task<ClientWebSocket> ConnectAsync(AuthHost host, string userAgent, string? origin = null)
    {
        var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("User-Agent", userAgent);
        if (origin is not null) socket.Options.SetRequestHeader("Origin", origin);
        await socket.ConnectAsync(new Uri(host.BaseAddress.Replace("http://", "ws://", StringComparison.Ordinal) + "/v1/ws"), Ct);
        return socket;
    }

    private static async Task<Ack> SendBatchAsync(ClientWebSocket socket, EventBatch batch)
    {
        await socket.SendAsync(batch.ToByteArray(), WebSocketMessageType.Binary, true, Ct);
        var buffer = new byte[64 * 1024];
        int length = 0;
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer.AsMemory(length), Ct);
            if (result.MessageType == WebSocketMessageType.Close) throw new WebSocketException($"closed: {socket.CloseStatus} {socket.CloseStatusDescription}");
            length += result.Count;
            if (result.EndOfMessage) return Ack.Parser.ParseFrom(buffer, 0, length);
        }
    }

    /// <summary>One visitor's events, each in its own batch 20 ms after the one before (so steps have an order in time).</summary>
    private static async Task SendVisitorAsync(AuthHost host, Tenant tenant, string visitor, params Event[] events)
    {
        using var socket = await ConnectAsync(host, BrowserUserAgent + " Visitor/" + visitor);
        foreach (var e in events)
        {
            var batch = new EventBatch { SiteKey = tenant.Site.SiteKey };
            batch.Events.Add(e);
            var ack = await SendBatchAsync(socket, batch);
            Assert.True(ack.Status == AckStatus.Ok && ack.Accepted == 1, $"{tenant.Name} {visitor}: {ack}");
            tenant.Events++;
            await Task.Delay(20, Ct);
        }
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
    }

    /// <summary>An event refused for its id, then a batch of <paramref name="foreignEvents"/> refused for its origin.</summary>
    private static async Task SendRejectedAsync(AuthHost host, Tenant tenant, string name, string origin, int foreignEvents)
    {
        using (var socket = await ConnectAsync(host, BrowserUserAgent + " Rejected/" + tenant.Name))
        {
            var bad = Custom(name, "/");
            bad.Id = ByteString.CopyFrom(new byte[3]);
            var batch = new EventBatch { SiteKey = tenant.Site.SiteKey };
            batch.Events.Add(bad);
            var ack = await SendBatchAsync(socket, batch);
            Assert.True(ack.Status == AckStatus.Ok && ack.Accepted == 0 && ack.Rejected == 1, $"{tenant.Name} invalid id: {ack}");
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
        }
        using (var socket = await ConnectAsync(host, BrowserUserAgent + " Foreign/" + tenant.Name, origin))
        {
            var batch = new EventBatch { SiteKey = tenant.Site.SiteKey };
            for (int i = 0; i < foreignEvents; i++) batch.Events.Add(Page($"/{tenant.Marker}-foreign"));
            var ack = await SendBatchAsync(socket, batch);
            Assert.True(ack.Status == AckStatus.ForbiddenOrigin, $"{tenant.Name} foreign origin: {ack}");
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, Ct);
        }
        tenant.Rejected += 1 + foreignEvents;
    }

    /// <summary>Waits (at most 30 s) until the merchant's aggregate counts every event it sent.</summary>
    private static async Task WaitForStoredAsync(AuthHost host, Tenant tenant)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        long stored = -1;
        while (DateTime.UtcNow < deadline)
        {
            using var response = await host.GetAsync($"/v1/sites/{tenant.Site.PublicId}/aggregate?metrics=events&from=2000-01-01&to=2099-12-31", tenant.Token);
            if (response.StatusCode == HttpStatusCode.OK)
                stored = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("results").GetProperty("events").GetInt64();
            if (stored >= tenant.Events) return;
            await Task.Delay(100, Ct);
        }
        Assert.Fail($"{tenant.Name}: Rollup stored {stored} of {tenant.Events} events within 30 s");
    }

    /// <summary>Waits (at most 20 s) until the merchant's rejections list has <paramref name="rows"/> rows.</summary>
    private static async Task WaitForRejectionsAsync(AuthHost host, Tenant tenant, int rows)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        int seen = -1;
        while (DateTime.UtcNow < deadline)
        {
            var (status, text) = await SendAsync(host, HttpMethod.Get, $"/v1/sites/{tenant.Site.PublicId}/rejections", tenant.Token);
            if (status == HttpStatusCode.OK) seen = JsonDocument.Parse(text).RootElement.GetProperty("rejections").GetArrayLength();
            if (seen >= rows) return;
            await Task.Delay(200, Ct);
        }
        Assert.Fail($"{tenant.Name}: {seen} of {rows} rejections stored within 20 s");
    }

    private static async Task<long> CreatedIdAsync(AuthHost host, string path, string token, object body)
    {
        var (status, text) = await SendAsync(host, HttpMethod.Post, path, token, body);
        Assert.True(status == HttpStatusCode.Created, $"POST {path}: {(int)status} {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("id").GetInt64();
    }

    private static async Task<(string Prefix, string Key)> CreateKeyAsync(AuthHost host, string userToken)
    {
        var (status, text) = await SendAsync(host, HttpMethod.Post, "/v1/keys", userToken, new { name = "script", scopes = "stats:read" });
        Assert.True(status == HttpStatusCode.Created, $"POST /v1/keys: {(int)status} {text}");
        var body = JsonDocument.Parse(text).RootElement;
        return (body.GetProperty("prefix").GetString()!, body.GetProperty("key").GetString()!);
    }

    private static async Task<(HttpStatusCode Status, string Text)> SendAsync(AuthHost host, HttpMethod method, string path, string token, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new("Bearer", token);
        if (body is not null) request.Content = JsonContent.Create(body);
        using var response = await host.Http.SendAsync(request, Ct);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(Ct));
    }
}
