using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using static Analytics.QueryApi.Tests.Oracle.QueryOracle;

namespace Analytics.Dashboard.Tests;

/// <summary>
/// What the page must show, from the query oracle (plain LINQ over the generated events and the
/// definitions of docs/query-api.md), and the comparison of the page's data-raw attributes with
/// it. A view is what the URL holds (docs: /work/notes contract, "URL state"): a range, filters,
/// a comparison mode; each card and panel is the oracle's answer to that view's question.
/// </summary>
public sealed record View(JsonNode Range, JsonArray Filters, string? Compare = null)
{
    public static View Named(string period, JsonArray? filters = null, string? compare = null) => new(JsonValue.Create(period)!, filters ?? [], compare);

    public static View Custom(DateOnly from, DateOnly to, JsonArray? filters = null) =>
        new(new JsonArray(DashboardPage.Date(from), DashboardPage.Date(to)), filters ?? []);

    /// <summary>The oracle's request for <paramref name="metrics"/> by <paramref name="dimension"/> in this view.</summary>
    public JsonObject Request(string[] metrics, string? dimension = null, JsonArray? extraFilters = null, int? limit = null, int offset = 0)
    {
        var filters = (JsonArray)Filters.DeepClone();
        foreach (var f in extraFilters ?? []) filters.Add(f!.DeepClone());
        var request = new JsonObject
        {
            ["date_range"] = Range.DeepClone(),
            ["timezone"] = "UTC",
            ["metrics"] = new JsonArray([.. metrics.Select(m => (JsonNode)m)]),
            ["filters"] = filters,
        };
        if (dimension is not null)
        {
            request["dimensions"] = new JsonArray(dimension);
            if (metrics.Contains("visitors")) request["order_by"] = new JsonArray(new JsonArray("visitors", "desc"));
        }
        if (limit is not null) request["pagination"] = new JsonObject { ["limit"] = limit, ["offset"] = offset };
        if (Compare is not null) request["include"] = new JsonObject { ["comparisons"] = new JsonObject { ["mode"] = Compare } };
        return request;
    }
}

