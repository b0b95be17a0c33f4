using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Analytics.QueryApi.Tests.Oracle;

/// <summary>
/// What `POST /v1/query` must answer, computed by plain LINQ over the events the test generated
/// and the definitions of docs/query-api.md, never by product code. Visitors are (person, UTC
/// day), since the visitor id's salt changes at UTC midnight; visits are a visitor's runs of
/// events with gaps shorter than 30 minutes, and an engagement ping never starts one (it counts
/// nowhere then); a visit is measured over its events in the range only; visit dimensions take the value of the visit's first event, even one before the range.
/// Rounded metrics are compared as exact values with a tolerance of half their unit, so a tie
/// (10.5 s) may round either way, which the contract leaves open.
/// </summary>
public sealed class QueryOracle
{
    private static readonly TimeSpan VisitGap = TimeSpan.FromMinutes(30);

    /// <summary>A stored event as the oracle sees it.</summary>
    public sealed record Ev(Dataset.Event E, Dataset.Person P, int Visit)
    {
        public DateTimeOffset At => E.At;
        public string Name => E.Name;
        public (int, DateOnly) Visitor => (P.Id, DateOnly.FromDateTime(E.At.UtcDateTime));
        public Uri Uri { get; } = new(E.Url);
    }

    private readonly List<Ev> _humans = [];
    private readonly List<Ev> _bots = [];
    private readonly Dictionary<int, List<Ev>> _visits;

    public QueryOracle(Dataset.Data data)
    {
        int visit = 0;
        foreach (var visitor in data.Events.Where(e => !data.People[e.Person].IsBot)
                     .GroupBy(e => (e.Person, DateOnly.FromDateTime(e.At.UtcDateTime))))
        {
            DateTimeOffset? last = null;
            foreach (var e in visitor.OrderBy(e => e.At))
            {
                if (last is null || e.At - last.Value >= VisitGap)
                {
                    if (e.Name == "engagement") continue;
                    visit++;
                }
                last = e.At;
                _humans.Add(new Ev(e, data.People[e.Person], visit));
            }
        }
        _bots.AddRange(data.Events.Where(e => data.People[e.Person].IsBot).Select(e => new Ev(e, data.People[e.Person], -1)));
        _visits = _humans.GroupBy(e => e.Visit).ToDictionary(g => g.Key, g => g.ToList());
    }

    public IReadOnlyList<Ev> Humans => _humans;

    // ---------------------------------------------------------------- expected values

    public abstract record Expect;
    public sealed record Exact(long Value) : Expect { public override string ToString() => Value.ToString(CultureInfo.InvariantCulture); }
    /// <summary>A value rounded to <paramref name="Unit"/>; <paramref name="Undefined"/>: the
    /// denominator was 0 (the contract names no value; 0 or null are accepted).</summary>
    public sealed record Rounded(double Value, double Unit, bool Undefined = false) : Expect
    {
        public override string ToString() => Undefined ? "0|null" : Value.ToString("0.####", CultureInfo.InvariantCulture) + "±" + (Unit / 2).ToString(CultureInfo.InvariantCulture);
    }
    public sealed record PerCurrency(IReadOnlyDictionary<string, Rounded> Values) : Expect
    {
        public override string ToString() => "{" + string.Join(", ", Values.OrderBy(v => v.Key, StringComparer.Ordinal).Select(v => v.Key + ": " + v.Value)) + "}";
    }
    /// <summary>A change in % or points: any of the candidates (from exact or from rounded metric values).</summary>
    public sealed record Change(IReadOnlyList<double?> Candidates) : Expect
    {
        public override string ToString() => string.Join(" | ", Candidates.Select(c => c?.ToString("0.###", CultureInfo.InvariantCulture) ?? "null"));
    }
    public sealed record ChangePerCurrency(IReadOnlyDictionary<string, Change> Values) : Expect
    {
        public override string ToString() => "{" + string.Join(", ", Values.OrderBy(v => v.Key, StringComparer.Ordinal).Select(v => v.Key + ": " + v.Value)) + "}";
    }

    public sealed record Row(IReadOnlyList<string> Dimensions, IReadOnlyList<Expect> Metrics, Comparison? Comparison, IReadOnlyList<object> SortKeys);
    public sealed record Comparison(IReadOnlyList<string> Dimensions, IReadOnlyList<Expect> Metrics, IReadOnlyList<Expect> Change);
    public sealed record Answer(IReadOnlyList<Row> Rows, int TotalRows, IReadOnlyList<string>? TimeLabels, (DateTimeOffset From, DateTimeOffset To)? ComparisonRange)
    {
        /// <summary>The range as instants, [from, to).</summary>
        public (DateTimeOffset From, DateTimeOffset To) Range { get; init; }
    }

