using Microsoft.Playwright;

namespace Analytics.Dashboard.Tests;

/// <summary>Realtime visitors: events received "now" on the host's clock show up without a reload.</summary>
[Collection(DashboardCollection.Name)]
public class RealtimeTests(DashboardFixture fixture)
{
    [Fact]
    public async Task Visitors_received_now_appear_in_the_realtime_count_on_the_next_refresh()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerA, $"/?site={fixture.Live.PublicId}");
        var realtime = dash.Page.Locator("#realtime-visitors");
        await Assertions.Expect(realtime).ToHaveAttributeAsync("data-raw", "0");

        // Three people in the last five minutes, one of them twice, and one a minute too early.
        var now = OracleFixture.Now;
        var people = Enumerable.Range(0, 4).Select(i => new Dataset.Person(i, Dataset.Places[i].Prefix + (120 + i),
            Dataset.Clients[i].UserAgent, Dataset.Clients[i], Dataset.Places[i], false)).ToList();
        var at = new[] { now.AddSeconds(-200), now.AddSeconds(-90), now.AddSeconds(-30), now.AddSeconds(-10), now.AddMinutes(-6) };
        int[] who = [0, 1, 2, 0, 3];
        var events = at.Select((t, k) => new Dataset.Event(who[k], t, "pageview", "https://shop.example/live/" + k, "", [], 0, "", 0, 1280, Dataset.Arrivals[0]))
            .OrderBy(e => e.At).ToList();
        try
        {
            await OracleFixture.IngestAsync(fixture.Host, fixture.Live, fixture.Clock, new Dataset.Data(people, events), TestContext.Current.CancellationToken);
        }
        finally
        {
            fixture.Clock.Now = now;
        }
        long expected = events.Where(e => e.At > now.AddMinutes(-5) && e.At <= now).Select(e => e.Person).Distinct().LongCount();
        Assert.Equal(3, expected);
        // The page refreshes by itself every few seconds.
        await Assertions.Expect(realtime).ToHaveAttributeAsync("data-raw", expected.ToString(System.Globalization.CultureInfo.InvariantCulture), new() { Timeout = 15_000 });
        dash.AssertClean();
    }

    /// <summary>The realtime view redraws its cards and panels every 5 s. A redraw must not take
    /// the keyboard from the user: the property key half typed stays typed and in focus, and the
    /// button tabbed to is still the one in focus (before, each redraw dropped both).</summary>
    [Fact]
    public async Task A_realtime_refresh_keeps_what_the_user_is_typing_and_where_the_keyboard_is()
    {
        await using var dash = await DashboardPage.OpenAsync(fixture);
        await dash.SignInAsync(DashboardFixture.OwnerA, $"/?site={fixture.Live.PublicId}&period=realtime&tab=props");
        var key = dash.Page.Locator("#prop-key");
        await key.ClickAsync();
        await key.PressSequentiallyAsync("pla");
        await RefreshedAsync(dash, "props");
        await Assertions.Expect(key).ToBeFocusedAsync();
        await Assertions.Expect(key).ToHaveValueAsync("pla");
        // Typing goes on where it stopped.
        await dash.Page.Keyboard.TypeAsync("n");
        await Assertions.Expect(key).ToHaveValueAsync("plan");

        var details = dash.Page.Locator("[data-details=pages]:not(dialog *)");
        await details.FocusAsync();
        await RefreshedAsync(dash, "pages");
        await Assertions.Expect(details).ToBeFocusedAsync();
        dash.AssertClean();
    }

    /// <summary>Marks the panel's current content, then waits until a refresh has replaced it.</summary>
    static async Task RefreshedAsync(DashboardPage dash, string panel)
    {
        string selector = DashboardNumbersTests.Panel(panel);
        await dash.Page.Locator(selector).EvaluateAsync("e => e.dataset.stale = '1'");
        await Assertions.Expect(dash.Page.Locator(selector + ":not([data-stale])")).ToHaveCountAsync(1, new() { Timeout = 15_000 });
    }
}
