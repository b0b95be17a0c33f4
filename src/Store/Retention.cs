// Retention tiers: how long each stored table keeps its rows (docs/operations.md, "Retention").
//
// Contract:
// - Each retained table has a period (N days, weeks, months or years) or keeps everything
//   (`forever`, the default of every table: deletion cannot be undone, and raw events are what
//   reprocessing rebuilds from). Periods are calendar periods, applied in UTC by ClickHouse and
//   by RetentionPeriod.KeptFrom alike (ClickHouse's `Date + INTERVAL N MONTH` clamps to the end
//   of a shorter month, as .NET's AddMonths does).
// - A row of UTC day D expires when D 00:00 UTC + period <= now, so whole UTC days expire at
//   once: at any moment a table holds every day from its horizon (KeptFrom) on, and nothing
//   before it is promised (ClickHouse removes expired rows at its next TTL merge, so some may
//   linger; readers must not use them). Readers plan with the horizon, never with what happens
//   to be left.
// - The TTL is `toDateTime(toDate(<time column>), 'UTC') + INTERVAL N UNIT`: the UTC day of the
//   row, explicitly in UTC so the server's own time zone does not move the horizon. Periods are
//   at most 50 years: ClickHouse's DateTime ends in 2106, and a TTL past it wraps around to the
//   1970s, which would delete everything at once.
// - Applying (RetentionApplier) compares each table's TTL with the configured one and runs
//   ALTER TABLE … MODIFY TTL (or REMOVE TTL for forever) only where they differ, so changing
//   the configuration and restarting takes effect, and an unchanged start costs one read of
//   system.tables. MODIFY TTL materialises the new TTL in existing parts (a background mutation).
using System.Globalization;
using System.Text.RegularExpressions;

namespace Analytics.Store;

public enum RetentionUnit { Day, Week, Month, Year }

/// <summary>A calendar period a table keeps its rows; see the file header.</summary>
public readonly partial record struct RetentionPeriod(int Amount, RetentionUnit Unit)
{
    public const int MaxYears = 50;

    /// <summary>Parses "90d", "12w", "13m", "10y"; null for "forever".</summary>
    /// <exception cref="FormatException">Not one of those, zero, or over <see cref="MaxYears"/> years.</exception>
    public static RetentionPeriod? Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string value = text.Trim().ToLowerInvariant();
        if (value == "forever") return null;
        var match = Syntax().Match(value);
        if (!match.Success || !int.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int amount))
            throw new FormatException($"'{text}' is not a period: use forever or a whole number with d, w, m or y (days, weeks, months, years), e.g. 90d or 10y");
        var unit = match.Groups[2].Value switch { "d" => RetentionUnit.Day, "w" => RetentionUnit.Week, "m" => RetentionUnit.Month, _ => RetentionUnit.Year };
        var period = new RetentionPeriod(amount, unit);
        if (amount < 1 || period.ApproximateDays > MaxYears * 366)
            throw new FormatException($"'{text}' is out of range: from 1 day to {MaxYears} years (ClickHouse's DateTime ends in 2106), or forever");
        return period;
    }

    private double ApproximateDays => Unit switch
    {
        RetentionUnit.Day => Amount,
        RetentionUnit.Week => Amount * 7.0,
        RetentionUnit.Month => Amount * 30.5,
        _ => Amount * 365.25,
    };

    /// <summary>The ClickHouse interval as ClickHouse prints it back in system.tables
    /// ("toIntervalDay(90)"), so the applied TTL compares equal to the configured one.</summary>
    public string SqlInterval => Unit switch
    {
        RetentionUnit.Week => string.Create(CultureInfo.InvariantCulture, $"toIntervalDay({Amount * 7})"),
        _ => string.Create(CultureInfo.InvariantCulture, $"toInterval{Unit}({Amount})"),
    };

    /// <summary>The start of the first UTC day still kept at <paramref name="now"/>: the smallest
    /// day D with D + period &gt; now.</summary>
    public DateTimeOffset KeptFrom(DateTimeOffset now)
    {
        var instant = now.UtcDateTime;
        var day = DateOnly.FromDateTime(instant);
        // Month ends clamp (Jan 31 + 1 month = Feb 28), so "now - period" is only a first guess.
        var guess = Subtract(day);
        while (Expires(guess.AddDays(-1)) > instant) guess = guess.AddDays(-1);
        while (Expires(guess) <= instant) guess = guess.AddDays(1);
        return new DateTimeOffset(guess.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
    }

    /// <summary>When the rows of UTC day <paramref name="day"/> expire.</summary>
    public DateTime Expires(DateOnly day) => Add(day).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);

    private DateOnly Add(DateOnly day) => Unit switch
    {
        RetentionUnit.Day => day.AddDays(Amount),
        RetentionUnit.Week => day.AddDays(7 * Amount),
        RetentionUnit.Month => day.AddMonths(Amount),
        _ => day.AddYears(Amount),
    };

    private DateOnly Subtract(DateOnly day) => Unit switch
    {
        RetentionUnit.Day => day.AddDays(-Amount),
        RetentionUnit.Week => day.AddDays(-7 * Amount),
        RetentionUnit.Month => day.AddMonths(-Amount),
        _ => day.AddYears(-Amount),
    };

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Amount}{"dwmy"[(int)Unit]}");

    /// <summary>"forever" for null, else the period as it is written ("90d").</summary>
    public static string Describe(RetentionPeriod? period) => period?.ToString() ?? "forever";

    [GeneratedRegex(@"^(\d{1,6})([dwmy])$")]
    private static partial Regex Syntax();
}

