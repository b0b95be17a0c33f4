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

        // A's site by URL: the page says it cannot show it and shows none of A's numbers (B's site
        // is empty: every card 0); whatever the page asked about A was refused (403 or 404), and so
        // is B's own token asking directly.
        string a = fixture.SiteA.PublicId;
        var asked = new List<(string Url, int Status)>();
        string? bearer = null;
        dash.Page.Request += (_, r) => { if (r.Headers.TryGetValue("authorization", out var h)) bearer = h; };
        dash.Page.Response += (_, r) =>
        {
            if (r.Url.Contains(a, StringComparison.Ordinal) || (r.Request.PostData ?? "").Contains(a, StringComparison.Ordinal)) lock (asked) asked.Add((r.Url, r.Status));
        };
        dash.Allow(p => (p.StartsWith("response 403", StringComparison.Ordinal) || p.StartsWith("response 404", StringComparison.Ordinal)) && p.Contains("/v1/", StringComparison.Ordinal));
        // Chromium logs each refused fetch as a console error of its own.
        dash.Allow(p => p.StartsWith("console error: Failed to load resource: the server responded with a status of 40", StringComparison.Ordinal));
        await dash.Page.GotoAsync($"{dash.BaseAddress}/?site={a}");
        // The status line names the site it will not show; the page moves on to B's own site.
        await Assertions.Expect(dash.Page.Locator("#status")).ToContainTextAsync(a);
        await Assertions.Expect(dash.Page.Locator("#status")).ToHaveClassAsync("error");
        Assert.NotEqual(a, dash.Query()["site"]);
        Assert.DoesNotContain(a, await dash.Page.Locator("#site-picker").EvaluateAsync<string[]>("s => [...s.options].map(o => o.value)"));
        foreach (var (metric, shown) in await dash.CardsAsync())
        {
            Assert.True(string.IsNullOrEmpty(shown.Value) || shown.Value == "0", $"card {metric} shows {shown.Value} for a site of another merchant");
        }
        Assert.Empty(await dash.RowsAsync("[data-panel]"));
        Assert.DoesNotContain(fixture.SiteA.Domain, await dash.Page.Locator("body").InnerTextAsync());
        lock (asked)
        {
            // The page itself (/?site=A) is the only thing about A that may answer 200.
            Assert.All(asked.Where(x => x.Url.Contains("/v1/", StringComparison.Ordinal)), x => Assert.True(x.Status is 403 or 404, $"{x.Url}: {x.Status}"));
        }
        Assert.NotNull(bearer);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/query")
        {
            Content = new StringContent($$"""{"site_id": "{{a}}", "date_range": "30d", "metrics": ["visitors"]}""", System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.TryAddWithoutValidation("Authorization", bearer);
        using var direct = new HttpClient { BaseAddress = new Uri(dash.BaseAddress) };
        using var answer = await direct.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.True(answer.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.Forbidden, $"B's token on A's site: {(int)answer.StatusCode}");
        dash.AssertClean();
    }
}
