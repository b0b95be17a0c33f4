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
        // Revenue's change is a % per currency (its data-raw, checked above): read as one, not as money.
        var change = dash.Page.Locator("[data-card=total_revenue] [data-change]");
        var perCurrency = JsonNode.Parse((await change.GetAttributeAsync("data-raw"))!)!.AsObject();
        var shown = perCurrency.Select(kv => kv.Value is null ? "–"
            : $"{(kv.Value.GetValue<double>() > 0 ? "↑ " : kv.Value.GetValue<double>() < 0 ? "↓ " : "")}{Math.Abs(kv.Value.GetValue<double>()).ToString("#,##0.##", System.Globalization.CultureInfo.InvariantCulture)}%").ToList();
        Assert.Equal(perCurrency.Count == 1 ? shown[0] : string.Join(" · ", perCurrency.Select((kv, i) => $"{kv.Key} {shown[i]}")), await change.InnerTextAsync());
        dash.AssertClean();
    }

    /// <summary>Site A's 30-day view, signed in, with the conversion rate card charted.</summary>
    private async Task<DashboardPage> ChartingConversionRateAsync()
    {
        var dash = await DashboardPage.OpenAsync(fixture);
        try
        {
            await dash.SignInAsync(DashboardFixture.OwnerA, Site);
            await dash.Page.ClickAsync("[data-card=conversion_rate]");
            await Assertions.Expect(dash.Page.Locator("#chart[data-metric=conversion_rate][data-ready=true]"))
                .ToHaveCountAsync(1, new() { Timeout = (float)DashboardPage.Patience.TotalMilliseconds });
            return dash;
        }
        catch
        {
            await dash.DisposeAsync();
            throw;
        }
    }

    [Fact]
    public async Task The_conversion_rate_chart_shows_each_days_own_rate()
    {
        await using var dash = await ChartingConversionRateAsync();
        var chart = dash.Page.Locator("#chart[data-metric=conversion_rate][data-ready=true]");
        var labels = JsonNode.Parse((await chart.GetAttributeAsync("data-labels"))!)!.AsArray().Select(l => l!.GetValue<string>()).ToList();
        var values = JsonNode.Parse((await chart.GetAttributeAsync("data-values"))!)!.AsArray();
        Assert.Equal(30, labels.Count);

        // Each day: the day's visitors who completed any goal / the day's visitors (the oracle's
        // group_conversion_rate by day); days without visitors are 0.
        var view = View.Named("30d");
        var goals = Expected.AnyGoal(fixture.Oracle.Goals);
        var days = fixture.Oracle.Run(view.Request(["group_conversion_rate"], "time:day", goals)).Rows.ToDictionary(r => r.Dimensions[0], r => r.Metrics[0]);
        var problems = labels.Select((label, i) => (label, raw: values[i]?.ToJsonString() ?? ""))
            .Where(p => days.TryGetValue(p.label, out var want) ? !Expected.Matches(want, p.raw) : p.raw is not ("" or "0"))
            .Select(p => $"{p.label}: shown {p.raw}, expected {(days.TryGetValue(p.label, out var want) ? want : "0")}").ToList();
        Assert.True(problems.Count == 0, "conversion rate chart:\n" + string.Join("\n", problems));
        // The whole range's visitors as the denominator (conversion_rate by day) would differ.
        var overRange = fixture.Oracle.Run(view.Request(["conversion_rate"], "time:day", goals)).Rows.ToDictionary(r => r.Dimensions[0], r => r.Metrics[0]);
        Assert.Contains(labels.Select((label, i) => (label, raw: values[i]?.ToJsonString() ?? "")), p => overRange.TryGetValue(p.label, out var other) && !Expected.Matches(other, p.raw));
        dash.AssertClean();
    }

    [Fact]
    public async Task A_site_without_goals_charts_visitors_when_the_conversion_rate_was_charted()
    {
        await using var dash = await ChartingConversionRateAsync();
        await dash.Page.SelectOptionAsync("#site-picker", fixture.Catalog.PublicId);
        await Assertions.Expect(dash.Page.Locator("#chart")).ToHaveAttributeAsync("data-metric", "visitors", new() { Timeout = (float)DashboardPage.Patience.TotalMilliseconds });
        await Assertions.Expect(dash.Page.Locator("#status")).ToContainTextAsync("Updated", new() { Timeout = (float)DashboardPage.Patience.TotalMilliseconds });
        Assert.Equal("", await dash.Page.Locator("#status").GetAttributeAsync("class"));
        await Assertions.Expect(dash.Page.Locator("[data-card=visitors]")).ToHaveAttributeAsync("aria-pressed", "true");
        Assert.Equal(0, await dash.Page.Locator("[data-card=conversion_rate]").CountAsync());
        Assert.NotEqual("conversion_rate", dash.Query()["metric"]);
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
