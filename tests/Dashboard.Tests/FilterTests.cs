using System.Text.Json.Nodes;
using Microsoft.Playwright;

namespace Analytics.Dashboard.Tests;

/// <summary>Drilling down: a click on a row filters the whole page, the URL says so, back and
/// the chip's remove button undo it.</summary>
[Collection(DashboardCollection.Name)]
public class FilterTests(DashboardFixture fixture)
{
    [Fact]
    public async Task Clicking_a_row_filters_every_number_and_the_url_and_back_or_removing_the_chip_restores_them()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerA, $"/?site={fixture.SiteA.PublicId}");
        var all = View.Named("30d");
        await DashboardNumbersTests.AssertCardsAsync(dash, fixture.Oracle, all);
        await DashboardNumbersTests.AssertPanelAsync(dash, fixture.Oracle, all, "sources");
        string unfiltered = dash.Page.Url;

        // The second source: not the largest, so the filtered numbers differ from the totals.
        var row = dash.Page.Locator(DashboardNumbersTests.Panel("sources") + " [data-row]").Nth(1);
        string source = await row.GetAttributeAsync("data-key") ?? "";
        await row.Locator("button").First.ClickAsync();
        var filtered = View.Named("30d", [new JsonArray("is", "source", new JsonArray(source))]);
        var chip = dash.Page.Locator($"[data-chip][data-dimension=source][data-op=is]");
        await Assertions.Expect(chip).ToHaveCountAsync(1);
        Assert.Equal(source, await chip.GetAttributeAsync("data-value"));
        Assert.Equal([$"source,is,{source}"], dash.Query().GetValues("f") ?? []);
        await DashboardNumbersTests.AssertCardsAsync(dash, fixture.Oracle, filtered, $"cards filtered by source {source}");
        await DashboardNumbersTests.AssertPanelAsync(dash, fixture.Oracle, filtered, "pages");
        await DashboardNumbersTests.AssertPanelAsync(dash, fixture.Oracle, filtered, "countries");

        // Back: the unfiltered URL and numbers.
        await dash.Page.GoBackAsync();
        await Assertions.Expect(dash.Page).ToHaveURLAsync(unfiltered);
        await Assertions.Expect(dash.Page.Locator("[data-chip]")).ToHaveCountAsync(0);
        await DashboardNumbersTests.AssertCardsAsync(dash, fixture.Oracle, all, "cards after back");
        await DashboardNumbersTests.AssertPanelAsync(dash, fixture.Oracle, all, "pages");

        // A row of another panel, then its chip's remove button.
        var country = dash.Page.Locator(DashboardNumbersTests.Panel("countries") + " [data-row]").First;
        string code = await country.GetAttributeAsync("data-key") ?? "";
        await country.Locator("button").First.ClickAsync();
        await DashboardNumbersTests.AssertCardsAsync(dash, fixture.Oracle, View.Named("30d", [new JsonArray("is", "country", new JsonArray(code))]), $"cards filtered by country {code}");
        Assert.Equal([$"country,is,{code}"], dash.Query().GetValues("f") ?? []);
        await dash.Page.Locator("[data-chip][data-dimension=country] button").ClickAsync();
        await Assertions.Expect(dash.Page.Locator("[data-chip]")).ToHaveCountAsync(0);
        await DashboardNumbersTests.AssertCardsAsync(dash, fixture.Oracle, all, "cards after removing the chip");
        Assert.Empty(dash.Query().GetValues("f") ?? []);
        dash.AssertClean();
    }

    [Fact]
    public async Task The_chosen_tabs_are_in_the_url_so_a_reload_or_a_shared_link_shows_the_same_panels()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerA, $"/?site={fixture.SiteA.PublicId}");
        await DashboardNumbersTests.AssertPanelAsync(dash, fixture.Oracle, View.Named("30d"), "cities");
        await DashboardNumbersTests.AssertPanelAsync(dash, fixture.Oracle, View.Named("30d"), "utm_campaign");
        Assert.Equal(["utm_campaign", "cities"], (dash.Query().GetValues("tab") ?? []).Order(StringComparer.Ordinal).Reverse());

        await dash.Page.ReloadAsync();
        foreach (var (tab, dimension) in new[] { ("cities", "city"), ("utm_campaign", "utm_campaign") })
        {
            await Assertions.Expect(dash.Page.Locator($"[data-tab={tab}]")).ToHaveAttributeAsync("aria-selected", "true");
            await DashboardPage.EventuallyAsync($"{tab} after a reload", () => dash.RowsAsync(DashboardNumbersTests.Panel(tab)),
                rows => Expected.RowProblems(fixture.Oracle, View.Named("30d"), dimension, rows, 9));
        }
        // A link naming a property key opens the Properties tab.
        await dash.Page.GotoAsync($"{dash.BaseAddress}/?site={fixture.SiteA.PublicId}&prop=plan");
        await Assertions.Expect(dash.Page.Locator("[data-tab=props]")).ToHaveAttributeAsync("aria-selected", "true");
        await Assertions.Expect(dash.Page.Locator(DashboardNumbersTests.Panel("props"))).ToHaveAttributeAsync("data-dimension", "props:plan");
        // Goals chosen there is written (the prop= alone would open Properties again) and kept.
        await dash.Page.ClickAsync("[data-tab=goals]");
        Assert.Equal(["goals"], dash.Query().GetValues("tab") ?? []);
        await dash.Page.ReloadAsync();
        await Assertions.Expect(dash.Page.Locator("[data-tab=goals]")).ToHaveAttributeAsync("aria-selected", "true");
        dash.AssertClean();
    }
}
