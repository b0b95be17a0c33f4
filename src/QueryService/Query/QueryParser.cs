using System.Globalization;
using System.Text.Json;
using Analytics.ControlPlane;

namespace Analytics.QueryService.Query;

/// <summary>
/// Parses and normalises a <c>/v1/query</c> body (docs/query-api.md, "Request"). Strict: an
/// unknown field anywhere, a wrong type, an unknown name or an unanswerable combination is a
/// <see cref="QueryException"/> naming the JSON path (<c>metrics[2]</c>, <c>filters[0][1]</c>) and
/// the reason, so a misspelling never silently changes an answer. Normalising fixes the range as
/// [From, To) UTC instants in the query's zone, fills every default and resolves goal names.
/// </summary>
public sealed class QueryParser
{
    public const int MaxMetrics = 20, MaxDimensions = 3, MaxLimit = 10_000, MaxFilterDepth = 8, MaxYears = 20;
    public const int MaxTimeBuckets = 10_000;

    /// <summary>What normalising needs from outside the request.</summary>
    /// <param name="FindSite">The caller's site by public id; null for unknown or another merchant's.</param>
    /// <param name="ListGoals">The site's goals (internal site id).</param>
    /// <param name="FirstEventAsync">The first event time of the site (for <c>all</c>), null when none.</param>
    /// <param name="RegexErrorAsync">Why the engine refuses a regular expression, null when it compiles.</param>
    public sealed record Context(
        Func<string, Site?> FindSite,
        Func<long, IReadOnlyList<Goal>> ListGoals,
        Func<Site, Task<DateTimeOffset?>> FirstEventAsync,
        Func<string, Task<string?>> RegexErrorAsync,
        DateTimeOffset Now)
    {
        /// <summary>Whether ClickHouse knows a zone .NET knows (their zone data can differ);
        /// null skips the check.</summary>
        public Func<string, Task<bool>>? EngineKnowsZoneAsync { get; init; }

        /// <summary>The enriched events' retention horizon (null: kept forever). The range
        /// <c>all</c> starts at the first whole day from it: rows older than it may linger until
        /// the TTL merges remove them, and a day it cuts has lost part of its events.</summary>
        public DateTimeOffset? EnrichedKeptFrom { get; init; }
    }

    /// <summary>The site the query names is unknown to the caller (404, like a site that does not exist).</summary>
    public sealed class UnknownSiteException(string site) : Exception($"There is no site '{site}'.");

    private static readonly string[] TopFields = ["site_id", "date_range", "timezone", "metrics", "dimensions", "filters", "order_by", "pagination", "include"];

    /// <summary>The request body as JSON (at most 32 levels deep), or QueryException naming "$".
    /// UTF-8 is checked first: System.Text.Json accepts a string with invalid UTF-8 in it and
    /// throws InvalidOperationException only when the parser reads it, which was a 500 (found by
    /// fuzzing, fuzz/corpus/query/regression-invalid-utf8.json).</summary>
    public static JsonDocument ParseBody(ReadOnlyMemory<byte> json)
    {
        if (!System.Text.Unicode.Utf8.IsValid(json.Span)) throw new QueryException("$", "The body is not valid UTF-8.");
        try
        {
            return JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException e)
        {
            throw new QueryException("$", $"The body is not valid JSON: {e.Message}");
        }
    }

    public static async Task<NormalQuery> ParseAsync(JsonElement root, Context context)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new QueryException("$", "The body must be a JSON object.");
        CheckFields(root, "", TopFields);

        var siteId = Required(root, "site_id");
        if (siteId.ValueKind != JsonValueKind.String) throw new QueryException("site_id", "site_id must be a string: the site's public id.");
        string publicId = siteId.GetString()!;
        var site = context.FindSite(publicId) ?? throw new UnknownSiteException(publicId);