    // ---------------------------------------------------------------- the query

    public Answer Run(JsonObject request)
    {
        var tz = TimeZoneInfo.FindSystemTimeZoneById((string?)request["timezone"] ?? "UTC");
        var (from, to) = request["date_range"] is JsonArray explicitRange ? Range(explicitRange, tz) : Named((string)request["date_range"]!, tz);
        string[] metrics = [.. request["metrics"]!.AsArray().Select(m => (string)m!)];
        string[] dims = request["dimensions"] is JsonArray d ? [.. d.Select(x => (string)x!)] : [];
        var filters = request["filters"] as JsonArray ?? [];
        var include = request["include"] as JsonObject;
        bool labels = (bool?)include?["time_labels"] ?? false;
        string? timeDim = dims.FirstOrDefault(x => x.StartsWith("time:", StringComparison.Ordinal));

        var groups = Groups(from, to, tz, metrics, dims, filters, labels && dims.Length == 1 && timeDim is not null);
        // Without dimensions the answer is one row, zeros when nothing was selected.
        if (dims.Length == 0 && groups.Count == 0) groups.Add(new Group([], [.. metrics.Select(Zero)], [], null, -1));
        IReadOnlyList<string>? timeLabels = labels && timeDim is not null ? [.. Buckets(from, to, tz, timeDim).Select(b => b.Label)] : labels ? [] : null;

        (DateTimeOffset, DateTimeOffset)? comparisonRange = null;
        List<Group>? previous = null;
        if (include?["comparisons"] is JsonObject comparisons)
        {
            var range = ComparisonRange(comparisons, from, to, tz);
            comparisonRange = range;
            previous = Groups(range.From, range.To, tz, metrics, dims, filters, timeDim is not null && dims.Length == 1);
            if (dims.Length == 0 && previous.Count == 0) previous.Add(new Group([], [.. metrics.Select(Zero)], [], null, -1));
        }

        var rows = new List<Row>();
        foreach (var g in groups)
        {
            Comparison? comparison = null;
            if (previous is not null)
            {
                // Time rows are matched by position, the rest by their dimension values.
                var p = previous.FirstOrDefault(x => NonTimeKey(x, dims) == NonTimeKey(g, dims) && x.BucketIndex == g.BucketIndex);
                var prevValues = p?.Values ?? [.. metrics.Select(Zero)];
                comparison = new Comparison(p?.Dimensions ?? g.Dimensions, prevValues,
                    [.. metrics.Select((m, i) => ChangeOf(m, g.Values[i], prevValues[i]))]);
            }
            rows.Add(new Row(g.Dimensions, g.Values, comparison, g.SortKeys));
        }

        rows = Order(rows, request, metrics, dims, timeDim);
        var page = request["pagination"] as JsonObject;
        int limit = (int?)page?["limit"] ?? 10_000, offset = (int?)page?["offset"] ?? 0;
        return new Answer([.. rows.Skip(offset).Take(limit)], rows.Count, timeLabels, comparisonRange) { Range = (from, to) };
    }

    private static string NonTimeKey(Group g, string[] dims) =>
        string.Join("\u0001", g.Dimensions.Where((_, i) => !dims[i].StartsWith("time:", StringComparison.Ordinal)));

    private static List<Row> Order(List<Row> rows, JsonObject request, string[] metrics, string[] dims, string? timeDim)
    {
        var order = request["order_by"] is JsonArray o
            ? o.Select(x => ((string)x![0]!, (string)x[1]! == "desc")).ToList()
            : timeDim is not null ? [(timeDim, false)] : [(metrics[0], true)];
        // Ties are broken by the dimension values ascending.
        order.AddRange(dims.Select(x => (x, false)));
        IOrderedEnumerable<Row>? sorted = null;
        foreach (var (name, desc) in order)
        {
            int m = Array.IndexOf(metrics, name), d = Array.IndexOf(dims, name);
            Func<Row, object> key = m >= 0 ? r => SortValue(r.Metrics[m]) : r => r.SortKeys[d];
            var comparer = Comparer<object>.Create(CompareKeys);
            sorted = sorted is null
                ? desc ? rows.OrderByDescending(key, comparer) : rows.OrderBy(key, comparer)
                : desc ? sorted.ThenByDescending(key, comparer) : sorted.ThenBy(key, comparer);
        }
        return [.. sorted!];
    }

