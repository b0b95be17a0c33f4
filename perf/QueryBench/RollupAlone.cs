using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Analytics.Rollup;
using Analytics.Rollup.Reprocessing;
using Analytics.Store;

namespace Analytics.Perf.QueryBench;

/// <summary>
/// `QueryBench --catch-up-only`: the real Rollup storing a backlog from a local log (CatchUp),
/// then reprocessing every site-day it stored (SiteDayRebuilder, in steps cut as a reprocess job cuts them), each
/// with events/s and the engine time per statement kind. What a round spends where, in numbers
/// that stay comparable on a loaded machine: the shares, not the seconds.
/// </summary>
public static class RollupAlone
{
    public static async Task RunAsync(IColumnStore store, string schemas, string logDirectory, int backlog, CancellationToken ct, bool statementCosts = false,
        ushort logicVersion = 2, string? json = null)
    {
        string loadBefore = LoadAverage();
        const string Db = "catchup";
        var timed = new TimedStore(store);
        await new SchemaMigrator(store).MigrateAsync(schemas, Db, ct);
        await using var catchUp = new CatchUp(timed, logDirectory, backlog, logicVersion: logicVersion);
        await catchUp.WriteBacklogAsync(ct);
        Console.WriteLine($"backlog of {backlog:N0} events, processing logic {logicVersion}, {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average {LoadAverage()}");

        timed.Reset();
        var cpu = Cpu();
        var sw = Stopwatch.StartNew();
        double rate = await catchUp.RunAsync(Db, "alone", preAggregates: true, null, ct);
        var catchUpCpu = Cpu() - cpu;
        var catchUpWall = sw.Elapsed;
        double catchUpCpuPerEvent = catchUpCpu.TotalMicroseconds / backlog;
        // Merges the catch-up's parts started may still run once its last round is stored: waited
        // for and counted too, since the round size changes how much merging a backlog costs.
        await QuietAsync(store, ct);
        double withMergesPerEvent = (Cpu() - cpu).TotalMicroseconds / backlog;
        double peakRssMiB = System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0;
        Print($"catch-up: {rate:N0} events/s ({catchUpWall.TotalSeconds:F1} s), process CPU {catchUpCpuPerEvent:F1} µs/event, " +
              $"{withMergesPerEvent:F1} with the merges after it, peak RSS {peakRssMiB:F0} MiB, load average {LoadAverage()}", timed, catchUpWall);
        if (statementCosts) await StatementCostsAsync(store, schemas, Db, Math.Min(backlog, new RollupOptions { Database = Db, QuarantineDirectory = "" }.MaxBatchRecords), ct);

        timed.Reset();
        var units = await store.QueryRowsAsync($"SELECT merchant_id, site_id, toString(toDate(received_at)), count() FROM {Db}.events_raw GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", ct);
        var generations = new Generations(timed, Db);
        var rebuilder = new SiteDayRebuilder(timed, Db, generations, CatchUp.Logic(logicVersion));
        cpu = Cpu();
        sw.Restart();
        long events = 0;
        // Cut into steps as a reprocess job is (ReprocessSteps, a round's worth of raw events).
        var pending = units.Select(u => (SiteDay: new SiteDay(u[0].GetUInt64(), u[1].GetUInt64(), DateOnly.Parse(u[2].GetString()!, CultureInfo.InvariantCulture)), Events: u[3].GetInt64())).ToList();
        int steps = 0;
        var built = new List<(SiteDay, ulong)>();
        while (pending.Count > 0)
        {
            var step = ReprocessSteps.Next(pending, u => u.Events, u => u.SiteDay.Day, new RollupOptions { Database = Db, QuarantineDirectory = "" }.MaxBatchRecords);
            pending.RemoveRange(0, step.Count);
            var results = await rebuilder.RebuildAsync(step.Select(u => u.SiteDay).ToList(), logicVersion, dryRun: false, _ => { }, ct, deleteNow: false);
            events += results.Sum(r => r.Result.Events);
            built.AddRange(results.Select(r => (r.SiteDay, r.Generation)));
            steps++;
        }
        // The job's last step: the old generations' rows, once for all steps, left to the engine's
        // background pool as the job leaves them (it is done once its numbers are served).
        await rebuilder.DeleteSupersededAsync(built, dryRun: false, ct, inBackground: true);
        double reprocessRate = events / sw.Elapsed.TotalSeconds, reprocessCpuPerEvent = (Cpu() - cpu).TotalMicroseconds / Math.Max(1, events);
        var reprocessWall = sw.Elapsed;
        Print($"reprocess: {reprocessRate:N0} raw events/s ({events:N0} events, {units.Count} site-days in {steps} steps, {reprocessWall.TotalSeconds:F1} s), " +
              $"{reprocessRate / rate:F2}x catch-up, process CPU {reprocessCpuPerEvent:F1} µs/event, load average {LoadAverage()}", timed, reprocessWall);
        // What the background DELETEs cost: their time after the job, and the CPU per event with them.
        var (deleteSeconds, deleted) = await Merges.WaitUntilMutationsDoneAsync(store, Db, TimeSpan.FromMinutes(5), ct);
        double withDeletesRate = events / sw.Elapsed.TotalSeconds, withDeletesCpuPerEvent = (Cpu() - cpu).TotalMicroseconds / Math.Max(1, events);
        long enrichedLeft = (await store.QueryRowsAsync($"SELECT count() FROM {Db}.events_enriched", ct))[0][0].GetInt64();
        Console.WriteLine($"  superseded rows deleted {(deleted ? "" : "NOT ")}{deleteSeconds:F1} s after the job ({enrichedLeft:N0} enriched rows left for {events:N0} events): " +
                          $"{withDeletesRate:N0} raw events/s and {withDeletesCpuPerEvent:F1} µs/event of process CPU with them ({withDeletesRate / rate:F2}x catch-up)");
        // For perf/RESULTS.md (LoadTool --write-results): issue #17's catch-up and reprocessing
        // targets, both from this one process, backlog and processing logic.
        if (json is not null)
            await File.WriteAllTextAsync(json, JsonSerializer.Serialize(new
            {
                kind = "rollup-alone",
                date = DateTime.UtcNow,
                backlog,
                logic = logicVersion,
                loadAverageBefore = loadBefore,
                catchUp = new { eventsPerSecond = rate, seconds = catchUpWall.TotalSeconds, cpuMicrosPerEvent = catchUpCpuPerEvent, cpuMicrosPerEventWithMerges = withMergesPerEvent, peakRssMiB },
                reprocess = new { eventsPerSecond = reprocessRate, events, siteDays = units.Count, steps, seconds = reprocessWall.TotalSeconds, cpuMicrosPerEvent = reprocessCpuPerEvent,
                    deletesDoneAfterSeconds = deleted ? deleteSeconds : (double?)null, eventsPerSecondWithDeletes = withDeletesRate, cpuMicrosPerEventWithDeletes = withDeletesCpuPerEvent },
            }, new JsonSerializerOptions { WriteIndented = true }), ct);
    }

