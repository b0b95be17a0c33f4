using Analytics.QueryApi.Tests.Oracle;
using static Analytics.QueryApi.Tests.Oracle.OracleFixture;

namespace Analytics.QueryApi.Tests;

/// <summary>Goals: the goal dimension (an event in the row of every goal it completes), goal
/// filters, conversions and both conversion rates, exact against the oracle.</summary>
[Collection(OracleCollection.Name)]
public class OracleGoalTests(OracleFixture data)
{
    private const string From = "2026-10-24", To = "2026-11-02";

    [Theory]
    [InlineData("UTC")]
    [InlineData("Europe/Berlin")]
    public Task Conversions_by_goal_equal_the_oracle(string tz) =>
        data.AssertAgreesAsync(Query(From, To, tz, ["visitors", "conversions", "conversion_rate", "group_conversion_rate", "events"], ["goal"]));

    [Theory]
    [InlineData("source")]
    [InlineData("device")]
    [InlineData("time:day")]
    public Task Group_conversion_rates_are_over_the_rows_other_dimensions(string other) =>
        data.AssertAgreesAsync(Query(From, To, "UTC", ["visitors", "conversions", "conversion_rate", "group_conversion_rate"], [other, "goal"]));

    [Theory]
    [InlineData("""[["is", "goal", ["Signup"]]]""")]
    [InlineData("""[["is", "goal", ["Blog", "Product"]]]""")]
    [InlineData("""[["is", "goal", ["Never"]]]""")]
    [InlineData("""[["is", "goal", ["Purchase"]], ["is", "country", ["GB", "CN"]]]""")]
    [InlineData("""[["and", [["is", "goal", ["Signup"]], ["is", "device", ["Mobile"]]]]]""")]
    [InlineData("""[["is_not", "goal", ["Pricing", "Blog", "Product"]]]""")]
    public Task A_goal_filter_scopes_conversions_and_rates(string filters) =>
        data.AssertAgreesAsync(Query(From, To, "UTC", ["visitors", "conversions", "conversion_rate", "group_conversion_rate"], ["source"], Filters(filters)));

    [Theory]
    [InlineData("""[["is", "goal", ["Signup"]]]""")]
    [InlineData("""[["is_not", "goal", ["Pricing", "Blog"]]]""")]
    public Task A_goal_filter_selects_the_completing_events(string filters) =>
        data.AssertAgreesAsync(Query(From, To, "UTC", ["visitors", "pageviews", "events"], null, Filters(filters)));
}
