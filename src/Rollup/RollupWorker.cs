using System.Buffers.Binary;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Analytics.EventLog;
using Analytics.EventLog.Telemetry;
using Analytics.Rollup.Reprocessing;
using Analytics.Store;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Analytics.Rollup;

public sealed class RollupOptions
{
    public required string Database { get; init; }
    /// <summary>Where log records that do not decode are kept for investigation (local disk).</summary>
    public required string QuarantineDirectory { get; init; }
    public string ConsumerGroup { get; init; } = "rollup";
    /// <summary>Records per round: large enough to amortise what a round costs whatever its size
    /// (~10 statements, a part per table to write and later merge, a rollup row per visit and per
    /// dimension value it touches), small enough that each insert is one block (atomic: the
    /// engine squashes an insert into one block up to ~1M rows or 256 MiB). Only a backlog fills a
    /// round (live rounds linger at most <see cref="MinRoundInterval"/>). Catching up, 100,000
    /// rather than 50,000 (the local log's 8 MiB reads held ~30,000) cut the process CPU per
    /// event stored from 39.6 to 32.6 µs, for ~280 MiB more resident memory at the peak
    /// (perf/README.md, issue #17, 2026-12-01).</summary>
    public int MaxBatchRecords { get; init; } = DefaultMaxBatchRecords;

    public const int DefaultMaxBatchRecords = 100_000;
    /// <summary>How long a round waits for records: the floor of freshness when traffic is low.</summary>
    public TimeSpan MaxWait { get; init; } = TimeSpan.FromMilliseconds(200);
    /// <summary>
    /// Least time between the starts of two rounds unless the log has a backlog (more than a
    /// round's worth waiting). A round costs ~10 statements and 7 new parts in the store whatever
    /// its size, so at moderate rates many tiny rounds cost more CPU (and merges) than the events
    /// themselves: at 50,000 events/s offered, all roles, lingering cut the ingest ack p99 from
    /// 129 ms to 22-31 ms. Freshness pays at most this much. Operators may trade more freshness
    /// for CPU (`serve --rollup-interval-ms`; docs/operations.md, "Rollup's round interval").
    /// </summary>
    public TimeSpan MinRoundInterval { get; init; } = DefaultMinRoundInterval;

    public static readonly TimeSpan DefaultMinRoundInterval = TimeSpan.FromMilliseconds(500);
    /// <summary>
    /// Stamp visit entries on enriched events and write the dimension rollup (schemas/clickhouse/010).
    /// Off only for measuring what they cost (perf/QueryBench's catch-up baseline): without them
    /// the query API's pre-aggregates are missing for the events stored meanwhile.
    /// </summary>
    public bool PreAggregates { get; init; } = true;
    /// <summary>The processing-logic version live Rollup applies (see ProcessingLogic).</summary>
    public ushort LogicVersion { get; init; } = ProcessingLogic.Current;
}

/// <summary>
/// Rollup's counters for tests and its instruments on the meter "Analytics.Rollup" (exported at
/// /metrics): counters and gauges read at scrape time, the round duration histogram recorded once
/// per round. The meter comes from the host's IMeterFactory, so hosts in one process stay apart.
/// </summary>
public sealed class RollupStatus
{
    public const string MeterName = "Analytics.Rollup";

    private long _events, _duplicates, _engagementWithoutVisit, _rounds, _quarantined;
    private readonly Histogram<double> _roundDuration;
    private readonly Histogram<long> _roundEvents;

    public RollupStatus(IMeterFactory? meters = null)
    {
        var meter = meters?.Create(MeterName) ?? new Meter(MeterName);
        meter.CreateObservableCounter("analytics_rollup_events_stored_total", () => EventsStored, null, "Events stored by Rollup.");
        meter.CreateObservableCounter("analytics_rollup_duplicates_skipped_total", () => DuplicatesSkipped, null, "Resent events skipped by id.");
        meter.CreateObservableCounter("analytics_rollup_engagement_without_visit_total", () => EngagementWithoutVisit, null,
            "Engagement pings stored in events_raw only, counted in no metric: no open visit took them (processing logic 4).");
        meter.CreateObservableCounter("analytics_rollup_rounds_total", () => Rounds, null, "Rollup rounds completed (one log range each).");
        meter.CreateObservableCounter("analytics_rollup_quarantined_records_total", () => QuarantinedRecords, null, "Log records that did not decode (kept under rollup/quarantine).");
        meter.CreateObservableGauge("analytics_rollup_lag_records", () => Lag, null, "Records in the log not yet stored.");
        meter.CreateObservableGauge("analytics_rollup_source_lag_records",
            () => LagBySource.Select(l => new Measurement<long>(l.Value, new KeyValuePair<string, object?>("source", l.Key))), null,
            "Records not yet stored, per log source this Rollup reads (Kafka: per partition).");
        meter.CreateObservableGauge("analytics_rollup_last_round_ms", () => (IEnumerable<Measurement<long>>)
            [new(PrepareMs, new KeyValuePair<string, object?>("step", "prepare")), new(DedupMs, new KeyValuePair<string, object?>("step", "dedup")), new(StoreMs, new KeyValuePair<string, object?>("step", "store"))],
            null, "Last Rollup round: prepare (decode, dedup, enrich), dedup query, store inserts.");
        _roundDuration = meter.CreateHistogram("analytics_rollup_round_duration", "s", "One Rollup round: mark, decode, dedup, enrich, store inserts, commit.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] });
        _roundEvents = meter.CreateHistogram("analytics_rollup_round_events", "{event}", "Log records per Rollup round.",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [1, 10, 100, 1000, 5000, 10000, 25000, 50000, 100000] });
    }