        var tz = ParseTimeZone(root, site);
        if (root.TryGetProperty("timezone", out var zone) && zone.ValueKind == JsonValueKind.String && context.EngineKnowsZoneAsync is { } knows && !await knows(tz.Id))
            throw new QueryException("timezone", $"Unknown time zone '{tz.Id}' (the database does not know it); use an IANA name such as Europe/Berlin.");
        var metrics = ParseMetrics(Required(root, "metrics"));
        var dimensions = Optional(root, "dimensions", out var d) ? ParseDimensions(d) : [];
        var goals = context.ListGoals(site.SiteId);
        var filter = Optional(root, "filters", out var f) ? ParseFilterList(f, "filters", goals, 0) : null;
        if (filter is not null) await CheckRegexesAsync(filter, context);

        var range = Required(root, "date_range");
        var (from, to, rangeInput) = await ParseDateRangeAsync(range, "date_range", tz, context, site);
        var orderBy = Optional(root, "order_by", out var o) ? ParseOrderBy(o, metrics, dimensions) : DefaultOrder(metrics, dimensions);
        var (limit, offset) = Optional(root, "pagination", out var p) ? ParsePagination(p) : (MaxLimit, 0);
        bool timeLabels = false;
        ComparisonRange? comparison = null;
        if (Optional(root, "include", out var include))
        {
            if (include.ValueKind != JsonValueKind.Object) throw new QueryException("include", "include must be an object: {\"time_labels\": bool, \"comparisons\": {…}}.");
            CheckFields(include, "include", ["time_labels", "comparisons"]);
            if (Optional(include, "time_labels", out var tl))
            {
                if (tl.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) throw new QueryException("include.time_labels", "include.time_labels must be true or false.");
                timeLabels = tl.GetBoolean();
            }
            if (Optional(include, "comparisons", out var c))
                comparison = await ParseComparisonAsync(c, from, to, tz, context, site);
        }

