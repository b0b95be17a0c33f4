using Microsoft.Playwright;

namespace Analytics.Dashboard.Tests;

/// <summary>The page at desktop and phone size, light and dark: screenshots kept as artifacts
/// (.cache/test-results/dashboard/), one column on the phone, nothing wrong in the console.</summary>
[Collection(DashboardCollection.Name)]
public class LookTests(DashboardFixture fixture)
{
    public static TheoryData<string, ColorScheme> Looks => new()
    {
        { "desktop", ColorScheme.Light }, { "desktop", ColorScheme.Dark },
        { "phone", ColorScheme.Light }, { "phone", ColorScheme.Dark },
    };

    [Theory]
    [MemberData(nameof(Looks))]
    public async Task The_dashboard_renders_at_desktop_and_phone_size_in_light_and_dark_without_errors(string device, ColorScheme scheme)
    {
        var viewport = device == "phone" ? DashboardPage.Phone : DashboardPage.Desktop;
        await using var dash = await DashboardPage.OpenAsync(fixture, viewport, scheme);
        await dash.SignInAsync(DashboardFixture.OwnerA, $"/?site={fixture.SiteA.PublicId}");
        await Assertions.Expect(dash.Page.Locator("#chart")).ToHaveAttributeAsync("data-ready", "true");
        await DashboardNumbersTests.AssertCardsAsync(dash, fixture.Oracle, View.Named("30d"));
        // Nothing wider than the screen: the phone gets one column, not a sideways scroll.
        int width = await dash.Page.EvaluateAsync<int>("() => document.documentElement.scrollWidth");
        Assert.True(width <= viewport.Width, $"the page is {width} px wide on a {viewport.Width} px screen");
        string path = await dash.ScreenshotAsync($"{device}-{scheme.ToString().ToLowerInvariant()}");
        TestContext.Current.TestOutputHelper?.WriteLine($"screenshot: {path}");
        Assert.True(new FileInfo(path).Length > 0);
        dash.AssertClean();
    }
}
