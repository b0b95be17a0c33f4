using Analytics.Contracts.V1;
using Analytics.FastIngest.Validation;
using Analytics.Tests.Shared;
using Google.Protobuf;

namespace Analytics.FastIngest.Tests;

/// <summary>What a WebSocket keeps of its batch buffers after a large batch, over a real socket.</summary>
public sealed class ScratchMemoryTests
{
    [Fact]
    public async Task After_a_maximum_size_batch_the_connection_keeps_at_most_the_retained_bound()
    {
        var (store, _) = ScriptedControlPlaneStore.Create();
        await using var server = await IngestServer.StartAsync(store);
        using var socket = await server.ConnectAsync();

        // 500 events with long URLs (records past 256 KiB once enriched), then tiny events past the
        // 500th up to the size limit: thousands of TOO_MANY_EVENTS rejections and a large Ack.
        var large = new EventBatch { SiteKey = ScriptedControlPlaneStore.KnownSite.SiteKey, Seq = 1 };
        for (int i = 0; i < 500; i++)
        {
            var e = Samples.ValidPageview();
            e.Url = "https://shop.example/" + new string('p', 380) + i;
            large.Events.Add(e);
        }
        // An empty event is two bytes in the batch (its field tag and a zero length).
        int tiny = (IngestLimits.Default.MaxMessageBytes - 16 - large.CalculateSize()) / 2;
        for (int i = 0; i < tiny; i++) large.Events.Add(new Event());
        Assert.InRange(large.CalculateSize(), IngestLimits.Default.MaxMessageBytes - 32, IngestLimits.Default.MaxMessageBytes);

        var ack = await IngestServer.SendAsync(socket, large);
        Assert.Equal((AckStatus.Ok, 500u), (ack.Status, ack.Accepted));
        Assert.Equal(large.Events.Count - 500, (int)ack.Rejected);

        // The large batch's buffers are given back after its Ack, before the next batch is read.
        var small = new EventBatch { SiteKey = ScriptedControlPlaneStore.KnownSite.SiteKey, Seq = 2 };
        small.Events.Add(Samples.ValidPageview());
        Assert.Equal(AckStatus.Ok, (await IngestServer.SendAsync(socket, small)).Status);
        Assert.InRange(server.Metrics.ScratchBytes, 0, IngestScratch.RetainedBufferBytes);
    }
}