        var query = new NormalQuery(site.MerchantId, site.SiteId, site.PublicId, from, to, tz, metrics, dimensions, filter, orderBy,
            limit, offset, timeLabels, comparison, goals, rangeInput);
        CheckCombinations(query);
        return query;
    }

    private static JsonElement Required(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value
            : throw new QueryException(name, $"{name} is required.");

    /// <summary>An optional field; null counts as absent (clients serialise unset fields so).</summary>
    private static bool Optional(JsonElement obj, string name, out JsonElement value) =>
        obj.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    private static void CheckFields(JsonElement obj, string path, string[] allowed)
    {
        foreach (var property in obj.EnumerateObject())
        {
            if (!allowed.Contains(property.Name))
            {
                string at = path.Length == 0 ? property.Name : path + "." + property.Name;
                throw new QueryException(at, $"Unknown field '{property.Name}'; accepted here: {string.Join(", ", allowed)}.");
            }
        }
    }

    private static TimeZoneInfo ParseTimeZone(JsonElement root, Site site)
    {
        if (!root.TryGetProperty("timezone", out var value) || value.ValueKind == JsonValueKind.Null)
            return TimeZoneInfo.FindSystemTimeZoneById(site.TimeZone);
        if (value.ValueKind != JsonValueKind.String || value.GetString()!.Length == 0)
            throw new QueryException("timezone", "timezone must be a non-empty string: an IANA zone such as Europe/Berlin.");
        try
        {
            return QueryParameters.ParseTimeZone(value.GetString());
        }
        catch (QueryParameters.InvalidQueryException)
        {
            throw new QueryException("timezone", $"Unknown time zone '{value.GetString()}'; use an IANA name such as Europe/Berlin.");
        }
    }

    private static List<string> ParseMetrics(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array) throw new QueryException("metrics", "metrics must be a list of metric names.");
        int count = value.GetArrayLength();
        if (count is 0 or > MaxMetrics) throw new QueryException("metrics", $"metrics must name 1 to {MaxMetrics} metrics; it names {count}.");
        var metrics = new List<string>();
        int i = 0;
        foreach (var m in value.EnumerateArray())
        {
            string path = $"metrics[{i++}]";
            if (m.ValueKind != JsonValueKind.String || !QueryVocabulary.Metrics.Contains(m.GetString()))
                throw new QueryException(path, $"Unknown metric {m.GetRawText()}; known metrics are {string.Join(", ", QueryVocabulary.Metrics)}.");
            if (metrics.Contains(m.GetString()!)) throw new QueryException(path, $"The metric '{m.GetString()}' is repeated.");
            metrics.Add(m.GetString()!);
        }
        return metrics;
    }

    private static List<Dimension> ParseDimensions(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array) throw new QueryException("dimensions", "dimensions must be a list of dimension names.");
        if (value.GetArrayLength() > MaxDimensions) throw new QueryException("dimensions", $"At most {MaxDimensions} dimensions; the query has {value.GetArrayLength()}.");
        var dimensions = new List<Dimension>();
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            string path = $"dimensions[{i++}]";
            var dimension = item.ValueKind == JsonValueKind.String ? QueryVocabulary.ParseDimension(item.GetString()!) : null;
            if (dimension is null) throw new QueryException(path, $"Unknown dimension {item.GetRawText()}; known dimensions are {QueryVocabulary.KnownDimensions}.");
            if (dimensions.Any(x => x.Name == dimension.Name)) throw new QueryException(path, $"The dimension '{dimension.Name}' is repeated.");
            if (dimension.Kind == DimensionKind.Time && dimensions.Any(x => x.Kind == DimensionKind.Time))
                throw new QueryException(path, "At most one time dimension (time:minute|hour|day|week|month).");
            dimensions.Add(dimension);
        }
        return dimensions;
    }

    private static readonly string[] LeafOperators = ["is", "is_not", "contains", "contains_not", "matches", "matches_not"];

    internal static Filter? ParseFilterList(JsonElement value, string path, IReadOnlyList<Goal> goals, int depth)
    {
        if (value.ValueKind != JsonValueKind.Array) throw new QueryException(path, "filters must be a list of filters such as [\"is\", \"country\", [\"DE\"]].");
        var children = new List<Filter>();
        int i = 0;
        foreach (var item in value.EnumerateArray()) children.Add(ParseFilter(item, $"{path}[{i++}]", goals, depth));
        return children.Count switch { 0 => null, 1 => children[0], _ => new FilterAnd(children) };
    }

    private static Filter ParseFilter(JsonElement value, string path, IReadOnlyList<Goal> goals, int depth)
    {
        if (depth >= MaxFilterDepth) throw new QueryException(path, $"Filters nest at most {MaxFilterDepth} levels deep.");
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0 || value[0].ValueKind != JsonValueKind.String)
            throw new QueryException(path, "A filter is [operator, dimension, [values…]] or [\"and\"|\"or\", [filters…]] or [\"not\", filter].");
        string op = value[0].GetString()!;
        int length = value.GetArrayLength();
        switch (op)
        {
            case "and" or "or":
                if (length != 2 || value[1].ValueKind != JsonValueKind.Array || value[1].GetArrayLength() == 0)
                    throw new QueryException(path, $"[\"{op}\", [filters…]] takes one non-empty list of filters.");
                var children = new List<Filter>();
                int i = 0;
                foreach (var child in value[1].EnumerateArray()) children.Add(ParseFilter(child, $"{path}[1][{i++}]", goals, depth + 1));
                return op == "and" ? new FilterAnd(children) : new FilterOr(children);
            case "not":
                if (length != 2) throw new QueryException(path, "[\"not\", filter] takes exactly one filter.");
                return new FilterNot(ParseFilter(value[1], $"{path}[1]", goals, depth + 1));
        }
        if (!LeafOperators.Contains(op))
            throw new QueryException($"{path}[0]", $"Unknown filter operator '{op}'; known are {string.Join(", ", LeafOperators)}, and, or, not.");
        if (length is < 3 or > 4) throw new QueryException(path, "A filter is [operator, dimension, [values…]] with an optional {\"case_sensitive\": bool}.");
        var dimension = value[1].ValueKind == JsonValueKind.String ? QueryVocabulary.ParseDimension(value[1].GetString()!) : null;
        if (dimension is null) throw new QueryException($"{path}[1]", $"Unknown dimension {value[1].GetRawText()}; filterable are {QueryVocabulary.KnownDimensions} (not time).");
        if (dimension.Kind == DimensionKind.Time) throw new QueryException($"{path}[1]", "Time dimensions cannot be filtered: use date_range.");
        if (value[2].ValueKind != JsonValueKind.Array || value[2].GetArrayLength() == 0)
            throw new QueryException($"{path}[2]", "The values of a filter are a non-empty list of strings.");
        var values = new List<string>();
        int j = 0;
        foreach (var v in value[2].EnumerateArray())
        {
            if (v.ValueKind != JsonValueKind.String) throw new QueryException($"{path}[2][{j}]", $"Filter values are strings; got {v.GetRawText()}.");
            values.Add(v.GetString()!);
            j++;
        }
        bool caseSensitive = true;
        if (length == 4)
        {
            var options = value[3];
            if (options.ValueKind != JsonValueKind.Object) throw new QueryException($"{path}[3]", "Filter options are an object: {\"case_sensitive\": bool}.");
            CheckFields(options, $"{path}[3]", ["case_sensitive"]);
            if (Optional(options, "case_sensitive", out var cs))
            {
                if (cs.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) throw new QueryException($"{path}[3].case_sensitive", "case_sensitive must be true or false.");
                caseSensitive = cs.GetBoolean();
            }
        }
        if (dimension.Kind == DimensionKind.Goal)
        {
            if (op is not ("is" or "is_not")) throw new QueryException($"{path}[0]", $"The goal filter supports is and is_not only, not {op}.");
            for (int k = 0; k < values.Count; k++)
            {
                if (!goals.Any(g => string.Equals(g.Name, values[k], caseSensitive ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase)))
                    throw new QueryException($"{path}[2][{k}]", $"The site has no goal named '{values[k]}'.");
            }
        }
        return new FilterLeaf(op, dimension, values, caseSensitive, path);
    }

    /// <summary>Regular expressions are RE2 as ClickHouse runs them, so the engine itself judges
    /// them: one tiny statement per expression, before the query runs.</summary>
    internal static async Task CheckRegexesAsync(Filter filter, Context context)
    {
        foreach (var leaf in Leaves(filter))
        {
            if (leaf.Operator is not ("matches" or "matches_not")) continue;
            for (int k = 0; k < leaf.Values.Count; k++)
            {
                string? error = await context.RegexErrorAsync(leaf.CaseSensitive ? leaf.Values[k] : "(?i)" + leaf.Values[k]);
                if (error is not null) throw new QueryException($"{leaf.Path}[2][{k}]", $"Invalid regular expression '{leaf.Values[k]}' (RE2 syntax): {error}");
            }
        }
    }

    public static IEnumerable<FilterLeaf> Leaves(Filter? filter) => filter switch
    {
        FilterLeaf leaf => [leaf],
        FilterAnd and => and.Children.SelectMany(Leaves),
        FilterOr or => or.Children.SelectMany(Leaves),
        FilterNot not => Leaves(not.Child),
        _ => [],
    };

    /// <summary>A goal filter under an or or a not, if any.</summary>
    private static FilterLeaf? NestedGoalFilter(Filter? filter, bool nested) => filter switch
    {
        FilterLeaf leaf => nested && leaf.Dimension.Kind == DimensionKind.Goal ? leaf : null,
        FilterAnd and => and.Children.Select(c => NestedGoalFilter(c, nested)).FirstOrDefault(l => l is not null),
        FilterOr or => or.Children.Select(c => NestedGoalFilter(c, true)).FirstOrDefault(l => l is not null),
        FilterNot not => NestedGoalFilter(not.Child, true),
        _ => null,
    };

    internal static async Task<(DateTimeOffset From, DateTimeOffset To, string Input)> ParseDateRangeAsync(
        JsonElement value, string path, TimeZoneInfo tz, Context context, Site site)
    {
        var today = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(context.Now, tz).DateTime);
        var tomorrow = Day(today.AddDays(1), tz);
        if (value.ValueKind == JsonValueKind.String)
        {
            string name = value.GetString()!;
            switch (name)
            {
                case "realtime": return (context.Now.AddMinutes(-5), context.Now, name);
                case "day": return (Day(today, tz), tomorrow, name);
                case "yesterday": return (Day(today.AddDays(-1), tz), Day(today, tz), name);
                case "7d" or "28d" or "30d": return (Day(today.AddDays(1 - int.Parse(name[..^1], CultureInfo.InvariantCulture)), tz), tomorrow, name);
                case "month": return (Day(new DateOnly(today.Year, today.Month, 1), tz), tomorrow, name);
                case "last_month":
                    var firstOfMonth = new DateOnly(today.Year, today.Month, 1);
                    return (Day(firstOfMonth.AddMonths(-1), tz), Day(firstOfMonth, tz), name);
                case "6mo" or "12mo":
                    var thisMonth = new DateOnly(today.Year, today.Month, 1);
                    int months = name == "6mo" ? 6 : 12;
                    return (Day(thisMonth.AddMonths(1 - months), tz), Day(thisMonth.AddMonths(1), tz), name);
                case "year": return (Day(new DateOnly(today.Year, 1, 1), tz), tomorrow, name);
                case "all":
                    var first = await context.FirstEventAsync(site);
                    if (context.EnrichedKeptFrom is { } kept && first < kept) first = kept;
                    var firstDay = first is null ? today : DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(first.Value, tz).DateTime);
                    if (context.EnrichedKeptFrom is { } horizon && Day(firstDay, tz) < horizon) firstDay = firstDay.AddDays(1);
                    if (firstDay > today) firstDay = today;
                    return (Day(firstDay, tz), tomorrow, name);
                default:
                    throw new QueryException(path, $"Unknown date range '{name}'; use day, yesterday, 7d, 28d, 30d, month, last_month, 6mo, 12mo, year, all, realtime or [from, to].");
            }
        }
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() != 2)
            throw new QueryException(path, "date_range is a name (7d, month…) or [from, to]: two dates or two ISO 8601 date-times with offset.");
        var from = ParseBound(value[0], $"{path}[0]", tz, isEnd: false);
        var to = ParseBound(value[1], $"{path}[1]", tz, isEnd: true);
        if (from >= to) throw new QueryException(path, $"The range is empty: from ({from:O}) must be before to ({to:O}).");
        if (to > from.AddYears(MaxYears)) throw new QueryException(path, $"The longest range is {MaxYears} years.");
        return (from, to, "custom");
    }

    private static DateTimeOffset ParseBound(JsonElement value, string path, TimeZoneInfo tz, bool isEnd)
    {
        string? text = value.ValueKind == JsonValueKind.String ? value.GetString() : null;
        if (text is not null && DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
        {
            CheckYear(path, text, date.Year);
            return Day(isEnd ? date.AddDays(1) : date, tz);
        }
        // A date-time must say its offset: a bare local time would be ambiguous at DST changes.
        if (text is not null && text.Contains('T') && HasOffset(text) &&
            DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var instant))
        {
            CheckYear(path, text, instant.UtcDateTime.Year);
            return instant.ToUniversalTime();
        }
        throw new QueryException(path, $"{value.GetRawText()} is neither a date (2026-11-26) nor an ISO 8601 date-time with offset (2026-11-26T10:00:00Z).");
    }

    private static bool HasOffset(string text)
    {
        int t = text.IndexOf('T');
        return text.EndsWith('Z') || text.AsSpan(t).IndexOfAny('+', '-') > 0;
    }

    private static void CheckYear(string path, string text, int year)
    {
        if (year is < QueryParameters.MinYear or > QueryParameters.MaxYear)
            throw new QueryException(path, $"'{text}' is outside the years {QueryParameters.MinYear}-{QueryParameters.MaxYear}.");
    }

    public static DateTimeOffset Day(DateOnly day, TimeZoneInfo tz) => QueryParameters.StartOfLocalDay(day, tz);

    /// <summary>
    /// When a named date range (<see cref="NormalQuery.DateRangeInput"/>) starts to mean other
    /// days, so that no cache keeps an answer past it: every name counts from today in
    /// <paramref name="tz"/>, so it changes at the next local midnight; <c>last_month</c>,
    /// <c>6mo</c> and <c>12mo</c> count whole months, so they change when the next month starts.
    /// Null for <c>[from, to]</c>, which never changes meaning, and for <c>realtime</c>, which
    /// follows the clock and is live (seconds) anyway.
    /// </summary>
    public static DateTimeOffset? ValidUntil(string rangeInput, TimeZoneInfo tz, DateTimeOffset now)
    {
        var today = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(now, tz).DateTime);
        return rangeInput switch
        {
            "custom" or "realtime" => null,
            "last_month" or "6mo" or "12mo" => Day(new DateOnly(today.Year, today.Month, 1).AddMonths(1), tz),
            _ => Day(today.AddDays(1), tz),
        };
    }

    private static async Task<ComparisonRange> ParseComparisonAsync(JsonElement value, DateTimeOffset from, DateTimeOffset to, TimeZoneInfo tz, Context context, Site site)
    {
        const string Path = "include.comparisons";
        if (value.ValueKind != JsonValueKind.Object) throw new QueryException(Path, "comparisons must be an object: {\"mode\": …, \"match_day_of_week\": bool}.");
        CheckFields(value, Path, ["mode", "date_range", "match_day_of_week"]);
        if (!value.TryGetProperty("mode", out var modeValue) || modeValue.ValueKind != JsonValueKind.String)
            throw new QueryException(Path + ".mode", "comparisons.mode is required: previous_period, year_over_year or custom.");
        string mode = modeValue.GetString()!;
        bool matchDay = false;
        if (Optional(value, "match_day_of_week", out var m))
        {
            if (m.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) throw new QueryException(Path + ".match_day_of_week", "match_day_of_week must be true or false.");
            matchDay = m.GetBoolean();
        }
        bool hasRange = value.TryGetProperty("date_range", out var range) && range.ValueKind != JsonValueKind.Null;
        if (mode != "custom" && hasRange) throw new QueryException(Path + ".date_range", $"date_range belongs to the custom mode only, not {mode}.");
        DateTimeOffset cFrom, cTo;
        switch (mode)
        {
            case "previous_period":
                // Whole calendar months (month, last_month, 6mo, 12mo, year) shift by months, so
                // time:month rows meet the months before them (6 months are 181-184 days); with
                // match_day_of_week the weekday matters more, so days. Other whole local days
                // shift by days (a DST change inside keeps the same calendar days).
                if (IsWholeDays(from, to, tz) && MonthsBetween(LocalDate(from, tz), LocalDate(to, tz)) is > 0 and int months && !matchDay)
                    (cFrom, cTo) = (Day(LocalDate(from, tz).AddMonths(-months), tz), from);
                else (cFrom, cTo) = IsWholeDays(from, to, tz)
                    ? (Day(LocalDate(from, tz).AddDays(-(LocalDate(to, tz).DayNumber - LocalDate(from, tz).DayNumber)), tz), from)
                    : (from - (to - from), from);
                break;
            case "year_over_year":
                // Whole days map their first and their last day (the end is exclusive: a range
                // ending on 28 February of a leap year ends at 29 February 00:00, whose year-earlier
                // 28 February would drop that day).
                (cFrom, cTo) = IsWholeDays(from, to, tz)
                    ? (Day(LocalDate(from, tz).AddYears(-1), tz), Day(LocalDate(to, tz).AddDays(-1).AddYears(-1).AddDays(1), tz))
                    : (YearEarlier(from, tz), YearEarlier(to, tz));
                break;
            case "custom":
                if (!hasRange) throw new QueryException(Path + ".date_range", "The custom comparison needs date_range: [from, to].");
                (cFrom, cTo, _) = await ParseDateRangeAsync(range, Path + ".date_range", tz, context, site);
                break;
            default:
                throw new QueryException(Path + ".mode", $"Unknown comparison mode '{mode}'; use previous_period, year_over_year or custom.");
        }
        if (matchDay && mode != "custom")
        {
            // Back 0–6 more days, so the comparison starts on the same weekday as the range.
            int back = ((int)TimeZoneInfo.ConvertTime(cFrom, tz).DayOfWeek - (int)TimeZoneInfo.ConvertTime(from, tz).DayOfWeek + 7) % 7;
            (cFrom, cTo) = (BackDays(cFrom, back, tz), BackDays(cTo, back, tz));
        }
        if (cFrom.UtcDateTime.Year < QueryParameters.MinYear) throw new QueryException(Path, $"The comparison range starts before {QueryParameters.MinYear}.");
        return new ComparisonRange(mode, cFrom, cTo, matchDay);
    }

    /// <summary>Local midnights stay local midnights across a DST change; other instants move by 24-hour days.</summary>
    private static DateTimeOffset BackDays(DateTimeOffset t, int days, TimeZoneInfo tz) =>
        Day(LocalDate(t, tz), tz) == t ? Day(LocalDate(t, tz).AddDays(-days), tz) : t.AddDays(-days);

    private static DateOnly LocalDate(DateTimeOffset t, TimeZoneInfo tz) => DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(t, tz).DateTime);

    /// <summary>The number of whole calendar months from one first of a month to another; 0 when either is another day.</summary>
    private static int MonthsBetween(DateOnly from, DateOnly to) =>
        from.Day == 1 && to.Day == 1 ? (to.Year * 12 + to.Month) - (from.Year * 12 + from.Month) : 0;

    private static bool IsWholeDays(DateTimeOffset from, DateTimeOffset to, TimeZoneInfo tz) =>
        Day(LocalDate(from, tz), tz) == from && Day(LocalDate(to, tz), tz) == to;

    /// <summary>The same local time a year earlier; 29 February becomes 28 February.</summary>
    private static DateTimeOffset YearEarlier(DateTimeOffset t, TimeZoneInfo tz)
    {
        var local = TimeZoneInfo.ConvertTime(t, tz).DateTime.AddYears(-1);
        var unspecified = DateTime.SpecifyKind(local, DateTimeKind.Unspecified);
        while (tz.IsInvalidTime(unspecified)) unspecified = unspecified.AddMinutes(30);
        return new DateTimeOffset(TimeZoneInfo.ConvertTimeToUtc(unspecified, tz), TimeSpan.Zero);
    }

    private static List<OrderTerm> ParseOrderBy(JsonElement value, List<string> metrics, List<Dimension> dimensions)
    {
        if (value.ValueKind != JsonValueKind.Array) throw new QueryException("order_by", "order_by is a list of [metric or dimension, \"asc\"|\"desc\"].");
        var terms = new List<OrderTerm>();
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            string path = $"order_by[{i++}]";
            if (item.ValueKind != JsonValueKind.Array || item.GetArrayLength() != 2 || item[0].ValueKind != JsonValueKind.String)
                throw new QueryException(path, "An order_by entry is [metric or dimension, \"asc\"|\"desc\"].");
            string key = item[0].GetString()!;
            if (!metrics.Contains(key) && !dimensions.Any(d => d.Name == key))
                throw new QueryException(path + "[0]", $"'{key}' is neither a metric nor a dimension of this query.");
            if (QueryVocabulary.RevenueMetrics.Contains(key))
                throw new QueryException(path + "[0]", $"{key} is per currency and cannot order rows; order by another metric.");
            string? direction = item[1].ValueKind == JsonValueKind.String ? item[1].GetString() : null;
            if (direction is not ("asc" or "desc")) throw new QueryException(path + "[1]", $"The direction is \"asc\" or \"desc\", not {item[1].GetRawText()}.");
            terms.Add(new OrderTerm(key, direction == "desc"));
        }
        return terms;
    }

    private static List<OrderTerm> DefaultOrder(List<string> metrics, List<Dimension> dimensions)
    {
        var time = dimensions.FirstOrDefault(d => d.Kind == DimensionKind.Time);
        if (time is not null) return [new OrderTerm(time.Name, false)];
        return QueryVocabulary.RevenueMetrics.Contains(metrics[0]) ? [] : [new OrderTerm(metrics[0], true)];
    }

    private static (int Limit, int Offset) ParsePagination(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object) throw new QueryException("pagination", "pagination is {\"limit\": 1-10000, \"offset\": >= 0}.");
        CheckFields(value, "pagination", ["limit", "offset"]);
        int limit = MaxLimit, offset = 0;
        if (Optional(value, "limit", out var l) && (l.ValueKind != JsonValueKind.Number || !l.TryGetInt32(out limit) || limit is < 1 or > MaxLimit))
            throw new QueryException("pagination.limit", $"limit is a whole number from 1 to {MaxLimit}; got {l.GetRawText()}.");
        if (Optional(value, "offset", out var o) && (o.ValueKind != JsonValueKind.Number || !o.TryGetInt32(out offset) || offset < 0))
            throw new QueryException("pagination.offset", $"offset is a whole number >= 0; got {o.GetRawText()}.");
        return (limit, offset);
    }

    /// <summary>The refusals of docs/query-api.md ("Dimensions", "Include"), each naming the metric
    /// or field that cannot be answered and why.</summary>
    private static void CheckCombinations(NormalQuery q)
    {
        var eventDimension = q.Dimensions.FirstOrDefault(d => d.Kind is DimensionKind.Event or DimensionKind.Goal);
        var visitDimension = q.Dimensions.FirstOrDefault(d => d.Kind == DimensionKind.Visit);
        var visitFilter = Leaves(q.Filter).FirstOrDefault(l => l.Dimension.Kind == DimensionKind.Visit);
        bool hasGoal = q.HasGoalDimension || Leaves(q.Filter).Any(l => l.Dimension.Kind == DimensionKind.Goal);
        for (int i = 0; i < q.Metrics.Count; i++)
        {
            string m = q.Metrics[i], path = $"metrics[{i}]";
            if (QueryVocabulary.VisitMetrics.Contains(m) && eventDimension is not null)
                throw new QueryException(path, $"{m} is a visit metric and cannot be broken down by the event dimension {eventDimension.Name} (a visit has many of them); use entry_page or exit_page.");
            if (m == "bots" && visitDimension is not null)
                throw new QueryException(path, $"bots cannot be broken down by the visit dimension {visitDimension.Name}: bots have no visits.");
            if (m == "bots" && visitFilter is not null)
                throw new QueryException(path, $"bots cannot be filtered by the visit dimension {visitFilter.Dimension.Name} ({visitFilter.Path}): bots have no visits.");
            if (m is "conversions" or "conversion_rate" or "group_conversion_rate" && !hasGoal)
                throw new QueryException(path, $"{m} needs the goal dimension or a goal filter.");
            // The goals in scope come from is / is_not goal filters that every row must pass; one
            // under or / not has no such meaning (["not", ["is", "goal", …]] would read as is, and
            // an or's other branch would widen the denominator past the converting visitors).
            if (m is "conversions" or "conversion_rate" or "group_conversion_rate" && !q.HasGoalDimension && NestedGoalFilter(q.Filter, false) is { } nested)
                throw new QueryException(nested.Path, $"{m} takes goal filters at the top level or under and only; this one is under or / not. Use is_not for the goals not to count.");
            if (m == "percentage" && !q.Dimensions.Any(d => d.Kind != DimensionKind.Time))
                throw new QueryException(path, "percentage needs a dimension other than time (it is a share of the query's visitors).");
        }
        var time = q.TimeDimension;
        if (q.TimeLabels && time is null) throw new QueryException("include.time_labels", "time_labels needs a time dimension (time:minute|hour|day|week|month).");
        if (time is not null)
        {
            int index = q.Dimensions.ToList().IndexOf(time);
            if (TimeBuckets.Count(q.From, q.To, q.TimeZone, time.Argument!) > MaxTimeBuckets)
                throw new QueryException($"dimensions[{index}]", $"{time.Name} over this range gives more than {MaxTimeBuckets} time buckets; use a coarser unit or a shorter range.");
            if (q.Comparison is { } c && TimeBuckets.Count(c.From, c.To, q.TimeZone, time.Argument!) > MaxTimeBuckets)
                throw new QueryException("include.comparisons", $"{time.Name} over the comparison range gives more than {MaxTimeBuckets} time buckets.");
        }
    }
}
