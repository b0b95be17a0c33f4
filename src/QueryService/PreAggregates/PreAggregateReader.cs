using System.Globalization;
using System.Text.Json;
using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// Runs the planner's SQL: the answer from the dimension rollup when the planner finds one
/// exact, else null (with the planner's reason) so the caller scans enriched events instead.
/// </summary>
public sealed class PreAggregateReader(IColumnStore store, string database)
{
    private readonly string _database = ClickHouseSql.RequirePlainIdentifier(database);

    public async Task<(QueryAnswer? Answer, string Reason)> TryAnswerAsync(PreAggregateQuery q, CancellationToken ct)
    {
        var sql = PreAggregatePlanner.TryPlan(q, _database, out var reason);
        if (sql is null) return (null, reason);
        return (ReadAnswer(await store.QueryRowsAsync(sql, ct), q.Dimensions.Count, q.Metrics.Count), "");
    }

    /// <summary>Rows shaped (dimensions…, metrics…, total rows), as the planner's SQL returns them.</summary>
    public static QueryAnswer ReadAnswer(IReadOnlyList<JsonElement[]> rows, int dimensions, int metrics)
    {
        var result = new List<QueryRow>(rows.Count);
        foreach (var row in rows)
        {
            var dims = new string[dimensions];
            for (int i = 0; i < dimensions; i++) dims[i] = row[i].ValueKind == JsonValueKind.String ? row[i].GetString()! : row[i].GetRawText();
            var values = new double[metrics];
            for (int i = 0; i < metrics; i++) values[i] = Number(row[dimensions + i]);
            result.Add(new QueryRow(dims, values));
        }
        long total = rows.Count == 0 ? 0 : (long)Number(rows[0][dimensions + metrics]);
        return new QueryAnswer(result, total);
    }

    private static double Number(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Number => e.GetDouble(),
        JsonValueKind.String => double.Parse(e.GetString()!, CultureInfo.InvariantCulture),
        _ => 0, // nan/inf arrive as null
    };
}
