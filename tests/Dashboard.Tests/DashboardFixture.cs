using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.Identity;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace Analytics.Dashboard.Tests;

[CollectionDefinition(Name)]
public sealed class DashboardCollection : ICollectionFixture<DashboardFixture>
{
    public const string Name = "dashboard";
}

/// <summary>
/// One real host and one Chromium for every dashboard test. The host is the query oracle's
/// (<see cref="OracleFixture"/>: the seeded data set ingested through the real WebSocket ingest on
/// a manual clock, MaxMind's test database for places, the oracle's goals), plus what a browser
/// needs: the dashboard's OAuth2 client, a user of merchant A (the data set's) and one of
/// merchant B, a "catalog" site of A with many pages (details pagination), an empty "live" site
/// of A (realtime), and a revenue goal and a funnel created through the API. Each test opens its own browser context.
/// </summary>
public sealed class DashboardFixture(EngineFixture engine) : IAsyncLifetime
{
    public const string Chromium = "/usr/bin/chromium";
    public const string Password = "correct horse battery";
    public const string OwnerA = "owner@shop.example";
    public const string OwnerB = "owner@other.example";
    public const string FunnelName = "Product to signup";
    public static readonly string[] FunnelSteps = ["Product", "Signup"];
    public const int FunnelWindowSeconds = 1800;
    /// <summary>A revenue goal (purchases in EUR), made through the API: the revenue card shows.</summary>
    public static readonly QueryOracle.Goal RevenueGoal = new("EUR purchase", "event", "purchase", "EUR");

    private bool _disposed;

    public OracleFixture Seeded { get; } = new(engine);
    public TestHost Host => Seeded.Host;
    /// <summary>The data set's oracle with the site's goals as the dashboard sees them: the
    /// query oracle's, plus <see cref="RevenueGoal"/>.</summary>
    public QueryOracle Oracle { get; private set; } = null!;
    public ManualClock Clock => Seeded.Clock;
    public Site SiteA => Host.Site;
    public Site SiteB { get; private set; } = null!;
    public Site Catalog { get; private set; } = null!;
    public QueryOracle CatalogOracle { get; private set; } = null!;
    public Site Live { get; private set; } = null!;
    public long FunnelId { get; private set; }
    public IPlaywright Playwright { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;

    /// <summary>Screenshots and measurements: .cache/test-results/dashboard of the repository.</summary>
    public static string Artifacts { get; } = Path.Combine(RepositoryRoot(), ".cache", "test-results", "dashboard");

    public async ValueTask InitializeAsync()
    {
        // Chromium missing is a failure with the fix in it, not a skip.
        if (!File.Exists(Chromium)) throw new InvalidOperationException($"needs Debian's chromium at {Chromium} (./test.sh installs it: apt-get install chromium)");
        try
        {
            await Seeded.InitializeAsync();
            var ct = TestContext.Current.CancellationToken;
            await AnalyticsIdentity.EnsureDashboardClientAsync(Host.App.Services, new Uri(Host.BaseAddress + "/"), ct);
            var registry = Host.App.Services.GetRequiredService<SiteRegistry>();
            registry.Store.CreateUser(SiteA.MerchantId, OwnerA, UserPasswords.Hash(Password), UserRoles.Owner);
            long other = registry.CreateMerchant("Other Merchant");
            SiteB = registry.CreateSite(other, "other.example", "key-other-" + Guid.NewGuid().ToString("N"));
            registry.Store.CreateUser(other, OwnerB, UserPasswords.Hash(Password), UserRoles.Owner);

            Catalog = registry.CreateSite(SiteA.MerchantId, "catalog.example", "key-catalog-" + Guid.NewGuid().ToString("N"));
            var catalog = CatalogData();
            await OracleFixture.IngestAsync(Host, Catalog, Clock, catalog, ct);
            CatalogOracle = new QueryOracle(catalog) { Now = OracleFixture.Now };
            Live = registry.CreateSite(SiteA.MerchantId, "live.example", "key-live-" + Guid.NewGuid().ToString("N"));
            Clock.Now = OracleFixture.Now;

            // The revenue goal and the funnel as a merchant makes them: through the API.
            await CreateAsync("goals", new { name = RevenueGoal.Name, kind = RevenueGoal.Kind, match = RevenueGoal.Match, currency = RevenueGoal.Currency }, ct);
            Oracle = new QueryOracle(Seeded.Data) { Now = OracleFixture.Now, Goals = [.. OracleFixture.Goals, RevenueGoal] };
            FunnelId = await CreateAsync("funnels", new { name = FunnelName, steps = FunnelSteps, window_seconds = FunnelWindowSeconds }, ct);

            // Assertions.Expect waits 5 s by default, whatever the page's own timeout: a view
            // loading right after a sign-in or a reload on this busy 2-core machine gets Patience.
            Assertions.SetDefaultExpectTimeout((float)DashboardPage.Patience.TotalMilliseconds);
            Playwright = await Microsoft.Playwright.Playwright.CreateAsync();
            Browser = await Playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true, Args = ["--no-sandbox"], Timeout = 20_000 });
            Directory.CreateDirectory(Artifacts);
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    /// <summary>POST /v1/sites/{A}/<paramref name="what"/> with the merchant's token; the new id.</summary>
    private async Task<long> CreateAsync(string what, object body, CancellationToken ct)
    {
        using var created = await Host.Http.PostAsJsonAsync($"/v1/sites/{SiteA.PublicId}/{what}", body, ct);
        string text = await created.Content.ReadAsStringAsync(ct);
        if (created.StatusCode != HttpStatusCode.Created) throw new InvalidOperationException($"creating {what}: {(int)created.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("id").GetInt64();
    }

    /// <summary>
    /// A site with more distinct pages than a details page holds: ten people, each with one visit
    /// a day on six days before "now", six catalog pages per visit, a few minutes apart.
    /// </summary>
    public static Dataset.Data CatalogData()
    {
        var people = Enumerable.Range(0, 10).Select(i =>
        {
            var client = Dataset.Clients[i % Dataset.Clients.Length];
            var place = Dataset.Places[i % Dataset.Places.Length];
            return new Dataset.Person(i, place.Prefix + (50 + i), client.UserAgent, client, place, false);
        }).ToList();
        var events = new List<Dataset.Event>();
        for (int day = 0; day < 6; day++)
        {
            var start = new DateTimeOffset(2026, 10, 28, 9, 0, 0, TimeSpan.Zero).AddDays(day);
            foreach (var person in people)
            {
                var at = start.AddMinutes(person.Id * 37);
                for (int step = 0; step < 6; step++)
                {
                    string url = $"https://shop.example/catalog/item-{(person.Id * 13 + day * 6 + step) % 64:00}";
                    events.Add(new Dataset.Event(person.Id, at, "pageview", url, "", [], 0, "", 0, person.Client!.ScreenWidth,
                        step == 0 ? Dataset.Arrivals[0] : null));
                    at = at.AddSeconds(60 + 17 * step);
                }
            }
        }
        return new Dataset.Data(people, [.. events.OrderBy(e => e.At).ThenBy(e => e.Person)]);
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Analytics.sln"))) return dir.FullName;
        }
        return Path.GetTempPath();
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        if (Browser is not null) await Browser.CloseAsync();
        Playwright?.Dispose();
        await Seeded.DisposeAsync();
    }
}
