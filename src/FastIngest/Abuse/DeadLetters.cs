using System.Collections.Concurrent;
using System.Reflection;
using System.Threading.Channels;
using Analytics.Contracts.V1;
using Google.Protobuf.Reflection;

namespace Analytics.FastIngest.Abuse;

/// <summary>One refused thing a merchant can read back: an event rejected by validation, or a batch refused for its origin.</summary>
/// <param name="Reason">As schemas/events.proto names it: a RejectionReason (INVALID_ID, …) or FORBIDDEN_ORIGIN.</param>
public readonly record struct DeadLetter(long MerchantId, long SiteId, DateTimeOffset At, string Reason, string Origin, int Events, string Detail)
{
    private static readonly Dictionary<RejectionReason, string> ProtoNames = Enum.GetValues<RejectionReason>().ToDictionary(r => r,
        r => typeof(RejectionReason).GetField(r.ToString())!.GetCustomAttribute<OriginalNameAttribute>()!.Name);

    /// <summary>"INVALID_ID" for RejectionReason.InvalidId: the contract's name, not the C# one.</summary>
    public static string NameOf(RejectionReason reason) => ProtoNames[reason];
}

/// <summary>
/// Rejected events and refused batches on their way to the store's <c>ingest_rejections</c>
/// table (schemas/clickhouse/009_ingest_rejections.sql), so a merchant can see why data is
/// missing (GET /v1/sites/{site}/rejections). Contract: the hot path never waits for this. A site
/// gets at most <see cref="RowsPerSitePerMinute"/> rows a minute of rejected events, and as many
/// again of batches refused for their origin, so a foreign page's flood cannot hide the site's own
/// rejections (a flood of bad events writes no more than that; the rest is only counted, in <see cref="Suppressed"/> and the rejection
/// metrics); the queue holds at most <see cref="Capacity"/> rows, past which rows are dropped
/// and counted in <see cref="Dropped"/>. The table keeps rows 7 days (its TTL). Dead letters
/// are diagnostics, not data: they are written at most once and may be lost in a crash.
/// Rejections without a known site (unknown key, undecodable batch) have no merchant to show
/// them to and are only counted.
/// </summary>
public sealed class DeadLetters
{
    public const int RowsPerSitePerMinute = 100;
    public const int Capacity = 10_000;

    private readonly Channel<DeadLetter> _queue = Channel.CreateBounded<DeadLetter>(
        new BoundedChannelOptions(Capacity) { FullMode = BoundedChannelFullMode.Wait, SingleReader = true });
    private readonly ConcurrentDictionary<long, Window> _windows = new();
    private readonly ConcurrentDictionary<long, Window> _originWindows = new();
    private long _dropped, _suppressed;

    private sealed class Window
    {
        public long Minute;
        public int Rows;
    }

    public ChannelReader<DeadLetter> Reader => _queue.Reader;
    public long Dropped => Interlocked.Read(ref _dropped);
    public long Suppressed => Interlocked.Read(ref _suppressed);

    /// <summary>True when a row for this site's rejected event would be kept now; false means only
    /// count it. Asked before building the row, so a flood does not even format its details.</summary>
    public bool Admit(long siteId, DateTimeOffset at) => Admit(_windows, siteId, at);

    /// <summary>The same for a batch refused for its origin, from a quota of its own: a foreign
    /// page's flood must not use up the rows that explain the site's own rejected events.</summary>
    public bool AdmitOriginRefusal(long siteId, DateTimeOffset at) => Admit(_originWindows, siteId, at);

    private bool Admit(ConcurrentDictionary<long, Window> windows, long siteId, DateTimeOffset at)
    {
        long minute = at.ToUnixTimeMilliseconds() / 60_000;
        var window = windows.GetOrAdd(siteId, static _ => new Window());
        lock (window)
        {
            if (window.Minute != minute)
            {
                window.Minute = minute;
                window.Rows = 0;
            }
            if (window.Rows < RowsPerSitePerMinute)
            {
                window.Rows++;
                return true;
            }
        }
        Interlocked.Increment(ref _suppressed);
        return false;
    }

    /// <summary>Queues a row admitted by <see cref="Admit"/>; never blocks.</summary>
    public void Add(in DeadLetter letter)
    {
        if (!_queue.Writer.TryWrite(letter)) Interlocked.Increment(ref _dropped);
    }
}
