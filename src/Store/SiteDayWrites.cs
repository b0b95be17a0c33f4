namespace Analytics.Store;

/// <summary>
/// Which site-days this process is writing, and a version of each that moves whenever a write of
/// it starts or ends: Rollup announces the site-days of a round's inserts (<see cref="Begin"/>,
/// <see cref="End"/>), and a reader that keeps numbers it read about a site-day may use them only
/// while the version it read them at (<see cref="TryQuiet"/>, with no write running) is still
/// the site-day's version. Then nothing was written to that site-day since, and a write that
/// was running when it read was not there yet either (it makes the site-day not quiet).
/// <para>
/// Sound only where every write goes through this process: the embedded engine, which one process
/// holds per data directory (like <see cref="GenerationActivations"/>, which covers reprocessing:
/// a rebuild writes a generation no reader reads until it is activated). The versions are exact
/// per site-day; to stay bounded, site-days no write runs on are forgotten once there are more
/// than the constructor's maxSiteDays, and a forgotten site-day reads as the newest version
/// forgotten, so nothing kept about it before a write is used after it (at worst, numbers still
/// good are read again).
/// </para>
/// <para>
/// The version <see cref="Begin"/> returns is also written on the round's enriched events and its
/// dimension and visit rollups' rows (schemas/clickhouse/014, 015, 016): a reader that kept a
/// site-day at version V reads again only the values, visits or events with a row of a higher version. Versions come from one counter over every site-day,
/// started at the clock's microseconds when the process starts, so a round beginning after a
/// reader's <see cref="TryQuiet"/> gets a higher version than the one it read, and rows of earlier
/// processes are lower unless the clock went back or a process handed out more than one version a
/// microsecond (then they are read again: slower, never wrong).
/// </para>
/// </summary>
public sealed class SiteDayWrites
{
    /// <summary>Site-days remembered at most (about 64 bytes each) before the quiet ones are forgotten.</summary>
    public const int MaxSiteDays = 1_000_000;

    private readonly Lock _lock = new();
    private readonly Dictionary<(string Database, ulong Merchant, ulong Site, DateOnly Day), (long Version, int Running)> _days = [];
    private readonly int _maxSiteDays;
    private long _version, _forgotten;

    public SiteDayWrites(int maxSiteDays = MaxSiteDays)
    {
        _maxSiteDays = maxSiteDays;
        // Site-days never written by this process read as _forgotten, this start: rows stored by
        // earlier processes (lower versions) are not newer than what a reader kept of them.
        _version = _forgotten = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / 10;
    }

    /// <summary>Called before the first insert that writes rows of these site-days is sent.
    /// Returns the version the round writes on its enriched events and rollup rows (write_version): higher than every
    /// version <see cref="TryQuiet"/> returned before this call.</summary>
    public long Begin(string database, IEnumerable<(ulong Merchant, ulong Site, DateOnly Day)> siteDays)
    {
        lock (_lock)
        {
            Move(database, siteDays, +1);
            return ++_version;
        }
    }

    /// <summary>Called once every insert begun for these site-days has returned, failed or been
    /// cancelled (a failed insert may still have stored its rows): exactly once per <see cref="Begin"/>.</summary>
    public void End(string database, IEnumerable<(ulong Merchant, ulong Site, DateOnly Day)> siteDays)
    {
        lock (_lock) Move(database, siteDays, -1);
    }

    /// <summary>The site-day's version, when no write of it runs; false while one does.</summary>
    public bool TryQuiet(string database, ulong merchant, ulong site, DateOnly day, out long version)
    {
        lock (_lock)
        {
            if (_days.TryGetValue((database, merchant, site, day), out var state))
            {
                version = state.Version;
                return state.Running == 0;
            }
            version = _forgotten;
            return true;
        }
    }

    /// <summary>Under _lock.</summary>
    private void Move(string database, IEnumerable<(ulong Merchant, ulong Site, DateOnly Day)> siteDays, int running)
    {
        foreach (var (merchant, site, day) in siteDays)
        {
            var key = (database, merchant, site, day);
            _days.TryGetValue(key, out var state);
            int now = state.Running + running;
            if (now < 0) throw new InvalidOperationException($"A write of {database} site {site}, {day:yyyy-MM-dd} ended that had not begun.");
            // New or forgotten site-days start above every version handed out, so a version
            // read while forgotten never matches one after this write.
            _days[key] = (++_version, now);
        }
        if (_days.Count > _maxSiteDays) Forget();
    }

    private void Forget()
    {
        foreach (var (key, state) in _days)
        {
            if (state.Running != 0) continue;
            _forgotten = Math.Max(_forgotten, state.Version);
            _days.Remove(key);
        }
    }
}
