using System.Net;
using Analytics.Contracts.Internal;
using Analytics.Contracts.V1;
using Analytics.EventLog;
using Analytics.FastIngest.Enrichment;
using Analytics.ControlPlane;
using Analytics.FastIngest.Validation;
using Google.Protobuf;

namespace Analytics.FastIngest.Tests;

/// <summary>The batch pipeline against the real local log and the real SQLite registry.</summary>
public sealed class IngestProcessorTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ingest-tests-" + Guid.NewGuid().ToString("N"));
    private SiteRegistry _sites = null!;
    private LocalLog _log = null!;
    private Site _site = null!;
    private readonly IngestMetrics _metrics = new();
    private const string Ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";

    public ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        _sites = new SiteRegistry(new SqliteControlPlaneStore(Path.Combine(_dir, "control-plane.db")));
        _site = _sites.CreateSite(_sites.CreateMerchant("Shop"), "shop.example", "shop-key");
        _log = LocalLog.Open(Path.Combine(_dir, "log"), new LocalLogOptions { Fsync = FsyncMode.Never });
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _log.DisposeAsync();
        _sites.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private IngestProcessor Processor(IEventLog? log = null) =>
        new(_sites, log ?? _log, IngestLimits.Default, _metrics, TimeProvider.System);

    private static ClientInfo Client(string ip = "203.0.113.77") => new(IPAddress.Parse(ip), Ua, 512);

    [Fact]
    public async Task Client_hints_are_stored_with_each_event_as_sent_and_cut_to_64_bytes()
    {
        var batch = new EventBatch { SiteKey = "shop-key" };
        batch.Events.Add(Samples.ValidPageview());
        // "é" is two UTF-8 bytes at the cut: the cut backs up rather than split it.
        string model = "\"" + new string('m', 62) + "é\"";
        var client = new ClientInfo(IPAddress.Parse("203.0.113.77"), Ua, 512, "?1", "\"Android\"", model, "\"Mobile\", \"Tablet\"");

        using var scratch = new IngestScratch();
        await Processor().ProcessAsync(batch.ToByteArray(), client, scratch, TestContext.Current.CancellationToken);

        var stored = (await ReadAll(1)).Single();
        Assert.Equal("?1", stored.ChUaMobile);
        Assert.Equal("\"Android\"", stored.ChUaPlatform);
        Assert.Equal("\"" + new string('m', 62), stored.ChUaModel);
        Assert.Equal("\"Mobile\", \"Tablet\"", stored.ChUaFormFactors);
        Assert.Equal(Ua, stored.UserAgent);
    }

    [Fact]
    public async Task Valid_events_are_logged_and_invalid_ones_rejected_individually()
    {
        var batch = new EventBatch { SiteKey = "shop-key", Seq = 9 };
        batch.Events.Add(Samples.ValidPageview());
        var bad = Samples.ValidPageview();
        bad.Url = "not a url";
        batch.Events.Add(bad);
        var custom = Samples.ValidPageview();
        custom.Name = "signup";
        custom.Props.Add(new Property { Key = "plan", Value = "pro" });
        batch.Events.Add(custom);

        using var scratch = new IngestScratch();
        var result = await Processor().ProcessAsync(batch.ToByteArray(), Client(), scratch, TestContext.Current.CancellationToken);

        var ack = Ack.Parser.ParseFrom(result.Ack.Span);
        Assert.Equal(AckStatus.Ok, ack.Status);
        Assert.Equal(9ul, ack.Seq);
        Assert.Equal(2u, ack.Accepted);
        Assert.Equal(1u, ack.Rejected);
        Assert.Equal(1u, ack.Rejections.Single().Index);
        Assert.Equal(RejectionReason.UrlInvalid, ack.Rejections.Single().Reason);

        var stored = await ReadAll(2);
        Assert.Equal(batch.Events[0].Id, stored[0].Id);
        Assert.Equal((ulong)_site.MerchantId, stored[0].MerchantId);
        Assert.Equal((ulong)_site.SiteId, stored[0].SiteId);
        Assert.Equal("https://shop.example/products/1", stored[0].Url);
        Assert.Equal("203.0.113.0/24", stored[0].IpPrefix);
        Assert.Equal(Ua, stored[0].UserAgent);
        Assert.NotEqual(0ul, stored[0].VisitorId);
        Assert.Equal(stored[0].VisitorId, stored[1].VisitorId);
        Assert.Equal("signup", stored[1].Name);
        Assert.Equal("plan", stored[1].Props.Single().Key);
        Assert.InRange(stored[0].ReceivedMs, DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    [Fact]
    public async Task The_full_ip_address_is_never_written_to_the_log()
    {
        var batch = new EventBatch { SiteKey = "shop-key" };
        batch.Events.Add(Samples.ValidPageview());
        using var scratch = new IngestScratch();
        await Processor().ProcessAsync(batch.ToByteArray(), new ClientInfo(IPAddress.Parse("2001:db8:abcd:1234:5678::9"), Ua, 512), scratch, TestContext.Current.CancellationToken);
        var stored = (await ReadAll(1))[0];
        Assert.Equal("2001:db8:abcd::/48", stored.IpPrefix);
        Assert.DoesNotContain("5678", stored.ToByteString().ToStringUtf8());
        Assert.DoesNotContain("1234", stored.ToByteString().ToStringUtf8());
    }

    [Fact]
    public void Visitor_ids_differ_by_ip_user_agent_and_site_and_are_stable_otherwise()
    {
        var hasher = new VisitorIdHasher(_sites);
        var now = DateTimeOffset.UtcNow;
        ulong a = hasher.Compute(Client("198.51.100.1"), 1, now);
        Assert.Equal(a, hasher.Compute(Client("198.51.100.1"), 1, now));
        Assert.NotEqual(a, hasher.Compute(Client("198.51.100.2"), 1, now));
        Assert.NotEqual(a, hasher.Compute(Client("198.51.100.1"), 2, now));
        Assert.NotEqual(a, hasher.Compute(new ClientInfo(IPAddress.Parse("198.51.100.1"), "Other/1.0", 512), 1, now));
        // The salt rotates daily: the same browser is another visitor tomorrow.
        Assert.NotEqual(a, hasher.Compute(Client("198.51.100.1"), 1, now.AddDays(1)));
    }

    [Fact]
    public async Task Unknown_site_keys_keep_nothing()
    {
        var batch = new EventBatch { SiteKey = "no-such-key", Seq = 3 };
        batch.Events.Add(Samples.ValidPageview());
        using var scratch = new IngestScratch();
        var result = await Processor().ProcessAsync(batch.ToByteArray(), Client(), scratch, TestContext.Current.CancellationToken);
        var ack = Ack.Parser.ParseFrom(result.Ack.Span);
        Assert.Equal(AckStatus.UnknownSite, ack.Status);
        Assert.Equal(3ul, ack.Seq);
        Assert.Equal(0u, ack.Accepted);
        Assert.Equal(0, _log.NextOffset);
    }

    [Fact]
    public async Task Events_past_the_batch_limit_are_rejected_with_too_many_events()
    {
        var batch = new EventBatch { SiteKey = "shop-key" };
        for (int i = 0; i < 503; i++) batch.Events.Add(Samples.ValidPageview());
        using var scratch = new IngestScratch();
        var result = await Processor().ProcessAsync(batch.ToByteArray(), Client(), scratch, TestContext.Current.CancellationToken);
        var ack = Ack.Parser.ParseFrom(result.Ack.Span);
        Assert.Equal(500u, ack.Accepted);
        Assert.Equal(new uint[] { 500, 501, 502 }, ack.Rejections.Select(r => r.Index));
        Assert.All(ack.Rejections, r => Assert.Equal(RejectionReason.TooManyEvents, r.Reason));
    }

    [Fact]
    public async Task A_batch_larger_than_the_connections_burst_gets_too_many_events_not_an_endless_retry()
    {
        // A burst of 1,000 events per connection, a batch of 1,200 (the protocol's 500 plus 700):
        // a full bucket lets it through, so the events past the 500th get their own answer.
        var batch = new EventBatch { SiteKey = "shop-key" };
        for (int i = 0; i < 1_200; i++) batch.Events.Add(Samples.ValidPageview());
        using var scratch = new IngestScratch { RateLimiter = new EventRateLimiter(100, 1_000) };
        var result = await Processor().ProcessAsync(batch.ToByteArray(), Client(), scratch, TestContext.Current.CancellationToken);
        var ack = Ack.Parser.ParseFrom(result.Ack.Span);
        Assert.Equal(AckStatus.Ok, ack.Status);
        Assert.Equal(500u, ack.Accepted);
        Assert.Equal(700, ack.Rejections.Count);
        Assert.All(ack.Rejections, r => Assert.Equal(RejectionReason.TooManyEvents, r.Reason));
        Assert.Equal(500, _log.NextOffset);
    }

    [Fact]
    public async Task A_malformed_event_is_rejected_alone()
    {
        var good = Samples.ValidPageview().ToByteArray();
        var output = new MemoryStream();
        var o = new CodedOutputStream(output);
        o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteString("shop-key");
        o.WriteTag(3, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(good));
        o.WriteTag(3, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom([0x0A, 0x10, 0x01])); // id claims 16 bytes, has 1
        o.Flush();
        using var scratch = new IngestScratch();
        var result = await Processor().ProcessAsync(output.ToArray(), Client(), scratch, TestContext.Current.CancellationToken);
        var ack = Ack.Parser.ParseFrom(result.Ack.Span);
        Assert.Equal(1u, ack.Accepted);
        Assert.Equal(RejectionReason.MalformedEvent, ack.Rejections.Single().Reason);
    }

    [Fact]
    public async Task When_the_log_refuses_the_client_is_told_to_retry_and_nothing_counts_as_accepted()
    {
        var batch = new EventBatch { SiteKey = "shop-key", Seq = 5 };
        batch.Events.Add(Samples.ValidPageview());
        // The real log, with its disk failing on write (ENOSPC as the kernel would report it).
        await using var failing = LocalLog.Open(Path.Combine(_dir, "failing-log"), new LocalLogOptions
        {
            FaultInjector = point => point == LocalLogFaultPoint.Write ? new IOException("No space left on device") : null,
        });
        using var scratch = new IngestScratch();
        var result = await Processor(failing).ProcessAsync(batch.ToByteArray(), Client(), scratch, TestContext.Current.CancellationToken);
        var ack = Ack.Parser.ParseFrom(result.Ack.Span);
        Assert.Equal(AckStatus.Retry, ack.Status);
        Assert.Equal(0u, ack.Accepted);
        Assert.True(ack.RetryAfterMs > 0);
        Assert.Equal(0, failing.NextOffset);
    }

    [Fact]
    public async Task Garbage_is_malformed()
    {
        using var scratch = new IngestScratch();
        var result = await Processor().ProcessAsync(new byte[] { 0x0A, 0xFF }, Client(), scratch, TestContext.Current.CancellationToken);
        Assert.Equal(AckStatus.Malformed, result.Status);
    }

    private async Task<List<StoredEvent>> ReadAll(int expected)
    {
        await using var consumer = _log.OpenConsumer("test-" + Guid.NewGuid().ToString("N"));
        var batch = await consumer.ReadAsync(1000, TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
        Assert.Equal(expected, batch.Records.Count);
        return batch.Records.Select(r => StoredEvent.Parser.ParseFrom(r.Span)).ToList();
    }
}
