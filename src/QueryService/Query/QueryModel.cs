using Analytics.ControlPlane;

namespace Analytics.QueryService.Query;

/// <summary>
/// A query of <c>POST /v1/query</c> after parsing and normalisation (docs/query-api.md): every
/// default filled in, the range as explicit UTC instants, the site's internal ids from the
/// control plane. Everything here is safe to turn into SQL; user strings stay strings and reach
/// SQL only through ClickHouseSql.StringLiteral.
/// </summary>
public sealed record NormalQuery(
    long MerchantId,
    long SiteId,
    string PublicSiteId,
    DateTimeOffset From,
    DateTimeOffset To,
    TimeZoneInfo TimeZone,
    IReadOnlyList<string> Metrics,
    IReadOnlyList<Dimension> Dimensions,
    Filter? Filter,
    IReadOnlyList<OrderTerm> OrderBy,
    int Limit,
    int Offset,
    bool TimeLabels,
    ComparisonRange? Comparison,
    IReadOnlyList<Goal> Goals,
    string DateRangeInput)
{
    public Dimension? TimeDimension => Dimensions.FirstOrDefault(d => d.Kind == DimensionKind.Time);
    public bool HasGoalDimension => Dimensions.Any(d => d.Kind == DimensionKind.Goal);
}

public enum DimensionKind { Time, Event, Visit, Goal }

/// <param name="Name">As the request spelled it (<c>time:day</c>, <c>props:plan</c>, <c>source</c>).</param>
/// <param name="Argument">The time unit of a time dimension, the key of <c>props:KEY</c>.</param>
public sealed record Dimension(string Name, DimensionKind Kind, string? Argument = null);

public abstract record Filter;

/// <param name="Path">The JSON path of the filter in the request, for error messages.</param>
public sealed record FilterLeaf(string Operator, Dimension Dimension, IReadOnlyList<string> Values, bool CaseSensitive, string Path) : Filter;

public sealed record FilterAnd(IReadOnlyList<Filter> Children) : Filter;

public sealed record FilterOr(IReadOnlyList<Filter> Children) : Filter;

public sealed record FilterNot(Filter Child) : Filter;

public sealed record OrderTerm(string Key, bool Descending);

public sealed record ComparisonRange(string Mode, DateTimeOffset From, DateTimeOffset To, bool MatchDayOfWeek);

/// <summary>A refused query: the JSON path of the offending field and why (400 problem+json).</summary>
public sealed class QueryException(string field, string detail) : Exception(detail)
{
    public string Field { get; } = field;
}

/// <summary>The names the contract knows, and which kind each is.</summary>
public static class QueryVocabulary
{
    public static readonly string[] Metrics =
    [
        "visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration", "time_on_page",
        "percentage", "conversions", "conversion_rate", "group_conversion_rate", "total_revenue", "average_revenue", "bots",
    ];

    /// <summary>Metrics measured over visits: refused with an event dimension.</summary>
    public static readonly HashSet<string> VisitMetrics = ["visits", "views_per_visit", "bounce_rate", "visit_duration"];

    /// <summary>Metrics whose change is given in points rather than percent.</summary>
    public static readonly HashSet<string> RateMetrics = ["bounce_rate", "percentage", "conversion_rate", "group_conversion_rate"];

    public static readonly HashSet<string> RevenueMetrics = ["total_revenue", "average_revenue"];

    public static readonly string[] TimeUnits = ["minute", "hour", "day", "week", "month"];

    /// <summary>Event dimensions and their column expression over an events_enriched row.</summary>
    public static readonly Dictionary<string, string> EventDimensions = new()
    {
        ["page"] = "pathname",
        ["hostname"] = @"replaceRegexpOne(hostname, '^www\\.', '')",
        ["event"] = "name",
    };

    /// <summary>Visit dimensions and the events_enriched column their value comes from (of the
    /// visit's first event; entry and exit page of its first and last pageview).</summary>
    public static readonly Dictionary<string, string> VisitDimensions = new()
    {
        ["entry_page"] = "pathname",
        ["exit_page"] = "pathname",
        ["source"] = "referrer_source",
        ["referrer"] = "referrer",
        ["channel"] = "channel",
        ["utm_source"] = "utm_source",
        ["utm_medium"] = "utm_medium",
        ["utm_campaign"] = "utm_campaign",
        ["utm_content"] = "utm_content",
        ["utm_term"] = "utm_term",
        ["country"] = "country",
        ["region"] = "region",
        ["city"] = "city",
        ["device"] = "device",
        ["browser"] = "browser",
        ["browser_version"] = "browser_version",
        ["os"] = "os",
        ["os_version"] = "os_version",
    };

    public static string KnownDimensions => "time:minute|hour|day|week|month, page, hostname, event, goal, props:KEY, " + string.Join(", ", VisitDimensions.Keys);

    /// <summary>A dimension by name, or null when the name is not one.</summary>
    public static Dimension? ParseDimension(string name)
    {
        if (name.StartsWith("time:", StringComparison.Ordinal))
            return TimeUnits.Contains(name[5..]) ? new Dimension(name, DimensionKind.Time, name[5..]) : null;
        if (name.StartsWith("props:", StringComparison.Ordinal))
            return name.Length is > 6 and <= 6 + 128 ? new Dimension(name, DimensionKind.Event, name[6..]) : null;
        if (name == "goal") return new Dimension(name, DimensionKind.Goal);
        if (EventDimensions.ContainsKey(name)) return new Dimension(name, DimensionKind.Event);
        if (VisitDimensions.ContainsKey(name)) return new Dimension(name, DimensionKind.Visit);
        return null;
    }
}