/// <summary>One table under retention: its name and the column whose UTC day dates a row.</summary>
public sealed record RetainedTable(string Name, string TimeColumn, string Description);

/// <summary>
/// The retention of every retained table (null: kept forever). Readers ask <see cref="KeptFrom"/>
/// which days a table still holds; RetentionApplier turns it into TTLs.
/// </summary>
public sealed record RetentionPolicy
{
    public static readonly RetainedTable EventsRaw = new("events_raw", "received_at", "raw events");
    public static readonly RetainedTable EventsEnriched = new("events_enriched", "received_at", "enriched events");
    public static readonly RetainedTable RollupMinute = new("rollup_minute", "bucket", "minute rollups");
    public static readonly RetainedTable RollupHour = new("rollup_hour", "bucket", "hour rollups");
    public static readonly RetainedTable RollupDay = new("rollup_day", "bucket", "day rollups");
    public static readonly RetainedTable RollupDimensions = new("rollup_dims_day", "bucket", "dimension rollups (day)");

    /// <summary>The visit rollup: kept as long as the dimension rollup (<see cref="Dimensions"/>), so
    /// the query API's answers for old days come from the two alike (they answer different metrics of
    /// the same questions).</summary>
    public static readonly RetainedTable RollupVisits = new("rollup_visits_day", "bucket", "visit rollups (day)");

    public static IReadOnlyList<RetainedTable> Tables { get; } = [EventsRaw, EventsEnriched, RollupMinute, RollupHour, RollupDay, RollupDimensions, RollupVisits];

    /// <summary>Nothing expires: the default.</summary>
    public static RetentionPolicy KeepEverything { get; } = new();

    public RetentionPeriod? Raw { get; init; }
    public RetentionPeriod? Enriched { get; init; }
    public RetentionPeriod? Minute { get; init; }
    public RetentionPeriod? Hour { get; init; }
    public RetentionPeriod? Day { get; init; }
    public RetentionPeriod? Dimensions { get; init; }

    public RetentionPeriod? PeriodOf(RetainedTable table) => table.Name switch
    {
        "events_raw" => Raw,
        "events_enriched" => Enriched,
        "rollup_minute" => Minute,
        "rollup_hour" => Hour,
        "rollup_day" => Day,
        "rollup_dims_day" or "rollup_visits_day" => Dimensions,
        _ => throw new ArgumentException($"{table.Name} is not a retained table", nameof(table)),
    };