    private static object SortValue(Expect e) => e switch
    {
        Exact x => (double)x.Value,
        // Metrics order by their rounded values as answered.
        Rounded r => Math.Round(r.Value / r.Unit, MidpointRounding.AwayFromZero) * r.Unit,
        _ => 0.0,
    };

    private static int CompareKeys(object? a, object? b) => (a, b) switch
    {
        (string x, string y) => string.CompareOrdinal(x, y),
        (double x, double y) => x.CompareTo(y),
        (DateTimeOffset x, DateTimeOffset y) => x.CompareTo(y),
        _ => 0,
    };

    // ---------------------------------------------------------------- ranges and buckets

    public static (DateTimeOffset From, DateTimeOffset To) Range(JsonArray range, TimeZoneInfo tz)
    {
        string a = (string)range[0]!, b = (string)range[1]!;
        if (a.Length == 10)
        {
            return (LocalMidnight(DateOnly.ParseExact(a, "yyyy-MM-dd", CultureInfo.InvariantCulture), tz),
                LocalMidnight(DateOnly.ParseExact(b, "yyyy-MM-dd", CultureInfo.InvariantCulture).AddDays(1), tz));
        }
        return (DateTimeOffset.Parse(a, CultureInfo.InvariantCulture), DateTimeOffset.Parse(b, CultureInfo.InvariantCulture));
    }

    /// <summary>"Today" of the named ranges: the host's clock after ingest.</summary>
    public DateTimeOffset Now { get; init; } = DateTimeOffset.UtcNow;

