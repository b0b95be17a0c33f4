using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Analytics.Store;

namespace Analytics.QueryService.Query;

/// <summary>
/// Runs a <see cref="NormalQuery"/> and shapes the answer of docs/query-api.md ("Response"):
/// raw rows from <see cref="QuerySql.Build"/>, the share and conversion-rate denominators from
/// the same pipeline (the query without dimensions, or without its goal parts), metrics rounded
/// as documented, empty time buckets filled, rows ordered (ties by the dimension values
/// ascending) and paged, comparison rows matched (time rows by position).
/// Ratios with a zero denominator are 0.
/// </summary>
public sealed class QueryEngine(IColumnStore store, string database)
{
    /// <summary>Seconds ClickHouse may spend on one statement; settable for tests of the 503.</summary>
    public double MaxExecutionSeconds { get; set; } = QuerySql.MaxExecutionSeconds;

    public string Database => database;

    /// <summary>A statement ran past <see cref="MaxExecutionSeconds"/> (503 + Retry-After).</summary>
    public sealed class QueryTimeoutException(Exception inner) : Exception("The query ran too long.", inner);

    /// <summary>One group of the raw answer: dimension labels and the raw columns of <see cref="QuerySql.RawColumns"/>.
    /// Its arrays and maps may be shared with kept numbers (DailyRowsCache): read them, never change them.
    /// <paramref name="Filled"/>: an empty time bucket filled in, whose rates divide by nothing (undefined:
    /// no change is computed from or to them).</summary>
    public sealed record RawRow(string[] Dimensions, long[] Counts, IReadOnlyDictionary<string, long> Revenue, IReadOnlyDictionary<string, long> RevenueEvents,
        bool Filled = false);

    private static readonly IReadOnlyDictionary<string, long> NoRevenue = System.Collections.Frozen.FrozenDictionary<string, long>.Empty;

    /// <summary>
    /// A result row: its sort values (each metric as a number, null for revenue maps) at once,
    /// its metrics' JSON and which rates are undefined (a denominator of 0: shown as 0, but no
    /// change is computed from or to them) only when first read. Made only for the rows a page
    /// shows, compares or may rank (<see cref="Rows"/>).
    /// </summary>
    private sealed class Row(string[] dimensions, RawRow raw, IReadOnlyList<string> metricNames, long totalVisitors, long conversionBase, long groupVisitors)
    {
        private JsonNode?[]? _metrics;
        private bool[]? _undefined;

        public string[] Dimensions => dimensions;

        public decimal?[] SortValues { get; } = Numbers(metricNames, raw, totalVisitors, conversionBase, groupVisitors);

        public JsonNode?[] Metrics => _metrics ??= [.. metricNames.Select((m, i) => Json(m, SortValues[i], raw))];

        public bool[] Undefined => _undefined ??= [.. metricNames.Select(m => RateDenominator(m, raw, totalVisitors, conversionBase, groupVisitors) == 0)];

        private static decimal?[] Numbers(IReadOnlyList<string> metricNames, RawRow raw, long totalVisitors, long conversionBase, long groupVisitors)
        {
            var numbers = new decimal?[metricNames.Count];
            for (int i = 0; i < numbers.Length; i++) numbers[i] = Number(metricNames[i], raw, totalVisitors, conversionBase, groupVisitors);
            return numbers;
        }
    }

    /// <summary>
    /// Every raw row of a question with what its metrics divide by, before order and pages. A
    /// top list ranks every value but shows a page of them: the largest test merchant's top pages
    /// rank 20,000 pages, and a <see cref="Row"/> for each (its sort values, later its JSON) was
    /// most of what a question allocated after its statements (docs/query-performance.md), so
    /// rows are made only where <see cref="Page"/> needs them.
    /// </summary>
    private sealed class Rows(List<RawRow> raw, IReadOnlyList<string> metrics, long totalVisitors, long conversionBase,
        Dictionary<string, long>? groupBase, int[] nonGoal)
    {
        public List<RawRow> Raw { get; set; } = raw;

        public Row Make(RawRow r) => r.Filled ? new(r.Dimensions, r, metrics, 0, 0, 0)
            : new(r.Dimensions, r, metrics, totalVisitors, conversionBase, GroupVisitors(r));

        /// <summary>What <see cref="Row.SortValues"/> holds at <paramref name="metric"/>, without the row.</summary>
        public decimal? Number(int metric, RawRow r) => r.Filled ? QueryEngine.Number(metrics[metric], r, 0, 0, 0)
            : QueryEngine.Number(metrics[metric], r, totalVisitors, conversionBase, metrics[metric] == "group_conversion_rate" ? GroupVisitors(r) : 0);

        private long GroupVisitors(RawRow r) => groupBase is null ? 0 : groupBase.GetValueOrDefault(string.Join('\u0001', nonGoal.Select(i => r.Dimensions[i])));
    }

    public async Task<DateTimeOffset?> FirstEventAsync(long merchantId, long siteId, CancellationToken ct)
    {
        var rows = await RunAsync(QuerySql.FirstEvent(merchantId, siteId, database), ct);
        return rows.Count == 0 || rows[0][1].GetInt64() == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(rows[0][0].GetInt64());
    }

    public async Task<string?> RegexErrorAsync(string pattern, CancellationToken ct)
    {
        try
        {
            await store.QueryRowsAsync(QuerySql.RegexCheck(pattern), ct);
            return null;
        }
        catch (Exception e) when (e.Message.Contains("CANNOT_COMPILE_REGEXP", StringComparison.Ordinal) || e.Message.Contains("Code: 427.", StringComparison.Ordinal))
        {
            string message = e.Message;
            int at = message.IndexOf("DB::Exception: ", StringComparison.Ordinal);
            if (at >= 0) message = message[(at + 15)..];
            int end = message.IndexOf(" (CANNOT_COMPILE_REGEXP)", StringComparison.Ordinal);
            return end > 0 ? message[..end] : message;
        }
    }

    public async Task<bool> EngineKnowsZoneAsync(string zone, CancellationToken ct)
    {
        try
        {
            await store.QueryRowsAsync($"SELECT toTimeZone(toDateTime(0, 'UTC'), {ClickHouseSql.StringLiteral(zone)})", ct);
            return true;
        }
        catch (Exception e) when (e.Message.Contains("BAD_ARGUMENTS", StringComparison.Ordinal) || e.Message.Contains("Code: 36.", StringComparison.Ordinal)
            || e.Message.Contains("CANNOT_LOAD_TIMEZONE", StringComparison.Ordinal))
        {
            return false;
        }
    }

