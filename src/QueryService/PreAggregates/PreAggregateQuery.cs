namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// A query API v2 question (docs/query-api.md) after validation and normalisation, as the
/// pre-aggregate planner sees it: the merchant and site from the control plane, the range as
/// instants [From, To), the time zone, metrics, dimensions ("time:day", "page", "source"…) and
/// filters (all of which must hold). Order: (metric or dimension, descending), then the
/// dimensions ascending as tie-breakers, as the contract says.
/// </summary>
public sealed record PreAggregateQuery(
    ulong MerchantId,
    ulong SiteId,
    DateTimeOffset From,
    DateTimeOffset To,
    TimeZoneInfo TimeZone,
    IReadOnlyList<string> Metrics,
    IReadOnlyList<string> Dimensions,
    IReadOnlyList<QueryFilter> Filters)
{
    public IReadOnlyList<(string Key, bool Descending)> OrderBy { get; init; } = [];
    public int Limit { get; init; } = 10_000;
    public int Offset { get; init; }

    /// <summary>The site's active generations (day → generation; a day not listed is generation
    /// 0) when the caller has read them already (ActiveGenerationCache); null: the statement reads
    /// them itself.</summary>
    public IReadOnlyDictionary<DateOnly, ulong>? KnownGenerations { get; init; }

    /// <summary>Count visitors per UTC day and add the days up (PreAggregatePlanner explains why
    /// that is exact) instead of merging the range's sets: cheaper for a large site's top lists.</summary>
    public bool DailyVisitorSums { get; init; }

    /// <summary>The site's goals (for the goal dimension and goal filters, whose values name them).</summary>
    public IReadOnlyList<ControlPlane.Goal> Goals { get; init; } = [];
}

/// <summary>One filter: operator ("is", "is_not", "contains", …), dimension, values.</summary>
public sealed record QueryFilter(string Operator, string Dimension, IReadOnlyList<string> Values, bool CaseSensitive = true);

/// <summary>An answer: one row per dimension combination (dimension values as strings, metrics
/// as numbers), after order and pagination, and the row count before pagination.</summary>
public sealed record QueryAnswer(IReadOnlyList<QueryRow> Rows, long TotalRows);

public sealed record QueryRow(IReadOnlyList<string> Dimensions, IReadOnlyList<double> Metrics);
