using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Analytics.QueryApi.Tests.Oracle;
using static Analytics.QueryApi.Tests.Oracle.OracleFixture;

namespace Analytics.QueryApi.Tests;

/// <summary><c>Accept: text/csv</c>: the same rows as JSON, one column per dimension and per
/// metric, revenue one column per currency (<c>total_revenue EUR</c>), against the oracle.</summary>
[Collection(OracleCollection.Name)]
public class OracleCsvTests(OracleFixture data)
{
    [Fact]
    public async Task A_breakdown_as_CSV_has_a_column_per_dimension_metric_and_currency()
    {
        var q = Query("2026-10-24", "2026-11-02", "UTC", ["visitors", "pageviews", "total_revenue"], ["source"]);
        q["site_id"] = data.Host.Site.PublicId;
        var expected = data.Oracle.Run(q);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/query") { Content = new StringContent(q.ToJsonString(), Encoding.UTF8, "application/json") };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/csv"));
        using var response = await data.Host.Http.SendAsync(request, TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {text}");
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);

        // No value of this data set needs quoting (no commas, quotes or line breaks).
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r').Split(',')).ToList();
        var header = lines[0].Select(h => h.Trim('"')).ToList();
        var currencies = expected.Rows.SelectMany(r => ((QueryOracle.PerCurrency)r.Metrics[2]).Values.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["source", "visitors", "pageviews", .. currencies.Select(c => "total_revenue " + c)], header);
        Assert.Equal(expected.Rows.Count, lines.Count - 1);
        for (int i = 0; i < expected.Rows.Count; i++)
        {
            var row = expected.Rows[i];
            var cells = lines[i + 1].Select(c => c.Trim('"')).ToList();
            Assert.Equal(row.Dimensions[0], cells[0]);
            Assert.Equal(((QueryOracle.Exact)row.Metrics[0]).Value, long.Parse(cells[1], CultureInfo.InvariantCulture));
            Assert.Equal(((QueryOracle.Exact)row.Metrics[1]).Value, long.Parse(cells[2], CultureInfo.InvariantCulture));
            var revenue = ((QueryOracle.PerCurrency)row.Metrics[2]).Values;
            for (int c = 0; c < currencies.Count; c++)
            {
                double want = revenue.TryGetValue(currencies[c], out var r) ? r.Value : 0;
                double got = cells[3 + c].Length == 0 ? 0 : double.Parse(cells[3 + c], CultureInfo.InvariantCulture);
                Assert.True(Math.Abs(want - got) < 1e-6, $"row {i} {currencies[c]}: expected {want}, got {got}\n{text}");
            }
        }
    }
}
