using Microsoft.Playwright;

namespace Analytics.Dashboard.Tests;

/// <summary>The funnel view of a funnel made through the API, against a funnel counted in plain LINQ.</summary>
[Collection(DashboardCollection.Name)]
public class FunnelViewTests(DashboardFixture fixture)
{
    [Fact]
    public async Task The_funnel_view_shows_the_visitors_conversion_and_drop_off_of_each_step()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        string id = fixture.FunnelId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await dash.SignInAsync(DashboardFixture.OwnerA, $"/?site={fixture.SiteA.PublicId}&funnel={id}");
        var tab = dash.Page.Locator("[data-tab=funnel]");
        if (await tab.CountAsync() > 0) await tab.First.ClickAsync();
        await Assertions.Expect(dash.Page.Locator("#funnel-picker")).ToHaveValueAsync(id);
        var range = fixture.Oracle.Run(View.Named("30d").Request(["visitors"])).Range;
        long[] reached = Expected.Funnel(fixture.Oracle, range, DashboardFixture.FunnelSteps, DashboardFixture.FunnelWindowSeconds);
        Assert.True(reached[^1] > 0, "some visitors complete the whole funnel in the data set");

        await DashboardPage.EventuallyAsync("funnel steps", () => dash.RowsAsync("[data-panel=funnel]", "data-step", "data-step"), steps =>
        {
            var problems = new List<string>();
            if (steps.Count != reached.Length) problems.Add($"{steps.Count} steps shown, expected {reached.Length}");
            for (int s = 0; s < Math.Min(steps.Count, reached.Length); s++)
            {
                double rate = reached[0] == 0 ? 0 : 100.0 * reached[s] / reached[0];
                long dropoff = s == 0 ? 0 : reached[s - 1] - reached[s];
                var want = new (string Col, QueryOracle.Expect Value)[]
                {
                    ("visitors", new QueryOracle.Exact(reached[s])),
                    ("conversion_rate", new QueryOracle.Rounded(rate, 0.1)),
                    ("dropoff", new QueryOracle.Exact(dropoff)),
                };
                foreach (var (col, value) in want)
                {
                    string? raw = steps[s].Cells.GetValueOrDefault(col);
                    if (!Expected.Matches(value, raw)) problems.Add($"step {s + 1} {col}: expected {value}, shown {Expected.Show(raw)}");
                }
            }
            return problems;
        });
        Assert.Equal(id, dash.Query()["funnel"]);
        dash.AssertClean();
    }

    /// <summary>A funnel whose query fails says why and offers Retry, and keeps its picker (before,
    /// the error replaced the picker too, so another funnel could not be chosen).</summary>
    [Fact]
    public async Task A_funnel_whose_query_fails_keeps_its_picker_and_retry_loads_it()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        bool failing = true;
        await dash.Page.RouteAsync("**/v1/funnel", async route =>
        {
            if (failing)
                await route.FulfillAsync(new() { Status = 503, ContentType = "application/problem+json", Headers = new Dictionary<string, string> { ["Retry-After"] = "30" },
                    Body = """{"title":"The store is unavailable","status":503,"detail":"the store did not answer"}""" });
            else await route.ContinueAsync();
        });
        dash.Allow(p => p.StartsWith("response 503: POST", StringComparison.Ordinal)
            || p.StartsWith("console error: Failed to load resource: the server responded with a status of 503", StringComparison.Ordinal));
        string id = fixture.FunnelId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await dash.SignInAsync(DashboardFixture.OwnerA, $"/?site={fixture.SiteA.PublicId}&funnel={id}", expectUpdated: false);
        var panel = dash.Page.Locator(DashboardNumbersTests.Panel("funnel"));
        await Assertions.Expect(panel).ToHaveAttributeAsync("data-ready", "error");
        await Assertions.Expect(panel.Locator("[data-error]")).ToContainTextAsync("the store did not answer");
        await Assertions.Expect(panel.Locator("#funnel-picker")).ToHaveValueAsync(id);

        failing = false;
        await panel.Locator("[data-retry]").ClickAsync();
        await Assertions.Expect(panel).ToHaveAttributeAsync("data-ready", "true");
        await Assertions.Expect(panel.Locator("[data-step]")).ToHaveCountAsync(DashboardFixture.FunnelSteps.Length);
        dash.AssertClean();
    }
}
