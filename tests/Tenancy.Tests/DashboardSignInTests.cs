using Microsoft.Playwright;

namespace Analytics.Tenancy.Tests;

/// <summary>
/// The dashboard page signs a user in the way a browser does: the page starts the authorization
/// code flow with PKCE, the server's login form takes the password, the page redeems the code
/// and reads the query API with the token. Debian's chromium, driven by Playwright (no browser
/// download); ./test.sh installs it, and its absence fails the test rather than skipping it.
/// </summary>
public class DashboardSignInTests(EngineFixture engine)
{
    private const string Chromium = "/usr/bin/chromium";
    // The numbers take a few queries to the engine: seconds on a busy 2-core machine, so the
    // waits for them get more than Playwright's 5-second default.
    private const float Wait = 20_000;

    [Fact]
    public async Task The_dashboard_signs_in_with_code_and_pkce_and_shows_the_merchants_numbers()
    {
        Assert.True(File.Exists(Chromium), "needs Debian's chromium at /usr/bin/chromium (./test.sh installs it: apt-get install chromium)");
        await using var host = await AuthHost.StartAsync(engine);
        var (merchant, site) = host.NewMerchant("Dashboard Shop");
        host.NewUser(merchant.Id, "owner@dashboard.example", "correct horse battery");

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true, Args = ["--no-sandbox"] });
        var page = await browser.NewPageAsync();
        page.SetDefaultTimeout(20_000);
        await page.GotoAsync($"{host.BaseAddress}/?site={site.PublicId}");
        // Signed out: no numbers, a sign-in button.
        await Assertions.Expect(page.Locator("#signin")).ToBeVisibleAsync();
        Assert.Equal(0, await page.Locator("[data-card=pageviews]").CountAsync());

        await page.ClickAsync("#signin");
        // The page starts the flow after hashing the PKCE verifier (asynchronously), so the
        // navigation may begin after the click returns: wait for the form rather than an event.
        await Assertions.Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/account/login"), new() { Timeout = Wait });
        await page.FillAsync("#email", "owner@dashboard.example");
        await page.FillAsync("#password", "correct horse battery");
        await page.ClickAsync("button[type=submit]");

        // Back on the dashboard with the site kept, numbers from the query API, no code left in the URL.
        await Assertions.Expect(page).ToHaveURLAsync($"{host.BaseAddress}/?site={site.PublicId}", new() { Timeout = Wait });
        // The built dashboard (dashboard/dist: ./test.sh builds it; the host's / says how when missing).
        await Assertions.Expect(page.Locator("[data-card=pageviews] [data-value]")).ToHaveTextAsync("0", new() { Timeout = Wait });
        Assert.Equal("0", await page.Locator("[data-card=pageviews] [data-value]").GetAttributeAsync("data-raw"));
        await Assertions.Expect(page.Locator("#site-picker")).ToHaveValueAsync(site.PublicId);
        await Assertions.Expect(page.Locator("#status")).ToContainTextAsync("Updated", new() { Timeout = Wait });
        await Assertions.Expect(page.Locator("#signout")).ToBeVisibleAsync();

        // Signing out revokes the refresh token and hides the numbers' source.
        await page.ClickAsync("#signout");
        await Assertions.Expect(page.Locator("#signin")).ToBeVisibleAsync();
        Assert.Null(await page.EvaluateAsync<string?>("sessionStorage.getItem('tokens')"));
        Assert.Equal(0, await page.Locator("[data-card=pageviews]").CountAsync());
        Assert.Equal(0, await page.Locator("#site-picker option").CountAsync());

        // It also ends the server's sign-in session: signing in again asks for the password
        // (on a shared computer the next person must not pass straight through).
        await page.ClickAsync("#signin");
        await Assertions.Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("/account/login"), new() { Timeout = Wait });
        await Assertions.Expect(page.Locator("#password")).ToBeVisibleAsync();
    }
}
