using System.Diagnostics;
using Analytics.Store;

namespace Analytics.Perf.QueryBench;

/// <summary>The engine's background merges, which take the same cores as whatever is timed next.</summary>
internal static class Merges
{
    /// <summary>Waits until <c>system.merges</c> is empty or <paramref name="limit"/> has passed;
    /// the seconds waited, and whether the merges were done by then.</summary>
    public static async Task<(double Seconds, bool Done)> WaitUntilNoneAsync(IColumnStore store, TimeSpan limit, CancellationToken ct)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var merges = await store.QueryRowsAsync("SELECT count() FROM system.merges", ct);
            if (merges[0][0].GetInt64() == 0) return (waited.Elapsed.TotalSeconds, true);
            if (waited.Elapsed >= limit) return (waited.Elapsed.TotalSeconds, false);
            await Task.Delay(50, ct);
        }
    }

    /// <summary>Waits until every mutation of <paramref name="database"/> (the lightweight DELETEs a
    /// reprocess job leaves to the engine's background pool) is done, or <paramref name="limit"/>
    /// has passed; the seconds waited, and whether they were done by then.</summary>
    public static async Task<(double Seconds, bool Done)> WaitUntilMutationsDoneAsync(IColumnStore store, string database, TimeSpan limit, CancellationToken ct)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var pending = await store.QueryRowsAsync($"SELECT count() FROM system.mutations WHERE database = '{database}' AND NOT is_done", ct);
            if (pending[0][0].GetInt64() == 0) return (waited.Elapsed.TotalSeconds, true);
            if (waited.Elapsed >= limit) return (waited.Elapsed.TotalSeconds, false);
            await Task.Delay(50, ct);
        }
    }
}
