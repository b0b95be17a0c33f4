using System.Text.Json;
using Analytics.QueryService.Http;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// The CSV writer against hand-written answers in the JSON contract (docs/query-api.md), with the
/// expected CSV written out by hand from RFC 4180 and the documented column rules.
/// </summary>
public class CsvWriterTests
{
    private static string Query(string json) => QueryCsv.FromQueryResponse(JsonDocument.Parse(json).RootElement);

    [Fact]
    public void The_header_is_the_dimensions_then_the_metrics_and_lines_end_with_crlf()
    {
        string csv = Query("""
            {"results": [{"dimensions": ["2026-11-24", "Google"], "metrics": [12, 40, 33.3]},
                         {"dimensions": ["2026-11-25", "Direct / None"], "metrics": [0, 0, null]}],
             "meta": {"total_rows": 2},
             "query": {"site_id": "k7q2xw4mbd5rj3ta", "dimensions": ["time:day", "source"], "metrics": ["visitors", "pageviews", "bounce_rate"]}}
            """);
        Assert.Equal("time:day,source,visitors,pageviews,bounce_rate\r\n2026-11-24,Google,12,40,33.3\r\n2026-11-25,Direct / None,0,0,\r\n", csv);
    }

    [Fact]
    public void Quotes_commas_newlines_and_unicode_are_written_as_rfc_4180_fields()
    {
        string csv = Query("""
            {"results": [{"dimensions": ["/a \"quoted\" page"], "metrics": [1]},
                         {"dimensions": ["/x,y"], "metrics": [2]},
                         {"dimensions": ["line one\nline two\r\nthree"], "metrics": [3]},
                         {"dimensions": ["/grüße/日本語/😀"], "metrics": [4]},
                         {"dimensions": [""], "metrics": [5]}],
             "query": {"dimensions": ["page"], "metrics": ["pageviews"]}}
            """);
        Assert.Equal(
            "page,pageviews\r\n" +
            "\"/a \"\"quoted\"\" page\",1\r\n" +
            "\"/x,y\",2\r\n" +
            "\"line one\nline two\r\nthree\",3\r\n" +
            "/grüße/日本語/😀,4\r\n" +
            ",5\r\n", csv);
    }

    [Fact]
    public void Text_that_a_spreadsheet_would_run_as_a_formula_gets_a_leading_apostrophe_but_numbers_stay_numbers()
    {
        string csv = Query("""
            {"results": [{"dimensions": ["=HYPERLINK(\"http://evil.example\",\"x\")"], "metrics": [-3.5]},
                         {"dimensions": ["+1"], "metrics": [1]},
                         {"dimensions": ["-2"], "metrics": [2]},
                         {"dimensions": ["@SUM(A1)"], "metrics": [3]},
                         {"dimensions": ["\tcmd"], "metrics": [4]},
                         {"dimensions": ["\rcmd"], "metrics": [5]},
                         {"dimensions": ["a=1"], "metrics": [6]}],
             "query": {"dimensions": ["props:ref"], "metrics": ["events"]}}
            """);
        Assert.Equal(
            "props:ref,events\r\n" +
            "\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",-3.5\r\n" +
            "\"'+1\",1\r\n" +
            "\"'-2\",2\r\n" +
            "\"'@SUM(A1)\",3\r\n" +
            "\"'\tcmd\",4\r\n" +
            "\"'\rcmd\",5\r\n" +
            "a=1,6\r\n", csv);
    }

    [Fact]
    public void Revenue_metrics_become_one_column_per_currency_in_ordinal_order_with_empty_cells_where_a_row_has_none()
    {
        string csv = Query("""
            {"results": [{"dimensions": ["/shop"], "metrics": [3, {"USD": 9.99, "EUR": 120.5}, {"EUR": 60.25, "USD": 9.99}]},
                         {"dimensions": ["/blog"], "metrics": [1, {}, {}]},
                         {"dimensions": ["/jp"], "metrics": [2, {"JPY": 1200}, {"JPY": 600}]}],
             "query": {"dimensions": ["page"], "metrics": ["visitors", "total_revenue", "average_revenue"]}}
            """);
        Assert.Equal(
            "page,visitors,total_revenue EUR,total_revenue JPY,total_revenue USD,average_revenue EUR,average_revenue JPY,average_revenue USD\r\n" +
            "/shop,3,120.5,,9.99,60.25,,9.99\r\n" +
            "/blog,1,,,,,,\r\n" +
            "/jp,2,,1200,,,600,\r\n", csv);
    }

    [Fact]
    public void A_revenue_metric_without_any_currency_keeps_one_empty_column()
    {
        string csv = Query("""
            {"results": [{"dimensions": [], "metrics": [5, {}]}], "query": {"metrics": ["visitors", "total_revenue"]}}
            """);
        Assert.Equal("visitors,total_revenue\r\n5,\r\n", csv);
    }

    [Fact]
    public void No_rows_still_give_the_header()
    {
        Assert.Equal("time:hour,pageviews\r\n", Query("""{"results": [], "query": {"dimensions": ["time:hour"], "metrics": ["pageviews"]}}"""));
    }

    [Fact]
    public void A_v1_timeseries_answer_becomes_a_time_column_and_one_column_per_requested_metric()
    {
        string csv = QueryCsv.FromTimeseriesResponse(JsonDocument.Parse("""
            {"site_id": "k7q2xw4mbd5rj3ta", "interval": "hour", "tz": "UTC", "metrics": ["pageviews", "visitors"],
             "results": [{"visitors": 2, "pageviews": 7, "time": "2026-11-30T10:00:00+00:00"},
                         {"pageviews": 0, "visitors": 0, "time": "2026-11-30T11:00:00+00:00"}]}
            """).RootElement);
        Assert.Equal("time,pageviews,visitors\r\n2026-11-30T10:00:00+00:00,7,2\r\n2026-11-30T11:00:00+00:00,0,0\r\n", csv);
    }
}