    /// <summary>The first instant whose rows <paramref name="table"/> still holds at <paramref name="now"/>
    /// (a UTC midnight); null when it keeps everything.</summary>
    public DateTimeOffset? KeptFrom(RetainedTable table, DateTimeOffset now) => PeriodOf(table)?.KeptFrom(now);

    /// <summary>The TTL clause's expression for <paramref name="table"/>; null: no TTL.</summary>
    public string? TtlExpression(RetainedTable table) => PeriodOf(table) is { } period
        ? $"toDateTime(toDate({table.TimeColumn}), 'UTC') + {period.SqlInterval}"
        : null;

    public override string ToString() => string.Join(", ", Tables.Select(t => $"{t.Name} {RetentionPeriod.Describe(PeriodOf(t))}"));
}

/// <summary>Makes each retained table's TTL match a <see cref="RetentionPolicy"/>; see the file header.</summary>
public static class RetentionApplier
{
    /// <summary>One table whose TTL was changed: what it had and what it has now (null: none).</summary>
    public sealed record Change(string Table, string? Before, string? After);

    /// <param name="target">How statements run on this store (a cluster: ON CLUSTER, on the local tables).</param>
    /// <param name="tableSuffix">The suffix of the tables that hold the rows ("_local" on a cluster, whose
    /// Distributed tables hold none).</param>
    /// <returns>The tables changed (empty when every TTL already matched).</returns>
    public static async Task<IReadOnlyList<Change>> ApplyAsync(IColumnStore store, string database, RetentionPolicy policy,
        SchemaTarget? target = null, string tableSuffix = "", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(policy);
        ClickHouseSql.RequirePlainIdentifier(database, nameof(database));
        target ??= SchemaTarget.SingleServer;
        var current = await CurrentAsync(store, database, tableSuffix, cancellationToken).ConfigureAwait(false);
        var changes = new List<Change>();
        foreach (var table in RetentionPolicy.Tables)
        {
            string? wanted = policy.TtlExpression(table);
            string? now = current.GetValueOrDefault(table.Name + tableSuffix);
            if (Normalise(now) == Normalise(wanted)) continue;
            string statement = wanted is null
                ? $"ALTER TABLE {database}.{table.Name} REMOVE TTL"
                : $"ALTER TABLE {database}.{table.Name} MODIFY TTL {wanted}";
            foreach (var translated in target.Translate(statement))
                await store.ExecuteAsync(translated, cancellationToken).ConfigureAwait(false);
            changes.Add(new Change(table.Name, now, wanted));
        }
        return changes;
    }

    /// <summary>The TTL expression of each table of <paramref name="database"/> (tables without one are absent).</summary>
    public static async Task<Dictionary<string, string>> CurrentAsync(IColumnStore store, string database, string tableSuffix = "",
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        var names = string.Join(", ", RetentionPolicy.Tables.Select(t => ClickHouseSql.StringLiteral(t.Name + tableSuffix)));
        var rows = await store.QueryRowsAsync(
            $"SELECT name, engine_full FROM system.tables WHERE database = {ClickHouseSql.StringLiteral(database)} AND name IN ({names})",
            cancellationToken).ConfigureAwait(false);
        var ttls = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var row in rows)
        {
            if (TtlOf(row[1].GetString() ?? "") is { } ttl) ttls[row[0].GetString()!] = ttl;
        }
        return ttls;
    }

    /// <summary>The TTL clause of an engine_full text ("MergeTree … TTL expr SETTINGS …"), or null.</summary>
    public static string? TtlOf(string engineFull)
    {
        int at = engineFull.IndexOf(" TTL ", StringComparison.Ordinal);
        if (at < 0) return null;
        string rest = engineFull[(at + 5)..];
        int settings = rest.IndexOf(" SETTINGS ", StringComparison.Ordinal);
        return (settings < 0 ? rest : rest[..settings]).Trim();
    }

    // Servers of other versions may space or quote an expression differently; that is no change.
    private static string? Normalise(string? ttl) => ttl?.Replace(" ", "", StringComparison.Ordinal).Replace("`", "", StringComparison.Ordinal);
}