    public async Task<JsonObject> AnswerAsync(NormalQuery q, CancellationToken ct)
    {
        // The comparison range's statements run beside the query's own (see ComputeAsync).
        var computing = ComputeAsync(q, asked: true, ct);
        var comparing = q.Comparison is { } range ? ComputeAsync(q with { From = range.From, To = range.To, Comparison = null }, asked: false, ct) : null;
        await Task.WhenAll(comparing is null ? [computing] : [computing, comparing]);
        var rows = await computing;
        var labels = q.TimeDimension is { } time ? TimeBuckets.Labels(q.From, q.To, q.TimeZone, time.Argument!) : null;
        if (q.TimeLabels && q.Dimensions.Count == 1 && labels is not null)
        {
            var byLabel = rows.Raw.ToDictionary(r => r.Dimensions[0]);
            rows.Raw = labels.Select(l => byLabel.TryGetValue(l, out var r) ? r : ZeroRaw([l])).ToList();
        }
        var page = Page(rows, q, q.Offset, q.Limit);

        var results = new JsonArray();
        Dictionary<string, RawRow>? comparison = null;
        Rows? compared = null;
        List<string>? comparisonLabels = null;
        if (q.Comparison is { } c)
        {
            comparisonLabels = q.TimeDimension is { } t ? TimeBuckets.Labels(c.From, c.To, q.TimeZone, t.Argument!) : null;
            comparison = new Dictionary<string, RawRow>();
            compared = await comparing!;
            foreach (var row in compared.Raw) comparison.TryAdd(MatchKey(q, row.Dimensions, comparisonLabels), row);
        }
        foreach (var row in page)
        {
            var item = new JsonObject
            {
                ["dimensions"] = new JsonArray(row.Dimensions.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
                ["metrics"] = new JsonArray(row.Metrics.Select(m => m?.DeepClone()).ToArray()),
            };
            if (comparison is not null)
            {
                string key = MatchKey(q, row.Dimensions, labels);
                var other = comparison.TryGetValue(key, out var found) ? compared!.Make(found) : ZeroRow(q, ComparisonDimensions(q, row.Dimensions, labels, comparisonLabels));
                item["comparison"] = new JsonObject
                {
                    ["dimensions"] = new JsonArray(other.Dimensions.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
                    ["metrics"] = new JsonArray(other.Metrics.Select(m => m?.DeepClone()).ToArray()),
                    ["change"] = new JsonArray(q.Metrics.Select((m, i) => Change(m, row, other, i)).ToArray()),
                };
            }
            results.Add(item);
        }

        var meta = new JsonObject { ["total_rows"] = rows.Raw.Count };
        if (q.TimeLabels && labels is not null) meta["time_labels"] = new JsonArray(labels.Select(l => (JsonNode?)JsonValue.Create(l)).ToArray());
        if (q.Comparison is { } cr) meta["comparison_date_range"] = new JsonArray(Local(cr.From, q.TimeZone), Local(cr.To, q.TimeZone));
        return new JsonObject { ["results"] = results, ["meta"] = meta, ["query"] = Echo(q) };
    }

    /// <summary>Every row of the query with its metrics, before order and pages.</summary>
    /// <remarks>The denominators' statements are independent of the rows' and run beside them,
    /// each on an engine session of its own (ChDbEngine): a question costs about its slowest
    /// statement instead of the sum of all of them. The engine's per-statement floor (~2 ms of
    /// CPU for SELECT 1) and a typical merchant's pre-aggregated answer (~10-15 ms) are of the
    /// same order, so questions with a share, a conversion rate or a comparison gain most
    /// (measured: docs/query-performance.md, "Where a question's time goes").</remarks>
    private async Task<Rows> ComputeAsync(NormalQuery q, bool asked, CancellationToken ct)
    {
        var withoutGoals = WithoutGoals(q.Filter);
        int[] nonGoal = q.Dimensions.Select((d, i) => (d, i)).Where(x => x.d.Kind != DimensionKind.Goal).Select(x => x.i).ToArray();
        var rawTask = RawAsync(q, ct, asked);
        var totalTask = q.Metrics.Contains("percentage") ? RawAsync(q with { Dimensions = [], Metrics = ["visitors"] }, ct) : null;
        var conversionTask = q.Metrics.Contains("conversion_rate") ? RawAsync(q with { Dimensions = [], Metrics = ["visitors"], Filter = withoutGoals }, ct) : null;
        var groupTask = q.Metrics.Contains("group_conversion_rate")
            ? RawAsync(q with { Dimensions = nonGoal.Select(i => q.Dimensions[i]).ToList(), Metrics = ["visitors"], Filter = withoutGoals }, ct)
            : null;
        // WhenAll observes every failure (none is left unobserved) and throws the first.
        await Task.WhenAll(new[] { rawTask, totalTask, conversionTask, groupTask }.OfType<Task>());
        var raw = await rawTask;
        long totalVisitors = totalTask is null ? 0 : (await totalTask).FirstOrDefault()?.Counts[0] ?? 0;
        long conversionBase = conversionTask is null ? 0 : (await conversionTask).FirstOrDefault()?.Counts[0] ?? 0;
        var groupBase = groupTask is null ? null : (await groupTask).ToDictionary(r => string.Join('\u0001', r.Dimensions), r => r.Counts[0]);
        return new Rows(raw, q.Metrics, totalVisitors, conversionBase, groupBase, nonGoal);
    }

    /// <summary>
    /// Rows [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="limit"/>) of
    /// <paramref name="rows"/> in the query's order. A page that is a small part of the rows (a
    /// top 10 of 20,000 pages) ordered first by a metric is picked without a <see cref="Row"/>
    /// for every row: the first offset + limit values of that metric are found with a heap of
    /// their size, and only the rows at least as far up as the last of them (every row of the
    /// page is: a row further down has offset + limit rows before it) are made and sorted. The
    /// same rows as sorting them all, since the order is total (its last terms are the row's
    /// dimensions, unique per row).
    /// </summary>
    private static List<Row> Page(Rows rows, NormalQuery q, int offset, int limit)
    {
        if (limit <= 0) return [];
        var order = Comparer(q);
        var raw = rows.Raw;
        long first = (long)offset + limit;
        int metric = q.OrderBy.Count == 0 ? -1 : IndexOf(q.Metrics, q.OrderBy[0].Key);
        if (first * 4 >= raw.Count || metric < 0)
        {
            var all = raw.ConvertAll(rows.Make);
            all.Sort(order);
            return all.Skip(offset).Take(limit).ToList();
        }
        bool descending = q.OrderBy[0].Descending;
        // Negative: x comes before y in the query's order of that metric.
        int Before(decimal? x, decimal? y) => descending ? Nullable.Compare(y, x) : Nullable.Compare(x, y);
        var values = ArrayPool<decimal?>.Shared.Rent(raw.Count);
        try
        {
            // The heap's top is the last of the first values kept so far.
            var kept = new PriorityQueue<decimal?, decimal?>((int)first + 1, Comparer<decimal?>.Create((x, y) => Before(y, x)));
            for (int i = 0; i < raw.Count; i++)
            {
                var value = values[i] = rows.Number(metric, raw[i]);
                if (kept.Count < first) kept.Enqueue(value, value);
                else if (Before(value, kept.Peek()) < 0) kept.DequeueEnqueue(value, value);
            }
            var last = kept.Peek();
            var candidates = new List<Row>();
            for (int i = 0; i < raw.Count; i++)
                if (Before(values[i], last) <= 0) candidates.Add(rows.Make(raw[i]));
            candidates.Sort(order);
            return candidates.Skip(offset).Take(limit).ToList();
        }
        finally
        {
            ArrayPool<decimal?>.Shared.Return(values);
        }
    }

    private static int IndexOf(IReadOnlyList<string> list, string key)
    {
        for (int i = 0; i < list.Count; i++) if (list[i] == key) return i;
        return -1;
    }

    /// <summary>A metric as a number (what rows sort by), or null for the revenue maps.</summary>
    private static decimal? Number(string metric, RawRow r, long totalVisitors, long conversionBase, long groupVisitors)
    {
        long[] c = r.Counts;
        long visitors = c[0], visits = c[1], pageviews = c[2];
        return metric switch
        {
            "visitors" => visitors,
            "visits" => visits,
            "pageviews" => pageviews,
            "events" => c[3],
            "bots" => c[5],
            "views_per_visit" => Ratio(c[6], visits, 1, 2),
            "bounce_rate" => Ratio(c[7], visits, 100, 1),
            "visit_duration" => Ratio(c[8], visits, 0.001m, 0),
            "time_on_page" => Ratio(c[4], pageviews, 0.001m, 1),
            "percentage" => Ratio(visitors, totalVisitors, 100, 1),
            "conversions" => c[9],
            "conversion_rate" => Ratio(c[10], conversionBase, 100, 1),
            "group_conversion_rate" => Ratio(c[10], groupVisitors, 100, 1),
            _ => null,
        };
    }

    /// <summary>A metric's JSON: <paramref name="number"/> (<see cref="Number"/>), or the revenue map per currency.</summary>
    private static JsonNode? Json(string metric, decimal? number, RawRow r)
    {
        if (number is { } n) return n == decimal.Truncate(n) && metric is "visitors" or "visits" or "pageviews" or "events" or "bots" or "conversions" ? JsonValue.Create((long)n) : JsonValue.Create(n);
        var money = new JsonObject();
        foreach (var (currency, micros) in r.Revenue.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            decimal units = micros / 1_000_000m;
            money[currency] = metric == "total_revenue" ? units : Math.Round(units / Math.Max(1, r.RevenueEvents.GetValueOrDefault(currency)), 2, MidpointRounding.AwayFromZero);
        }
        return money;
    }

    /// <summary>What a rate in points divides by; -1 for metrics that are no such rate.</summary>
    private static long RateDenominator(string metric, RawRow r, long totalVisitors, long conversionBase, long groupVisitors) => metric switch
    {
        "bounce_rate" => r.Counts[1],
        "percentage" => totalVisitors,
        "conversion_rate" => conversionBase,
        "group_conversion_rate" => groupVisitors,
        _ => -1,
    };

    private static decimal Ratio(long numerator, long denominator, decimal scale, int decimals) =>
        denominator == 0 ? 0 : Math.Round(numerator * scale / denominator, decimals, MidpointRounding.AwayFromZero);

    private static Row ZeroRow(NormalQuery q, string?[] dimensions) => new(dimensions!, ZeroRaw([.. dimensions.Select(d => d ?? "")]), q.Metrics, 0, 0, 0);

    private static RawRow ZeroRaw(string[] dimensions) => new(dimensions, new long[QuerySql.RawColumns.Length], NoRevenue, NoRevenue, Filled: true);

    /// <summary>How long each table keeps its rows: ranges older than the enriched events' horizon
    /// are answered from the dimension rollup or refused (RetentionPlanner).</summary>
    public RetentionPolicy Retention { get; init; } = RetentionPolicy.KeepEverything;

    /// <summary>"Now" for the retention horizons.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>Where the enriched events' retention starts now (null: kept forever).</summary>
    public DateTimeOffset? EnrichedKeptFrom => Retention.KeptFrom(RetentionPolicy.EventsEnriched, Clock.GetUtcNow());

    /// <summary>Answer from the pre-aggregates where they answer exactly (PreAggregates/, the
    /// planner in front of QuerySql); off only to measure or test the scan on its own.</summary>
    public bool UsePreAggregates { get; set; } = true;

    /// <summary>
    /// The count of generation activations when every one goes through this process (the embedded
    /// engine): each site's active generations are then read once and kept until the count moves
    /// (ActiveGenerationCache), not read by every statement. Null (a ClickHouse server, where
    /// other processes activate): every statement reads them.
    /// </summary>
    public GenerationActivations? GenerationActivations
    {
        get => _generations?.Activations;
        init => _generations = value is null ? null : new PreAggregates.ActiveGenerationCache(database, value);
    }

    private readonly PreAggregates.ActiveGenerationCache? _generations;

    /// <summary>
    /// The site-days this process writes (Rollup announces them) when every write goes through it
    /// (the embedded engine, with <see cref="GenerationActivations"/>): the rollups' questions
    /// are then answered from numbers kept per UTC day (DailyRowsCache). Null: read every time.
    /// </summary>
    public SiteDayWrites? SiteDayWrites { get; init; }

    private PreAggregates.DailyRowsCache? _dailyRows;

    /// <summary>The kept per-day numbers, when <see cref="SiteDayWrites"/> and <see cref="GenerationActivations"/> are given.</summary>
    public PreAggregates.DailyRowsCache? DailyRows => _generations is null || SiteDayWrites is null ? null
        : LazyInitializer.EnsureInitialized(ref _dailyRows, () => new PreAggregates.DailyRowsCache(database, SiteDayWrites, _generations.Activations));

    private PreAggregates.KeptVisits? _keptVisits;

    /// <summary>A large site's day kept one row per visit for the visit rollup's questions, under
    /// the same conditions as <see cref="DailyRows"/>.</summary>
    public PreAggregates.KeptVisits? KeptVisits => _generations is null || SiteDayWrites is null ? null
        : LazyInitializer.EnsureInitialized(ref _keptVisits, () => new PreAggregates.KeptVisits(database, SiteDayWrites, _generations.Activations));

    private PreAggregates.KeptEventValues? _keptEventValues;

    /// <summary>A large site's day kept per value of an event dimension for the dimension rollup's
    /// questions, under the same conditions as <see cref="DailyRows"/>.</summary>
    public PreAggregates.KeptEventValues? KeptEventValues => _generations is null || SiteDayWrites is null ? null
        : LazyInitializer.EnsureInitialized(ref _keptEventValues, () => new PreAggregates.KeptEventValues(database, SiteDayWrites, _generations.Activations));

    private PreAggregates.KeptFunnelVisitors? _keptFunnelVisitors;

    /// <summary>A large site's day of a funnel kept per visitor, under the same conditions as
    /// <see cref="DailyRows"/>.</summary>
    public PreAggregates.KeptFunnelVisitors? KeptFunnelVisitors => _generations is null || SiteDayWrites is null ? null
        : LazyInitializer.EnsureInitialized(ref _keptFunnelVisitors, () => new PreAggregates.KeptFunnelVisitors(database, SiteDayWrites, _generations.Activations));

    private PreAggregates.KeptGoalVisitors? _keptGoalVisitors;

    /// <summary>A large site's day of a goal question kept per goal, under the same conditions as
    /// <see cref="DailyRows"/>.</summary>
    public PreAggregates.KeptGoalVisitors? KeptGoalVisitors => _generations is null || SiteDayWrites is null ? null
        : LazyInitializer.EnsureInitialized(ref _keptGoalVisitors, () => new PreAggregates.KeptGoalVisitors(database, SiteDayWrites, _generations.Activations));

    /// <summary>
    /// The one place a normalised query becomes raw rows (every statement of a query, the
    /// denominators' included, comes through here): the pre-aggregate planner answers where it
    /// can exactly (same <see cref="NormalQuery"/> in, same raw columns, <see cref="QuerySql.RawColumns"/>,
    /// out), <see cref="QuerySql.Build"/> otherwise.
    /// </summary>
    /// <param name="asked">The rows of the range the question asked (not a comparison's or a
    /// denominator's): their visits may update the site's size estimate.</param>
    public async Task<List<RawRow>> RawAsync(NormalQuery q, CancellationToken ct, bool asked = false)
    {
        bool enrichedCovers = RetentionPlanner.EnrichedCovers(q, Retention, Clock.GetUtcNow());
        // Days a pre-aggregate lacks (stored before it existed, on an upgraded database) are never
        // read from it. Asked only when a plan exists, so a query that scans pays nothing.
        IReadOnlySet<string>? uncovered = null;
        IReadOnlyDictionary<DateOnly, ulong>? known = null;
        long activations = 0;
        if ((UsePreAggregates || !enrichedCovers) && PreAggregates.NormalQueryPlanner.TryPlanRaw(q, database, MaxExecutionSeconds, out _) is not null)
        {
            // The kept active generations only if no activation runs now, asked before anything
            // else of the question is read (the coverage too reads generations).
            bool quiet = _generations is not null && _generations.Activations.TryQuiet(out activations);
            uncovered = await UncoveredAsync(q, ct);
            if (quiet) known = await _generations!.GetAsync(q.MerchantId, q.SiteId, activations, RunAsync, ct);
        }
        bool largeSite = IsLargeSite(q);
        // Days the dimension rollup's retention is deleting are never kept: their rows go without
        // a write anyone announces.
        if (known is not null && enrichedCovers && UsePreAggregates && DailyRows is { } daily
            && (q.To - q.From).TotalDays <= PreAggregates.DailyRowsCache.MaxDays
            && !(Retention.KeptFrom(RetentionPolicy.RollupDimensions, Clock.GetUtcNow()) is { } dimensionsFrom && q.From < dimensionsFrom)
            && DailyForm(q, uncovered, known, activations, largeSite, ct) is var (shape, onlyValues, read, readWritten))
        {
            var sums = await daily.SumAsync(q.MerchantId, q.SiteId, shape, onlyValues, DayBucket(q.TimeDimension),
                DateOnly.FromDateTime(q.From.UtcDateTime), DateOnly.FromDateTime(q.To.UtcDateTime), known, activations, read, readWritten);
            if (sums is not null)
            {
                var summed = DailyRaw(q, sums);
                if (asked) NoteSiteSize(q, summed);
                return summed;
            }
            // An activation started meanwhile: asked the usual way, which reads the generations itself then.
            known = null;
        }
        string? Plan(IReadOnlyDictionary<DateOnly, ulong>? generations) => enrichedCovers
            ? (UsePreAggregates ? PreAggregates.NormalQueryPlanner.TryPlanRaw(q, database, MaxExecutionSeconds, out _, uncovered, generations, largeSite) : null)
            : RetentionPlanner.PlanOrRefuse(q, database, MaxExecutionSeconds, Retention, Clock.GetUtcNow(), uncovered, generations, largeSite);
        string? planned = Plan(known);
        var rows = await RunAsync(planned ?? QuerySql.Build(q, database, MaxExecutionSeconds), ct);
        if (known is not null && _generations!.Activations.Started != activations)
        {
            // An activation started before the statement finished (it may have waited for an
            // engine session): reprocessing may have deleted the rows of the generations it was
            // given by then. Asked again with each statement reading the generations itself.
            planned = Plan(null);
            rows = await RunAsync(planned ?? QuerySql.Build(q, database, MaxExecutionSeconds), ct);
        }
        int n = q.Dimensions.Count, counts = QuerySql.RawColumns.Length - 2;
        // Rollup rows written before migration 012 hold no revenue or pageview visitors: scan.
        if (planned is not null && !PreAggregates.GoalRevenuePlanner.Complete(rows, n, QuerySql.RawColumns.Length))
        {
            if (!enrichedCovers) throw RetentionPlanner.NotHeld(q, Retention, Clock.GetUtcNow());
            rows = await RunAsync(QuerySql.Build(q, database, MaxExecutionSeconds), ct);
        }
        var result = new List<RawRow>(rows.Count);
        foreach (var row in rows)
        {
            var dims = new string[n];
            for (int i = 0; i < n; i++) dims[i] = row[i].ValueKind == JsonValueKind.String ? row[i].GetString()! : row[i].GetRawText();
            var values = new long[counts];
            for (int i = 0; i < counts; i++) values[i] = ReadLong(row[n + i]);
            result.Add(new RawRow(dims, values, ReadMap(row[n + counts]), ReadMap(row[n + counts + 1])));
        }
        if (asked) NoteSiteSize(q, result);
        return result;
    }

    /// <summary>
    /// A question of the enriched events that adds up per UTC day but is not one of the
    /// pre-aggregates' (a funnel: a visitor id lives one UTC day, so each visitor's steps do),
    /// from numbers kept per UTC day (DailyRowsCache, summed with "" as the bucket and each
    /// row's value as read): <paramref name="read"/> reads the given days from the enriched
    /// events in one statement (each day's active generation, as QuerySql.SelectedEvents reads
    /// it). Null when they cannot be used: no kept days here (another engine than the embedded
    /// one, or <see cref="UsePreAggregates"/> off), a range not whole UTC days or over
    /// DailyRowsCache.MaxDays, days the enriched events' retention is deleting (their rows go
    /// without a write anyone announces), or an activation running or starting meanwhile.
    /// </summary>
    /// <param name="shape">What a day's rows are, whatever the range (the statement over a fixed day).</param>
    /// <param name="read">Given the days and the site's active generations (ActiveGenerationCache: every
    /// day with a row in generations), which it may write into its statement as constants, and the
    /// activations started when they were read (for KeptFunnelVisitors).</param>
    public async Task<PreAggregates.DaySums?> KeptDaysAsync(NormalQuery q, string shape,
        Func<IReadOnlyList<DateOnly>, IReadOnlyDictionary<DateOnly, ulong>, long, Task<List<PreAggregates.DayRow>?>> read, CancellationToken ct)
    {
        if (!UsePreAggregates || DailyRows is not { } daily || q.From.UtcTicks % TimeSpan.TicksPerDay != 0 || q.To.UtcTicks % TimeSpan.TicksPerDay != 0
            || q.To <= q.From || (q.To - q.From).TotalDays > PreAggregates.DailyRowsCache.MaxDays
            || EnrichedKeptFrom is { } keptFrom && q.From < keptFrom
            || !_generations!.Activations.TryQuiet(out long activations)) return null;
        var known = await _generations.GetAsync(q.MerchantId, q.SiteId, activations, RunAsync, ct);
        return await daily.SumAsync(q.MerchantId, q.SiteId, shape, null, _ => "", DateOnly.FromDateTime(q.From.UtcDateTime),
            DateOnly.FromDateTime(q.To.UtcDateTime), known, activations, days => read(days, known, activations));
    }

    private static readonly int VisitsColumn = Array.IndexOf(QuerySql.RawColumns, "visits");

    /// <summary>
    /// How DailyRowsCache reads <paramref name="q"/>'s days (one statement for any set of days),
    /// or null when it cannot. The rollups' plain questions (NormalQueryPlanner.DailyQuestion: top
    /// lists, main graphs, entry pages, one value's rows) read one statement per rollup whose rows
    /// (a value per day) serve every question of that dimension, whatever its metrics. Any other
    /// question the planner answers with at most one dimension besides time (goals, revenue,
    /// filters) reads the planner's own statement grouped by UTC day as well: its shape is that
    /// statement over a fixed day, so the same question asked over another range finds its days.
    /// The dimension rollup's rows also say which round wrote them last (write_version), so a
    /// day kept before a round is brought up to date by its written values (ReadWritten); the
    /// visit rollup's too, by the visits written, where a large site's day is kept one row per
    /// visit (KeptVisits).
    /// </summary>
    private (string Shape, IReadOnlySet<string>? Values, Func<IReadOnlyList<DateOnly>, Task<List<PreAggregates.DayRow>?>> Read,
        Func<DateOnly, long, Task<List<PreAggregates.DayRow>?>>? ReadWritten)? DailyForm(
        NormalQuery q, IReadOnlySet<string>? uncovered, IReadOnlyDictionary<DateOnly, ulong> known, long activations, bool largeSite, CancellationToken ct)
    {
        if (PreAggregates.NormalQueryPlanner.DailyQuestion(q, uncovered) is { } question)
        {
            string dimension = question.Dimension;
            if (question.Rollup == PreAggregates.DailyRollup.Dimensions)
            {
                async Task<List<PreAggregates.DayRow>> ReadRows(IReadOnlyList<DateOnly> days, long? since = null) => await RunRowBinaryAsync(
                    PreAggregates.PreAggregatePlanner.DailyStatement(q.MerchantId, q.SiteId, dimension, days, known, database, MaxExecutionSeconds, since),
                    PreAggregates.PreAggregatePlanner.ReadDaily, ct);
                // A large site's today from its events kept per value, for the event dimensions: a
                // round's events are read, not the rollup's rows of the values it wrote (KeptEventValues).
                var keptValues = largeSite && PreAggregates.KeptEventValues.Holds(dimension) ? KeptEventValues : null;
                if (keptValues is null) return ("dimensions:" + dimension, question.Values, async days => await ReadRows(days), async (day, since) => await ReadRows([day], since));
                Func<long?, Task<List<PreAggregates.ValueEvent>>> Events(DateOnly day) => async since => await RunRowBinaryAsync(
                    PreAggregates.KeptEventValues.EventsStatement(q.MerchantId, q.SiteId, dimension, day, known, database, MaxExecutionSeconds, since),
                    PreAggregates.KeptEventValues.ReadEvents, ct);
                return ("dimensions:" + dimension, question.Values,
                    days => ReadTodayKept(days, async days => await ReadRows(days),
                        day => keptValues.ReadAsync(q.MerchantId, q.SiteId, dimension, day, known.GetValueOrDefault(day), activations, Events(day))),
                    (day, since) => keptValues.ReadWrittenAsync(q.MerchantId, q.SiteId, dimension, day, known.GetValueOrDefault(day), since, activations, Events(day)));
            }
            // A large site's one day to read (today, after a round) from its visits kept: a small
            // site's days are not worth their memory, and several days are read in one statement.
            var kept = largeSite ? KeptVisits : null;
            Func<long?, Task<List<PreAggregates.VisitEvent>>> Visits(DateOnly day) => async since => await RunRowBinaryAsync(
                PreAggregates.KeptVisits.EventsStatement(q.MerchantId, q.SiteId, dimension, day, known, database, MaxExecutionSeconds, since),
                PreAggregates.KeptVisits.ReadEvents, ct);
            async Task<List<PreAggregates.DayRow>> ReadDays(IReadOnlyList<DateOnly> days) => await RunRowBinaryAsync(
                PreAggregates.VisitRollupPlanner.DailyStatement(q.MerchantId, q.SiteId, dimension, days, known, database, MaxExecutionSeconds, merged: largeSite),
                PreAggregates.VisitRollupPlanner.ReadDaily, ct);
            return ("visits:" + dimension, question.Values, kept is null ? async days => await ReadDays(days)
                : days => ReadTodayKept(days, ReadDays, day => kept.ReadAsync(q.MerchantId, q.SiteId, dimension, day, known.GetValueOrDefault(day), activations, Visits(day))),
                kept is null ? null : (day, since) => kept.ReadWrittenAsync(q.MerchantId, q.SiteId, dimension, day, known.GetValueOrDefault(day), since, activations, Visits(day)));
        }
        if (q.TimeDimension is { Argument: not ("day" or "week" or "month") } || q.Dimensions.Count(d => d.Kind != DimensionKind.Time) > 1) return null;
        var byDay = q with { Dimensions = [s_day, .. q.Dimensions.Where(d => d.Kind != DimensionKind.Time)] };
        var someDay = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);
        string? shape = PreAggregates.NormalQueryPlanner.TryPlanRaw(byDay with { From = someDay, To = someDay.AddDays(1) }, database, MaxExecutionSeconds, out _,
            uncovered, s_noGenerations, largeSite: false);
        if (shape is null) return null;
        // A large site's one day to read of a goal question (today, after a round) from its goals
        // kept: a round's events are read, not the day's rollup rows (KeptGoalVisitors).
        var keptGoals = largeSite ? KeptGoalVisitors : null;
        if (keptGoals is not null && PreAggregates.NormalQueryPlanner.KeptGoals(q) is var (goals, oneRow))
        {
            List<string> labels = oneRow ? [""] : [.. goals.Select(g => g.Name)];
            return ("plan:" + shape, null, async days => days.Count != 1 ? await ReadPlanned(days)
                : await keptGoals.ReadAsync(q.MerchantId, q.SiteId, shape, labels, days[0], known.GetValueOrDefault(days[0]), activations, async since =>
                {
                    var (from, to) = PreAggregates.DailyRowsCache.Span(days);
                    return await RunRowBinaryAsync(PreAggregates.KeptGoalVisitors.EventsStatement(q with { From = from, To = to }, goals, oneRow, database,
                        MaxExecutionSeconds, known, since), PreAggregates.KeptGoalVisitors.ReadEvents, ct);
                }), null);
        }
        return ("plan:" + shape, null, ReadPlanned, null);
        async Task<List<PreAggregates.DayRow>?> ReadPlanned(IReadOnlyList<DateOnly> days)
        {
            var (spanFrom, spanTo) = PreAggregates.DailyRowsCache.Span(days);
            var span = byDay with { From = spanFrom, To = spanTo };
            if (PreAggregates.NormalQueryPlanner.TryPlanRaw(span, database, MaxExecutionSeconds, out _, uncovered, known, largeSite) is not { } sql) return null;
            var rows = await RunAsync(sql, ct);
            int n = byDay.Dimensions.Count, counts = QuerySql.RawColumns.Length - 2;
            // Rows written before migration 012: the question is asked the usual way (which scans).
            if (!PreAggregates.GoalRevenuePlanner.Complete(rows, n, QuerySql.RawColumns.Length)) return null;
            bool revenue = q.Metrics.Any(PreAggregates.GoalRevenuePlanner.IsRevenue); // else the maps are empty: not kept
            var result = new List<PreAggregates.DayRow>(rows.Count);
            foreach (var row in rows)
            {
                var day = DateOnly.ParseExact(row[0].GetString()!, "yyyy-MM-dd", CultureInfo.InvariantCulture);
                var values = new long[counts];
                for (int i = 0; i < counts; i++) values[i] = ReadLong(row[n + i]);
                string value = n == 1 ? "" : row[1].ValueKind == JsonValueKind.String ? row[1].GetString()! : row[1].GetRawText();
                result.Add(revenue ? new PreAggregates.DayRow(day, value, values, ReadMap(row[n + counts]), ReadMap(row[n + counts + 1]))
                    : new PreAggregates.DayRow(day, value, values));
            }
            return result;
        }
    }

    /// <summary>
    /// A large site's days where one of them is kept between rounds (KeptVisits, KeptEventValues):
    /// one day from <paramref name="readKept"/>; several that end with today (a range's first
    /// answer) today from <paramref name="readKept"/> too, beside one statement for the others, so
    /// that it is kept from the first answer on: else the next answer, after a round, read it whole
    /// (the largest test merchant's entry pages: 150 ms, against 35 once kept). Null when an
    /// activation started meanwhile.
    /// </summary>
    private async Task<List<PreAggregates.DayRow>?> ReadTodayKept(IReadOnlyList<DateOnly> days,
        Func<IReadOnlyList<DateOnly>, Task<List<PreAggregates.DayRow>>> readDays, Func<DateOnly, Task<List<PreAggregates.DayRow>?>> readKept)
    {
        if (days.Count == 1) return await readKept(days[0]);
        if (days[^1] != DateOnly.FromDateTime(Clock.GetUtcNow().UtcDateTime)) return await readDays(days);
        var today = readKept(days[^1]);
        var others = readDays([.. days.SkipLast(1)]);
        await Task.WhenAll((Task)today, others); // both awaited, so neither's failure goes unobserved
        if (today.Result is not { } todays) return null;
        var rows = others.Result;
        rows.AddRange(todays);
        return rows;
    }

    private static readonly Dimension s_day = QueryVocabulary.ParseDimension("time:day")!;
    private static readonly Dictionary<DateOnly, ulong> s_noGenerations = [];

    /// <summary>DailyRowsCache's sums as raw rows: with dimensions a row per (bucket, value) with
    /// visitors (or bots, when asked), as the plans' HAVING keeps them; without, one row. Each sum's
    /// raw row is kept with it (DayRow.Shown) for the next answer of the same dimensions' order.</summary>
    private static List<RawRow> DailyRaw(NormalQuery q, PreAggregates.DaySums sums)
    {
        static RawRow Row(string[] dimensions, PreAggregates.DayRow r) => new(dimensions, r.Counts, r.Revenue ?? NoRevenue, r.RevenueEvents ?? NoRevenue);
        if (q.Dimensions.Count == 0)
            return [sums.Count == 0 ? Row([], new PreAggregates.DayRow(default, "", new long[QuerySql.RawColumns.Length - 2])) : Row([], sums.Single().Value)];
        bool bots = q.Metrics.Contains("bots");
        var timeAt = q.Dimensions.Select(d => d.Kind == DimensionKind.Time).ToArray();
        int layout = timeAt.Select((time, i) => time ? 1 << i : 0).Sum() | timeAt.Length << 16;
        var rows = new List<RawRow>(sums.Count);
        foreach (var ((bucket, value), sum) in sums)
        {
            if (!(sum.Counts[0] > 0 || (bots && sum.Counts[BotsColumn] > 0))) continue;
            if (sum.Shown is Shown shown && shown.Layout == layout && string.Equals(shown.Bucket, bucket, StringComparison.Ordinal))
            {
                rows.Add(shown.Row);
                continue;
            }
            var dimensions = new string[timeAt.Length];
            for (int i = 0; i < dimensions.Length; i++) dimensions[i] = timeAt[i] ? bucket : value;
            var row = Row(dimensions, sum);
            sum.Shown = new Shown(layout, bucket, row);
            rows.Add(row);
        }
        return rows;
    }

    /// <summary>A sum's raw row as <see cref="DailyRaw"/> made it: for the dimensions' order
    /// <paramref name="Layout"/> (which are time buckets, and how many) and that bucket.</summary>
    private sealed record Shown(int Layout, string Bucket, RawRow Row);

    private static readonly int BotsColumn = Array.IndexOf(QuerySql.RawColumns, "bots");

    /// <summary>A UTC day's label as the planner's time buckets name it (PreAggregatePlanner.TimeLabels:
    /// the day, its week's Monday, its month's first day), or "" without a time dimension.</summary>
    private static Func<DateOnly, string> DayBucket(Dimension? time) => time?.Name switch
    {
        null => _ => "",
        "time:day" => d => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        "time:week" => d => d.AddDays(-(((int)d.DayOfWeek + 6) % 7)).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        "time:month" => d => new DateOnly(d.Year, d.Month, 1).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
        var other => throw new InvalidOperationException($"the dimension rollup has no {other} buckets"),
    };

    /// <summary>
    /// A site's total visits by time without a filter (the main graph, which a dashboard asks
    /// first): each visit is in one row, so their sum is the range's visits, per day of the range
    /// already past (a range such as this month or 12mo ends in the future). Only ranges with a
    /// whole day past: a day asked in its first hours would stand for the site's whole day.
    /// </summary>
    private void NoteSiteSize(NormalQuery q, List<RawRow> rows)
    {
        if (q.Filter is not null || !q.Dimensions.All(d => d.Kind == DimensionKind.Time) || !q.Metrics.Contains("visits")) return;
        var past = (q.To < Clock.GetUtcNow() ? q.To : Clock.GetUtcNow()) - q.From;
        if (past < TimeSpan.FromDays(1)) return;
        _visitsPerDay[(q.MerchantId, q.SiteId)] = rows.Sum(r => r.Counts[VisitsColumn]) / past.TotalDays;
    }

    /// <summary>
    /// Visits in a range from which a site is read as a large one (VisitRollupPlanner.MergedReadFromVisits):
    /// the visit rollup merged by the engine (FINAL) rather than grouped per visit, and a top
    /// list's visitors counted per day and added up rather than merged over the range
    /// (PreAggregateQuery.DailyVisitorSums); 0: always. Settable to measure and test both forms.
    /// </summary>
    public long LargeSiteFromVisits { get; set; } = PreAggregates.VisitRollupPlanner.MergedReadFromVisits;

    /// <summary>Each site's visits per day over its last answer of total visits by time, without
    /// a filter: the estimate behind <see cref="IsLargeSite"/>. One entry per site asked (a few
    /// dozen bytes each); a site not asked yet is read grouped, as nearly every site should be.</summary>
    private readonly ConcurrentDictionary<(long Merchant, long Site), double> _visitsPerDay = new();

    /// <summary>Whether <paramref name="q"/>'s site is expected to have <see cref="LargeSiteFromVisits"/> visits or more in its range.</summary>
    public bool IsLargeSite(NormalQuery q) => LargeSiteFromVisits <= 0
        || (_visitsPerDay.TryGetValue((q.MerchantId, q.SiteId), out double perDay) && perDay * (q.To - q.From).TotalDays >= LargeSiteFromVisits);

    /// <summary>
    /// What each store's databases list in preaggregate_gaps, cached per process: only migration
    /// 013 writes the list, and the host migrates before it serves, so it never changes while a
    /// process reads it. Per database whether it lists anything (a fresh install: never asked
    /// again), and per site its last listed day (a range after it, such as the last 7 days a while
    /// after the upgrade, is not asked either). The coverage statement itself runs only for
    /// ranges reaching back to a listed day: whether that day is still lacking depends on its
    /// active generation, which reprocessing changes.
    /// </summary>
    private sealed class GapCache
    {
        public ConcurrentDictionary<string, bool> Lists { get; } = new(StringComparer.Ordinal);
        public ConcurrentDictionary<(string Database, long Merchant, long Site), DateOnly> LastDay { get; } = new();
    }

    private static readonly ConditionalWeakTable<IColumnStore, GapCache> s_gaps = new();

    /// <summary>The pre-aggregate tables lacking a day of <paramref name="q"/>'s range (PreAggregateCoverage).</summary>
    private async Task<IReadOnlySet<string>> UncoveredAsync(NormalQuery q, CancellationToken ct)
    {
        var cache = s_gaps.GetOrCreateValue(store);
        if (!cache.Lists.TryGetValue(database, out bool lists))
            cache.Lists[database] = lists = ReadLong((await RunAsync(PreAggregates.PreAggregateCoverage.CountSql(database), ct))[0][0]) > 0;
        if (!lists) return new HashSet<string>();
        var site = (database, q.MerchantId, q.SiteId);
        if (!cache.LastDay.TryGetValue(site, out var last))
        {
            var day = (await RunAsync(PreAggregates.PreAggregateCoverage.LastDaySql(q.MerchantId, q.SiteId, database), ct))[0][0].GetString()!;
            cache.LastDay[site] = last = DateOnly.ParseExact(day, "yyyy-MM-dd", CultureInfo.InvariantCulture);
        }
        if (DateOnly.FromDateTime(q.From.UtcDateTime) > last) return new HashSet<string>();
        return PreAggregates.PreAggregateCoverage.Read(await RunAsync(PreAggregates.PreAggregateCoverage.Sql(q.MerchantId, q.SiteId, q.From, q.To, database), ct));
    }

    private async Task<T> RunRowBinaryAsync<T>(string sql, RowBinaryRead<T> read, CancellationToken ct)
    {
        try
        {
            return await store.QueryRowBinaryAsync(sql, read, ct);
        }
        catch (Exception e) when (IsTimeout(e))
        {
            throw new QueryTimeoutException(e);
        }
    }

    private async Task<IReadOnlyList<JsonElement[]>> RunAsync(string sql, CancellationToken ct)
    {
        try
        {
            return await store.QueryRowsAsync(sql, ct);
        }
        catch (Exception e) when (IsTimeout(e))
        {
            throw new QueryTimeoutException(e);
        }
    }

    /// <summary>Whether a store error is the engine stopping a statement at its max_execution_time.</summary>
    public static bool IsTimeout(Exception e) =>
        e.Message.Contains("TIMEOUT_EXCEEDED", StringComparison.Ordinal) || e.Message.Contains("Code: 159.", StringComparison.Ordinal);

    private static long ReadLong(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => long.Parse(e.GetString()!, CultureInfo.InvariantCulture),
        JsonValueKind.Null => 0,
        _ => e.TryGetInt64(out long v) ? v : (long)e.GetDouble(),
    };

    /// <summary>A sumMap result: [[keys…], [values…]].</summary>
    private static Dictionary<string, long> ReadMap(JsonElement e)
    {
        var map = new Dictionary<string, long>(StringComparer.Ordinal);
        if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() != 2) return map;
        for (int i = 0; i < e[0].GetArrayLength(); i++) map[e[0][i].GetString()!] = ReadLong(e[1][i]);
        return map;
    }

