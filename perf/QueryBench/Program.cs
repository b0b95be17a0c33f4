// The query API's dashboard questions on a generated history, in one run (docs/query-performance.md):
//   1. the data set (Dataset.cs) written into a fresh embedded engine, with the rollups Rollup builds;
//   2. each question for the largest and a typical merchant, answered by the query engine of
//      POST /v1/query with the planner in front (pre-aggregates where exact) and without it (its
//      scan of events_enriched), alternately, idle: p50/p95 of each, their ratio, and whether the
//      two answers (the JSON the API returns) are the same;
//   3. Rollup catching up a backlog (CatchUp.cs) without and with the pre-aggregates, events/s
//      (what stamping visit entries and the dimension rollup cost Rollup);
//   4. the pre-aggregated questions of the largest merchant again while Rollup catches up: p95
//      and its ratio to idle.
// Exit code 1 when a pre-aggregated answer differs from its scan, or a part fails; timings are
// never asserted (perf/README.md: targets are written down, not failed).
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Analytics.Perf.QueryBench;
using Analytics.QueryService.PreAggregates;
using Analytics.Rollup;
using Analytics.QueryService.Query;
using Analytics.Store;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
bool smoke = args.Contains("--smoke");
// Smoke: a month of history, so the generator writes few partitions and the run takes seconds.
long events = Option("--events", smoke ? 100_000 : 20_000_000);
int merchants = (int)Option("--merchants", smoke ? 300 : 100_000);
int days = (int)Option("--days", smoke ? 31 : 395);
int iterations = (int)Option("--iterations", smoke ? 3 : 30);
// Planned answers of each question before its measured runs (each after a round, as they are):
// the first is the first answer column; the others, not measured, are a server's first minutes
// rather than its steady state: the JIT optimises a method after 30 calls (tiered compilation;
// before, an answer's loops ran at tier 0 and a recompilation, 20-40 ms of its thread's CPU, landed
// in some measured run), and the collector promotes what a question's first answer kept, once
// (a gen1 collection of 40-100 ms on the largest merchant). The scan warms up once.
int warmUps = (int)Option("--warm-ups", smoke ? 1 : 30);
if (warmUps < 1) { Console.Error.WriteLine("--warm-ups must be at least 1"); return 2; }
const int MinimumRunsForP95 = QueryBenchRuns.MinimumForP95;

// Beside the queries, 2M for ≥ 20 runs per question under catch-up (35-36 on a 4M-event set whose
// largest merchant has 1.25M events in 30 days); Rollup alone (--catch-up-only) keeps 1M.
int backlog = (int)Option("--backlog", smoke ? 20_000 : args.Contains("--catch-up-only") ? 1_000_000 : 2_000_000);
double largestShare = double.Parse(OptionText("--largest-share") ?? Dataset.DefaultLargestShare.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
if (largestShare is <= 0 or >= 1) { Console.Error.WriteLine("--largest-share must be between 0 and 1"); return 2; }
string? json = OptionText("--json");
// Keep the engine's directory and the generated data set in it, and reuse it on the next run with
// the same --events/--merchants/--days (on later days too: it keeps its last day): before/after
// runs then ask the very same parts. Part 3, Rollup's catch-up with and without pre-aggregates, is
// skipped; part 4's catch-up stores into a database of its own and runs.
string? keptData = OptionText("--data");
// Only Rollup: catch up a backlog, then reprocess everything it stored, each with the engine time
// per statement kind (TimedStore); no data set, no questions.
bool catchUpOnly = args.Contains("--catch-up-only");
// Visits in a range from which a site is read as a large one (QueryEngine.LargeSiteFromVisits: the
// visit rollup with FINAL, top lists' visitors summed per day): the product's threshold unless
// given, to compare both forms on one data set.
long largeSiteFromVisits = Option("--large-site-from-visits", VisitRollupPlanner.MergedReadFromVisits);
// Whether the query engine keeps each past day's top-list numbers (DailyRowsCache), as the host
// does on the embedded engine; off to measure the questions without them.
bool dailyRows = OptionText("--daily-rows") != "off";
if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine("QueryBench [--smoke] [--events 20000000] [--merchants 100000] [--days 395] [--iterations 30] [--warm-ups 30] [--backlog 2000000] [--largest-share 0.1] [--json FILE] [--data DIR]");
    Console.WriteLine("                                    --largest-share: merchant 1's share of the events (0.5 of 20M: a 10M-event merchant)");
    Console.WriteLine("                                    --data DIR: keep the data set in DIR and reuse it next time (part 3 skipped)");
    Console.WriteLine("                                    --large-site-from-visits N: read a site as a large one from N visits in the range (0: always)");
    Console.WriteLine("                                    --daily-rows off: planned questions read every day each time (the host keeps past days' numbers)");
    Console.WriteLine("QueryBench --storage [--smoke] [--events 200000] [--json FILE]   bytes on disk per event for every table (StorageCost.cs)");
    Console.WriteLine("QueryBench --catch-up-only [--backlog 1000000] [--statement-costs] [--logic 2] [--json FILE]   Rollup catch-up and reprocessing alone, with the engine time per statement kind");
    Console.WriteLine("                                    --statement-costs: and the CPU of each statement of a round run alone");
    Console.WriteLine("                                    --logic N: processing logic N (3 and up read the maintained enrichment data); current: the host's (" + ProcessingLogic.Current + ")");
    return 0;
}
if (args.Contains("--storage")) return await StorageModeAsync();