    private (DateTimeOffset From, DateTimeOffset To) Named(string name, TimeZoneInfo tz)
    {
        var today = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(Now, tz).DateTime);
        DateOnly first = name switch
        {
            "day" => today,
            "yesterday" => today.AddDays(-1),
            "7d" => today.AddDays(-6),
            "28d" => today.AddDays(-27),
            "30d" => today.AddDays(-29),
            "month" => new DateOnly(today.Year, today.Month, 1),
            "last_month" => new DateOnly(today.Year, today.Month, 1).AddMonths(-1),
            "6mo" => new DateOnly(today.Year, today.Month, 1).AddMonths(-5),
            "12mo" => new DateOnly(today.Year, today.Month, 1).AddMonths(-11),
            "year" => new DateOnly(today.Year, 1, 1),
            "all" => _humans.Concat(_bots).Select(e => DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(e.At, tz).DateTime)).Min(),
            _ => throw new ArgumentException("the oracle does not know range " + name),
        };
        // 6mo and 12mo are whole months: they end with the end of this month; yesterday and
        // last_month end before today.
        var last = name switch
        {
            "6mo" or "12mo" => new DateOnly(today.Year, today.Month, 1).AddMonths(1).AddDays(-1),
            "yesterday" => today.AddDays(-1),
            // The last day of the month before this one.
            "last_month" => new DateOnly(today.Year, today.Month, 1).AddDays(-1),
            _ => today,
        };
        return (LocalMidnight(first, tz), LocalMidnight(last.AddDays(1), tz));
    }

    public static DateTimeOffset LocalMidnight(DateOnly day, TimeZoneInfo tz)
    {
        var local = day.ToDateTime(TimeOnly.MinValue);
        var utc = TimeZoneInfo.ConvertTimeToUtc(local, tz);
        return new DateTimeOffset(utc, TimeSpan.Zero);
    }

    private static (DateTimeOffset From, DateTimeOffset To) ComparisonRange(JsonObject comparisons, DateTimeOffset from, DateTimeOffset to, TimeZoneInfo tz)
    {
        string mode = (string)comparisons["mode"]!;
        bool matchWeekday = (bool?)comparisons["match_day_of_week"] ?? false;
        var first = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(from, tz).DateTime);
        var last = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(to, tz).DateTime).AddDays(-1);
        int days = last.DayNumber - first.DayNumber + 1;
        DateOnly start, end;
        switch (mode)
        {
            case "previous_period":
                end = first.AddDays(-1);
                start = end.AddDays(-(days - 1));
                // Whole calendar months: as many months before (the contract).
                int months = (last.Year - first.Year) * 12 + last.Month - first.Month + 1;
                if (!matchWeekday && first.Day == 1 && last.AddDays(1).Day == 1) start = first.AddMonths(-months);
                if (matchWeekday)
                {
                    int back = ((int)start.DayOfWeek - (int)first.DayOfWeek + 7) % 7;
                    start = start.AddDays(-back);
                    end = end.AddDays(-back);
                }
                break;
            case "year_over_year":
                start = YearEarlier(first);
                end = YearEarlier(last);
                if (matchWeekday)
                {
                    int back = ((int)start.DayOfWeek - (int)first.DayOfWeek + 7) % 7;
                    start = start.AddDays(-back);
                    end = end.AddDays(-back);
                }
                break;
            default:
                return Range(comparisons["date_range"]!.AsArray(), tz);
        }
        return (LocalMidnight(start, tz), LocalMidnight(end.AddDays(1), tz));
    }

    private static DateOnly YearEarlier(DateOnly d) => d.Month == 2 && d.Day == 29 ? new DateOnly(d.Year - 1, 2, 28) : d.AddYears(-1);

    public sealed record Bucket(string Label, object Key, DateTimeOffset Start);

    /// <summary>The bucket of an instant: its local wall-clock start in the zone. A bucket is
    /// its label: the hour repeated when DST ends (02:00 in Berlin on 2026-10-25) is one bucket
    /// of two real hours, so a row's dimension values stay unique (the contract identifies rows
    /// by them: ties, comparisons) and a 25-hour day has 24 hour labels.</summary>
    public static Bucket BucketOf(DateTimeOffset at, TimeZoneInfo tz, string dim)
    {
        var local = TimeZoneInfo.ConvertTime(at, tz);
        var wall = local.DateTime;
        switch (dim)
        {
            case "time:minute":
            case "time:hour":
                var start = dim == "time:minute" ? new DateTime(wall.Year, wall.Month, wall.Day, wall.Hour, wall.Minute, 0)
                    : new DateTime(wall.Year, wall.Month, wall.Day, wall.Hour, 0, 0);
                var instant = at - (wall - start);
                string label = start.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
                return new Bucket(label, label, instant);
            case "time:day":
                return DayBucket(DateOnly.FromDateTime(wall), tz);
            case "time:week":
                var day = DateOnly.FromDateTime(wall);
                return DayBucket(day.AddDays(-(((int)day.DayOfWeek + 6) % 7)), tz);
            case "time:month":
                return DayBucket(new DateOnly(wall.Year, wall.Month, 1), tz);
            default:
                throw new ArgumentException(dim);
        }
    }

    private static Bucket DayBucket(DateOnly day, TimeZoneInfo tz)
    {
        string label = day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        return new Bucket(label, label, LocalMidnight(day, tz));
    }

    /// <summary>Every bucket of [from, to) in order.</summary>
    public static IEnumerable<Bucket> Buckets(DateTimeOffset from, DateTimeOffset to, TimeZoneInfo tz, string dim)
    {
        var seen = new HashSet<object>();
        var step = dim == "time:minute" ? TimeSpan.FromMinutes(1) : TimeSpan.FromMinutes(30);
        // Walking in steps no longer than the smallest bucket meets every bucket; Kolkata's hours
        // start at :30 UTC, hence 30 minutes for everything above minutes.
        for (var t = from; t < to; t += step)
        {
            var b = BucketOf(t, tz, dim);
            if (seen.Add(b.Key)) yield return b;
        }
    }

    // ---------------------------------------------------------------- groups and metrics

    private sealed record Group(IReadOnlyList<string> Dimensions, IReadOnlyList<Expect> Values, IReadOnlyList<object> SortKeys, object? TimeKey, int BucketIndex);

    private sealed class Scope
    {
        public required List<Ev> InRange;
        public required Dictionary<int, List<Ev>> VisitEvents; // in range, by time
        public required IReadOnlyList<Goal> Goals;
        /// <summary>Every event of each visit, in range or not: visit attributes come from the
        /// visit's first event even when it is before the range (docs/query-api.md, Metrics).</summary>
        public required Dictionary<int, List<Ev>> WholeVisits;
    }

    /// <summary>A site goal (docs/query-api.md, Goals): an event goal completes on a custom event
    /// of that name, a page goal on a pageview whose whole path matches (<c>*</c> any characters
    /// but '/', <c>**</c> any characters); a revenue goal (<paramref name="Currency"/>) only on
    /// events with revenue in that currency.</summary>
    public sealed record Goal(string Name, string Kind, string Match, string? Currency = null)
    {
        private readonly Regex _path = new("^" + string.Concat(Regex.Split(Match, @"(\*\*|\*)").Select(part => part switch
        {
            "**" => ".*",
            "*" => "[^/]*",
            _ => Regex.Escape(part),
        })) + "$");

        public bool CompletedBy(Ev e) => Kind == "page"
            ? e.Name == "pageview" && _path.IsMatch(e.Uri.AbsolutePath)
            : e.Name == Match && e.Name is not ("pageview" or "engagement")
              // A revenue goal completes only on events with revenue in its currency.
              && (Currency is null || (e.E.RevenueMicros != 0 && e.E.Currency == Currency));
    }

    public IReadOnlyList<Goal> Goals { get; init; } = [];

    private static IEnumerable<string> GoalsOf(Ev e, Scope scope) => scope.Goals.Where(g => g.CompletedBy(e)).Select(g => g.Name);

    private List<Group> Groups(DateTimeOffset from, DateTimeOffset to, TimeZoneInfo tz, string[] metrics, string[] dims, JsonArray filters, bool fillBuckets)
    {
        var inRange = _humans.Where(e => e.At >= from && e.At < to).ToList();
        var scope = new Scope { InRange = inRange, VisitEvents = inRange.GroupBy(e => e.Visit).ToDictionary(g => g.Key, g => g.OrderBy(e => e.At).ToList()), Goals = Goals, WholeVisits = _visits };
        var selected = inRange.Where(e => Matches(e, filters, scope)).ToList();
        var bots = metrics.Contains("bots") ? _bots.Where(e => e.At >= from && e.At < to && Matches(e, filters, scope)).ToList() : [];
        string? timeDim = dims.FirstOrDefault(x => x.StartsWith("time:", StringComparison.Ordinal));
        var buckets = timeDim is null ? null : Buckets(from, to, tz, timeDim).ToList();
        long totalVisitors = selected.Select(e => e.Visitor).Distinct().LongCount();

        // Conversion rates are over the visitors of the query without its goal filters (top
        // level), in all (conversion_rate) or in the row's other dimensions (group_conversion_rate).
        var goalFilters = GoalLeaves(filters).ToList();
        // In scope: the goals named by `is` goal filters; with only `is_not` ones, every other goal.
        var scopeGoals = goalFilters.Where(f => (string)f![0]! == "is").SelectMany(f => f![2]!.AsArray().Select(v => (string)v!)).ToHashSet();
        if (scopeGoals.Count == 0 && goalFilters.Count > 0)
        {
            var excluded = goalFilters.SelectMany(f => f![2]!.AsArray().Select(v => (string)v!)).ToHashSet();
            scopeGoals = Goals.Select(g => g.Name).Where(n => !excluded.Contains(n)).ToHashSet();
        }
        var withoutGoals = WithoutGoals(filters);
        var unconverted = inRange.Where(e => Matches(e, withoutGoals, scope)).ToList();
        long unconvertedTotal = unconverted.Select(e => e.Visitor).Distinct().LongCount();
        int goalDim = Array.IndexOf(dims, "goal");

        (string[] Labels, object[] Keys, object? TimeKey) KeyOf(Ev e, string? goal)
        {
            var labels = new string[dims.Length];
            var keys = new object[dims.Length];
            object? timeKey = null;
            for (int i = 0; i < dims.Length; i++)
            {
                if (dims[i].StartsWith("time:", StringComparison.Ordinal))
                {
                    var b = BucketOf(e.At, tz, dims[i]);
                    labels[i] = b.Label;
                    keys[i] = b.Label;
                    timeKey = b.Key;
                }
                else keys[i] = labels[i] = dims[i] == "goal" ? goal! : Value(e, dims[i], scope);
            }
            return (labels, keys, timeKey);
        }

        // With the goal dimension an event is in the row of every goal it completes, and in no row
        // when it completes none.
        IEnumerable<string?> RowGoals(Ev e) => goalDim < 0 ? new string?[] { null } : GoalsOf(e, scope).Cast<string?>();
        var all = selected.Select(e => (e, bot: false)).Concat(bots.Select(e => (e, bot: true)))
            .SelectMany(x => RowGoals(x.e).Select(goal => (x.e, x.bot, goal, key: KeyOf(x.e, goal))))
            .GroupBy(x => string.Join("\u0001", x.key.Labels) + "\u0002" + x.key.TimeKey)
            .ToList();
        string OtherDims(Ev e) => string.Join("\u0001", dims.Select((d, i) => i == goalDim ? "" : KeyOf(e, "").Labels[i]));
        var unconvertedByOthers = unconverted.GroupBy(OtherDims).ToDictionary(g => g.Key, g => g.Select(e => e.Visitor).Distinct().LongCount());
        var groups = all.Select(g =>
        {
            var first = g.First().key;
            var humans = g.Where(x => !x.bot).Select(x => x.e).ToList();
            int index = buckets?.FindIndex(b => b.Key.Equals(first.TimeKey)) ?? -1;
            var inScope = goalDim >= 0 ? [g.First().goal!] : scopeGoals;
            var converted = humans.Where(e => GoalsOf(e, scope).Any(inScope.Contains)).ToList();
            var conversions = new Conversions(converted.Count, converted.Select(e => e.Visitor).Distinct().LongCount(), unconvertedTotal,
                humans.Count == 0 ? 0 : unconvertedByOthers.GetValueOrDefault(OtherDims(humans[0])));
            return new Group(first.Labels, [.. metrics.Select(m => Metric(m, humans, g.Count(x => x.bot), scope, totalVisitors, conversions))], first.Keys, first.TimeKey, index);
        }).ToList();

        if (fillBuckets)
        {
            foreach (var (b, i) in buckets!.Select((b, i) => (b, i)))
            {
                if (groups.Any(g => b.Key.Equals(g.TimeKey))) continue;
                groups.Add(new Group([b.Label], [.. metrics.Select(Zero)], [b.Label], b.Key, i));
            }
        }
        return groups;
    }

    private static Expect Zero(string metric) => metric switch
    {
        "visitors" or "visits" or "pageviews" or "events" or "bots" or "conversions" => new Exact(0),
        "total_revenue" or "average_revenue" => new PerCurrency(new Dictionary<string, Rounded>()),
        _ => new Rounded(0, Unit(metric), Undefined: true),
    };

    private static double Unit(string metric) => metric switch
    {
        "views_per_visit" => 0.01,
        "visit_duration" => 1,
        _ => 0.1,
    };

    private sealed record Conversions(long Events, long Visitors, long AllVisitors, long RowVisitors);

    private static Expect Metric(string metric, List<Ev> events, long bots, Scope scope, long totalVisitors, Conversions conversions)
    {
        List<List<Ev>> Visits() => [.. events.Select(e => e.Visit).Distinct().Select(v => scope.VisitEvents[v])];
        long pageviews = events.Count(e => e.Name == "pageview");
        switch (metric)
        {
            case "visitors": return new Exact(events.Select(e => e.Visitor).Distinct().LongCount());
            case "visits": return new Exact(events.Select(e => e.Visit).Distinct().LongCount());
            case "pageviews": return new Exact(pageviews);
            case "events": return new Exact(events.LongCount(e => e.Name != "engagement"));
            case "bots": return new Exact(bots);
            case "views_per_visit":
            {
                var visits = Visits();
                return Ratio(visits.Sum(v => v.Count(e => e.Name == "pageview")), visits.Count, 0.01);
            }
            case "bounce_rate":
            {
                var visits = Visits();
                int bounced = visits.Count(v => v.Count(e => e.Name == "pageview") <= 1 && !v.Any(e => e.Name is not ("pageview" or "engagement")));
                return Ratio(100.0 * bounced, visits.Count, 0.1);
            }
            case "visit_duration":
            {
                var visits = Visits();
                return Ratio(visits.Sum(v => (v[^1].At - v[0].At).TotalSeconds), visits.Count, 1);
            }
            case "time_on_page":
                return Ratio(events.Where(e => e.Name == "engagement").Sum(e => (double)e.E.EngagementMs) / 1000, pageviews, 0.1);
            case "conversions": return new Exact(conversions.Events);
            case "conversion_rate": return Ratio(100.0 * conversions.Visitors, conversions.AllVisitors, 0.1);
            case "group_conversion_rate": return Ratio(100.0 * conversions.Visitors, conversions.RowVisitors, 0.1);
            case "percentage":
                return Ratio(100.0 * events.Select(e => e.Visitor).Distinct().Count(), totalVisitors, 0.1);
            case "total_revenue":
                return new PerCurrency(events.Where(e => e.E.RevenueMicros != 0).GroupBy(e => e.E.Currency)
                    .ToDictionary(g => g.Key, g => new Rounded(g.Sum(e => e.E.RevenueMicros) / 1e6, 0.000001)));
            case "average_revenue":
                return new PerCurrency(events.Where(e => e.E.RevenueMicros != 0).GroupBy(e => e.E.Currency)
                    .ToDictionary(g => g.Key, g => new Rounded(g.Sum(e => e.E.RevenueMicros) / 1e6 / g.Count(), 0.01)));
            default:
                throw new ArgumentException("the oracle does not know metric " + metric);
        }
    }

    private static Rounded Ratio(double numerator, double denominator, double unit) =>
        denominator == 0 ? new Rounded(0, unit, Undefined: true) : new Rounded(numerator / denominator, unit);

    private static readonly HashSet<string> PointMetrics = ["bounce_rate", "percentage", "conversion_rate", "group_conversion_rate"];

    private static Expect ChangeOf(string metric, Expect current, Expect previous)
    {
        if (current is PerCurrency c && previous is PerCurrency p)
        {
            return new ChangePerCurrency(c.Values.Keys.Union(p.Values.Keys).ToDictionary(k => k, k => ChangeOf(metric,
                c.Values.GetValueOrDefault(k) ?? new Rounded(0, 0.01), p.Values.GetValueOrDefault(k) ?? new Rounded(0, 0.01)) as Change ?? new Change([null])));
        }
        // A rate of nothing (its denominator 0) has no change in points (the contract).
        if (PointMetrics.Contains(metric) && (current is Rounded { Undefined: true } || previous is Rounded { Undefined: true })) return new Change([null]);
        var cur = Candidates(current);
        var prev = Candidates(previous);
        var results = new List<double?>();
        foreach (var a in cur)
        {
            foreach (var b in prev)
            {
                if (PointMetrics.Contains(metric)) results.Add(a - b);
                else results.Add(b == 0 ? null : (a - b) / b * 100);
            }
        }
        return new Change(results);
    }

    /// <summary>A metric's exact value and its possible rounded values.</summary>
    private static List<double> Candidates(Expect e) => e switch
    {
        Exact x => [x.Value],
        Rounded r => [r.Value, Math.Round(r.Value / r.Unit, MidpointRounding.AwayFromZero) * r.Unit, Math.Round(r.Value / r.Unit, MidpointRounding.ToEven) * r.Unit],
        _ => [0],
    };

    // ---------------------------------------------------------------- dimensions and filters

    private static readonly HashSet<string> VisitDimensions =
        ["entry_page", "exit_page", "source", "referrer", "channel", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term",
         "country", "region", "city", "device", "browser", "browser_version", "os", "os_version"];

    public static bool IsVisitDimension(string dim) => VisitDimensions.Contains(dim);

    private static string Value(Ev e, string dim, Scope scope)
    {
        if (VisitDimensions.Contains(dim)) return VisitValue(scope.WholeVisits[e.Visit], dim);
        return dim switch
        {
            "page" => e.Uri.AbsolutePath,
            "hostname" => e.Uri.Host.StartsWith("www.", StringComparison.Ordinal) ? e.Uri.Host[4..] : e.Uri.Host,
            "event" => e.Name,
            _ when dim.StartsWith("props:", StringComparison.Ordinal) =>
                e.E.Props.FirstOrDefault(p => p.Key == dim[6..]).Value ?? "",
            _ => throw new ArgumentException("the oracle does not know dimension " + dim),
        };
    }

    private static string VisitValue(List<Ev> visit, string dim)
    {
        var first = visit[0];
        var client = first.P.Client!;
        var place = first.P.Place;
        // A visit cut by UTC midnight (where the visitor id changes) begins with an inner event:
        // an internal or empty referrer, so Direct unless its URL is the landing page's with a
        // campaign.
        var arrival = first.E.Arrival
            // An inner event on the landing page carries the landing URL, campaign query included.
            ?? Dataset.Arrivals.FirstOrDefault(a => a.Query.Length > 0 && first.E.Url.EndsWith(a.Query, StringComparison.Ordinal))
            ?? Dataset.Arrivals[0];
        var pageviews = visit.Where(e => e.Name == "pageview").ToList();
        return dim switch
        {
            "entry_page" => pageviews.Count > 0 ? pageviews[0].Uri.AbsolutePath : "",
            "exit_page" => pageviews.Count > 0 ? pageviews[^1].Uri.AbsolutePath : "",
            "source" => arrival.Source,
            "referrer" => first.E.Referrer,
            "channel" => arrival.Channel,
            "utm_source" => arrival.UtmSource,
            "utm_medium" => arrival.UtmMedium,
            "utm_campaign" => arrival.UtmCampaign,
            "utm_content" => arrival.UtmContent,
            "utm_term" => arrival.UtmTerm,
            "country" => place.Country,
            "region" => place.Region,
            "city" => place.City,
            "device" => client.Device,
            "browser" => client.Browser,
            "browser_version" => client.BrowserVersion,
            "os" => client.Os,
            "os_version" => client.OsVersion,
            _ => throw new ArgumentException(dim),
        };
    }

    private static bool IsGoalLeaf(JsonNode? f) => f is JsonArray a && a.Count > 2 && (string?)a[0] is not ("and" or "or" or "not") && (string?)a[1] == "goal";

    /// <summary>The goal filters anywhere in the tree.</summary>
    private static IEnumerable<JsonNode> GoalLeaves(JsonArray filters) => filters.SelectMany(f => f switch
    {
        _ when IsGoalLeaf(f) => [f!],
        JsonArray a when (string?)a[0] is "and" or "or" => GoalLeaves(a[1]!.AsArray()),
        JsonArray a when (string?)a[0] == "not" => GoalLeaves([a[1]!.DeepClone()]),
        _ => [],
    });

    /// <summary>The filter tree with every goal filter removed; an and/or left empty, or a not
    /// left without its filter, disappears too.</summary>
    private static JsonArray WithoutGoals(JsonArray filters)
    {
        var kept = new JsonArray();
        foreach (var f in filters)
        {
            if (IsGoalLeaf(f)) continue;
            var a = f!.AsArray();
            switch ((string?)a[0])
            {
                case "and" or "or":
                    var inner = WithoutGoals(a[1]!.AsArray());
                    if (inner.Count > 0) kept.Add(new JsonArray((string)a[0]!, inner));
                    break;
                case "not":
                    var sub = WithoutGoals([a[1]!.DeepClone()]);
                    if (sub.Count > 0) kept.Add(new JsonArray("not", sub[0]!.DeepClone()));
                    break;
                default:
                    kept.Add(f.DeepClone());
                    break;
            }
        }
        return kept;
    }

    private static bool Matches(Ev e, JsonArray filters, Scope scope) => filters.All(f => Holds(e, f!.AsArray(), scope));

    private static bool Holds(Ev e, JsonArray filter, Scope scope)
    {
        string op = (string)filter[0]!;
        switch (op)
        {
            case "and": return filter[1]!.AsArray().All(f => Holds(e, f!.AsArray(), scope));
            case "or": return filter[1]!.AsArray().Any(f => Holds(e, f!.AsArray(), scope));
            case "not": return !Holds(e, filter[1]!.AsArray(), scope);
        }
        string dim = (string)filter[1]!;
        if (dim == "goal")
        {
            var completed = GoalsOf(e, scope).ToList();
            bool any = filter[2]!.AsArray().Any(v => completed.Contains((string)v!));
            return op == "is" ? any : !any;
        }
        // Bots have no visits: a visit filter never selects them (the API refuses the query anyway).
        if (e.Visit < 0 && VisitDimensions.Contains(dim)) return false;
        string value = Value(e, dim, scope);
        string[] values = [.. filter[2]!.AsArray().Select(v => (string)v!)];
        bool caseSensitive = filter.Count < 4 || ((bool?)filter[3]!["case_sensitive"] ?? true);
        var comparison = caseSensitive ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase;
        var options = caseSensitive ? RegexOptions.None : RegexOptions.IgnoreCase;
        return op switch
        {
            "is" => values.Any(v => string.Equals(value, v, comparison)),
            "is_not" => !values.Any(v => string.Equals(value, v, comparison)),
            "contains" => values.Any(v => value.Contains(v, comparison)),
            "contains_not" => !values.Any(v => value.Contains(v, comparison)),
            "matches" => values.Any(v => Regex.IsMatch(value, v, options)),
            "matches_not" => !values.Any(v => Regex.IsMatch(value, v, options)),
            _ => throw new ArgumentException("the oracle does not know operator " + op),
        };
    }
}
