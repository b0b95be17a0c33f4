using Analytics.QueryService.PreAggregates;

namespace Analytics.QueryService.Goals;

/// <summary>
/// A visitor's funnel level computed in memory from their events, the same number as
/// FunnelReader's statements give (<see cref="FunnelReader.SequentialLevels"/>,
/// <see cref="FunnelReader.StrictLevels"/>): used where a busy site's day is kept per visitor
/// (PreAggregates.KeptFunnelVisitors) and a Rollup round changes a few visitors, whose levels are
/// then computed here instead of the whole day in the engine (the statement over the largest test
/// merchant's today took 41-55 ms; reading only the round's events, 15-22). The engine stays the
/// reference: FunnelLevelsTests compares both on random visitors, sequential and strict.
/// </summary>
public static class FunnelLevels
{
    /// <summary>
    /// The sequential level: windowFunnel(window, 'strict_increase') over the rows
    /// FunnelReader.SequentialLevels builds, one per step an event completes, keyed by
    /// time · scale + (rank in its millisecond, at most 8,191) · 8 + 7 − step, so that rows sort as
    /// events in log order and, within one event, by descending step. windowFunnel walks the rows in
    /// key order: a step-1 row starts a chain anew; a step-k row extends the chain that reached k−1
    /// when it lies within the window of that chain's step-1 row and after its step k−1 row.
    /// </summary>
    /// <param name="events">The visitor's events that complete a step (mask ≠ 0), sorted.</param>
    public static int Sequential(ReadOnlySpan<FunnelEvent> events, int steps, long windowMs)
    {
        ulong window = (ulong)FunnelReader.ScaledWindow(windowMs);
        Span<ulong> first = stackalloc ulong[steps], last = stackalloc ulong[steps];
        Span<bool> reached = stackalloc bool[steps];
        int rank = 0;
        for (int i = 0; i < events.Length; i++)
        {
            var e = events[i];
            rank = i > 0 && events[i - 1].T == e.T ? rank + 1 : 0;
            for (int step = steps - 1; step >= 0; step--)
            {
                if ((e.Mask & (1 << step)) == 0) continue;
                ulong key = FunnelReader.Key(e.T, rank, step);
                if (step == 0)
                {
                    reached[0] = true;
                    first[0] = last[0] = key;
                }
                else if (reached[step - 1] && key <= first[step - 1] + window && last[step - 1] < key)
                {
                    reached[step] = true;
                    first[step] = first[step - 1];
                    last[step] = key;
                    if (step == steps - 1) return steps;
                }
            }
        }
        for (int k = steps; k > 0; k--)
            if (reached[k - 1]) return k;
        return 0;
    }

    /// <summary>
    /// The strict level (FunnelReader.StrictLevels): for every step-1 event, how many of the events
    /// right after it complete the following steps in turn, each within the window of the step-1
    /// event; the most of them.
    /// </summary>
    /// <param name="events">All of the visitor's events the funnel reads (any mask), sorted.</param>
    public static int Strict(ReadOnlySpan<FunnelEvent> events, int steps, long windowMs)
    {
        int best = 0;
        for (int i = 0; i < events.Length && best < steps; i++)
        {
            if ((events[i].Mask & 1) == 0) continue;
            int level = 1;
            while (level < steps && i + level < events.Length
                && (events[i + level].Mask & (1 << level)) != 0 && events[i + level].T <= events[i].T + (ulong)windowMs)
                level++;
            best = Math.Max(best, level);
        }
        return best;
    }
}
