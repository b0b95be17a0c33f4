using System.Text;
using System.Text.Json;

namespace Analytics.QueryService.Http;

/// <summary>
/// Query answers as CSV (RFC 4180), built from the JSON contract alone (docs/query-api.md), never
/// from the engine's C# types, so any answer the API can give in JSON it can give in CSV:
/// <list type="bullet">
/// <item>one header line: the dimension names, then the metric names; a metric whose values are
/// per-currency objects (<c>total_revenue</c>, <c>average_revenue</c>) becomes one column per
/// currency seen in the answer, <c>total_revenue EUR</c>, currencies in ordinal order, an empty
/// cell where a row has nothing in that currency (a revenue metric with no currency at all
/// keeps one empty column under its own name);</item>
/// <item>then one line per result row; numbers as JSON wrote them, <c>null</c> as an empty cell;
/// lines end with CRLF; a field holding <c>"</c>, <c>,</c>, CR or LF is quoted, quotes doubled;</item>
/// <item>text cells (and header cells) that start with <c>= + - @</c>, tab or CR get a leading
/// <c>'</c> and are quoted, as OWASP advises against formula injection when a spreadsheet opens
/// the file; numbers are never changed, so <c>-3.5</c> stays a number.</item>
/// </list>
/// Comparisons and <c>meta</c> are not part of the CSV: it is the rows of the answer.
/// </summary>
public static class QueryCsv
{
    /// <summary>A v2 answer: <c>query.dimensions</c>, <c>query.metrics</c>, <c>results[].dimensions/metrics</c>.</summary>
    public static string FromQueryResponse(JsonElement response)
    {
        var query = response.GetProperty("query");
        var dimensions = query.TryGetProperty("dimensions", out var d) ? d.EnumerateArray().Select(e => e.GetString() ?? "").ToList() : [];
        var metrics = query.GetProperty("metrics").EnumerateArray().Select(e => e.GetString() ?? "").ToList();
        var rows = response.GetProperty("results").EnumerateArray().Select(r => (
            Dimensions: r.TryGetProperty("dimensions", out var rd) ? rd.EnumerateArray().ToList() : [],
            Metrics: r.GetProperty("metrics").EnumerateArray().ToList())).ToList();
        return Write(dimensions, metrics, rows);
    }

    /// <summary>A v1 timeseries answer: <c>metrics</c>, <c>results[]</c> of {time, metric: value}.</summary>
    public static string FromTimeseriesResponse(JsonElement response)
    {
        var metrics = response.GetProperty("metrics").EnumerateArray().Select(e => e.GetString() ?? "").ToList();
        var rows = response.GetProperty("results").EnumerateArray().Select(r => (
            Dimensions: new List<JsonElement> { r.GetProperty("time") },
            Metrics: metrics.Select(m => r.TryGetProperty(m, out var v) ? v : default).ToList())).ToList();
        return Write(["time"], metrics, rows);
    }

    private static string Write(IReadOnlyList<string> dimensions, IReadOnlyList<string> metrics, List<(List<JsonElement> Dimensions, List<JsonElement> Metrics)> rows)
    {
        // Per metric: null for a plain column, else the currencies its per-currency objects name.
        var currencies = new SortedSet<string>?[metrics.Count];
        for (int m = 0; m < metrics.Count; m++)
        {
            foreach (var row in rows)
            {
                if (m >= row.Metrics.Count || row.Metrics[m].ValueKind != JsonValueKind.Object) continue;
                currencies[m] ??= new SortedSet<string>(StringComparer.Ordinal);
                foreach (var currency in row.Metrics[m].EnumerateObject()) currencies[m]!.Add(currency.Name);
            }
            if (currencies[m] is null && metrics[m] is "total_revenue" or "average_revenue") currencies[m] = [];
        }

        var csv = new StringBuilder();
        var header = new List<string>(dimensions);
        for (int m = 0; m < metrics.Count; m++)
        {
            if (currencies[m] is { Count: > 0 } named) header.AddRange(named.Select(c => metrics[m] + " " + c));
            else header.Add(metrics[m]);
        }
        AppendLine(csv, header.Select(Text));

        var cells = new List<string>();
        foreach (var row in rows)
        {
            cells.Clear();
            for (int i = 0; i < dimensions.Count; i++) cells.Add(i < row.Dimensions.Count ? Cell(row.Dimensions[i]) : "");
            for (int m = 0; m < metrics.Count; m++)
            {
                var value = m < row.Metrics.Count ? row.Metrics[m] : default;
                if (currencies[m] is { Count: > 0 } named)
                    cells.AddRange(named.Select(c => value.ValueKind == JsonValueKind.Object && value.TryGetProperty(c, out var amount) ? Cell(amount) : ""));
                else if (currencies[m] is not null) cells.Add("");
                else cells.Add(Cell(value));
            }
            AppendLine(csv, cells);
        }
        return csv.ToString();
    }

    private static string Cell(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => Text(value.GetString()!),
        JsonValueKind.Number => value.GetRawText(),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Null or JsonValueKind.Undefined => "",
        _ => Text(value.GetRawText()),
    };

    /// <summary>A text value as a CSV field: formula characters neutralised, quoted when needed.</summary>
    public static string Text(string value)
    {
        if (value.Length > 0 && value[0] is '=' or '+' or '-' or '@' or '\t' or '\r') return Quote("'" + value);
        return value.AsSpan().IndexOfAny("\",\r\n") >= 0 ? Quote(value) : value;
    }

    private static string Quote(string value) => "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private static void AppendLine(StringBuilder csv, IEnumerable<string> fields)
    {
        csv.AppendJoin(',', fields);
        csv.Append("\r\n");
    }
}