    /// <summary>
    /// Engine CPU per statement kind of a catch-up round, each statement run alone (catch-up runs
    /// them side by side, so their wall-clock times overlap and say little about cost): a round's
    /// worth of the stored catch-up's rows copied into a database of their own, then every
    /// statement of a round on them, five times each under new tokens, each once the engine's
    /// background merges are done; process CPU per event, median of the five.
    /// </summary>
    private static async Task StatementCostsAsync(IColumnStore store, string schemas, string from, int rows, CancellationToken ct)
    {
        // The inserts are measured into a database of their own: each adds a copy of the rows,
        // and the statements after them must read exactly one (what a round reads).
        const string Db = "costs", InsertsDb = "costs_inserts";
        await new SchemaMigrator(store).MigrateAsync(schemas, Db, ct);
        await new SchemaMigrator(store).MigrateAsync(schemas, InsertsDb, ct);
        string range = $"log_offset >= 0 AND log_offset < {rows}";
        string Columns(string typed) => string.Join(", ", ClickHouseSql.ColumnNames(typed));
        var raw = await store.QueryRowBinaryAsync($"SELECT {Columns(DerivedRows.RawColumns)} FROM {from}.events_raw WHERE {range} ORDER BY log_offset FORMAT RowBinary", r => r.ToArray(), ct);
        var enriched = await store.QueryRowBinaryAsync($"SELECT {Columns(DerivedRows.EnrichedColumns)} FROM {from}.events_enriched WHERE {range} ORDER BY log_offset FORMAT RowBinary", r => r.ToArray(), ct);
        var statements = new List<(string Kind, Func<int, Task> Run)>
        {
            ("insert events_raw", i => store.InsertRowBinaryAsync($"{InsertsDb}.events_raw", DerivedRows.RawColumns, raw, $"raw:{i}", ct)),
            ("insert events_enriched", i => store.InsertRowBinaryAsync($"{InsertsDb}.events_enriched", DerivedRows.EnrichedColumns, enriched, $"enriched:{i}", ct)),
        };
        await store.InsertRowBinaryAsync($"{Db}.events_raw", DerivedRows.RawColumns, raw, "raw", ct);
        await store.InsertRowBinaryAsync($"{Db}.events_enriched", DerivedRows.EnrichedColumns, enriched, "enriched", ct);
        string scope = $"{range} AND log_source = (SELECT any(log_source) FROM {from}.events_raw)";
        string Token(int i) => $"costs:{i}";
        foreach (var kind in new[] { "rollup_dims_day", "rollup_visits_day", "rollup_minute", "rollup_hour", "rollup_day" })
            statements.Add(("insert " + kind, i => store.ExecuteAsync(
                DerivedRows.RollUpStatements(Db, scope, Token(i)).Single(s => s.Contains($"INSERT INTO {Db}.{kind} ", StringComparison.Ordinal)), ct)));
        statements.Add(("insert event_ids", i => store.ExecuteAsync(
            $"INSERT INTO {Db}.event_ids SETTINGS insert_deduplication_token = 'ids:{i}', max_threads = 1 SELECT merchant_id, site_id, event_id, received_at FROM {Db}.events_raw WHERE {scope}", ct)));
        Console.WriteLine($"engine CPU per statement kind, each alone, {rows:N0} rows (median of 5, µs per event):");
        foreach (var (kind, run) in statements)
        {
            var cpus = new List<double>();
            for (int i = 0; i < 5; i++)
            {
                await QuietAsync(store, ct);
                var before = Cpu();
                await run(i);
                cpus.Add((Cpu() - before).TotalMicroseconds / rows);
            }
            cpus.Sort();
            Console.WriteLine($"  {kind,-28} {cpus[2],6:F2} µs/event  ({string.Join(", ", cpus.Select(c => c.ToString("F2", CultureInfo.InvariantCulture)))})");
        }
    }

