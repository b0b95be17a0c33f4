using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Playwright;

namespace Analytics.Dashboard.Tests;

/// <summary>A panel's details dialog (pages of rows, a search) and its CSV export, against the oracle.</summary>
[Collection(DashboardCollection.Name)]
public class DetailsAndExportTests(DashboardFixture fixture)
{
    [Fact]
    public async Task The_details_dialog_pages_and_searches_as_the_oracle_paginates()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerA, $"/?site={fixture.Catalog.PublicId}");
        var view = View.Named("30d");
        int total = fixture.CatalogOracle.Run(view.Request(["visitors"], "page")).TotalRows;
        await dash.Page.ClickAsync("[data-details=pages]");
        var dialog = dash.Page.Locator("dialog#details");
        await Assertions.Expect(dialog).ToBeVisibleAsync();
        // The page size is what the first page holds; the catalog has more pages than that.
        var first = await DashboardPage.EventuallyAsync("details, first page", () => dash.RowsAsync("dialog#details"),
            rows => rows.Count == 0 ? ["no rows"] : Expected.RowProblems(fixture.CatalogOracle, view, "page", rows, rows.Count));
        int size = first.Count;
        Assert.True(size < total, $"the details page holds {size} rows; the catalog has {total} pages, so there must be a next page");

        await dash.Page.ClickAsync("#details-next");
        await DashboardPage.EventuallyAsync("details, second page", () => dash.RowsAsync("dialog#details"),
            rows => Expected.RowProblems(fixture.CatalogOracle, view, "page", rows, size, offset: size));

        // Lower-case text: a case-sensitive and a case-insensitive contains agree.
        await dash.Page.FillAsync("#details-search", "item-1");
        var search = new JsonArray(new JsonArray("contains", "page", new JsonArray("item-1"), new JsonObject { ["case_sensitive"] = false }));
        var found = await DashboardPage.EventuallyAsync("details, searched", () => dash.RowsAsync("dialog#details"),
            rows => Expected.RowProblems(fixture.CatalogOracle, view, "page", rows, size, extraFilters: search));
        Assert.NotEmpty(found);
        Assert.All(found, r => Assert.Contains("item-1", r.Key, StringComparison.Ordinal));
        dash.AssertClean();
    }

    /// <summary>Goals take no `contains` and countries show names over ISO codes: a search finds
    /// the goal by a piece of its name and the country by a piece of its English name.</summary>
    [Theory]
    [InlineData("goals", "goal", "sIGn", "Signup")]
    [InlineData("countries", "country", "austral", "AU")]
    public async Task The_details_search_finds_goals_and_countries_by_the_names_shown(string panel, string dimension, string text, string key)
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerA, $"/?site={fixture.SiteA.PublicId}");
        await dash.Page.ClickAsync($"[data-tab={panel}]");
        await dash.Page.ClickAsync($"[data-details={panel}]");
        await Assertions.Expect(dash.Page.Locator("dialog#details")).ToBeVisibleAsync();
        await dash.Page.FillAsync("#details-search", text);
        var view = View.Named("30d");
        var only = new JsonArray(new JsonArray("is", dimension, new JsonArray(key)));
        var found = await DashboardPage.EventuallyAsync($"details of {panel}, searched for {text}", () => dash.RowsAsync("dialog#details"),
            rows => rows.Count != 1 ? [$"{rows.Count} rows: {string.Join(", ", rows.Select(r => r.Key))}"] : Expected.RowProblems(fixture.Oracle, view, dimension, rows, 20, extraFilters: only));
        Assert.Equal(key, found.Single().Key);
        dash.AssertClean();
    }

    /// <summary>A panel whose query fails (the store's circuit breaker answers 503 with
    /// Retry-After; here the browser's route answers it for the countries query only) says so
    /// and offers Retry, instead of "Loading…" for good; Retry then shows the oracle's rows.</summary>
    [Fact]
    public async Task A_panel_whose_query_fails_says_so_and_retry_loads_it()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        bool failing = true;
        await dash.Page.RouteAsync("**/v1/query", async route =>
        {
            if (failing && (route.Request.PostData ?? "").Contains("\"dimensions\":[\"country\"]", StringComparison.Ordinal))
                await route.FulfillAsync(new() { Status = 503, ContentType = "application/problem+json", Headers = new Dictionary<string, string> { ["Retry-After"] = "30" },
                    Body = """{"title":"The store is unavailable","status":503,"detail":"the store did not answer"}""" });
            else await route.ContinueAsync();
        });
        dash.Allow(p => p.StartsWith("response 503: POST", StringComparison.Ordinal)
            || p.StartsWith("console error: Failed to load resource: the server responded with a status of 503", StringComparison.Ordinal));
        await dash.SignInAsync(DashboardFixture.OwnerA, $"/?site={fixture.SiteA.PublicId}", expectUpdated: false);
        var panel = dash.Page.Locator(DashboardNumbersTests.Panel("countries"));
        await Assertions.Expect(panel).ToHaveAttributeAsync("data-ready", "error");
        await Assertions.Expect(panel.Locator("[data-error]")).ToContainTextAsync("the store did not answer");
        await Assertions.Expect(panel.Locator("[data-error]")).ToContainTextAsync("Try again in 30 s");
        // The other panels are unaffected.
        await Assertions.Expect(dash.Page.Locator(DashboardNumbersTests.Panel("pages"))).ToHaveAttributeAsync("data-ready", "true");

        failing = false;
        await panel.Locator("[data-retry]").ClickAsync();
        await DashboardPage.EventuallyAsync("countries after retry", () => dash.RowsAsync(DashboardNumbersTests.Panel("countries")),
            rows => rows.Count == 0 ? ["no rows"] : Expected.RowProblems(fixture.Oracle, View.Named("30d"), "country", rows, 9));
        // The error the status line reported is gone once nothing is failing any more.
        await Assertions.Expect(dash.Page.Locator("#status")).Not.ToHaveClassAsync("error");
        dash.AssertClean();
    }

    [Fact]
    public async Task A_panels_csv_export_holds_the_oracles_rows()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerA, $"/?site={fixture.SiteA.PublicId}");
        var view = View.Named("30d");
        await DashboardNumbersTests.AssertPanelAsync(dash, fixture.Oracle, view, "pages");
        var download = await dash.Page.RunAndWaitForDownloadAsync(() => dash.Page.Locator("[data-export=pages]").First.ClickAsync());
        string path = await download.PathAsync();
        var lines = Csv(await File.ReadAllTextAsync(path, Encoding.UTF8, TestContext.Current.CancellationToken));
        Assert.True(lines.Count > 1, "the CSV has a header and rows");
        Assert.Equal("page", lines[0][0]);
        var rows = lines.Skip(1).Select(l => new DashboardPage.Row(l[0],
            lines[0].Skip(1).Select((metric, i) => (metric, value: l[i + 1])).ToDictionary(c => c.metric, c => (string?)c.value))).ToList();
        var problems = Expected.RowProblems(fixture.Oracle, view, "page", rows, 10_000);
        Assert.True(problems.Count == 0, "CSV export:\n" + string.Join("\n", problems));
        dash.AssertClean();
    }

    /// <summary>RFC 4180 as docs/query-api.md writes it: CRLF lines, quoted fields with doubled quotes.</summary>
    private static List<List<string>> Csv(string text)
    {
        var lines = new List<List<string>>();
        var field = new StringBuilder();
        var line = new List<string>();
        bool quoted = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { line.Add(field.ToString()); field.Clear(); }
            else if (c == '\r' && i + 1 < text.Length && text[i + 1] == '\n')
            {
                line.Add(field.ToString());
                field.Clear();
                lines.Add(line);
                line = [];
                i++;
            }
            else field.Append(c);
        }
        if (field.Length > 0 || line.Count > 0)
        {
            line.Add(field.ToString());
            lines.Add(line);
        }
        return lines;
    }
}
