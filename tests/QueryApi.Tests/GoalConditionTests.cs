using Analytics.ControlPlane;
using Analytics.QueryService.Goals;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// GoalConditions.Sql run by the engine itself against single made-up rows. The expectations are
/// written by hand from the documented pattern rules: * is any run of characters except '/',
/// ** any run of characters, everything else literal, the whole path must match.
/// </summary>
public class GoalConditionTests(EngineFixture engine)
{
    public static TheoryData<string, string, bool> Paths => new()
    {
        { "/pricing", "/pricing", true },
        { "/pricing", "/pricing/", false },
        { "/pricing", "/pricingx", false },
        { "/pricing", "/x/pricing", false },
        { "/blog/*", "/blog/hello", true },
        { "/blog/*", "/blog/", true },
        { "/blog/*", "/blog/a/b", false },
        { "/blog/*", "/blog", false },
        { "/blog/**", "/blog/a/b/c", true },
        { "/blog/**", "/blog/", true },
        { "/blog/**", "/blogger", false },
        { "/*/checkout", "/shop/checkout", true },
        { "/*/checkout", "/a/b/checkout", false },
        { "/**/checkout", "/a/b/checkout", true },
        { "/**/checkout", "/checkout", false },
        { "/x*y", "/xabcy", true },
        { "/x*y", "/x/y", false },
        { "**", "/any/thing/at/all", true },
        { "/a***", "/a/b/c", true },
        { "/a.b", "/a.b", true },
        { "/a.b", "/axb", false },
        { "/p(1)+[x]?", "/p(1)+[x]?", true },
        { "/p(1)+[x]?", "/p1", false },
        { "/c++/$^|{2}", "/c++/$^|{2}", true },
        { "/c++/$^|{2}", "/cc/", false },
        { @"/back\slash", @"/back\slash", true },
        { @"/back\slash", "/backslash", false },
        { "/it's \"quoted\"", "/it's \"quoted\"", true },
        { "/ünï/*", "/ünï/cødé", true },
        { "/%20/*", "/%20/x", true },
        { "/.*", "/anything", false },
        { "/.*", "/.", true },
    };

    [Theory]
    [MemberData(nameof(Paths))]
    public async Task A_page_goal_matches_exactly_the_paths_its_pattern_describes(string pattern, string path, bool expected)
    {
        var goal = new Goal(1, 1, "g", GoalKinds.Page, pattern, DateTimeOffset.UnixEpoch);
        Assert.Equal(expected, await MatchesAsync(goal, "pageview", path));
    }

    [Fact]
    public async Task A_page_goal_needs_a_pageview_and_an_event_goal_the_events_name()
    {
        var page = new Goal(1, 1, "g", GoalKinds.Page, "/checkout", DateTimeOffset.UnixEpoch);
        Assert.False(await MatchesAsync(page, "click", "/checkout"));
        var signup = new Goal(1, 1, "g", GoalKinds.Event, "sign'up", DateTimeOffset.UnixEpoch);
        Assert.True(await MatchesAsync(signup, "sign'up", "/"));
        Assert.False(await MatchesAsync(signup, "signup", "/"));
        Assert.False(await MatchesAsync(signup, "pageview", "/"));
    }

    [Fact]
    public async Task A_property_and_a_currency_narrow_the_goal()
    {
        var pro = new Goal(1, 1, "g", GoalKinds.Event, "purchase", DateTimeOffset.UnixEpoch) { Property = new GoalProperty("plan", "pro"), Currency = "EUR" };
        Assert.True(await MatchesAsync(pro, "purchase", "/", "map('plan', 'pro', 'x', 'y')", "EUR"));
        Assert.False(await MatchesAsync(pro, "purchase", "/", "map('plan', 'free')", "EUR"));
        Assert.False(await MatchesAsync(pro, "purchase", "/", "map()", "EUR"));
        Assert.False(await MatchesAsync(pro, "purchase", "/", "map('plan', 'pro')", "USD"));
        var page = new Goal(1, 1, "g", GoalKinds.Page, "/cart/*", DateTimeOffset.UnixEpoch) { Property = new GoalProperty("step", "2") };
        Assert.True(await MatchesAsync(page, "pageview", "/cart/a", "map('step', '2')"));
        Assert.False(await MatchesAsync(page, "pageview", "/cart/a", "map('step', '3')"));
    }

    private async Task<bool> MatchesAsync(Goal goal, string name, string path, string props = "map()", string currency = "")
    {
        string sql = $"""
            SELECT {GoalConditions.Sql(goal)} FROM (SELECT {Analytics.Store.ClickHouseSql.StringLiteral(name)} AS name,
              {Analytics.Store.ClickHouseSql.StringLiteral(path)} AS pathname, CAST({props}, 'Map(String, String)') AS props,
              {Analytics.Store.ClickHouseSql.StringLiteral(currency)} AS currency)
            """;
        var rows = await engine.Store.QueryRowsAsync(sql, TestContext.Current.CancellationToken);
        return rows[0][0].ValueKind == System.Text.Json.JsonValueKind.Number ? rows[0][0].GetInt32() == 1 : rows[0][0].GetBoolean();
    }
}