    /// <summary>Waits (a minute at most) until no merge runs, so the process CPU measured next is
    /// the next statement's own and that of the merges its parts start.</summary>
    private static Task QuietAsync(IColumnStore store, CancellationToken ct) => Merges.WaitUntilNoneAsync(store, TimeSpan.FromMinutes(1), ct);

    private static void Print(string headline, TimedStore timed, TimeSpan wall)
    {
        Console.WriteLine(headline);
        var totals = timed.Totals.OrderByDescending(t => t.Value.Time).ToList();
        var engine = TimeSpan.FromTicks(totals.Sum(t => t.Value.Time.Ticks));
        foreach (var (kind, (count, time)) in totals)
            Console.WriteLine($"  {kind,-28} {count,7:N0} statements {time.TotalSeconds,8:F2} s  {time / wall,6:P1} of wall clock");
        Console.WriteLine($"  {"engine, all statements",-28} {"",7} {"",10} {engine.TotalSeconds,9:F2} s  {engine / wall,6:P1}");
        Console.WriteLine($"  {"outside the engine",-28} {"",7} {"",10} {Math.Max(0, (wall - engine).TotalSeconds),9:F2} s  (decode, dedup set, enrichment, sessions, encoding, waits)");
    }

    /// <summary>CPU time of this process (Rollup and the engine), all threads: unlike wall clock,
    /// it hardly moves with what else runs on the machine.</summary>
    private static TimeSpan Cpu() => System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;

    private static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "n/a"; }
    }
}
