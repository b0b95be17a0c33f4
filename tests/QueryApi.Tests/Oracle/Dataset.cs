using System.Globalization;

namespace Analytics.QueryApi.Tests.Oracle;

/// <summary>
/// A seeded, deterministic site history for the query oracle: simulated people over days that
/// include both DST changes (Europe/Berlin 2026-10-25, America/New_York 2026-11-01) and the same
/// dates a year earlier, with visits placed on local and UTC midnights, bucket edges and the
/// 30-minute visit gap. Every expected attribute (browser, OS, device, place, source, channel)
/// is written down here from outside the product: uap-core's own test files, the JSON MaxMind
/// built its test database from, and the tables in docs/enrichment.md.
/// </summary>
public static class Dataset
{
    public const int Seed = 20261025;

    /// <summary>A browser as uap-core's test files describe it (tests/test_ua.yaml, test_os.yaml;
    /// versions "major.minor" as docs/enrichment.md stores them), with the device type the
    /// rules table of docs/enrichment.md gives without client hints.</summary>
    public sealed record Client(string UserAgent, string Browser, string BrowserVersion, string Os, string OsVersion, string Device, uint ScreenWidth);

    public static readonly Client[] Clients =
    [
        new("Mozilla/5.0 (Linux; Android 4.2; Galaxy Nexus Build/JOP40C) AppleWebKit/535.19 (KHTML, like Gecko) Chrome/18.0.1025.166 Mobile Safari/535.19",
            "Chrome Mobile", "18.0", "Android", "4.2", "Mobile", 360),
        new("Mozilla/5.0 (Linux; Android 4.4.2; Nexus 5 Build/KOT49H) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/35.0.1916.122 Mobile Safari/537.36",
            "Chrome Mobile", "35.0", "Android", "4.4", "Mobile", 360),
        new("Mozilla/5.0 (X11; U; Linux x86_64; en-US; rv:1.9.2.12) Gecko/20101027 Ubuntu/10.04 (lucid) Firefox/3.6.12",
            "Firefox", "3.6", "Ubuntu", "10.04", "Desktop", 1280),
        new("Mozilla/5.0 (iPad; U; CPU OS 3_2 like Mac OS X; en-us) AppleWebKit/531.21.10 (KHTML, like Gecko) Version/4.0.4 Mobile/7B367 Safari/531.21.10",
            "Mobile Safari", "4.0", "iOS", "3.2", "Tablet", 768),
        new("Opera/9.80 (Windows NT 5.1; U; ru) Presto/2.5.24 Version/10.53",
            "Opera", "10.53", "Windows", "XP", "Desktop", 1280),
        new("Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_6_5; en-us) AppleWebKit/533.18.1 (KHTML, like Gecko) Version/5.0.2 Safari/533.18.5",
            "Safari", "5.0", "Mac OS X", "10.6", "Desktop", 1440),
        new("Mozilla/5.0 (iPod; U; CPU iPhone OS 4_3_2 like Mac OS X; en-us) AppleWebKit/533.17.9 (KHTML, like Gecko) Version/5.0.2 Mobile/8H7 Safari/6533.18.5",
            "Mobile Safari", "5.0", "iOS", "4.3", "Mobile", 320),
    ];

