using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Analytics.Contracts.Internal;
using Analytics.EventLog;
using Analytics.Rollup;
using Analytics.Rollup.Reprocessing;
using Analytics.Store;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// The order in which a live Rollup round makes its tables visible, on the real engine: the
/// pre-aggregates the query planner reads (rollup_dims_day, rollup_visits_day) are complete
/// before the minute/hour/day rollups the totals read start, and event_ids comes last. So once
/// the totals count an event, a question answered from the pre-aggregates counts it too (a page
/// filter asked right after the totals showed the events once answered 0 in CI while both ran
/// side by side).
/// </summary>
public partial class RollupRoundOrderTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Every_round_completes_the_pre_aggregates_before_the_time_rollups_start_and_writes_event_ids_last()
    {
        string db = "roundorder_" + Guid.NewGuid().ToString("N")[..12];
        string dir = Path.Combine(Path.GetTempPath(), db);
        try
        {
            await new SchemaMigrator(engine.Store).MigrateAsync(Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse"), db, Ct);
            // Two days of pageviews, appended in chunks: several rounds, some spanning both days.
            var start = new DateTimeOffset(2026, 5, 1, 23, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds();
            var events = Enumerable.Range(0, 600).Select(i => new StoredEvent
            {
                Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
                MerchantId = 9,
                SiteId = 90,
                ReceivedMs = start + i * 12_000L,
                ClientTimeMs = start + i * 12_000L,
                Name = "pageview",
                Url = $"https://shop.example/p/{i % 7}",
                Referrer = "",
                ScreenWidth = 1280,
                VisitorId = (ulong)(i % 40),
                IpPrefix = "81.2.69.0/24",
                UserAgent = TestHost.BrowserUserAgent,
            }).ToList();
            await using (var log = LocalLog.Open(Path.Combine(dir, "log")))
            {
                foreach (var chunk in events.Chunk(97)) await LogRecords.AppendAsync(log, 9, chunk, Ct);
            }

            var recording = new RecordingStore(engine.Store);
            await using (var log = LocalLog.Open(Path.Combine(dir, "log")))
            {
                var status = new RollupStatus();
                var options = new RollupOptions
                {
                    Database = db, QuarantineDirectory = Path.Combine(dir, "quarantine"), MaxBatchRecords = 150,
                    MaxWait = TimeSpan.FromMilliseconds(20), MinRoundInterval = TimeSpan.Zero,
                };
                using var worker = new RollupWorker(log, recording, options, new ProcessingLogic(engine.Enrichment), status,
                    new ReprocessQueue(Path.Combine(dir, "jobs")), NullLogger<RollupWorker>.Instance);
                await worker.StartAsync(Ct);
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while (status.EventsStored < events.Count && DateTime.UtcNow < deadline) await Task.Delay(20, Ct);
                await worker.StopAsync(CancellationToken.None);
                Assert.Equal(events.Count, status.EventsStored);
            }

            // Statements of one round and day share the range in their deduplication tokens.
            var byRange = recording.Statements.Where(s => s.Range is not null).GroupBy(s => s.Range!).ToList();
            Assert.True(byRange.Count >= 4, $"{byRange.Count} round-days");
            foreach (var round in byRange)
            {
                var tables = round.Select(s => s.Table).ToHashSet();
                Assert.Superset(new HashSet<string> { "rollup_dims_day", "rollup_visits_day", "rollup_minute", "rollup_hour", "rollup_day", "event_ids" }, tables);
                long preAggregatesDone = round.Where(s => s.Table is "rollup_dims_day" or "rollup_visits_day").Max(s => s.Finished);
                long timeRollupsStart = round.Where(s => s.Table is "rollup_minute" or "rollup_hour" or "rollup_day").Min(s => s.Started);
                long timeRollupsDone = round.Where(s => s.Table is "rollup_minute" or "rollup_hour" or "rollup_day").Max(s => s.Finished);
                long idsStart = round.Single(s => s.Table == "event_ids").Started;
                Assert.True(preAggregatesDone <= timeRollupsStart, $"{round.Key}: a time rollup started before the pre-aggregates were written");
                Assert.True(timeRollupsDone <= idsStart, $"{round.Key}: event_ids started before the rollups were written");
            }
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private sealed record Statement(string Table, string? Range, long Started, long Finished);

    // "INSERT INTO db.table ... insert_deduplication_token = 'table:source:from-next:yyyyMMdd'"
    [GeneratedRegex(@"^INSERT INTO \w+\.(\w+) .*?insert_deduplication_token = '(?:\w+:)?([^']+)'", RegexOptions.Singleline)]
    private static partial Regex InsertStatement();

    /// <summary>The real store, recording when each INSERT … SELECT statement started and finished.</summary>
    private sealed class RecordingStore(IColumnStore inner) : DelegatingColumnStore(inner)
    {
        private long _clock;
        public ConcurrentBag<Statement> Statements { get; } = [];

        public override async Task ExecuteAsync(string sql, CancellationToken cancellationToken = default)
        {
            long started = Interlocked.Increment(ref _clock);
            await Inner.ExecuteAsync(sql, cancellationToken);
            long finished = Interlocked.Increment(ref _clock);
            if (InsertStatement().Match(sql) is { Success: true } m)
                Statements.Add(new Statement(m.Groups[1].Value, m.Groups[2].Value, started, finished));
        }
    }
}
