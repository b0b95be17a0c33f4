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
}