    /// <summary>The filter with every goal part removed (the conversion rates' denominators).</summary>
    public static Filter? WithoutGoals(Filter? filter) => filter switch
    {
        FilterLeaf leaf => leaf.Dimension.Kind == DimensionKind.Goal ? null : leaf,
        FilterAnd and => Combine(and.Children.Select(WithoutGoals).OfType<Filter>().ToList(), c => new FilterAnd(c)),
        FilterOr or => Combine(or.Children.Select(WithoutGoals).OfType<Filter>().ToList(), c => new FilterOr(c)),
        FilterNot not => WithoutGoals(not.Child) is { } child ? new FilterNot(child) : null,
        _ => null,
    };

    private static Filter? Combine(List<Filter> children, Func<List<Filter>, Filter> make) =>
        children.Count switch { 0 => null, 1 => children[0], _ => make(children) };

    private static Comparison<Row> Comparer(NormalQuery q)
    {
        var terms = q.OrderBy.Select(t => (t.Descending, Metric: q.Metrics.ToList().IndexOf(t.Key), Dimension: q.Dimensions.Select(d => d.Name).ToList().IndexOf(t.Key))).ToList();
        return (a, b) =>
        {
            foreach (var (descending, metric, dimension) in terms)
            {
                int c = metric >= 0 ? Nullable.Compare(a.SortValues[metric], b.SortValues[metric]) : string.CompareOrdinal(a.Dimensions[dimension], b.Dimensions[dimension]);
                if (c != 0) return descending ? -c : c;
            }
            for (int i = 0; i < a.Dimensions.Length; i++)
            {
                int c = string.CompareOrdinal(a.Dimensions[i], b.Dimensions[i]);
                if (c != 0) return c;
            }
            return 0;
        };
    }

