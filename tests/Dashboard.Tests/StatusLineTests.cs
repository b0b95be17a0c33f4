using Microsoft.Playwright;

namespace Analytics.Dashboard.Tests;

/// <summary>What the status line says when something went wrong, and that it stops saying it
/// once it no longer holds.</summary>
[Collection(DashboardCollection.Name)]
public class StatusLineTests(DashboardFixture fixture)
{
    [Fact]
    public async Task A_site_the_merchant_does_not_have_is_reported_until_another_site_is_picked()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerA, "/?site=no-such-site", expectUpdated: false);
        var status = dash.Page.Locator("#status");
        await Assertions.Expect(status).ToContainTextAsync("There is no site 'no-such-site'");
        await Assertions.Expect(status).ToHaveClassAsync("error");

        await dash.Page.SelectOptionAsync("#site-picker", fixture.Catalog.PublicId);
        await Assertions.Expect(status).ToContainTextAsync("Updated");
        await Assertions.Expect(status).Not.ToContainTextAsync("no-such-site");
        Assert.Equal("", await status.GetAttributeAsync("class"));
        dash.AssertClean();
    }

    [Fact]
    public async Task A_sign_in_answer_that_does_not_match_the_tab_is_reported_not_replaced_by_the_invitation()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.Page.GotoAsync(dash.BaseAddress + "/");
        // The tab started a sign-in (its PKCE state is "mine"); the answer carries another state.
        await dash.Page.EvaluateAsync("() => sessionStorage.setItem('pkce', JSON.stringify({ state: 'mine', verifier: 'v', search: '' }))");
        await dash.Page.GotoAsync(dash.BaseAddress + "/?code=abc&state=theirs");
        var status = dash.Page.Locator("#status");
        await Assertions.Expect(status).ToContainTextAsync("did not match");
        await Assertions.Expect(status).ToHaveClassAsync("error");
        await Assertions.Expect(dash.Page.Locator("#signin")).ToBeVisibleAsync();
        dash.AssertClean();
    }

    /// <summary>The same failed answer in a tab that still holds an older session: the numbers of
    /// that session load, and the status line says the new sign-in failed (before, it said only
    /// "Updated", so the user believed they had signed in again).</summary>
    [Fact]
    public async Task A_failed_sign_in_beside_an_older_session_is_reported_above_its_numbers()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerA, $"/?site={fixture.SiteA.PublicId}");
        await dash.Page.EvaluateAsync("() => sessionStorage.setItem('pkce', JSON.stringify({ state: 'mine', verifier: 'v', search: '' }))");
        await dash.Page.GotoAsync(dash.BaseAddress + "/?code=abc&state=theirs");
        var status = dash.Page.Locator("#status");
        await Assertions.Expect(status).ToHaveAttributeAsync("data-state", "done");
        await Assertions.Expect(status).ToContainTextAsync("did not match");
        await Assertions.Expect(status).ToContainTextAsync("Updated");
        await Assertions.Expect(status).ToHaveClassAsync("error");
        dash.AssertClean();
    }
}