public static class Expected
{
    /// <summary>The cards of the contract; the last two only on a site with goals / revenue.</summary>
    public static readonly string[] Cards = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "conversion_rate", "total_revenue"];

    /// <summary>Each panel of the contract and the API dimension it breaks the view down by.</summary>
    public static readonly Dictionary<string, string> Panels = new()
    {
        ["pages"] = "page", ["entry_pages"] = "entry_page", ["exit_pages"] = "exit_page",
        ["sources"] = "source", ["channels"] = "channel", ["referrers"] = "referrer",
        ["utm_source"] = "utm_source", ["utm_medium"] = "utm_medium", ["utm_campaign"] = "utm_campaign",
        ["utm_content"] = "utm_content", ["utm_term"] = "utm_term",
        ["countries"] = "country", ["regions"] = "region", ["cities"] = "city",
        ["devices"] = "device", ["browsers"] = "browser", ["os"] = "os",
        ["goals"] = "goal", ["props"] = "props:plan",
    };

    /// <summary>The conversion-rate card: visitors who completed any of the site's goals.</summary>
    public static JsonArray AnyGoal(IEnumerable<Goal> goals) =>
        [new JsonArray("is", "goal", new JsonArray([.. goals.Select(g => (JsonNode)g.Name)]))];

    /// <summary>Every card's value (and, when comparing, change) against the oracle.</summary>
    public static List<string> CardProblems(QueryOracle oracle, View view, Dictionary<string, (string? Value, string? Change)> cards, IEnumerable<string> metrics)
    {
        var problems = new List<string>();
        foreach (var metric in metrics)
        {
            if (!cards.TryGetValue(metric, out var shown))
            {
                problems.Add($"card {metric}: missing");
                continue;
            }
            var request = view.Request([metric], extraFilters: metric == "conversion_rate" ? AnyGoal(oracle.Goals) : null);
            var row = oracle.Run(request).Rows.Single();
            if (!Matches(row.Metrics[0], shown.Value)) problems.Add($"card {metric}: expected {row.Metrics[0]}, shown data-raw {Show(shown.Value)}");
            if (view.Compare is not null && !Matches(row.Comparison!.Change[0], shown.Change))
            {
                problems.Add($"card {metric} change ({view.Compare}): expected {row.Comparison.Change[0]}, shown data-raw {Show(shown.Change)}");
            }
        }
        return problems;
    }

    /// <summary>Rows shown (keys and every cell) against the oracle's rows from <paramref name="offset"/>,
    /// as many as shown; <paramref name="expectedCount"/> is how many there must be.</summary>
    public static List<string> RowProblems(QueryOracle oracle, View view, string dimension, IReadOnlyList<DashboardPage.Row> rows,
        int expectedLimit, int offset = 0, JsonArray? extraFilters = null)
    {
        var problems = new List<string>();
        string[] metrics = rows.Count > 0 ? [.. rows[0].Cells.Keys] : ["visitors"];
        if (metrics.Length == 0) return [$"{dimension}: rows have no [data-col] cells"];
        var answer = oracle.Run(view.Request(metrics, dimension, extraFilters, expectedLimit, offset));
        if (rows.Count != answer.Rows.Count) problems.Add($"{dimension}: {rows.Count} rows shown, expected {answer.Rows.Count} (of {answer.TotalRows})");
        for (int i = 0; i < Math.Min(rows.Count, answer.Rows.Count); i++)
        {
            var want = answer.Rows[i];
            if (rows[i].Key != want.Dimensions[0])
            {
                problems.Add($"{dimension} row {offset + i}: key \"{rows[i].Key}\", expected \"{want.Dimensions[0]}\"");
                continue;
            }
            for (int m = 0; m < metrics.Length; m++)
            {
                string? raw = rows[i].Cells.GetValueOrDefault(metrics[m]);
                if (!Matches(want.Metrics[m], raw)) problems.Add($"{dimension} row {offset + i} \"{want.Dimensions[0]}\" {metrics[m]}: expected {want.Metrics[m]}, shown {Show(raw)}");
            }
        }
        return problems;
    }

    public static string Show(string? raw) => raw is null ? "(none)" : $"\"{raw}\"";

    /// <summary>A data-raw attribute (a JSON number, "" for null, a JSON object for revenue)
    /// against an expected value: exact counts, rounded values within half their unit, changes
    /// rounded to one decimal from any of the candidate inputs.</summary>
    public static bool Matches(Expect expected, string? raw)
    {
        if (raw is null) return false;
        switch (expected)
        {
            case Exact x:
                return Number(raw) is { } n && n == x.Value;
            case Rounded r:
                if (r.Undefined) return raw.Length == 0 || Number(raw) == 0;
                return Number(raw) is { } v && Math.Abs(v - r.Value) <= r.Unit / 2 + 1e-9;
            case Change c:
                if (raw.Length == 0 || raw == "null") return c.Candidates.Contains(null);
                return Number(raw) is { } change && c.Candidates.Any(k => k is { } d && Math.Abs(change - d) <= 0.05 + 1e-9);
            case PerCurrency p:
            {
                var obj = Object(raw);
                return obj is not null && obj.Count == p.Values.Count &&
                       p.Values.All(kv => obj.TryGetValue(kv.Key, out var got) && Matches(kv.Value, got));
            }
            case ChangePerCurrency cp:
            {
                var obj = Object(raw);
                return obj is not null && cp.Values.All(kv => Matches(kv.Value, obj.GetValueOrDefault(kv.Key) ?? ""));
            }
            default:
                return false;
        }
    }

    private static double? Number(string raw) =>
        double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : null;

    private static Dictionary<string, string>? Object(string raw)
    {
        try
        {
            using var doc = JsonDocument.Parse(raw);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return null;
            return doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ValueKind == JsonValueKind.Null ? "" : p.Value.GetRawText());
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// A sequential funnel by the definition of docs/query-api.md ("Funnels"), in plain LINQ:
    /// per visitor (person and UTC day), their non-engagement events in range by time; from each
    /// step-1 event, the steps that follow in order within the window; each visitor at their
    /// furthest step. Returns the visitors who reached each step.
    /// </summary>
    public static long[] Funnel(QueryOracle oracle, (DateTimeOffset From, DateTimeOffset To) range, string[] steps, int windowSeconds)
    {
        var goals = steps.Select(s => oracle.Goals.Single(g => g.Name == s)).ToArray();
        var reached = new long[steps.Length];
        foreach (var visitor in oracle.Humans.Where(e => e.At >= range.From && e.At < range.To && e.Name != "engagement").GroupBy(e => e.Visitor))
        {
            var events = visitor.OrderBy(e => e.At).ToList();
            int best = 0;
            for (int i = 0; i < events.Count; i++)
            {
                if (!goals[0].CompletedBy(events[i])) continue;
                int step = 1;
                for (int j = i + 1; j < events.Count && step < goals.Length && events[j].At - events[i].At <= TimeSpan.FromSeconds(windowSeconds); j++)
                {
                    if (goals[step].CompletedBy(events[j])) step++;
                }
                best = Math.Max(best, step);
            }
            for (int s = 0; s < best; s++) reached[s]++;
        }
        return reached;
    }
}