var root = keptData is not null ? Path.GetFullPath(keptData) : Path.Combine(Path.GetTempPath(), "analytics-query-bench-" + Guid.NewGuid().ToString("N"));
var engine = ChDbEngine.Open(Path.Combine(root, "chdb"));
var store = new EmbeddedColumnStore(engine);
var ct = CancellationToken.None;
var failures = new List<string>();
try
{
    string schemas = Path.Combine(AppContext.BaseDirectory, "schemas", "clickhouse");
    if (catchUpOnly)
    {
        // "current": the version the host runs (ProcessingLogic.Current), as perf/run-all.sh asks.
        ushort logic = OptionText("--logic") == "current" ? ProcessingLogic.Current : (ushort)Option("--logic", 2);
        await RollupAlone.RunAsync(store, schemas, Path.Combine(root, "log"), backlog, ct, args.Contains("--statement-costs"), logic, json);
        return 0;
    }
    foreach (var db in keptData is null ? new[] { "bench", "catchup_base", "catchup_pre" } : ["bench"]) await new SchemaMigrator(store).MigrateAsync(schemas, db, ct);

    // A kept data set ends on the day it was generated up to, not on yesterday: the questions ask
    // its last 30 days whichever day it is reused on.
    string shapeFile = Path.Combine(root, "dataset.txt");
    var keptEnding = keptData is not null && File.Exists(shapeFile)
        ? Regex.Match(await File.ReadAllTextAsync(shapeFile, ct), @"ending (\d{4}-\d{2}-\d{2})") : null;
    var dataset = new Dataset(store, "bench", events, merchants, days, largestShare,
        keptEnding is { Success: true } ? DateOnly.ParseExact(keptEnding.Groups[1].Value, "yyyy-MM-dd", CultureInfo.InvariantCulture) : null);
    string shape = string.Create(CultureInfo.InvariantCulture, $"{events} events, {merchants} merchants, {days} days ending {dataset.LastDay:yyyy-MM-dd}")
        + (largestShare == Dataset.DefaultLargestShare ? "" : string.Create(CultureInfo.InvariantCulture, $", the largest merchant {largestShare:P0} of them"));
    long stored;
    double genSeconds = 0, rollupSeconds = 0;
    if (keptData is not null && File.Exists(shapeFile))
    {
        if (await File.ReadAllTextAsync(shapeFile, ct) != shape)
            throw new InvalidOperationException($"{root} holds another data set ({await File.ReadAllTextAsync(shapeFile, ct)}), not {shape}");
        stored = (await store.QueryRowsAsync("SELECT count() FROM bench.events_enriched", ct))[0][0].GetInt64();
        Console.WriteLine($"reusing the data set in {root}: {stored:N0} enriched events, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
    }
    else
    {
        Console.WriteLine($"generating {events:N0} events over {merchants:N0} merchants and {days} days, {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        (stored, genSeconds, rollupSeconds) = await dataset.GenerateAsync(ct);
        Console.WriteLine($"stored {stored:N0} enriched events in {genSeconds:F1} s, rolled up in {rollupSeconds:F1} s");
        if (keptData is not null) await File.WriteAllTextAsync(shapeFile, shape, ct);
    }
    var sizes = await store.QueryRowsAsync("SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE database = 'bench' AND active GROUP BY table ORDER BY table", ct);
    foreach (var row in sizes) Console.WriteLine($"  {row[0].GetString(),-16} {row[1].GetInt64(),14:N0} rows {row[2].GetInt64() / 1048576.0,10:F1} MiB");

    int typical = dataset.TypicalMerchant();
    var subjects = new List<(string Label, ulong Merchant)> { ("largest", 1UL), ("typical", (ulong)typical) };
    var counts = new Dictionary<ulong, (long All, long Last30)>();
    foreach (var (_, m) in subjects)
    {
        var c = await store.QueryRowsAsync(string.Create(CultureInfo.InvariantCulture,
            $"SELECT count(), countIf(received_at >= toDateTime('{DerivedDay(dataset.LastDay.AddDays(-29))}', 'UTC')) FROM bench.events_enriched WHERE merchant_id = {m}"), ct);
        counts[m] = (c[0][0].GetInt64(), c[0][1].GetInt64());
        Console.WriteLine($"merchant {m}: {counts[m].All:N0} events, {counts[m].Last30:N0} in the last 30 days");
    }

    // Idle means idle: a data set's inserts can leave the engine merging their parts after the
    // last one, on the same two cores the questions are timed on.
    var (mergeSeconds, mergesDone) = await Merges.WaitUntilNoneAsync(store, TimeSpan.FromMinutes(15), ct);
    Console.WriteLine($"merges after the data set: {mergeSeconds:F0} s until none ran{(mergesDone ? "" : " (still running at the limit; the idle questions run beside them)")}");

    // The floor every statement pays: the engine's session, chdb_query_n and the JSON parse.
    var floor = new List<double>();
    for (int i = -1; i < iterations; i++)
    {
        var sw = Stopwatch.StartNew();
        await store.QueryRowsAsync("SELECT 1", ct);
        if (i >= 0) floor.Add(sw.Elapsed.TotalMilliseconds);
    }
    Console.WriteLine($"SELECT 1 through the store: p50 {P(floor, 50):F2} ms, p95 {P(floor, 95):F2} ms");

    // Idle: the query engine with the planner and without it (the scan every query falls back
    // to), alternately, so drift in the machine's load hits both alike.
    // As the host runs it on the embedded engine: each site's active generations kept between
    // questions (nothing activates a generation in this run), and the planned questions from
    // each past day's kept numbers (nothing writes the data set's days after it is generated; the
    // catch-ups below write databases of their own). The first answer of each question (the
    // first warm-up, not in p50/p95) is where those are read: it is reported on its own.
    // The range's last day is the engines' today (their clock at 23:00 UTC of it), as the
    // dashboard's 30d ends with today. Today is kept between Rollup's rounds like any day: the
    // largest merchant is a busy site (tens of thousands of events a day, a round about every
    // second), so a round of its today is stored before each of its questions and today is
    // brought up to date every time (the dimension rollup's questions read the values the round
    // wrote, the others today whole); the typical one gets a few events an hour, and its today
    // stays kept.
    var today = new FixedClock(new DateTimeOffset(dataset.LastDay.ToDateTime(new TimeOnly(23, 0)), TimeSpan.Zero));
    var writes = dailyRows ? new SiteDayWrites() : null;
    var planned = new QueryEngine(store, "bench")
    {
        GenerationActivations = new GenerationActivations(), LargeSiteFromVisits = largeSiteFromVisits, SiteDayWrites = writes,
        Clock = today,
    };
    // A real round: its rows are stored (Dataset.WriteRoundAsync) under the version of its
    // announcement, as Rollup stores a round; not timed, like Rollup's work beside a dashboard.
    async Task RoundOfTodayAsync(ulong merchant)
    {
        if (merchant != 1 || writes is null) return;
        (ulong, ulong, DateOnly)[] siteDay = [(merchant, merchant, dataset.LastDay)];
        long version = writes.Begin("bench", siteDay);
        try
        {
            await dataset.WriteRoundAsync(merchant, version, ct);
        }
        finally
        {
            writes.End("bench", siteDay);
        }
    }
    var scanning = new QueryEngine(store, "bench") { UsePreAggregates = false, Clock = today };
    var results = new List<Result>();
    foreach (var (label, merchant) in subjects)
    {
        foreach (var question in Questions.For(store, "bench", merchant, dataset.LastDay))
        {
            if (question.Planned && question.Answer is null && NormalQueryPlanner.TryPlanRaw(question.Query!, "bench", 10, out var reason) is null)
                throw new InvalidOperationException($"{question.Name}: the planner fell back ({reason})");
            var pre = new List<double>();
            var scan = new List<double>();
            // Bytes the process allocated during each planned answer (the idle part runs nothing
            // else): unlike times on this shared VM, the same from run to run, and what makes the
            // collector run while a question waits.
            var allocated = new List<double>();
            // The collector's pauses during each planned answer: with 30 runs the p95 is about the
            // second slowest, and a run that pays a collection (one promoting what a warm-up kept
            // took 43-123 ms on the 12.5M-event set) sets it; this column says when it did.
            var paused = new List<double>();
            double first = double.NaN;
            bool? same = null;
            for (int i = -warmUps; i < iterations; i++)
            {
                bool laterWarmUp = i < 0 && i > -warmUps; // planned answers only, not measured
                if (laterWarmUp && !question.Planned) continue;
                string? answer = null;
                if (question.Planned)
                {
                    await RoundOfTodayAsync(merchant);
                    long before = GC.GetTotalAllocatedBytes(precise: true);
                    var pausedBefore = GC.GetTotalPauseDuration();
                    var sw = Stopwatch.StartNew();
                    answer = await AnswerAsync(question, planned, ct);
                    if (i >= 0) pre.Add(sw.Elapsed.TotalMilliseconds);
                    else if (i == -warmUps) first = sw.Elapsed.TotalMilliseconds;
                    if (i >= 0) allocated.Add((GC.GetTotalAllocatedBytes(precise: true) - before) / 1048576.0);
                    if (i >= 0) paused.Add((GC.GetTotalPauseDuration() - pausedBefore).TotalMilliseconds);
                }
                if (laterWarmUp) continue;
                var watch = Stopwatch.StartNew();
                string scanned = await AnswerAsync(question, scanning, ct);
                if (i >= 0) scan.Add(watch.Elapsed.TotalMilliseconds);
                // Every run, not only the first: later answers add up kept days (DailyRowsCache).
                if (answer is not null && same != false)
                {
                    same = answer == scanned;
                    if (same == false) failures.Add($"{label} merchant, {question.Name}: the pre-aggregated answer differs from the scan (run {i + 2})");
                }
            }
            results.Add(new Result(label, merchant, question.Name, question.Planned, pre, scan, same, first, allocated, paused));
            Console.WriteLine($"  {label,-8} {question.Name,-80} pre p95 {P(pre, 95),8:F1} ms   scan p95 {P(scan, 95),8:F1} ms   runs paused ≥ 10 ms by the GC {paused.Count(p => p >= 10)}");
        }
    }

    // Rollup catching up: without, then with the pre-aggregates (fresh data sets only), then with
    // them while the largest merchant's pre-aggregated questions run back to back: once with
    // Rollup's statements at the queries' priority and once in the background, as the host runs
    // them (ChDbEngine, StatementPriority). The queried data set stays as it is: each live
    // catch-up stores into a database of its own, so a kept data set (--data) is measured too.
    var busy = new Dictionary<StatementPriority, Dictionary<string, List<double>>>();
    var liveRate = new Dictionary<StatementPriority, double>();
    double baseRate = double.NaN, preRate = double.NaN;
    string catchUpLog = Path.Combine(root, "catch-up-log");
    if (Directory.Exists(catchUpLog)) Directory.Delete(catchUpLog, recursive: true);
    foreach (var stale in Directory.GetDirectories(root, "rollup-*")) Directory.Delete(stale, recursive: true);
    await using (var catchUp = new CatchUp(store, catchUpLog, backlog))
    {
        await catchUp.WriteBacklogAsync(ct);
        if (keptData is null)
        {
            baseRate = await catchUp.RunAsync("catchup_base", "base", preAggregates: false, null, ct);
            preRate = await catchUp.RunAsync("catchup_pre", "pre", preAggregates: true, null, ct);
            Console.WriteLine($"Rollup catch-up of {backlog:N0} events: {baseRate:N0} events/s without pre-aggregates, {preRate:N0} with ({preRate / baseRate:F2}x)");
        }
        var largest = Questions.For(store, "bench", 1, dataset.LastDay).Where(q => q.Planned).ToList();
        foreach (var priority in new[] { StatementPriority.Normal, StatementPriority.Background })
        {
            string live = "catchup_live_" + priority.ToString().ToLowerInvariant();
            // Not SYNC: DROP … SYNC waits until no session holds the tables, and an idle chDB
            // session still held the last ones it used (the drop after a live run hung in 4 of 6
            // runs, the other sessions idle). The engine removes the files once they are released.
            await store.ExecuteAsync($"DROP DATABASE IF EXISTS {live}", ct);
            await new SchemaMigrator(store).MigrateAsync(schemas, live, ct);
            var times = busy[priority] = largest.ToDictionary(q => q.Name, _ => new List<double>());
            liveRate[priority] = await catchUp.RunAsync(live, live, preAggregates: true, async stop =>
            {
                for (int i = 0; !stop.IsCancellationRequested; i++)
                {
                    var q = largest[i % largest.Count];
                    await RoundOfTodayAsync(1);
                    var sw = Stopwatch.StartNew();
                    await AnswerAsync(q, planned, CancellationToken.None);
                    times[q.Name].Add(sw.Elapsed.TotalMilliseconds);
                }
            }, ct, store.WithPriority(priority));
            await store.ExecuteAsync($"DROP DATABASE IF EXISTS {live}", ct);
            Console.WriteLine($"Rollup catch-up beside the queries, Rollup at {priority} priority: {liveRate[priority]:N0} events/s");
        }
    }

    // "5-7": the fewest and most runs any question got while Rollup caught up (questions take turns).
    string Runs(StatementPriority priority) => busy.TryGetValue(priority, out var t) && t.Count > 0
        ? $"{t.Values.Min(l => l.Count)}-{t.Values.Max(l => l.Count)}" : "none";
    string fewRuns = busy.Values.Any(t => t.Values.Any(l => l.Count < MinimumRunsForP95))
        ? $"; **fewer than {MinimumRunsForP95} runs: such a p95 is the slowest run, a larger --backlog gives more**." : ".";
    var md = new StringBuilder();
    md.AppendLine(CultureInfo.InvariantCulture, $"Data set: {stored:N0} enriched events, {merchants:N0} merchants, {days} days (generated in {genSeconds:F0} s, rolled up in {rollupSeconds:F0} s, then {mergeSeconds:F0} s until no merge ran{(mergesDone ? "" : ", **merges still running when the questions started**")}); ");
    md.AppendLine(CultureInfo.InvariantCulture, $"largest merchant 1: {counts[1].All:N0} events ({counts[1].Last30:N0} in the 30 days asked); typical (events-weighted median) merchant {typical}: {counts[(ulong)typical].All:N0} ({counts[(ulong)typical].Last30:N0}). ");
    md.Append(CultureInfo.InvariantCulture, $"{iterations} runs per question after {warmUps} planned warm-up answers (the first one's time is the first answer column; the others let the JIT optimise the answer's methods, after 30 calls, and the collector promote what the first kept, as in a server answering for a while) and one of the scan, with and without the planner alternately (QueryEngine.AnswerAsync, the JSON of POST /v1/query). ");
    md.Append(dailyRows
        ? "The planned questions add up each past day's kept numbers (DailyRowsCache), as the host does: the first warm-up answer reads and keeps them, and its time is the first answer column (it also pays the first run's JIT). " +
          "The range's last day is the engines' today (as the dashboard's 30d ends with today), kept between Rollup's rounds like any day: the largest merchant's today is read on every question (a round of it, three events of a new visit, is stored before each and announced as Rollup announces its rounds, as for a busy site), the typical merchant's stays kept (a few events an hour). "
        : "The planned questions read every day's rows each time (`--daily-rows off`). ");
    md.Append(CultureInfo.InvariantCulture, $"The engine's floor, `SELECT 1` through the same store (session, chdb_query_n, JSONCompact parsed): p50 {P(floor, 50):F1} ms, p95 {P(floor, 95):F1} ms. ");
    md.AppendLine(string.Create(CultureInfo.InvariantCulture,
        $"Under catch-up: Rollup storing a backlog of {backlog:N0} events at full speed into a database of its own, its statements at the queries' priority ({liveRate[StatementPriority.Normal]:N0} events/s beside the queries) and in the background as the host runs them ({liveRate[StatementPriority.Background]:N0} events/s; the engine {(ChDbEngine.CanPrioritize ? "has" : "lacks")} CAP_SYS_NICE, without which both are alike). " +
        $"Runs per question under catch-up (the p95 below is of these): {Runs(StatementPriority.Normal)} with Rollup normal, {Runs(StatementPriority.Background)} in the background{fewRuns}"));
    md.AppendLine();
    md.AppendLine("| merchant | question | pre-agg p50 ms | pre-agg p95 ms | pre-agg first answer ms | pre-agg MiB allocated (p50) | pre-agg runs paused ≥ 10 ms by the GC (longest pause ms) | scan p50 ms | scan p95 ms | scan / pre-agg (p50) | same answer | p95 under catch-up, Rollup normal ms | under catch-up / idle (p95) | p95 under catch-up, Rollup in background ms | under catch-up / idle (p95) |");
    md.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    foreach (var r in results)
    {
        var beside = new StringBuilder();
        foreach (var priority in new[] { StatementPriority.Normal, StatementPriority.Background })
        {
            if (r.Label == "largest" && r.Planned && busy.TryGetValue(priority, out var times) && times[r.Question].Count > 0)
                beside.Append(CultureInfo.InvariantCulture, $" {P(times[r.Question], 95):F1} | {P(times[r.Question], 95) / P(r.Pre, 95):F2}x |");
            else
                beside.Append("  |  |");
        }
        md.AppendLine(CultureInfo.InvariantCulture,
            $"| {r.Label} ({r.Merchant}) | {r.Question} | {(r.Planned ? P(r.Pre, 50).ToString("F1", CultureInfo.InvariantCulture) : "fallback")} | {(r.Planned ? P(r.Pre, 95).ToString("F1", CultureInfo.InvariantCulture) : "")} " +
            $"| {(r.Planned ? r.First.ToString("F1", CultureInfo.InvariantCulture) : "")} | {(r.Planned ? P(r.Allocated, 50).ToString("F2", CultureInfo.InvariantCulture) : "")} " +
            $"| {(r.Planned ? string.Create(CultureInfo.InvariantCulture, $"{r.Paused.Count(p => p >= 10)} ({r.Paused.DefaultIfEmpty(0).Max():F1})") : "")} " +
            $"| {P(r.Scan, 50):F1} | {P(r.Scan, 95):F1} | {(r.Planned ? (P(r.Scan, 50) / P(r.Pre, 50)).ToString("F1", CultureInfo.InvariantCulture) + "x" : "")} | {(r.Same is null ? "" : r.Same.Value ? "yes" : "**no**")} |{beside}");
    }
    md.AppendLine();
    if (keptData is null) md.AppendLine(CultureInfo.InvariantCulture, $"Rollup catch-up, the same {backlog:N0}-event backlog, no queries beside it: {baseRate:N0} events/s without the pre-aggregates (no entry stamping, no dimension rollup), {preRate:N0} with them: {preRate / baseRate:F2}x.");
    Console.WriteLine();
    Console.Write(md.ToString());
    if (json is not null)
    {
        await File.WriteAllTextAsync(json, JsonSerializer.Serialize(new
        {
            kind = "query-bench",
            date = DateTime.UtcNow,
            events = stored,
            merchants,
            days,
            iterations,
            warmUps,
            backlog,
            catchUpEventsPerSecond = new
            {
                without = keptData is null ? baseRate : (double?)null,
                with = keptData is null ? preRate : (double?)null,
                besideQueries = liveRate[StatementPriority.Normal],
                besideQueriesInBackground = liveRate[StatementPriority.Background],
            },
            canPrioritize = ChDbEngine.CanPrioritize,
            // The largest merchant's pre-aggregated questions: p95 under catch-up / p95 idle.
            underCatchUpToIdleP95 = busy.ToDictionary(b => b.Key.ToString().ToLowerInvariant(), b => results
                .Where(r => r.Label == "largest" && r.Planned && b.Value.TryGetValue(r.Question, out var t) && t.Count > 0)
                .Select(r => new { question = r.Question, ratio = P(b.Value[r.Question], 95) / P(r.Pre, 95), runs = b.Value[r.Question].Count })
                .ToList()),
            selectOneMilliseconds = new { p50 = P(floor, 50), p95 = P(floor, 95) },
            mergesAfterDataSet = new { seconds = mergeSeconds, done = mergesDone },
            failures,
            markdown = md.ToString(),
        }, new JsonSerializerOptions { WriteIndented = true }), ct);
    }
}
catch (Exception e)
{
    failures.Add(e.Message);
    Console.Error.WriteLine(e);
}
finally
{
    // The engine first: its files go with the directory.
    engine.Dispose();
    if (keptData is null)
    {
        try { Directory.Delete(root, recursive: true); } catch (IOException) { }
    }
}
foreach (var f in failures) Console.Error.WriteLine("FAILED: " + f);
return failures.Count == 0 ? 0 : 1;

// --storage: only the bytes per event of every table, after merges.
async Task<int> StorageModeAsync()
{
    // 200,000 in a full run: spread over 30 days, each Rollup round writes ~30 day partitions, so
    // filling the store takes minutes on 2 shared cores.
    int n = (int)Option("--events", smoke ? 5_000 : 200_000);
    var dir = Path.Combine(Path.GetTempPath(), "analytics-storage-bench-" + Guid.NewGuid().ToString("N"));
    var chdb = ChDbEngine.Open(Path.Combine(dir, "chdb"));
    try
    {
        var (costs, rate) = await StorageCost.MeasureAsync(new EmbeddedColumnStore(chdb), dir, n, CancellationToken.None);
        string md = StorageCost.Markdown(costs, n);
        Console.WriteLine($"Rollup stored {n:N0} events at {rate:N0} events/s");
        Console.Write(md);
        if (json is not null)
        {
            await File.WriteAllTextAsync(json, JsonSerializer.Serialize(new
            {
                kind = "storage-cost",
                date = DateTime.UtcNow,
                events = n,
                tables = costs,
                bytesPerEvent = costs.Sum(c => c.BytesPerEvent),
                markdown = md,
            }, new JsonSerializerOptions { WriteIndented = true }));
        }
        // Every event stored once in each event table: otherwise the numbers describe something else.
        var raw = costs.FirstOrDefault(c => c.Table == "events_raw");
        if (raw?.Rows != n)
        {
            Console.Error.WriteLine($"FAILED: events_raw holds {raw?.Rows ?? 0} rows, not {n}");
            return 1;
        }
        return 0;
    }
    finally
    {
        chdb.Dispose();
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }
}

// A question's answer as text, to time it and compare the two engines' answers.
static async Task<string> AnswerAsync(Question question, QueryEngine engine, CancellationToken ct) => question.Answer is { } answer
    ? await answer(engine, ct)
    : (await engine.AnswerAsync(question.Query!, ct)).ToJsonString();

static string DerivedDay(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

static double P(List<double> values, int percentile)
{
    if (values.Count == 0) return double.NaN;
    var sorted = values.Order().ToList();
    return sorted[Math.Clamp((int)Math.Ceiling(percentile / 100.0 * sorted.Count) - 1, 0, sorted.Count - 1)];
}

long Option(string name, long fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? long.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

string? OptionText(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

internal sealed record Result(string Label, ulong Merchant, string Question, bool Planned, List<double> Pre, List<double> Scan, bool? Same, double First, List<double> Allocated, List<double> Paused);

/// <summary>The engines' now: a fixed instant.</summary>
sealed class FixedClock(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
