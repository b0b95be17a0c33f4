namespace Analytics.QueryApi.Tests.Oracle;

/// <summary>The data set holds the cases the oracle tests claim to cover (checked without the
/// product: a generator change that loses one fails here, not silently).</summary>
public class DatasetTests
{
    private static readonly Dataset.Data Data = Dataset.Generate();
    private static readonly QueryOracle Oracle = new(Data);

    [Fact]
    public void The_generator_is_deterministic()
    {
        var again = Dataset.Generate();
        Assert.Equal(Data.Events.Select(e => (e.Person, e.At, e.Name, e.Url, e.Referrer, e.RevenueMicros, e.EngagementMs)),
            again.Events.Select(e => (e.Person, e.At, e.Name, e.Url, e.Referrer, e.RevenueMicros, e.EngagementMs)));
    }

    [Fact]
    public void The_data_set_has_a_few_dozen_visitors_and_every_kind_of_event()
    {
        int people = Data.Events.Where(e => !Data.People[e.Person].IsBot).Select(e => e.Person).Distinct().Count();
        Assert.InRange(people, 20, 60);
        foreach (var name in new[] { "pageview", "engagement", "signup", "purchase" }) Assert.Contains(Data.Events, e => e.Name == name);
        Assert.Contains(Data.Events, e => e.Currency == "EUR");
        Assert.Contains(Data.Events, e => e.Currency == "USD");
        Assert.Contains(Data.Events, e => Data.People[e.Person].IsBot);
        Assert.All(Dataset.Arrivals, a => Assert.Contains(Data.Events, e => e.Arrival == a));
    }

    [Fact]
    public void Some_person_is_active_across_UTC_midnight_and_so_counts_as_two_visitors()
    {
        Assert.Contains(Oracle.Humans.GroupBy(e => e.P.Id), person => person.OrderBy(e => e.At).Zip(person.OrderBy(e => e.At).Skip(1))
            .Any(p => p.First.At.Date != p.Second.At.Date && p.Second.At - p.First.At < TimeSpan.FromMinutes(30)));
    }

    [Fact]
    public void Visits_are_split_by_a_gap_of_exactly_30_minutes_and_not_by_29_59()
    {
        var pairs = Oracle.Humans.GroupBy(e => e.Visitor).SelectMany(v => v.OrderBy(e => e.At).Zip(v.OrderBy(e => e.At).Skip(1))).ToList();
        Assert.Contains(pairs, p => p.Second.At - p.First.At == TimeSpan.FromMinutes(30) && p.First.Visit != p.Second.Visit);
        Assert.Contains(pairs, p => p.Second.At - p.First.At == TimeSpan.FromSeconds(29 * 60 + 59) && p.First.Visit == p.Second.Visit);
    }

    [Fact]
    public void Some_engagement_pings_come_with_no_open_visit_after_30_minutes_exactly_or_more_or_after_UTC_midnight()
    {
        var late = new List<(TimeSpan Gap, bool Midnight)>();
        foreach (var person in Data.Events.Where(e => !Data.People[e.Person].IsBot).GroupBy(e => e.Person))
        {
            var events = person.OrderBy(e => e.At).ToList();
            for (int i = 1; i < events.Count; i++)
            {
                if (events[i].Name != "engagement") continue;
                var gap = events[i].At - events[i - 1].At;
                bool midnight = events[i].At.Date != events[i - 1].At.Date;
                if (gap >= TimeSpan.FromMinutes(30) || midnight) late.Add((gap, midnight));
            }
        }
        Assert.Contains(late, l => l.Gap == TimeSpan.FromMinutes(30) && !l.Midnight);
        Assert.Contains(late, l => l.Gap > TimeSpan.FromMinutes(30) && !l.Midnight);
        Assert.Contains(late, l => l.Gap < TimeSpan.FromMinutes(30) && l.Midnight);
    }

    [Fact]
    public void Events_fall_in_the_repeated_hours_of_both_DST_changes_and_on_exact_bucket_edges()
    {
        var berlin = new DateTimeOffset(2026, 10, 25, 0, 0, 0, TimeSpan.Zero);
        var newYork = new DateTimeOffset(2026, 11, 1, 5, 0, 0, TimeSpan.Zero);
        Assert.Contains(Data.Events, e => e.At >= berlin && e.At < berlin.AddHours(1));
        Assert.Contains(Data.Events, e => e.At >= berlin.AddHours(1) && e.At < berlin.AddHours(2));
        Assert.Contains(Data.Events, e => e.At >= newYork && e.At < newYork.AddHours(2));
        Assert.Contains(Data.Events, e => e.At.TimeOfDay == TimeSpan.Zero || e.At.TimeOfDay == TimeSpan.FromHours(22) || e.At.TimeOfDay == TimeSpan.FromHours(4));
    }

    [Theory]
    [InlineData("Europe/Berlin")]
    [InlineData("America/New_York")]
    [InlineData("Asia/Kolkata")]
    public void Some_visits_span_a_local_midnight_and_are_cut_by_a_local_date_range(string tz)
    {
        var zone = TimeZoneInfo.FindSystemTimeZoneById(tz);
        Assert.Contains(Oracle.Humans.GroupBy(e => e.Visit),
            v => v.Select(e => TimeZoneInfo.ConvertTime(e.At, zone).Date).Distinct().Count() > 1 && v.Count(e => e.Name == "pageview") > 1);
    }
}