    /// <summary>Bots by the rules of docs/enrichment.md: uap-core's Spider family, and Headless.</summary>
    public static readonly string[] BotUserAgents =
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
    ];

    /// <summary>A /24 and what GeoIP2-City-Test.source.json says of its first address
    /// (FastIngest stores the /24; region is country-subdivision of the first subdivision).</summary>
    public sealed record Place(string Prefix, string Country, string Region, string City);

    public static readonly Place[] Places =
    [
        new("214.0.0.", "SG", "", "Singapore"),       // ::214.0.0.0/120
        new("214.0.1.", "AU", "AU-VIC", "Melbourne"), // ::214.0.1.0/120
        new("2.2.3.", "GB", "GB-ENG", "Boxford"),     // ::2.2.3.0/120
        new("175.16.199.", "CN", "CN-22", "Changchun"), // ::175.16.199.0/120
        new("214.78.121.", "US", "US-CA", "San Diego"), // 214.78.120.0/22
        new("67.43.156.", "BT", "", ""),              // ::67.43.156.0/120
        new("10.20.30.", "", "", ""),                 // private: no answer
    ];

    /// <summary>How a visit arrives: the landing page's query and referrer, and what
    /// docs/enrichment.md says its source and channel are.</summary>
    public sealed record Arrival(string Referrer, string Query, string Source, string Channel,
        string UtmSource = "", string UtmMedium = "", string UtmCampaign = "", string UtmContent = "", string UtmTerm = "");

    public static readonly Arrival[] Arrivals =
    [
        new("", "", "Direct / None", "Direct"),
        new("https://www.google.com/", "", "Google", "Organic Search"),
        new("https://www.bing.com/search?q=shoes", "", "Bing", "Organic Search"),
        new("https://t.co/abc", "", "Twitter", "Organic Social"),
        new("https://news.ycombinator.com/item?id=1", "", "Hacker News", "Organic Social"),
        new("https://chatgpt.com/", "", "ChatGPT", "AI assistants"),
        new("https://mail.google.com/", "", "Gmail", "Email"),
        new("https://blog.example.org/post", "", "blog.example.org", "Referral"),
        new("", "?utm_source=newsletter&utm_medium=email&utm_campaign=winter", "newsletter", "Email", "newsletter", "email", "winter"),
        new("https://www.google.com/", "?utm_source=google&utm_medium=cpc&utm_campaign=brand&utm_content=ad1&utm_term=shoes", "google", "Paid Search",
            "google", "cpc", "brand", "ad1", "shoes"),
    ];

    public static readonly string[] Hosts = ["shop.example", "www.shop.example", "blog.shop.example"];
    public static readonly string[] Paths = ["/", "/pricing", "/blog/dst-explained", "/blog/Winter-Sale", "/products/shoes", "/products/hats", "/checkout"];

    /// <summary>Days with traffic: both DST changes, the days around them, and the same dates a
    /// year earlier (for year_over_year).</summary>
    public static readonly DateOnly[] Days =
    [
        new(2025, 10, 25), new(2025, 10, 26), new(2025, 11, 1), new(2025, 11, 2),
        new(2026, 10, 24), new(2026, 10, 25), new(2026, 10, 26), new(2026, 10, 30), new(2026, 10, 31), new(2026, 11, 1), new(2026, 11, 2),
    ];

    /// <summary>UTC times of day where buckets and days turn over somewhere: UTC midnight, Berlin
    /// midnight (22:00/23:00), New York midnight (04:00/05:00), Kolkata midnight (18:30), the
    /// repeated hours of the DST days (Berlin 00:00–02:00, New York 05:00–07:00 UTC).</summary>
    private static readonly TimeSpan[] Edges =
        [.. new[] { "23:55:00", "00:00:00", "21:58:30", "22:00:00", "22:59:59", "23:00:00", "03:59:00", "04:00:00", "04:59:30", "05:00:00",
            "18:29:00", "18:30:00", "00:30:00", "01:30:00", "05:30:00", "06:30:00", "14:59:59", "23:40:00" }
            .Select(s => TimeSpan.Parse(s, CultureInfo.InvariantCulture))];

    public sealed record Person(int Id, string Address, string UserAgent, Client? Client, Place Place, bool IsBot);

    public sealed record Event(int Person, DateTimeOffset At, string Name, string Url, string Referrer,
        IReadOnlyList<KeyValuePair<string, string>> Props, long RevenueMicros, string Currency, uint EngagementMs, uint ScreenWidth, Arrival? Arrival);

    public sealed record Data(IReadOnlyList<Person> People, IReadOnlyList<Event> Events);

    public static Data Generate()
    {
        var random = new Random(Seed);
        var people = new List<Person>();
        for (int i = 0; i < 34; i++)
        {
            var client = Clients[random.Next(Clients.Length)];
            var place = Places[random.Next(Places.Length)];
            people.Add(new Person(i, place.Prefix + (10 + i), client.UserAgent, client, place, false));
        }
        for (int b = 0; b < BotUserAgents.Length; b++)
        {
            var place = Places[b];
            people.Add(new Person(people.Count, place.Prefix + (200 + b), BotUserAgents[b], null, place, true));
        }

        var events = new List<Event>();
        foreach (var day in Days)
        {
            var dayStart = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            bool yearAgo = day.Year == 2025;
            foreach (var person in people.Where(p => !p.IsBot))
            {
                if (random.NextDouble() > (yearAgo ? 0.25 : 0.45)) continue;
                int visits = 1 + random.Next(3);
                // The person's first visit starts at a bucket edge half of the time.
                var at = random.Next(2) == 0
                    ? dayStart + Edges[random.Next(Edges.Length)] + TimeSpan.FromSeconds(random.Next(-90, 91))
                    : dayStart + TimeSpan.FromSeconds(random.Next(0, 86_400 - 4 * 3600));
                for (int v = 0; v < visits; v++)
                {
                    at = Visit(random, person, at, events);
                    // The next visit after a gap of at least 30 minutes, exactly 30 sometimes.
                    at += random.Next(4) == 0 ? TimeSpan.FromMinutes(30) : TimeSpan.FromSeconds(random.Next(31 * 60, 4 * 3600));
                }
            }
            foreach (var bot in people.Where(p => p.IsBot))
            {
                var at = dayStart + TimeSpan.FromSeconds(random.Next(3600, 80_000));
                for (int k = 0; k < 3 + random.Next(4); k++)
                {
                    at += TimeSpan.FromSeconds(random.Next(1, 120));
                    events.Add(new Event(bot.Id, at, "pageview", "https://shop.example" + (k % 2 == 0 ? "/" : "/pricing"), "", [], 0, "", 0, 1280, null));
                }
            }
        }
        return new Data(people, [.. events.OrderBy(e => e.At).ThenBy(e => e.Person)]);
    }

    /// <summary>One visit from <paramref name="start"/>; returns the time of its last event.
    /// Gaps inside are under 30 minutes (29:59 at most). One visit in ten ends with an engagement
    /// ping 30 to 90 minutes late (a tab left open), which starts no visit; the next visit is
    /// measured from it, so it never bridges two.</summary>
    private static DateTimeOffset Visit(Random random, Person person, DateTimeOffset start, List<Event> events)
    {
        var client = person.Client!;
        var arrival = Arrivals[random.Next(Arrivals.Length)];
        string host = Hosts[random.Next(Hosts.Length)];
        string path = Paths[random.Next(Paths.Length)];
        var at = start;
        string url = $"https://{host}{path}{arrival.Query}";
        events.Add(new Event(person.Id, at, "pageview", url, arrival.Referrer, [], 0, "", 0, client.ScreenWidth, arrival));
        int steps = random.Next(5) switch { 0 => 0, 1 => 1, _ => 2 + random.Next(5) };
        for (int s = 0; s < steps; s++)
        {
            at += random.Next(8) switch
            {
                0 => TimeSpan.FromSeconds(29 * 60 + 59),
                1 => TimeSpan.FromSeconds(random.Next(600, 1700)),
                _ => TimeSpan.FromSeconds(random.Next(1, 300)),
            };
            int kind = random.Next(10);
            if (kind < 5)
            {
                string previous = url;
                host = random.Next(4) == 0 ? Hosts[random.Next(Hosts.Length)] : host;
                path = Paths[random.Next(Paths.Length)];
                url = $"https://{host}{path}";
                events.Add(new Event(person.Id, at, "pageview", url, previous, [], 0, "", 0, client.ScreenWidth, null));
            }
            else if (kind < 7)
            {
                events.Add(new Event(person.Id, at, "engagement", url, "", [], 0, "", (uint)random.Next(1000, 600_000), client.ScreenWidth, null));
            }
            else if (kind < 9)
            {
                string plan = random.Next(3) == 0 ? "pro" : "free";
                var props = random.Next(4) == 0
                    ? new List<KeyValuePair<string, string>>()
                    : [KeyValuePair.Create("plan", plan), KeyValuePair.Create("ref", random.Next(2) == 0 ? "Header" : "footer")];
                events.Add(new Event(person.Id, at, "signup", url, "", props, 0, "", 0, client.ScreenWidth, null));
            }
            else
            {
                string currency = random.Next(3) == 0 ? "USD" : "EUR";
                long cents = random.Next(99, 25_000);
                events.Add(new Event(person.Id, at, "purchase", url, "", [KeyValuePair.Create("plan", "pro")], cents * 10_000, currency, 0, client.ScreenWidth, null));
            }
        }
        if (random.Next(10) == 0)
        {
            at += random.Next(3) == 0 ? TimeSpan.FromMinutes(30) : TimeSpan.FromSeconds(random.Next(30 * 60, 90 * 60));
            events.Add(new Event(person.Id, at, "engagement", url, "", [], 0, "", (uint)random.Next(1000, 600_000), client.ScreenWidth, null));
        }
        return at;
    }
}
