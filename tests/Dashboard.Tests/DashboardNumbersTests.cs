using System.Text.Json.Nodes;
using Microsoft.Playwright;

namespace Analytics.Dashboard.Tests;

/// <summary>Every number of the default view, the comparisons and the ranges, read from the
/// page's data-raw attributes and checked against the query oracle.</summary>
[Collection(DashboardCollection.Name)]
public class DashboardNumbersTests(DashboardFixture fixture)
{
    private string Site => $"/?site={fixture.SiteA.PublicId}";

    internal static async Task AssertCardsAsync(DashboardPage dash, QueryOracle oracle, View view, string? what = null) =>
        await DashboardPage.EventuallyAsync(what ?? "cards", dash.CardsAsync, cards => Expected.CardProblems(oracle, view, cards,
            // Revenue shows only on a site with a revenue goal (the data set's site has one).
            oracle.Goals.Any(g => g.Currency is not null) ? Expected.Cards : Expected.Cards[..^1]));

    /// <summary>The page's panel <paramref name="name"/>, not the details dialog's copy of it.</summary>
    internal static string Panel(string name) => $"[data-panel={name}]:not(dialog *)";

    /// <summary>The first rows of panel <paramref name="name"/> (clicking its tab first when it
    /// has one; the properties panel asked for the data set's key <c>plan</c>).</summary>
    internal static async Task AssertPanelAsync(DashboardPage dash, QueryOracle oracle, View view, string name)
    {
        var tab = dash.Page.Locator($"[data-tab={name}]");
        if (await tab.CountAsync() > 0) await tab.First.ClickAsync();
        var panel = dash.Page.Locator(Panel(name));
        await Assertions.Expect(panel).ToBeVisibleAsync();
        if (name == "props")
        {
            await dash.Page.FillAsync("#prop-key", "plan");
            await dash.Page.PressAsync("#prop-key", "Enter");
        }
        await DashboardPage.EventuallyAsync($"panel {name}", () => dash.RowsAsync(Panel(name)),
            rows => Expected.RowProblems(oracle, view, Expected.Panels[name], rows, 9));
    }

    [Fact]
    public async Task Every_card_and_the_first_rows_of_every_panel_equal_the_oracle_for_the_default_30_day_view()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerA, Site);
        var view = View.Named("30d");
        await AssertCardsAsync(dash, fixture.Oracle, view);
        foreach (var name in Expected.Panels.Keys) await AssertPanelAsync(dash, fixture.Oracle, view, name);
        // The chart draws one bucket per day of the 30 days.
        await Assertions.Expect(dash.Page.Locator("#chart")).ToHaveAttributeAsync("data-ready", "true");
        Assert.Equal("30", await dash.Page.Locator("#chart").GetAttributeAsync("data-points"));
        dash.AssertClean();
    }

    [Theory]
    [InlineData("previous_period")]
    [InlineData("year_over_year")]
    public async Task With_a_comparison_every_cards_change_equals_the_oracles(string mode)
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerA, Site);
        await dash.Page.SelectOptionAsync("#compare", mode);
        await AssertCardsAsync(dash, fixture.Oracle, View.Named("30d", compare: mode), $"cards compared ({mode})");
        Assert.Equal(mode, dash.Query()["compare"]);
        dash.AssertClean();
    }

    [Fact]
    public async Task Today_yesterday_seven_days_month_to_date_last_month_and_a_custom_range_read_the_oracles_numbers()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerA, Site);
        foreach (var period in new[] { "day", "yesterday", "7d", "month", "last_month" })
        {
            await dash.Page.SelectOptionAsync("#period", period);
            await AssertCardsAsync(dash, fixture.Oracle, View.Named(period), $"cards of {period}");
            await AssertPanelAsync(dash, fixture.Oracle, View.Named(period), "pages");
            Assert.Equal(period, dash.Query()["period"]);
        }
        // Both DST changes of 2026 and the days around them.
        var (from, to) = (new DateOnly(2026, 10, 24), new DateOnly(2026, 11, 1));
        await dash.Page.SelectOptionAsync("#period", "custom");
        await dash.Page.FillAsync("#from", DashboardPage.Date(from));
        await dash.Page.FillAsync("#to", DashboardPage.Date(to));
        await dash.Page.ClickAsync("#apply-range");
        await AssertCardsAsync(dash, fixture.Oracle, View.Custom(from, to), "cards of the custom range");
        await AssertPanelAsync(dash, fixture.Oracle, View.Custom(from, to), "sources");
        Assert.Equal(DashboardPage.Date(from), dash.Query()["from"]);
        Assert.Equal(DashboardPage.Date(to), dash.Query()["to"]);
        dash.AssertClean();
    }
}