    /// <summary>A row's identity across the two ranges: the time label replaced by its position.</summary>
    private static string MatchKey(NormalQuery q, string[] dimensions, List<string>? labels) =>
        string.Join('\u0001', dimensions.Select((d, i) => q.Dimensions[i].Kind == DimensionKind.Time ? labels!.IndexOf(d).ToString(CultureInfo.InvariantCulture) : d));

    private static string?[] ComparisonDimensions(NormalQuery q, string[] dimensions, List<string>? labels, List<string>? comparisonLabels) =>
        dimensions.Select((d, i) =>
        {
            if (q.Dimensions[i].Kind != DimensionKind.Time) return d;
            int position = labels!.IndexOf(d);
            return position >= 0 && position < comparisonLabels!.Count ? comparisonLabels[position] : null;
        }).ToArray();

    private static JsonNode? Change(string metric, Row now, Row before, int i)
    {
        if (now.Metrics[i] is JsonObject nowMoney)
        {
            var beforeMoney = before.Metrics[i] as JsonObject ?? [];
            var change = new JsonObject();
            foreach (var currency in nowMoney.Select(kv => kv.Key).Union(beforeMoney.Select(kv => kv.Key)).Order(StringComparer.Ordinal))
                change[currency] = Percent(nowMoney[currency]?.GetValue<decimal>() ?? 0, beforeMoney[currency]?.GetValue<decimal>() ?? 0);
            return change;
        }
        decimal a = now.SortValues[i] ?? 0, b = before.SortValues[i] ?? 0;
        // A rate of nothing (no visits, no visitors) has no change in points, as a % of 0 has none.
        if (QueryVocabulary.RateMetrics.Contains(metric))
            return now.Undefined[i] || before.Undefined[i] ? null : JsonValue.Create(Math.Round(a - b, 1, MidpointRounding.AwayFromZero));
        return Percent(a, b);
    }

