using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static Analytics.QueryApi.Tests.Oracle.QueryOracle;

namespace Analytics.QueryApi.Tests.Oracle;

/// <summary>Compares the product's answer with the oracle's, row by row and value by value, and
/// writes a report a developer can act on: the query, both answers, the differences.</summary>
public static class AnswerComparer
{
    public static List<string> Differences(JsonObject request, Answer expected, JsonElement actual)
    {
        var problems = new List<string>();
        if (!actual.TryGetProperty("results", out var results) || results.ValueKind != JsonValueKind.Array)
        {
            problems.Add("no results array");
            return problems;
        }
        var meta = actual.TryGetProperty("meta", out var m) ? m : default;
        if (meta.ValueKind != JsonValueKind.Object || !meta.TryGetProperty("total_rows", out var total) || total.GetInt32() != expected.TotalRows)
        {
            problems.Add($"meta.total_rows: expected {expected.TotalRows}, got {(meta.ValueKind == JsonValueKind.Object && meta.TryGetProperty("total_rows", out var t) ? t.ToString() : "none")}");
        }
        if (expected.TimeLabels is not null)
        {
            var labels = meta.ValueKind == JsonValueKind.Object && meta.TryGetProperty("time_labels", out var l) && l.ValueKind == JsonValueKind.Array
                ? l.EnumerateArray().Select(x => x.GetString()).ToList() : null;
            if (labels is null || !labels.SequenceEqual(expected.TimeLabels))
            {
                problems.Add($"meta.time_labels: expected [{string.Join(", ", expected.TimeLabels)}], got [{(labels is null ? "none" : string.Join(", ", labels))}]");
            }
        }
        // The normalised range (query.date_range) and the comparison range, as instants.
        CompareRange("query.date_range", expected.Range,
            actual.TryGetProperty("query", out var query) && query.ValueKind == JsonValueKind.Object && query.TryGetProperty("date_range", out var dr) ? dr : default, problems);
        if (expected.ComparisonRange is { } cr)
        {
            CompareRange("meta.comparison_date_range", cr,
                meta.ValueKind == JsonValueKind.Object && meta.TryGetProperty("comparison_date_range", out var cdr) ? cdr : default, problems);
        }
        var rows = results.EnumerateArray().ToList();
        if (rows.Count != expected.Rows.Count) problems.Add($"rows: expected {expected.Rows.Count}, got {rows.Count}");
        for (int i = 0; i < Math.Min(rows.Count, expected.Rows.Count); i++)
        {
            var want = expected.Rows[i];
            var got = rows[i];
            var dims = got.TryGetProperty("dimensions", out var d) ? d.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String ? x.GetString()! : x.ToString()).ToList() : [];
            if (!dims.SequenceEqual(want.Dimensions))
            {
                problems.Add($"row {i}: dimensions expected [{string.Join(", ", want.Dimensions)}], got [{string.Join(", ", dims)}]");
                continue;
            }
            CompareMetrics($"row {i} [{string.Join(", ", dims)}]", want.Metrics, got.TryGetProperty("metrics", out var mm) ? mm : default, request, problems);
            if (want.Comparison is { } c)
            {
                if (!got.TryGetProperty("comparison", out var gc) || gc.ValueKind != JsonValueKind.Object)
                {
                    problems.Add($"row {i}: no comparison");
                    continue;
                }
                CompareMetrics($"row {i} comparison", c.Metrics, gc.TryGetProperty("metrics", out var cm) ? cm : default, request, problems);
                CompareMetrics($"row {i} change", c.Change, gc.TryGetProperty("change", out var ch) ? ch : default, request, problems);
            }
        }
        return problems;
    }

    private static void CompareRange(string where, (DateTimeOffset From, DateTimeOffset To) want, JsonElement got, List<string> problems)
    {
        bool ok = got.ValueKind == JsonValueKind.Array && got.GetArrayLength() == 2
            && DateTimeOffset.TryParse(got[0].GetString(), CultureInfo.InvariantCulture, DateTimeStyles.None, out var from)
            && DateTimeOffset.TryParse(got[1].GetString(), CultureInfo.InvariantCulture, DateTimeStyles.None, out var to)
            && from == want.From && to == want.To;
        if (!ok) problems.Add($"{where}: expected [{want.From:O}, {want.To:O}) (UTC), got {(got.ValueKind == JsonValueKind.Undefined ? "none" : got.ToString())}");
    }

    private static void CompareMetrics(string where, IReadOnlyList<Expect> want, JsonElement got, JsonObject request, List<string> problems)
    {
        var names = request["metrics"]!.AsArray().Select(x => (string)x!).ToList();
        if (got.ValueKind != JsonValueKind.Array || got.GetArrayLength() != want.Count)
        {
            problems.Add($"{where}: metrics expected {want.Count} values, got {got}");
            return;
        }
        for (int k = 0; k < want.Count; k++)
        {
            var value = got[k];
            if (!Agrees(want[k], value)) problems.Add($"{where} {names[k]}: expected {want[k]}, got {value}");
        }
    }

    public static bool Agrees(Expect want, JsonElement got) => want switch
    {
        Exact x => got.ValueKind == JsonValueKind.Number && got.GetDouble() == x.Value,
        Rounded r => RoundedAgrees(r, got),
        PerCurrency p => got.ValueKind == JsonValueKind.Object
            && got.EnumerateObject().Select(o => o.Name).OrderBy(n => n, StringComparer.Ordinal).SequenceEqual(p.Values.Keys.OrderBy(n => n, StringComparer.Ordinal))
            && p.Values.All(v => RoundedAgrees(v.Value, got.GetProperty(v.Key))),
        Change c => got.ValueKind == JsonValueKind.Null ? c.Candidates.Any(x => x is null)
            : got.ValueKind == JsonValueKind.Number && IsMultiple(got.GetDouble(), 0.1)
              && c.Candidates.Any(x => x is not null && Math.Abs(got.GetDouble() - x.Value) <= 0.05 + 1e-9),
        ChangePerCurrency cc => got.ValueKind == JsonValueKind.Object
            && cc.Values.All(v => got.TryGetProperty(v.Key, out var g) ? Agrees(v.Value, g) : v.Value.Candidates.Any(x => x is null)),
        _ => false,
    };

    private static bool RoundedAgrees(Rounded r, JsonElement got)
    {
        if (r.Undefined) return got.ValueKind == JsonValueKind.Null || (got.ValueKind == JsonValueKind.Number && got.GetDouble() == 0);
        if (got.ValueKind != JsonValueKind.Number) return false;
        double a = got.GetDouble();
        return Math.Abs(a - r.Value) <= r.Unit / 2 + 1e-9 * Math.Max(1, Math.Abs(r.Value)) && IsMultiple(a, r.Unit);
    }

    private static bool IsMultiple(double value, double unit) => Math.Abs(value / unit - Math.Round(value / unit)) < 1e-6;

    public static string Report(JsonObject request, Answer expected, JsonElement actual, List<string> problems)
    {
        var s = new StringBuilder();
        s.AppendLine("POST /v1/query " + request.ToJsonString());
        s.AppendLine("differences:");
        foreach (var p in problems.Take(40)) s.AppendLine("  " + p);
        s.AppendLine(CultureInfo.InvariantCulture, $"expected ({expected.TotalRows} rows in all):");
        foreach (var r in expected.Rows.Take(60))
        {
            s.Append("  [").Append(string.Join(", ", r.Dimensions)).Append("] ").Append(string.Join("; ", r.Metrics));
            if (r.Comparison is { } c) s.Append("  vs ").Append(string.Join("; ", c.Metrics)).Append("  change ").Append(string.Join("; ", c.Change));
            s.AppendLine();
        }
        string text = actual.ToString();
        s.AppendLine("actual: " + (text.Length > 6000 ? text[..6000] + "…" : text));
        return s.ToString();
    }
}
