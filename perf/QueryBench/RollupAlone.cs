using System.Diagnostics;
using System.Globalization;
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
    public static async Task RunAsync(IColumnStore store, string schemas, string logDirectory, int backlog, CancellationToken ct)
    {
        const string Db = "catchup";
        var timed = new TimedStore(store);
        await new SchemaMigrator(store).MigrateAsync(schemas, Db, ct);
        await using var catchUp = new CatchUp(timed, logDirectory, backlog);
        await catchUp.WriteBacklogAsync(ct);
        Console.WriteLine($"backlog of {backlog:N0} events, {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average {LoadAverage()}");

        timed.Reset();
        var cpu = Cpu();
        var sw = Stopwatch.StartNew();
        double rate = await catchUp.RunAsync(Db, "alone", preAggregates: true, null, ct);
        Print($"catch-up: {rate:N0} events/s ({sw.Elapsed.TotalSeconds:F1} s), process CPU {(Cpu() - cpu).TotalMicroseconds / backlog:F1} µs/event, load average {LoadAverage()}", timed, sw.Elapsed);

        timed.Reset();
        var units = await store.QueryRowsAsync($"SELECT merchant_id, site_id, toString(toDate(received_at)), count() FROM {Db}.events_raw GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", ct);
        var generations = new Generations(timed, Db);
        var rebuilder = new SiteDayRebuilder(timed, Db, generations, ProcessingLogic.WithoutData);
        cpu = Cpu();
        sw.Restart();
        long events = 0;
        // Cut into steps as a reprocess job is (ReprocessSteps, a round's worth of raw events).
        var pending = units.Select(u => (SiteDay: new SiteDay(u[0].GetUInt64(), u[1].GetUInt64(), DateOnly.Parse(u[2].GetString()!, CultureInfo.InvariantCulture)), Events: u[3].GetInt64())).ToList();
        int steps = 0;
        var built = new List<(SiteDay, ulong)>();
        while (pending.Count > 0)
        {
            var step = ReprocessSteps.Next(pending, u => u.Events, new RollupOptions { Database = Db, QuarantineDirectory = "" }.MaxBatchRecords);
            pending.RemoveRange(0, step.Count);
            var results = await rebuilder.RebuildAsync(step.Select(u => u.SiteDay).ToList(), 2, dryRun: false, _ => { }, ct, deleteNow: false);
            events += results.Sum(r => r.Result.Events);
            built.AddRange(results.Select(r => (r.SiteDay, r.Generation)));
            steps++;
        }
        // The job's last step: the old generations' rows, once for all steps.
        await rebuilder.DeleteSupersededAsync(built, dryRun: false, ct);
        Print($"reprocess: {events / sw.Elapsed.TotalSeconds:N0} raw events/s ({events:N0} events, {units.Count} site-days in {steps} steps, {sw.Elapsed.TotalSeconds:F1} s), " +
              $"{events / sw.Elapsed.TotalSeconds / rate:F2}x catch-up, process CPU {(Cpu() - cpu).TotalMicroseconds / Math.Max(1, events):F1} µs/event, load average {LoadAverage()}", timed, sw.Elapsed);
    }

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