    private static JsonNode? Percent(decimal now, decimal before) =>
        before == 0 ? null : JsonValue.Create(Math.Round((now - before) * 100 / before, 1, MidpointRounding.AwayFromZero));

    private static string Local(DateTimeOffset t, TimeZoneInfo tz) =>
        TimeZoneInfo.ConvertTime(t, tz).ToString("yyyy-MM-dd'T'HH:mm:ss.FFFzzz", CultureInfo.InvariantCulture);

    /// <summary>The normalised query, as the answer's <c>query</c>.</summary>
    public static JsonObject Echo(NormalQuery q)
    {
        var echo = new JsonObject
        {
            ["site_id"] = q.PublicSiteId,
            ["date_range"] = new JsonArray(Local(q.From, q.TimeZone), Local(q.To, q.TimeZone)),
            ["timezone"] = q.TimeZone.Id,
            ["metrics"] = new JsonArray(q.Metrics.Select(m => (JsonNode?)JsonValue.Create(m)).ToArray()),
            ["dimensions"] = new JsonArray(q.Dimensions.Select(d => (JsonNode?)JsonValue.Create(d.Name)).ToArray()),
            ["filters"] = q.Filter switch
            {
                null => new JsonArray(),
                FilterAnd and => new JsonArray(and.Children.Select(EchoFilter).ToArray()),
                var f => new JsonArray(EchoFilter(f)),
            },
            ["order_by"] = new JsonArray(q.OrderBy.Select(o => (JsonNode?)new JsonArray(o.Key, o.Descending ? "desc" : "asc")).ToArray()),
            ["pagination"] = new JsonObject { ["limit"] = q.Limit, ["offset"] = q.Offset },
            ["include"] = new JsonObject
            {
                ["time_labels"] = q.TimeLabels,
                ["comparisons"] = q.Comparison is { } c
                    ? new JsonObject { ["mode"] = c.Mode, ["date_range"] = new JsonArray(Local(c.From, q.TimeZone), Local(c.To, q.TimeZone)), ["match_day_of_week"] = c.MatchDayOfWeek }
                    : null,
            },
        };
        return echo;
    }

    private static JsonNode? EchoFilter(Filter f) => f switch
    {
        FilterLeaf l => new JsonArray(l.Operator, l.Dimension.Name, new JsonArray(l.Values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()), new JsonObject { ["case_sensitive"] = l.CaseSensitive }),
        FilterAnd a => new JsonArray("and", new JsonArray(a.Children.Select(EchoFilter).ToArray())),
        FilterOr o => new JsonArray("or", new JsonArray(o.Children.Select(EchoFilter).ToArray())),
        FilterNot n => new JsonArray("not", EchoFilter(n.Child)),
        _ => null,
    };
}
