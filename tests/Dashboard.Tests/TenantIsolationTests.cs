using Microsoft.Playwright;

namespace Analytics.Dashboard.Tests;

/// <summary>Merchant B's user signed in to the dashboard: merchant A's site is neither offered
/// nor readable by URL, and nothing of A's numbers reaches the page.</summary>
[Collection(DashboardCollection.Name)]
public class TenantIsolationTests(DashboardFixture fixture)
{
    [Fact]
    public async Task A_second_merchants_user_never_sees_the_first_merchants_site_in_the_picker_or_by_url()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerB, "/");
        var options = await dash.Page.Locator("#site-picker option").EvaluateAllAsync<string[]>("os => os.map(o => o.value)");
        Assert.Equal([fixture.SiteB.PublicId], options);

        // A's site by URL: the API refuses it (403 or 404), the page says so and shows none of A's numbers.
        string a = fixture.SiteA.PublicId;
        var refused = new List<int>();
        dash.Page.Response += (_, r) => { if (r.Url.Contains("/v1/", StringComparison.Ordinal) && r.Status is 403 or 404) refused.Add(r.Status); };
        dash.Allow(p => (p.StartsWith("response 403", StringComparison.Ordinal) || p.StartsWith("response 404", StringComparison.Ordinal)) && p.Contains("/v1/", StringComparison.Ordinal));
        // Chromium logs each refused fetch as a console error of its own.
        dash.Allow(p => p.StartsWith("console error: Failed to load resource: the server responded with a status of 40", StringComparison.Ordinal));
        await dash.Page.GotoAsync($"{dash.BaseAddress}/?site={a}");
        await Assertions.Expect(dash.Page.Locator("#status.error")).ToBeVisibleAsync();
        Assert.NotEmpty(refused);
        Assert.DoesNotContain(a, await dash.Page.Locator("#site-picker").EvaluateAsync<string[]>("s => [...s.options].map(o => o.value)"));
        var total = fixture.Oracle.Run(View.Named("30d").Request(["visitors", "pageviews"])).Rows.Single();
        var cards = await dash.CardsAsync();
        foreach (var (metric, shown) in cards)
        {
            Assert.True(string.IsNullOrEmpty(shown.Value) || shown.Value == "0", $"card {metric} shows {shown.Value} for a site of another merchant");
        }
        Assert.Empty(await dash.RowsAsync("[data-panel]"));
        string text = await dash.Page.Locator("body").InnerTextAsync();
        Assert.DoesNotContain(fixture.SiteA.Domain, text);
        Assert.True(total.Metrics[1] is QueryOracle.Exact { Value: > 0 }, "the data set has pageviews in the 30-day view");
        dash.AssertClean();
    }
}
