using Analytics.QueryApi.Tests.Oracle;
using static Analytics.QueryApi.Tests.Oracle.OracleFixture;

namespace Analytics.QueryApi.Tests;

/// <summary>Every filter operator, case-insensitive matching, and/or/not, event filters (select
/// events) against visit filters (select whole visits), exact against the oracle.</summary>
[Collection(OracleCollection.Name)]
public class OracleFilterTests(OracleFixture data)
{
    private static readonly string[] Metrics =
        ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit", "time_on_page", "total_revenue"];

    public static TheoryData<string> FilterCases() =>
    [
        """[["is", "country", ["GB", "AU"]]]""",
        """[["is_not", "country", ["GB"]]]""",
        """[["is", "country", ["gb"], {"case_sensitive": false}]]""",
        """[["contains", "page", ["/blog"]]]""",
        """[["contains", "page", ["winter"]]]""",
        """[["contains", "page", ["winter"], {"case_sensitive": false}]]""",
        """[["contains_not", "page", ["/products", "/checkout"]]]""",
        """[["matches", "page", ["^/products/(shoes|hats)$"]]]""",
        """[["matches", "page", ["sale$"], {"case_sensitive": false}]]""",
        """[["matches_not", "page", ["^/blog/"]]]""",
        """[["matches", "source", ["^g"], {"case_sensitive": false}]]""",
        """[["is", "browser", ["chrome mobile"], {"case_sensitive": false}]]""",
        """[["is", "event", ["signup"]]]""",
        """[["is_not", "event", ["pageview", "engagement"]]]""",
        """[["is", "props:plan", ["pro"]]]""",
        """[["is", "props:plan", [""]]]""",
        """[["is", "hostname", ["shop.example"]]]""",
        """[["is", "channel", ["Organic Search", "Organic Social"]]]""",
        """[["is", "entry_page", ["/pricing"]]]""",
        """[["is", "exit_page", ["/checkout"]]]""",
        """[["is", "utm_campaign", ["winter"]]]""",
        """[["or", [["is", "country", ["SG"]], ["is", "page", ["/checkout"]]]]]""",
        """[["not", ["is", "channel", ["Direct"]]]]""",
        """[["and", [["is", "device", ["Mobile"]], ["contains", "page", ["/p"]]]]]""",
        """[["is", "device", ["Desktop"]], ["is", "page", ["/"]]]""",
        """[["not", ["or", [["is", "source", ["Google"]], ["is", "event", ["engagement"]]]]]]""",
        """[["is", "region", ["GB-ENG", "AU-VIC"]], ["is_not", "event", ["engagement"]]]""",
        """[["is", "city", ["Atlantis"]]]""",
    ];

    [Theory]
    [MemberData(nameof(FilterCases))]
    public Task A_filtered_aggregate_equals_the_oracle(string filters) =>
        data.AssertAgreesAsync(Query("2026-10-24", "2026-11-02", "UTC", Metrics, null, Filters(filters)));

    [Theory]
    [MemberData(nameof(FilterCases))]
    public Task A_filtered_breakdown_by_source_equals_the_oracle(string filters) =>
        data.AssertAgreesAsync(Query("2026-10-24", "2026-11-02", "UTC", ["visitors", "visits", "pageviews", "bounce_rate", "percentage"], ["source"], Filters(filters)));

    [Theory]
    [InlineData("""[["contains", "page", ["/blog"]]]""")]
    [InlineData("""[["is", "country", ["GB", "US"]]]""")]
    public Task A_filtered_time_series_in_another_zone_equals_the_oracle(string filters) =>
        data.AssertAgreesAsync(Query("2026-10-24", "2026-11-02", "America/New_York", ["visitors", "pageviews"], ["time:day"], Filters(filters)));
}
