using System.Buffers.Binary;
using System.Diagnostics;
using Analytics.Contracts.Internal;
using Analytics.Enrichment;
using Analytics.EventLog;
using Analytics.Rollup;
using Analytics.Rollup.Reprocessing;
using Analytics.Store;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace Analytics.Perf.QueryBench;

/// <summary>
/// The real Rollup (RollupWorker) storing a backlog from a local log as fast as it can, as after
/// an outage or a burst: the load the dashboard's queries compete with for the engine. Each run
/// reads the same log under its own consumer group into the database given, so runs with and
/// without the pre-aggregates store the same records.
/// Processing logic 2 (hand-written rules, no enrichment data) unless <paramref name="logicVersion"/>
/// says 3 (the maintained data, as the host runs; `--catch-up-only --logic 3`): the store's work,
/// which is what queries compete with, is the same; only the derivation CPU differs.
/// </summary>
/// <param name="merchants">Merchants the backlog is spread over (20 unless a run asks otherwise).</param>
/// <param name="span">The receive times cover this much time up to now (one hour unless asked otherwise).</param>
/// <param name="mixMerchants">Every batch holds events of all merchants (drawn at random) instead of one merchant per
/// batch, so each merchant's events spread over the whole span, as a site's traffic does.</param>
public sealed class CatchUp(IColumnStore store, string logDirectory, int events, int merchants = 20, TimeSpan? span = null, bool mixMerchants = false,
    ushort logicVersion = 2) : IAsyncDisposable
{
    /// <summary>The processing logic of a version: 3 loads the enrichment data
    /// (ANALYTICS_ENRICHMENT_DATA or the nearest .cache/enrichment) and derives one event of each
    /// user agent and referrer of the backlog, so the regular expressions those user agents reach
    /// are compiled before anything is timed: a process pays that once (seconds of JIT), not per
    /// event, and it would otherwise be most of a short run's CPU per event.</summary>
    public static ProcessingLogic Logic(ushort version)
    {
        if (version < 3) return ProcessingLogic.WithoutData;
        var logic = new ProcessingLogic(EnrichmentRules.Load(EnrichmentDataDirectory.Locate()));
        foreach (var agent in Agents)
            foreach (var referrer in Referrers)
                logic.Derive(new RawEvent(1, 1, new byte[16], 0, 0, "pageview", "https://shop.example/p/1", referrer, [], 0, "", 1280, 0, 1,
                    "203.0.113.0/24", agent, "DE", "warm-up", 0), version);
        return logic;
    }

    private readonly ProcessingLogic _logic = Logic(logicVersion);

    private static readonly string[] Agents =
    [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ];
    private static readonly string[] Referrers = ["", "https://www.google.com/", "https://www.bing.com/", "https://t.co/x"];

    // Read as the host reads it (src/Host/AnalyticsHost.cs): the consumer's buffer bounds a round.
    private readonly LocalLog _log = LocalLog.Open(logDirectory, new LocalLogOptions { ConsumerBufferBytes = 32 * 1024 * 1024 });

    /// <summary>Writes the backlog: the merchants (ids from 10,000,001), 2,000 visitors each in
    /// visits over the span up to now, pageviews and some custom events.</summary>
    public async Task WriteBacklogAsync(CancellationToken ct)
    {
        var random = new Random(7);
        long spanMs = (long)(span ?? TimeSpan.FromHours(1)).TotalMilliseconds;
        long start = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - spanMs;
        const int Batch = 500;
        using var buffer = new MemoryStream();
        var length = new byte[4];
        for (int i = 0; i < events; i += Batch)
        {
            buffer.SetLength(0);
            int n = Math.Min(Batch, events - i);
            ulong merchant = 10_000_001 + (ulong)(i / Batch % merchants);
            for (int j = 0; j < n; j++)
            {
                if (mixMerchants) merchant = 10_000_001 + (ulong)random.Next(merchants);
                var e = BacklogEvent(random, merchant, start + (i + j) * spanMs / events, start);
                var bytes = e.ToByteArray();
                BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
                buffer.Write(length);
                buffer.Write(bytes);
            }
            await _log.AppendAsync(merchant, buffer.ToArray(), n, ct);
        }
    }

    /// <summary>One event of the backlog (perf/Benchmarks' RollupRoundBenchmarks reads the same):
    /// one of 2,000 visitors of the merchant's site, one of 500 pages, one in eight with a
    /// campaign query, one in ten a custom event.</summary>
    public static StoredEvent BacklogEvent(Random random, ulong merchant, long receivedMs, long clientTimeMs)
    {
        int visitor = random.Next(2000);
        return new StoredEvent
        {
            Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
            MerchantId = merchant,
            SiteId = merchant,
            ReceivedMs = receivedMs,
            ClientTimeMs = clientTimeMs,
            Name = random.Next(10) == 0 ? "signup" : "pageview",
            Url = $"https://shop{merchant}.example/p/{random.Next(500)}" + (random.Next(8) == 0 ? "?utm_source=newsletter&utm_campaign=w1" : ""),
            Referrer = Referrers[visitor % Referrers.Length],
            ScreenWidth = 1280,
            VisitorId = (ulong)visitor * 0x9E3779B97F4A7C15UL + merchant,
            IpPrefix = "203.0.113.0/24",
            UserAgent = Agents[visitor % Agents.Length],
            Country = "DE",
        };
    }

    /// <summary>Stores the whole backlog into <paramref name="database"/> under consumer group
    /// <paramref name="group"/>; <paramref name="whileRunning"/> runs beside it and is cancelled
    /// when the backlog is stored. Returns events per second.</summary>
    /// <param name="rollupStore">The store Rollup writes through, when not the one given at construction
    /// (the same engine at another statement priority).</param>
    public async Task<double> RunAsync(string database, string group, bool preAggregates, Func<CancellationToken, Task>? whileRunning, CancellationToken ct,
        IColumnStore? rollupStore = null)
    {
        var dir = Path.Combine(Path.GetDirectoryName(logDirectory)!, "rollup-" + group);
        var options = new RollupOptions
        {
            Database = database,
            ConsumerGroup = group,
            QuarantineDirectory = Path.Combine(dir, "quarantine"),
            LogicVersion = logicVersion,
            PreAggregates = preAggregates,
        };
        var status = new RollupStatus();
        using var worker = new RollupWorker(_log, rollupStore ?? store, options, _logic, status, new ReprocessQueue(Path.Combine(dir, "jobs")),
            NullLogger<RollupWorker>.Instance);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var sw = Stopwatch.StartNew();
        await worker.StartAsync(ct);
        // On the thread pool: questions answered from kept days complete without yielding, and a
        // loop of them called inline would never hand control back to this wait.
        var beside = whileRunning is null ? Task.CompletedTask : Task.Run(() => whileRunning(stop.Token), CancellationToken.None);
        double seconds;
        try
        {
            while (status.EventsStored < events)
            {
                if (sw.Elapsed > TimeSpan.FromMinutes(10)) throw new TimeoutException($"Rollup stored {status.EventsStored} of {events} events in 10 minutes ({status.LastError})");
                await Task.Delay(20, ct);
            }
            seconds = sw.Elapsed.TotalSeconds;
        }
        finally
        {
            // The questions stop on every path, a timeout's included.
            await stop.CancelAsync();
            try { await beside; } catch (OperationCanceledException) { }
            await worker.StopAsync(CancellationToken.None);
        }
        return events / seconds;
    }

    public ValueTask DisposeAsync() => _log.DisposeAsync();
}
