namespace Analytics.Rollup;

/// <summary>
/// Visits: a visit is a visitor's run of events on one site with gaps under 30 minutes (the
/// usual web-analytics definition). The visitor id rotates at UTC midnight, so visits end there
/// too. State is the last event time per (site, visitor) within the last 30 minutes; Rollup
/// rebuilds it from events_enriched on start, so a restart does not invent new visits.
/// Events arrive in log order, which is receive order per ingest node; a late event (older
/// than the visitor's last one) joins the current visit.
/// </summary>
public sealed class Sessionizer
{
    public static readonly long TimeoutMs = (long)TimeSpan.FromMinutes(30).TotalMilliseconds;

    private readonly Dictionary<(ulong Site, ulong Visitor), (long LastMs, ulong VisitId)> _open = new();
    private long _newestMs;
    private long _lastPruneMs;

    /// <summary>Seeds the state with a visit seen before a restart.</summary>
    public void Restore(ulong siteId, ulong visitorId, long lastMs, ulong visitId)
    {
        _open[(siteId, visitorId)] = (lastMs, visitId);
        _newestMs = Math.Max(_newestMs, lastMs);
    }

    /// <summary>Returns (visit id, whether this event starts the visit).</summary>
    public (ulong VisitId, bool Starts) Next(ulong siteId, ulong visitorId, long receivedMs)
    {
        _newestMs = Math.Max(_newestMs, receivedMs);
        var key = (siteId, visitorId);
        if (_open.TryGetValue(key, out var visit) && receivedMs - visit.LastMs < TimeoutMs)
        {
            _open[key] = (Math.Max(visit.LastMs, receivedMs), visit.VisitId);
            return (visit.VisitId, false);
        }
        ulong visitId = Mix(visitorId ^ (ulong)receivedMs);
        _open[key] = (receivedMs, visitId);
        PruneIfDue();
        return (visitId, true);
    }

    private void PruneIfDue()
    {
        if (_newestMs - _lastPruneMs < 60_000) return;
        _lastPruneMs = _newestMs;
        foreach (var (key, visit) in _open)
        {
            if (_newestMs - visit.LastMs >= TimeoutMs) _open.Remove(key);
        }
    }

    /// <summary>SplitMix64 finaliser: a stable, well-spread 64-bit id.</summary>
    private static ulong Mix(ulong x)
    {
        x += 0x9E3779B97F4A7C15;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB;
        return x ^ (x >> 31);
    }
}