    public long QuarantinedRecords => Interlocked.Read(ref _quarantined);
    internal void Quarantined() => Interlocked.Increment(ref _quarantined);
    public long EventsStored => Interlocked.Read(ref _events);
    public long DuplicatesSkipped => Interlocked.Read(ref _duplicates);
    public long EngagementWithoutVisit => Interlocked.Read(ref _engagementWithoutVisit);
    public long Rounds => Interlocked.Read(ref _rounds);
    public long Lag { get; internal set; }
    public IReadOnlyList<KeyValuePair<string, long>> LagBySource { get; internal set; } = [];
    public string? LastError { get; internal set; }
    /// <summary>Last round's timings, for profiling: decode + dedup + enrich, the dedup query alone, store inserts.</summary>
    public long PrepareMs { get; internal set; }
    public long DedupMs { get; internal set; }
    public long StoreMs { get; internal set; }
    internal void Round(long records, long events, long duplicates, long engagementWithoutVisit, TimeSpan duration)
    {
        Interlocked.Add(ref _events, events);
        Interlocked.Add(ref _duplicates, duplicates);
        Interlocked.Add(ref _engagementWithoutVisit, engagementWithoutVisit);
        Interlocked.Increment(ref _rounds);
        _roundDuration.Record(duration.TotalSeconds);
        _roundEvents.Record(records);
    }
}

/// <summary>Rollup's spans: ActivitySource "Analytics.Rollup", one "rollup.round" per round,
/// linked to the ingest batches whose records it stored.</summary>
public static class RollupTelemetry
{
    public const string SourceName = "Analytics.Rollup";
    public const string RoundSpan = "rollup.round";
    /// <summary>Links per round at most: a 50,000-record round can span thousands of batches.</summary>
    public const int MaxLinks = 128;
    public static readonly ActivitySource Source = new(SourceName);
}

