using Analytics.Contracts.V1;
using Analytics.FastIngest.Abuse;
using Analytics.FastIngest.Validation;
using Analytics.Tests.Shared;

namespace Analytics.FastIngest.Tests;

/// <summary>Batches that carry nothing to keep still cost their sender, over real sockets.</summary>
public sealed class RefusedBatchCostTests
{
    private static readonly string Key = ScriptedControlPlaneStore.KnownSite.SiteKey;

    /// <summary>Sends batches (seq 1, 2, …) until one is answered otherwise than <paramref name="usual"/>: that Ack, and how many were answered as usual before it.</summary>
    private static async Task<(Ack Ack, int Usual)> SendUntilAnsweredOtherwiseAsync(IngestServer server, Func<ulong, EventBatch> batch, AckStatus usual, int most)
    {
        using var socket = await server.ConnectAsync();
        for (int sent = 0; sent < most; sent++)
        {
            var ack = await IngestServer.SendAsync(socket, batch((ulong)sent + 1));
            if (ack.Status != usual) return (ack, sent);
        }
        throw new InvalidOperationException($"{most} batches all answered {usual}");
    }

    [Fact]
    public async Task Empty_batches_on_one_socket_end_rate_limited_after_the_connections_burst()
    {
        var (store, _) = ScriptedControlPlaneStore.Create();
        var limits = new IngestLimits { EventBurstPerConnection = 5_000, MaxEventsPerSecondPerConnection = 1 };
        await using var server = await IngestServer.StartAsync(store, limits);
        var (ack, ok) = await SendUntilAnsweredOtherwiseAsync(server, seq => new EventBatch { SiteKey = Key, Seq = seq }, AckStatus.Ok, 10_000);
        Assert.Equal((AckStatus.Retry, RetryReason.RateLimitedConnection), (ack.Status, ack.RetryReason));
        // The burst, and at most the refill of the seconds the loop took (1 a second).
        Assert.InRange(ok, 5_000, 5_030);
        Assert.Equal(1, server.Metrics.RefusedCount(BatchRefusal.RateLimitedConnection));
    }

    [Fact]
    public async Task Unknown_keys_on_one_socket_end_rate_limited_too()
    {
        var (store, script) = ScriptedControlPlaneStore.Create();
        var limits = new IngestLimits { EventBurstPerConnection = 200, MaxEventsPerSecondPerConnection = 1 };
        await using var server = await IngestServer.StartAsync(store, limits);
        var (ack, _) = await SendUntilAnsweredOtherwiseAsync(server, seq => new EventBatch { SiteKey = "invented-" + seq, Seq = seq }, AckStatus.UnknownSite, 1_000);
        Assert.Equal((AckStatus.Retry, RetryReason.RateLimitedConnection), (ack.Status, ack.RetryReason));
        Assert.InRange(script.KeyLookups, 200, 210);
    }

    [Fact]
    public async Task A_foreign_origin_flood_does_not_use_up_the_dead_letters_of_the_sites_own_rejections()
    {
        var (store, _) = ScriptedControlPlaneStore.Create();
        var deadLetters = new DeadLetters();
        await using var server = await IngestServer.StartAsync(store, deadLetters: deadLetters);
        using (var foreign = await server.ConnectAsync("https://evil.example"))
        {
            for (ulong seq = 1; seq <= (ulong)DeadLetters.RowsPerSitePerMinute * 3; seq++)
            {
                var batch = new EventBatch { SiteKey = Key, Seq = seq };
                batch.Events.Add(Samples.ValidPageview());
                Assert.Equal(AckStatus.ForbiddenOrigin, (await IngestServer.SendAsync(foreign, batch)).Status);
            }
        }
        using var own = await server.ConnectAsync("https://shop.example");
        var bad = new EventBatch { SiteKey = Key, Seq = 1 };
        var invalid = Samples.ValidPageview();
        invalid.Url = "not a url";
        bad.Events.Add(invalid);
        Assert.Equal(1u, (await IngestServer.SendAsync(own, bad)).Rejected);

        var rows = new List<DeadLetter>();
        while (deadLetters.Reader.TryRead(out var row)) rows.Add(row);
        // Two minutes if the clock turned one during the flood.
        Assert.InRange(rows.Count(r => r.Reason == "FORBIDDEN_ORIGIN"), DeadLetters.RowsPerSitePerMinute, 2 * DeadLetters.RowsPerSitePerMinute);
        Assert.Single(rows, r => r.Reason == "URL_INVALID");
    }
}
