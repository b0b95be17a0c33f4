namespace Analytics.Rollup;

/// <summary>
/// Visits: a visit is a visitor's run of events on one site with gaps under 30 minutes (the
/// usual web-analytics definition). The visitor id rotates at UTC midnight, so visits end there
/// too. State is, per (site, visitor) seen within the last 30 minutes, the last event time, the
/// visit id and the visit's entry attributes (its first event's, see <see cref="VisitEntry"/>);
/// Rollup rebuilds it from events_enriched on start, so a restart does not invent new visits or
/// change a visit's entry. Events arrive in log order, which is receive order per ingest node; a
/// late event (older than the visitor's last one) joins the current visit. Which events may start
/// a visit is the processing logic's choice (DerivedRows.WriteEnriched asks <see cref="IsOpen"/>).
/// </summary>
public sealed class Sessionizer
{
    public static readonly long TimeoutMs = (long)TimeSpan.FromMinutes(30).TotalMilliseconds;

    private readonly Dictionary<(ulong Site, ulong Visitor), (long LastMs, ulong VisitId, VisitEntry Entry)> _open = new();
    private long _newestMs;
    private long _lastPruneMs;

    /// <summary>Seeds the state with a visit seen before a restart.</summary>
    public void Restore(ulong siteId, ulong visitorId, long lastMs, ulong visitId, VisitEntry entry)
    {
        _open[(siteId, visitorId)] = (lastMs, visitId, entry);
        _newestMs = Math.Max(_newestMs, lastMs);
    }

    /// <summary>Returns (visit id, whether this event starts the visit), for callers that do not need the entry.</summary>
    public (ulong VisitId, bool Starts) Next(ulong siteId, ulong visitorId, long receivedMs)
    {
        var (visitId, starts, _) = Next(siteId, visitorId, receivedMs, VisitEntry.None);
        return (visitId, starts);
    }

    /// <summary>Returns (visit id, whether this event starts the visit, the visit's entry
    /// attributes); <paramref name="entry"/> is this event's own, used when it starts a visit.</summary>
    public (ulong VisitId, bool Starts, VisitEntry Entry) Next(ulong siteId, ulong visitorId, long receivedMs, VisitEntry entry)
    {
        _newestMs = Math.Max(_newestMs, receivedMs);
        var key = (siteId, visitorId);
        if (_open.TryGetValue(key, out var visit) && receivedMs - visit.LastMs < TimeoutMs)
        {
            _open[key] = (Math.Max(visit.LastMs, receivedMs), visit.VisitId, visit.Entry);
            return (visit.VisitId, false, visit.Entry);
        }
        ulong visitId = Mix(visitorId ^ (ulong)receivedMs);
        _open[key] = (receivedMs, visitId, entry);
        PruneIfDue();
        return (visitId, true, entry);
    }

    /// <summary>Whether an event at <paramref name="receivedMs"/> continues an open visit, so a
    /// caller builds an entry only for events that start one.</summary>
    public bool IsOpen(ulong siteId, ulong visitorId, long receivedMs) =>
        _open.TryGetValue((siteId, visitorId), out var visit) && receivedMs - visit.LastMs < TimeoutMs;

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

/// <summary>
/// A visit's entry attributes: the values of the visit dimensions (docs/query-api.md), taken from
/// its first event and stamped on every event of the visit (schemas/clickhouse/010). Not the
/// entry page: the contract takes it from the visit's first pageview, unknown when a visit starts
/// with another event. The order of
/// <see cref="Columns"/> is the order of the values everywhere (rows, restore query).
/// </summary>
public sealed record VisitEntry(
    string Source, string Channel, string Referrer,
    string UtmSource, string UtmMedium, string UtmCampaign, string UtmContent, string UtmTerm,
    string Country, string Region, string City, string Device, string Browser, string BrowserVersion, string Os, string OsVersion)
{
    public static readonly VisitEntry None = new("", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "");

    /// <summary>The events_enriched columns holding the entry, in the order of the record.</summary>
    public static readonly string[] Columns =
    [
        "visit_source", "visit_channel", "visit_referrer", "visit_utm_source", "visit_utm_medium", "visit_utm_campaign",
        "visit_utm_content", "visit_utm_term", "visit_country", "visit_region", "visit_city", "visit_device", "visit_browser",
        "visit_browser_version", "visit_os", "visit_os_version",
    ];

    public static VisitEntry Of(in Derived d, string referrer) => new(
        d.ReferrerSource, d.Channel, referrer, d.UtmSource, d.UtmMedium, d.UtmCampaign, d.UtmContent, d.UtmTerm,
        d.Country, d.Region, d.City, d.Device, d.Browser, d.BrowserVersion, d.Os, d.OsVersion);

    public static VisitEntry FromValues(IReadOnlyList<string> v) => new(
        v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]);

    public IEnumerable<string> Values() =>
        [Source, Channel, Referrer, UtmSource, UtmMedium, UtmCampaign, UtmContent, UtmTerm, Country, Region, City, Device, Browser, BrowserVersion, Os, OsVersion];
}
