using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.Contracts.Internal;
using Analytics.Contracts.V1;
using Analytics.EventLog;
using Analytics.Host;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// Two ingest nodes (each its own data directory and local log) sharing one PostgreSQL control
/// plane: a site created through one is accepted by the other, and one visitor gets one visitor
/// id whichever node it reaches, because both nodes read the day's salt from the same row.
/// </summary>
public sealed class SharedControlPlaneTests(EngineFixture engine, PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Two_ingest_nodes_on_one_postgres_accept_the_same_sites_and_give_one_visitor_one_id()
    {
        string controlPlane = "postgres:" + postgres.CreateDatabase("e2e");
        await using var a = await TestHost.StartAsync(engine, roles: Roles.Ingest, controlPlane: controlPlane);
        await using var b = await TestHost.StartAsync(engine, roles: Roles.Ingest, controlPlane: controlPlane, storeOf: a);
        Assert.NotEqual(a.DataDirectory, b.DataDirectory);

        // A site created through node A's admin API, never looked up on B: B accepts it at once.
        var created = await a.Http.SendAsync(a.AdminRequest(HttpMethod.Post, "/admin/sites", new { merchant = "Shared Shop", domain = "shared.example" }), Ct);
        var site = JsonDocument.Parse(await created.Content.ReadAsStringAsync(Ct)).RootElement;
        Assert.Equal(System.Net.HttpStatusCode.Created, created.StatusCode);
        string key = site.GetProperty("siteKey").GetString()!;

        // The same visitor (same address, same User-Agent) sends one pageview to each node.
        var idA = Guid.NewGuid().ToByteArray();
        var idB = Guid.NewGuid().ToByteArray();
        Assert.Equal((AckStatus.Ok, 1u), await SendPageviewAsync(a, key, idA));
        Assert.Equal((AckStatus.Ok, 1u), await SendPageviewAsync(b, key, idB));

        // Each node's own log holds its event: same site and merchant ids, same visitor id.
        var onA = (await ReadLogAsync(a)).Single(e => e.Id.Span.SequenceEqual(idA));
        var onB = (await ReadLogAsync(b)).Single(e => e.Id.Span.SequenceEqual(idB));
        Assert.Equal((onA.MerchantId, onA.SiteId), (onB.MerchantId, onB.SiteId));
        Assert.NotEqual(0ul, onA.VisitorId);
        Assert.Equal(onA.VisitorId, onB.VisitorId);
        // And it is the same site the store knows by that key.
        var registry = a.App.Services.GetRequiredService<SiteRegistry>();
        Assert.Equal((ulong)registry.Resolve(key)!.SiteId, onB.SiteId);
        Assert.Equal(site.GetProperty("id").GetString(), registry.Resolve(key)!.PublicId);
    }

    [Fact]
    public async Task Two_ingest_processes_on_one_postgres_accept_a_site_created_by_the_cli_and_give_one_visitor_one_id()
    {
        string controlPlane = "postgres:" + postgres.CreateDatabase("e2e");
        string root = Path.Combine(Path.GetTempPath(), "analytics-shared-" + Guid.NewGuid().ToString("N"));
        string key = "shared-" + Guid.NewGuid().ToString("N");
        int portA = Ports.Free(), portB = Ports.Free();
        var a = new ServerProcess(Path.Combine(root, "a"), portA, demo: false);
        var b = new ServerProcess(Path.Combine(root, "b"), portB, demo: false);
        try
        {
            // Two `analytics serve --roles ingest` processes, each with its own data directory and log.
            await a.StartAsync("--roles", "ingest", "--control-plane", controlPlane);
            await b.StartAsync("--roles", "ingest", "--control-plane", controlPlane);
            // The site is created afterwards, by the CLI, in the shared control plane.
            var created = await HostCommand.RunAsync(["sites", "create", "--merchant", "Process Shop", "--domain", "process.example",
                "--site-key", key, "--control-plane", controlPlane, "--data", Path.Combine(root, "cli")]);
            Assert.True(created.ExitCode == 0, created.ToString());

            var idA = Guid.NewGuid().ToByteArray();
            var idB = Guid.NewGuid().ToByteArray();
            Assert.Equal((AckStatus.Ok, 1u), await SendPageviewAsync(new Uri($"ws://127.0.0.1:{portA}/v1/ws"), key, idA));
            Assert.Equal((AckStatus.Ok, 1u), await SendPageviewAsync(new Uri($"ws://127.0.0.1:{portB}/v1/ws"), key, idB));
            // Acknowledged means durable: SIGKILL both, then read each node's own log from disk.
            a.Kill();
            b.Kill();
            var onA = (await ReadLogAsync(Path.Combine(root, "a", "log"))).Single(e => e.Id.Span.SequenceEqual(idA));
            var onB = (await ReadLogAsync(Path.Combine(root, "b", "log"))).Single(e => e.Id.Span.SequenceEqual(idB));
            Assert.Equal((onA.MerchantId, onA.SiteId), (onB.MerchantId, onB.SiteId));
            Assert.NotEqual(0ul, onA.VisitorId);
            Assert.Equal(onA.VisitorId, onB.VisitorId);
        }
        finally
        {
            a.Kill();
            b.Kill();
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task A_node_that_missed_a_key_accepts_it_within_the_negative_cache_ttl_after_another_node_creates_it()
    {
        string controlPlane = "postgres:" + postgres.CreateDatabase("e2e");
        await using var a = await TestHost.StartAsync(engine, roles: Roles.Ingest, controlPlane: controlPlane);
        await using var b = await TestHost.StartAsync(engine, roles: Roles.Ingest, controlPlane: controlPlane, storeOf: a);
        string key = "late-" + Guid.NewGuid().ToString("N");

        Assert.Equal(AckStatus.UnknownSite, (await SendPageviewAsync(b, key, Guid.NewGuid().ToByteArray())).Status);
        var created = await a.Http.SendAsync(a.AdminRequest(HttpMethod.Post, "/admin/sites", new { merchant = "Late Shop", domain = "late.example", siteKey = key }), Ct);
        Assert.Equal(System.Net.HttpStatusCode.Created, created.StatusCode);
        var clock = Stopwatch.StartNew();
        Assert.Equal(AckStatus.Ok, (await SendPageviewAsync(a, key, Guid.NewGuid().ToByteArray())).Status);

        AckStatus status;
        do
        {
            await Task.Delay(250, Ct);
            status = (await SendPageviewAsync(b, key, Guid.NewGuid().ToByteArray())).Status;
        }
        while (status != AckStatus.Ok && clock.Elapsed < SiteRegistry.CacheTtl + TimeSpan.FromSeconds(5));
        TestContext.Current.TestOutputHelper?.WriteLine($"node B accepted the key {clock.Elapsed.TotalSeconds:0.0} s after node A created it");
        Assert.Equal(AckStatus.Ok, status);
        Assert.True(clock.Elapsed <= SiteRegistry.CacheTtl + TimeSpan.FromSeconds(1), $"took {clock.Elapsed}");
    }

    private static Task<(AckStatus Status, uint Accepted)> SendPageviewAsync(TestHost node, string key, byte[] eventId) =>
        SendPageviewAsync(node.WebSocketUri, key, eventId);

    private static async Task<(AckStatus Status, uint Accepted)> SendPageviewAsync(Uri endpoint, string key, byte[] eventId)
    {
        using var socket = new System.Net.WebSockets.ClientWebSocket();
        socket.Options.SetRequestHeader("User-Agent", TestHost.BrowserUserAgent);
        await socket.ConnectAsync(endpoint, Ct);
        var batch = new EventBatch { SiteKey = key, Seq = 1 };
        var pageview = Wire.Pageview("/shared");
        pageview.Id = Google.Protobuf.ByteString.CopyFrom(eventId);
        batch.Events.Add(pageview);
        var ack = await Wire.SendAsync(socket, batch);
        return (ack.Status, ack.Accepted);
    }

    private static async Task<List<StoredEvent>> ReadLogAsync(TestHost node) =>
        await ReadLogAsync(node.App.Services.GetRequiredService<IEventLog>());

    private static async Task<List<StoredEvent>> ReadLogAsync(string directory)
    {
        await using var log = Analytics.EventLog.LocalLog.Open(directory);
        return await ReadLogAsync(log);
    }

    private static async Task<List<StoredEvent>> ReadLogAsync(IEventLog log)
    {
        await using var consumer = log.OpenConsumer("test-" + Guid.NewGuid().ToString("N"));
        var batch = await consumer.ReadAsync(1000, TimeSpan.FromSeconds(5), Ct);
        return batch.Records.Select(r => StoredEvent.Parser.ParseFrom(r.Span)).ToList();
    }
}