/// <summary>
/// Consumes the event log and stores raw events, enriched events and the five rollups
/// (minute, hour, day, dimensions per day, visits per day). Exactly once, by construction:
///  1. A round takes a range of one log source (the local log, or one Kafka partition) and
///     records it as in flight in the store (rollup_inflight) first.
///  2. Events whose id the site already has (client resends) are dropped: checked against
///     event_ids, which is written last in a round.
///  3. For each day partition the round writes raw, enriched, the five rollups (computed by
///     the store from the enriched rows of this range) and event_ids, each insert with a
///     deduplication token made of table, log range and day.
///  4. The consumer offset is committed.
/// A crash anywhere, or a Kafka rebalance that hands the source to another consumer mid-round,
/// leaves the committed offset at the range's start: the next reader finds the mark and stores
/// the same range with the same tokens. Stored blocks are skipped by the store, missing ones are
/// written, and step 2 answers as it did the first time because event_ids is written last.
/// Store errors are retried with backoff, never skipped. Reprocessing's activations are counted in
/// <paramref name="activations"/> when given (Generations), and the site-days each round writes
/// are announced to <paramref name="writes"/> when given (readers that keep numbers of past days).
/// </summary>
public sealed partial class RollupWorker(IEventLog log, IColumnStore store, RollupOptions options, ProcessingLogic logic, RollupStatus status, ReprocessQueue jobs, ILogger<RollupWorker> logger,
    GenerationActivations? activations = null, SiteDayWrites? writes = null) : BackgroundService
{
    private readonly Sessionizer _sessions = new();
    private readonly StoredEventReader _records = new();
    private readonly string _db = ClickHouseSql.RequirePlainIdentifier(options.Database);
    private Generations? _generations;
    private SiteDayRebuilder? _rebuilder;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var consumer = log.OpenConsumer(options.ConsumerGroup);
        var inflight = new InflightRanges(store, _db, options.ConsumerGroup);
        _generations = new Generations(store, _db, activations);
        _rebuilder = new SiteDayRebuilder(store, _db, _generations, logic);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                // Reprocessing runs here, one step (whole site-days, up to a round's worth of
                // events) between two live rounds: the two never interleave, so live events are
                // neither lost nor counted twice by a rebuild, and live freshness waits at most
                // one step.
                var job = jobs.NextPending();
                var wait = job is null ? options.MaxWait : TimeSpan.Zero;
                LogBatch batch;
                try
                {
                    batch = await consumer.ReadAsync(options.MaxBatchRecords, wait, stoppingToken);
                }
                catch (EventLogRecordException e)
                {
                    // A record this version cannot read: wait at it (never skip acknowledged
                    // events) and say so; the source starts over as resumed.
                    status.LastError = e.Message;
                    LogRecordBlocked(e);
                    _replays.Remove(e.LogSource);
                    await Task.Delay(TimeSpan.FromSeconds(5), stoppingToken);
                    continue;
                }
                var started = Stopwatch.GetTimestamp();
                if (!batch.IsEmpty) await HandleAsync(consumer, inflight, batch, stoppingToken);
                // Let records gather for the next round, unless there is a backlog (more than a
                // round's worth waiting, over all sources, beside the round being stored) or a job.
                // Nothing to overlap then: the round being stored finishes first.
                if (batch.IsEmpty || job is not null || consumer.Lag - (_storing?.Records ?? 0) < options.MaxBatchRecords)
                    await FinishStoringAsync(consumer, stoppingToken);
                var linger = options.MinRoundInterval - Stopwatch.GetElapsedTime(started);
                if (!batch.IsEmpty && job is null && linger > TimeSpan.Zero && consumer.Lag < options.MaxBatchRecords)
                    await Task.Delay(linger, stoppingToken);
                status.Lag = consumer.Lag;
                status.LagBySource = consumer.LagBySource;
                if (job is not null) await ReprocessStepAsync(job, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            // A round still being stored ends before the consumer closes: committed if it was
            // stored, else left to be replayed from its mark.
            if (_storing is { } last)
            {
                _storing = null;
                try { await last.Store; await consumer.CommitAsync(last.Commit, CancellationToken.None); }
                catch (OperationCanceledException) { }
                last.Activity?.Dispose();
            }
        }
    }

    /// <summary>A range left in flight by the previous reader of a source, being read again.</summary>
    private sealed class Replay(long from, long next)
    {
        public long From { get; } = from;
        public long Next { get; } = next;
        public List<ReadOnlyMemory<byte>> Records { get; } = [];
        public long Position => From + Records.Count;
    }

    private readonly Dictionary<string, Replay> _replays = [];

    /// <summary>
    /// Cuts batches into rounds. Normally a batch is a round; but when the previous reader of a
    /// source left a range in flight (a crash, or a Kafka rebalance mid-round), that range is
    /// stored again first, with exactly its boundaries, so its insert tokens match.
    /// </summary>
    private async Task HandleAsync(IEventLogConsumer consumer, InflightRanges inflight, LogBatch batch, CancellationToken ct)
    {
        // A hand-over reads marks and seeds visits from the store: nothing may be half stored then.
        if (batch.Resumed || _replays.Count > 0) await FinishStoringAsync(consumer, ct);
        if (batch.Resumed)
        {
            _replays.Remove(batch.Source);
            var mark = await WithRetriesResult(() => inflight.LatestAsync(batch.Source, ct), ct);
            // The mark is the authority, not the committed offset: a mark starts only once
            // everything before it is stored, so a mark at or after the committed offset is the
            // one range that may be half stored. (It can be ahead of the committed offset when a
            // Kafka commit failed, e.g. during a rebalance: the records between are stored, and
            // the duplicate check drops them.)
            bool replay = mark is { } m && m.From >= batch.FirstOffset && m.Next > m.From;
            // Visits continue across the hand-over: seed them from what the store has of this
            // source, minus the range about to be replayed (so it computes visit starts as the
            // interrupted round did).
            long? resumeMs = FirstReceivedMs(batch);
            await WithRetries(() => RestoreSessionsAsync(batch.Source, replay ? mark!.Value.From : null, resumeMs, ct), ct);
            if (replay)
            {
                LogReplay(batch.Source, mark!.Value.From, mark.Value.Next);
                _replays[batch.Source] = new Replay(mark.Value.From, mark.Value.Next);
            }
        }
        if (!_replays.TryGetValue(batch.Source, out var pending))
        {
            await ProcessAsync(consumer, inflight, batch, ct);
            return;
        }
        if (pending.Records.Count == 0 && batch.FirstOffset < pending.From)
        {
            // Records before the marked range were stored by an earlier round whose commit did not
            // reach the log: an ordinary round finds them all in event_ids and stores nothing.
            int before = (int)Math.Min(batch.Records.Count, pending.From - batch.FirstOffset);
            await ProcessAsync(consumer, inflight, batch.Slice(0, before), ct);
            if (before == batch.Records.Count) return;
            batch = batch.Slice(before, batch.Records.Count - before);
        }
        if (batch.FirstOffset != pending.Position)
            throw new InvalidOperationException($"Replaying {batch.Source}:{pending.From}-{pending.Next}: expected offset {pending.Position}, the log gave {batch.FirstOffset}.");
        int take = (int)Math.Min(batch.Records.Count, pending.Next - pending.Position);
        if (pending.Records.Count == 0 && take == pending.Next - pending.From)
        {
            await ProcessAsync(consumer, inflight, batch.Slice(0, take), ct, replay: true); // the whole range at once: no copy
        }
        else
        {
            // Batch memory is only valid until the next read: keep a copy until the range is whole.
            for (int i = 0; i < take; i++) pending.Records.Add(batch.Records[i].ToArray());
            if (pending.Position < pending.Next) return;
            await ProcessAsync(consumer, inflight, new LogBatch(pending.Records, pending.From, pending.Next, batch.Source), ct, replay: true);
        }
        _replays.Remove(batch.Source);
        if (take < batch.Records.Count) await ProcessAsync(consumer, inflight, batch.Slice(take, batch.Records.Count - take), ct);
    }

    /// <summary>
    /// One round, in two halves that overlap with the neighbouring rounds: this round is prepared
    /// (decoded, checked for duplicates, enriched, encoded: Rollup's own CPU) while the previous
    /// round's statements run in the engine; then the previous round is finished (stored,
    /// committed), this round's mark is written, and its store starts, to run beside the next
    /// round's preparation. The order of marks, writes and commits is the one the class comment
    /// describes: a round's mark is written only once every earlier round is stored, and before
    /// anything of its own. Preparation writes nothing; its duplicate check sees the round being
    /// stored through that round's ids, since its event_ids may not be written yet.
    /// </summary>
    /// <param name="replay">The range left in flight by the previous reader (see HandleAsync): its
    /// events already stored still pass through the sessionizer (see PrepareAsync).</param>
    private async Task ProcessAsync(IEventLogConsumer consumer, InflightRanges inflight, LogBatch batch, CancellationToken ct, bool replay = false)
    {
        long started = Stopwatch.GetTimestamp();
        // A root of its own: a round serves many ingest traces, which it links to instead.
        Activity.Current = null;
        var activity = RollupTelemetry.Source.StartActivity(RollupTelemetry.RoundSpan, ActivityKind.Consumer);
        try
        {
            activity?.SetTag("analytics.log_source", batch.Source);
            activity?.SetTag("analytics.log_from", batch.FirstOffset);
            activity?.SetTag("analytics.log_next", batch.NextOffset);
            var prepare = Stopwatch.StartNew();
            var round = await PrepareAsync(batch, activity, _storing?.Round.Ids, replay);
            status.PrepareMs = prepare.ElapsedMilliseconds;
            await FinishStoringAsync(consumer, ct);
            await WithRetries(() => inflight.MarkAsync(batch.Source, batch.FirstOffset, batch.NextOffset, ct), ct);
            // The record list, not the bytes (the next read reuses both): a commit reads only the
            // batch's source and offsets.
            var commit = new LogBatch(batch.Records.ToArray(), batch.FirstOffset, batch.NextOffset, batch.Source);
            _storing = new StoringRound(Task.Run(() => WithRetries(() => StoreAsync(round, ct), ct), CancellationToken.None), commit, round, started, activity);
        }
        catch
        {
            activity?.Dispose();
            throw;
        }
    }

    /// <summary>The round whose statements run beside the next round's preparation.</summary>
    private StoringRound? _storing;

    private sealed record StoringRound(Task Store, LogBatch Commit, Round Round, long Started, Activity? Activity)
    {
        public long Records => Commit.NextOffset - Commit.FirstOffset;
    }

    /// <summary>Waits for the round being stored, then commits it (on the reader's loop: consumers are not thread-safe).</summary>
    private async Task FinishStoringAsync(IEventLogConsumer consumer, CancellationToken ct)
    {
        if (_storing is not { } s) return;
        _storing = null;
        using var activity = s.Activity;
        await s.Store;
        await CommitWithRetriesAsync(consumer, s.Commit, ct);
        activity?.SetTag("analytics.stored", s.Round.Stored);
        activity?.SetTag("analytics.duplicates", s.Round.Duplicates);
        status.Round(s.Commit.Records.Count, s.Round.Stored, s.Round.Duplicates, s.Round.EngagementWithoutVisit, Stopwatch.GetElapsedTime(s.Started));
    }

    /// <param name="Ids">The ids this round stores: the next round's duplicate check reads them
    /// while this round's event_ids may still be on the way.</param>
    /// <summary>A prepared round; <paramref name="EngagementWithoutVisit"/> of the stored events have no
    /// enriched row (DerivedRows.WriteEnriched).</summary>
    private sealed record Round(string Source, long From, long Next, List<DayPart> Days, int Stored, int Duplicates, int EngagementWithoutVisit, HashSet<EventKey> Ids);

    private sealed class DayPart(DateOnly day) : IDisposable
    {
        public DateOnly Day { get; } = day;
        public RowBinaryWriter Raw { get; } = new();
        public RowBinaryWriter Enriched { get; } = new();
        public int Rows { get; set; }
        public int EnrichedRows { get; set; }
        /// <summary>Where each enriched row's write_version is in <see cref="Enriched"/>: set once
        /// the round has its version (StoreDaysAsync).</summary>
        public List<int> VersionAt { get; } = [];
        /// <summary>The sites of the part's rows (for SiteDayWrites).</summary>
        public HashSet<(ulong Merchant, ulong Site)> Sites { get; } = [];
        public void Dispose() { Raw.Dispose(); Enriched.Dispose(); }
    }

    private async Task<Round> PrepareAsync(LogBatch batch, Activity? activity, HashSet<EventKey>? storing, bool replay)
    {
        var events = new List<RawEvent>(batch.Records.Count);
        var linked = activity is { IsAllDataRequested: true } ? new HashSet<ActivityContext>() : null;
        for (int i = 0; i < batch.Records.Count; i++)
        {
            if (!_records.TryRead(batch.Records[i].Span, batch.Source, batch.FirstOffset + i, out var e, out var traceContext))
            {
                // Only our own ingest writes the log, so this is a bug, not client input: keep the
                // bytes for investigation and go on rather than stop every merchant's numbers.
                Quarantine(batch.Source, batch.FirstOffset + i, batch.Records[i].Span, new InvalidDataException("Malformed StoredEvent protobuf record."));
                continue;
            }
            events.Add(e!);
            // Records of one batch share one context: one link per ingest batch.
            if (linked is not null && !traceContext.IsEmpty && linked.Count < RollupTelemetry.MaxLinks
                && TraceContextCodec.TryRead(traceContext, out var context) && linked.Add(context))
                activity!.AddLink(new ActivityLink(context));
        }
        var dedup = Stopwatch.StartNew();
        var storedIds = await LoadSeenIds(events);
        status.DedupMs = dedup.ElapsedMilliseconds;
        await WithRetries(() => _generations!.LoadAsync(events.Select(e => (e.MerchantId, e.SiteId, e.Day)), CancellationToken.None), CancellationToken.None);
        var days = new Dictionary<DateOnly, DayPart>();
        var ids = new HashSet<EventKey>(events.Count);
        int duplicates = 0, stored = 0, engagementWithoutVisit = 0;
        // A replayed range was read by the previous reader, which may have stored all of it (and
        // died, or lost the source, before its commit): then every event is in event_ids. The
        // visits of this reader were seeded from the store without that range (HandleAsync), so
        // its events go through the sessionizer all the same, in log order, into a scratch row
        // that is thrown away: skipped, the next round started a new visit for every visitor of
        // the source (seen in the Kafka rebalance test: 2-4 visits too many per hand-over).
        using var replayed = replay ? new RowBinaryWriter() : null;
        foreach (var e in events)
        {
            var key = new EventKey(e.MerchantId, e.SiteId, new Guid(e.Id));
            if (storing?.Contains(key) == true) { duplicates++; continue; }
            if (storedIds.Contains(key))
            {
                duplicates++;
                if (replayed is not null)
                {
                    replayed.Reset();
                    DerivedRows.WriteEnriched(replayed, e, logic, _sessions, options.LogicVersion, _generations!.Active(e.MerchantId, e.SiteId, e.Day), options.PreAggregates);
                }
                continue;
            }
            if (!ids.Add(key)) { duplicates++; continue; } // a repeat within the round
            if (!days.TryGetValue(e.Day, out var part)) days[e.Day] = part = new DayPart(e.Day);
            DerivedRows.WriteRaw(part.Raw, e);
            part.Sites.Add((e.MerchantId, e.SiteId));
            if (DerivedRows.WriteEnriched(part.Enriched, e, logic, _sessions, options.LogicVersion, _generations!.Active(e.MerchantId, e.SiteId, e.Day), options.PreAggregates))
            {
                part.EnrichedRows++;
                part.VersionAt.Add(part.Enriched.WrittenCount - DerivedRows.VersionOffset);
            }
            else
                engagementWithoutVisit++;
            part.Rows++;
            stored++;
        }
        return new Round(batch.Source, batch.FirstOffset, batch.NextOffset, days.Values.OrderBy(d => d.Day).ToList(), stored, duplicates, engagementWithoutVisit, ids);
    }

    /// <summary>An event's identity for the duplicate check: ids are unique per site.</summary>
    private readonly record struct EventKey(ulong Merchant, ulong Site, Guid Id);

    /// <summary>Ids of this round that the store already has (client resends, or a replayed range
    /// that the previous reader stored before it lost the source).</summary>
    private async Task<HashSet<EventKey>> LoadSeenIds(List<RawEvent> events)
    {
        var seen = new HashSet<EventKey>();
        if (events.Count == 0) return seen;
        // One query for the whole round, the keys passed as data rather than in the SQL text (as
        // a literal they cost ~2 µs each to parse). The tuple IN a subquery still uses the
        // primary index (merchant, site, id). One query per site cost a statement per site and
        // round: at 20 sites, 20 statements, 12 % of a catch-up's wall clock; at many merchants,
        // far more.
        const int RowBytes = 32;
        var rows = new byte[events.Count * RowBytes];
        for (int i = 0; i < events.Count; i++)
        {
            var row = rows.AsSpan(i * RowBytes, RowBytes);
            BinaryPrimitives.WriteUInt64LittleEndian(row, events[i].MerchantId);
            BinaryPrimitives.WriteUInt64LittleEndian(row[8..], events[i].SiteId);
            events[i].Id.CopyTo(row[16..]);
        }
        string sql = $"SELECT merchant_id, site_id, hex(event_id) FROM {_db}.event_ids " +
            $"WHERE (merchant_id, site_id, event_id) IN (SELECT merchant_id, site_id, event_id FROM {KeyRows.Placeholder})";
        var found = await WithRetriesResult(() => store.QueryRowsAsync(sql,
            new KeyRows("merchant_id UInt64, site_id UInt64, event_id FixedString(16)", RowBytes, rows)), CancellationToken.None);
        foreach (var row in found) seen.Add(new EventKey(row[0].GetUInt64(), row[1].GetUInt64(), new Guid(Convert.FromHexString(row[2].GetString()!))));
        return seen;
    }

    private void Quarantine(string source, long offset, ReadOnlySpan<byte> record, Exception error)
    {
        string directory = options.QuarantineDirectory;
        Directory.CreateDirectory(directory);
        File.WriteAllBytes(Path.Combine(directory, $"{source.Replace('/', '_')}-{offset}.bin"), record.ToArray());
        status.Quarantined();
        LogQuarantined(error, source, offset);
    }

    private async Task StoreAsync(Round round, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var siteDays = writes is null ? [] : round.Days.SelectMany(d => d.Sites.Select(s => (s.Merchant, s.Site, d.Day))).ToList();
        long version = writes?.Begin(_db, siteDays) ?? 0;
        try
        {
            await StoreDaysAsync(round, version, ct);
        }
        finally
        {
            writes?.End(_db, siteDays);
        }
        status.StoreMs = sw.ElapsedMilliseconds;
        LogRound(round.From, round.Next, round.Stored, round.Duplicates, sw.ElapsedMilliseconds);
        foreach (var part in round.Days) part.Dispose();
    }

    /// <param name="version">What SiteDayWrites gave the round (0 without it): the enriched events' and
    /// the dimension and visit rollups' write_version.</param>
    private async Task StoreDaysAsync(Round round, long version, CancellationToken ct)
    {
        foreach (var part in round.Days)
        {
            // The rows were built before the round had its version (its site-days come from them).
            // A retry of the round sets its new version; rows its first try stored keep theirs
            // (the insert's token drops the repeat), which were in any day kept since.
            foreach (int at in part.VersionAt) part.Enriched.OverwriteUInt64(at, (ulong)version);
            string range = string.Create(CultureInfo.InvariantCulture, $"{round.Source}:{round.From}-{round.Next}:{part.Day:yyyyMMdd}");
            string scope = string.Create(CultureInfo.InvariantCulture,
                $"toDate(received_at) = '{part.Day:yyyy-MM-dd}' AND log_source = {ClickHouseSql.StringLiteral(round.Source)} AND log_offset >= {round.From} AND log_offset < {round.Next}");
            // Raw and enriched side by side (the engine runs them on two sessions), then the
            // rollups, which read the enriched rows, then event_ids last. Each insert carries its
            // token, so a retry of the whole round after a partial failure writes only what is
            // missing. The pre-aggregates go before the minute/hour/day rollups rather than beside
            // them: once the totals (v1 aggregate, main graph) count an event, every question about
            // it answers with it too. Side by side, a page filter asked right after the totals
            // showed the events could still answer 0 (seen in CI); the time rollups are small
            // statements, so the extra step costs little.
            await Task.WhenAll(
                Insert($"{_db}.events_raw", DerivedRows.RawColumns, part.Raw, $"raw:{range}", part.Rows, ct),
                Insert($"{_db}.events_enriched", DerivedRows.EnrichedColumns, part.Enriched, $"enriched:{range}", part.EnrichedRows, ct));
            if (options.PreAggregates)
                await Task.WhenAll(DerivedRows.PreAggregateStatements(_db, scope, range, version).Select(sql => store.ExecuteAsync(sql, ct)));
            await Task.WhenAll(DerivedRows.TimeRollupStatements(_db, scope, range).Select(sql => store.ExecuteAsync(sql, ct)));
            await store.ExecuteAsync(
                $"INSERT INTO {_db}.event_ids SETTINGS insert_deduplication_token = {ClickHouseSql.StringLiteral("ids:" + range)}, max_threads = 1 " +
                $"SELECT merchant_id, site_id, event_id, received_at FROM {_db}.events_raw WHERE {scope}", ct);
        }
    }

    private async Task Insert(string table, string columns, RowBinaryWriter rows, string token, int expectedRows, CancellationToken ct)
    {
        long written = await store.InsertRowBinaryAsync(table, columns, rows.WrittenMemory, token, ct);
        // A repeat whose token the store recognises reports the same count (pinned by
        // Store.Tests' and Store.Conformance.Tests' dedup tests), so any other number is a
        // partial insert: fail loudly.
        if (written != expectedRows)
            throw new InvalidOperationException($"{table}: sent {expectedRows} rows, the store wrote {written}.");
    }

    /// <summary>
    /// One step of a reprocessing job: plan it (which site-days have raw events), or rebuild
    /// its next site-days, or mark it done. Progress is saved after every step.
    /// </summary>
    private async Task ReprocessStepAsync(ReprocessJob job, CancellationToken ct)
    {
        var request = job.Request;
        try
        {
            if (job.Units is null)
            {
                string siteFilter = request.SiteId is { } site ? string.Create(CultureInfo.InvariantCulture, $" AND site_id = {site}") : "";
                var units = await store.QueryRowsAsync(
                    $"SELECT site_id, toString(toDate(received_at)) AS day, count() FROM {_db}.events_raw " +
                    $"WHERE merchant_id = {request.MerchantId}{siteFilter} " +
                    $"AND received_at >= toDateTime64('{DerivedRows.Day(request.From)} 00:00:00', 3, 'UTC') " +
                    $"AND received_at < toDateTime64('{DerivedRows.Day(request.To.AddDays(1))} 00:00:00', 3, 'UTC') " +
                    "GROUP BY site_id, day ORDER BY day, site_id", ct);
                job.Units = units.Select(r => new ReprocessUnit
                {
                    SiteId = r[0].GetInt64(),
                    Day = DateOnly.Parse(r[1].GetString()!, CultureInfo.InvariantCulture),
                    RawEvents = r[2].GetInt64(),
                }).ToList();
                job.EventsTotal = job.Units.Sum(u => u.RawEvents);
                job.State = "running";
                job.StartedAt = DateTimeOffset.UtcNow;
                jobs.Save(job);
                LogJobPlanned(job.Id, job.Units.Count, job.EventsTotal, job.LogicVersion, request.DryRun);
                return;
            }
            var pending = job.Units.Where(u => !u.Done).ToList();
            if (pending.Count == 0)
            {
                // Once for the whole job; a crash before it is marked runs it again (idempotent).
                if (!job.Cleaned) await DeleteSupersededAsync(job, ct);
                job.State = "done";
                job.FinishedAt = DateTimeOffset.UtcNow;
                jobs.Save(job);
                LogJobDone(job.Id, job.EventsDone, job.EventsPerSecond);
                return;
            }
            // A step: as many site-days as a round's worth of raw events (ReprocessSteps).
            var step = ReprocessSteps.Next(pending, u => u.RawEvents, u => u.Day, options.MaxBatchRecords);
            // A unit interrupted by a crash is rebuilt from the start: count only finished ones.
            job.EventsDone = job.Units.Where(u => u.Done).Sum(u => u.RawEvents);
            var results = await _rebuilder!.RebuildAsync(
                step.Select(u => new SiteDay((ulong)request.MerchantId, (ulong)u.SiteId, u.Day)).ToList(), job.LogicVersion, request.DryRun,
                n => job.EventsDone += n, ct, deleteNow: false);
            for (int i = 0; i < step.Count; i++)
            {
                var (unit, result) = (step[i], results[i].Result);
                if (!request.DryRun) jobs.OnSiteDayActivated(request.MerchantId, unit.SiteId, unit.Day);
                unit.Done = true;
                unit.Delta = result.Delta;
                unit.RowsWritten = result.RowsWritten;
                unit.Generation = results[i].Generation;
                LogUnitDone(job.Id, unit.SiteId, unit.Day, result.Events, job.EventsDone, job.EventsTotal);
            }
            var elapsed = DateTimeOffset.UtcNow - (job.StartedAt ?? DateTimeOffset.UtcNow);
            job.EventsPerSecond = elapsed.TotalSeconds > 0 ? job.EventsDone / elapsed.TotalSeconds : 0;
            jobs.Save(job);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The site-days rebuilt so far stay active; their old rows go now, if the store lets.
            try { await DeleteSupersededAsync(job, ct); }
            catch (Exception cleanup) when (cleanup is not OperationCanceledException) { LogJobFailed(cleanup, job.Id); }
            job.State = "failed";
            job.Error = e.Message;
            job.FinishedAt = DateTimeOffset.UtcNow;
            jobs.Save(job);
            LogJobFailed(e, job.Id);
        }
    }

    /// <summary>The rows a job's rebuilds superseded (the old generations', or a dry run's own):
    /// invisible already, deleted once for all its steps, by the engine in the background (the job
    /// is done when its numbers are served, not when the space is freed). Units without a
    /// generation were rebuilt and cleaned one by one (a job saved by an earlier version).</summary>
    private async Task DeleteSupersededAsync(ReprocessJob job, CancellationToken ct)
    {
        var built = (job.Units ?? []).Where(u => u.Done && u.Generation is not null)
            .Select(u => (new SiteDay((ulong)job.Request.MerchantId, (ulong)u.SiteId, u.Day), u.Generation!.Value)).ToList();
        if (built.Count > 0) await _rebuilder!.DeleteSupersededAsync(built, job.Request.DryRun, ct, inBackground: true);
        job.Cleaned = true;
    }

    [LoggerMessage(EventId = 2101, Level = LogLevel.Information, Message = "Reprocess {JobId}: {Units} site-days, {Events} raw events, logic version {Version}, dry run {DryRun}")]
    private partial void LogJobPlanned(string jobId, int units, long events, ushort version, bool dryRun);

    [LoggerMessage(EventId = 2102, Level = LogLevel.Information, Message = "Reprocess {JobId}: site {SiteId} day {Day} rebuilt ({Events} events); progress {Done}/{Total}")]
    private partial void LogUnitDone(string jobId, long siteId, DateOnly day, long events, long done, long total);

    [LoggerMessage(EventId = 2103, Level = LogLevel.Information, Message = "Reprocess {JobId} done: {Events} events at {Rate:0} events/s")]
    private partial void LogJobDone(string jobId, long events, double rate);

    [LoggerMessage(EventId = 2104, Level = LogLevel.Error, Message = "Reprocess {JobId} failed")]
    private partial void LogJobFailed(Exception error, string jobId);

    /// <summary>
    /// Open visits from the store: every visitor seen in the 30 minutes before the point where
    /// reading resumes (<paramref name="resumeMs"/>, the received time of the first record read;
    /// the wall clock when nothing is waiting) or after it, from any source (a hot merchant's
    /// visitor may have moved partition), without this source's offsets from
    /// <paramref name="excludeFrom"/> on (the range about to be replayed, so it computes visit
    /// starts as the interrupted round did). Counted from the resume point, not the wall clock:
    /// a Rollup that restarts behind the log (a backlog of minutes or hours) would otherwise
    /// restore none of the visits open where it resumes, and split each in two.
    /// </summary>
    private async Task RestoreSessionsAsync(string source, long? excludeFrom, long? resumeMs, CancellationToken ct)
    {
        string since = resumeMs is { } ms
            ? string.Create(CultureInfo.InvariantCulture, $"fromUnixTimestamp64Milli({ms}, 'UTC') - INTERVAL 30 MINUTE")
            : "now64(3) - INTERVAL 30 MINUTE";
        string exclude = excludeFrom is { } from
            ? string.Create(CultureInfo.InvariantCulture, $" AND NOT (log_source = {ClickHouseSql.StringLiteral(source)} AND log_offset >= {from})")
            : "";
        // The visit's entry attributes come back with it (every event of a visit carries them),
        // so an event after the restart is stamped as it would have been without one.
        var rows = await store.QueryRowsAsync(
            $"SELECT site_id, visitor_id, toUnixTimestamp64Milli(max(received_at)), argMax(tuple(visit_id, {string.Join(", ", VisitEntry.Columns)}), received_at) " +
            $"FROM {_db}.events_enriched WHERE received_at >= {since} AND is_bot = 0{exclude} GROUP BY site_id, visitor_id", ct);
        foreach (var row in rows)
        {
            // A tuple comes as a JSON array, or as an object when the engine names its elements.
            var visit = row[3].ValueKind == System.Text.Json.JsonValueKind.Object
                ? row[3].EnumerateObject().Select(p => p.Value).ToList()
                : row[3].EnumerateArray().ToList();
            var entry = VisitEntry.FromValues(visit.Skip(1).Select(v => v.GetString() ?? "").ToList());
            _sessions.Restore(row[0].GetUInt64(), row[1].GetUInt64(), row[2].GetInt64(), visit[0].GetUInt64(), entry);
        }
    }

    /// <summary>The received time of the batch's first readable record; null for an empty batch.</summary>
    private long? FirstReceivedMs(LogBatch batch)
    {
        for (int i = 0; i < batch.Records.Count; i++)
            if (_records.TryRead(batch.Records[i].Span, batch.Source, batch.FirstOffset + i, out var e, out _)) return e!.ReceivedMs;
        return null;
    }

    /// <summary>A commit that fails (the local log's disk full: its offset file cannot be
    /// written) is retried like a store error, never thrown: thrown, it would end Rollup for good
    /// while ingest, once the disk has room again, goes on acknowledging. The range is stored
    /// already; a crash meanwhile replays it from the in-flight mark.</summary>
    private async Task CommitWithRetriesAsync(IEventLogConsumer consumer, LogBatch batch, CancellationToken ct)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                await consumer.CommitAsync(batch, ct);
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException && e is not ObjectDisposedException)
            {
                status.LastError = e.Message;
                LogCommitError(e, delay.TotalMilliseconds);
                await Task.Delay(delay, ct);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 5_000));
            }
        }
    }

    private Task WithRetries(Func<Task> action, CancellationToken ct) =>
        WithRetriesResult(async () => { await action(); return true; }, ct);

    /// <summary>Store errors stop the pipeline, never skip data: retry with capped backoff.</summary>
    private async Task<T> WithRetriesResult<T>(Func<Task<T>> action, CancellationToken ct)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                var result = await action();
                status.LastError = null;
                return result;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                status.LastError = e.Message;
                LogStoreError(e, delay.TotalMilliseconds);
                await Task.Delay(delay, ct);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 10_000));
            }
        }
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Stored log range {From}-{Next}: {Stored} events, {Duplicates} duplicates skipped, {Ms} ms")]
    private partial void LogRound(long from, long next, int stored, int duplicates, long ms);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "Storing {Source} range {From}-{Next} again: its previous reader stopped before committing it")]
    private partial void LogReplay(string source, long from, long next);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Error, Message = "Rollup is waiting at a log record it cannot read")]
    private partial void LogRecordBlocked(Exception error);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Error, Message = "Log record {Source}/{Offset} does not decode; quarantined")]
    private partial void LogQuarantined(Exception error, string source, long offset);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Error, Message = "Store error; retrying in {DelayMs} ms")]
    private partial void LogStoreError(Exception error, double delayMs);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Error, Message = "Committing the log position failed; retrying in {DelayMs} ms")]
    private partial void LogCommitError(Exception error, double delayMs);
}
