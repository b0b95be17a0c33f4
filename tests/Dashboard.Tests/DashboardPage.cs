using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Web;
using Microsoft.Playwright;

namespace Analytics.Dashboard.Tests;

/// <summary>
/// One test's browser: its own context (viewport, colour scheme, UTC, en-US) on the fixture's
/// Chromium, signed in through the real login form, and a record of everything that went wrong
/// while it ran: console errors, uncaught exceptions, failed requests, responses of 400 and more.
/// Tests end with <see cref="AssertClean"/>; disposing closes the context on every path.
/// </summary>
public sealed class DashboardPage : IAsyncDisposable
{
    /// <summary>How long a number may take to appear or change: a page that is right is right
    /// within a second or two here; a wrong one fails after this, not after minutes.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly List<string> _problems = [];
    private readonly List<Func<string, bool>> _allowed = [];

    private DashboardPage(DashboardFixture fixture, IBrowserContext context, IPage page)
    {
        Fixture = fixture;
        Context = context;
        Page = page;
        page.SetDefaultTimeout((float)Patience.TotalMilliseconds);
        // A page load on this shared 2-core machine can take a while when every core is busy.
        page.SetDefaultNavigationTimeout(20_000);
        page.Console += (_, message) => { if (message.Type == "error") Problem($"console error: {message.Text} ({message.Location})"); };
        page.PageError += (_, error) => Problem("uncaught: " + error);
        page.RequestFailed += (_, request) => Problem($"request failed: {request.Method} {request.Url}: {request.Failure}");
        page.Response += (_, response) =>
        {
            if (response.Status >= 400) Problem($"response {response.Status}: {response.Request.Method} {response.Url}");
            Responses.Add(response);
        };
    }

    public DashboardFixture Fixture { get; }
    public IBrowserContext Context { get; }
    public IPage Page { get; }
    public List<IResponse> Responses { get; } = [];
    public string BaseAddress => Fixture.Host.BaseAddress;

    public static readonly ViewportSize Desktop = new() { Width = 1440, Height = 900 };
    public static readonly ViewportSize Phone = new() { Width = 375, Height = 812 };

    public static async Task<DashboardPage> OpenAsync(DashboardFixture fixture, ViewportSize? viewport = null, ColorScheme scheme = ColorScheme.Light)
    {
        var context = await fixture.Browser.NewContextAsync(new()
        {
            ViewportSize = viewport ?? Desktop,
            ColorScheme = scheme,
            TimezoneId = "UTC",
            Locale = "en-US",
            AcceptDownloads = true,
            IsMobile = viewport == Phone,
            HasTouch = viewport == Phone,
        });
        try
        {
            return new DashboardPage(fixture, context, await context.NewPageAsync());
        }
        catch
        {
            await context.CloseAsync();
            throw;
        }
    }

    /// <summary>Problems a test provokes on purpose (a 404 it asserts) are not problems.</summary>
    public void Allow(Func<string, bool> expected) => _allowed.Add(expected);

    private void Problem(string text)
    {
        lock (_problems)
        {
            if (!_allowed.Any(a => a(text))) _problems.Add(text);
        }
    }

    public void AssertClean()
    {
        lock (_problems) Assert.True(_problems.Count == 0, "the page had problems:\n" + string.Join("\n", _problems));
    }

    /// <summary>Opens <paramref name="pathAndQuery"/>, signs in through the login form (the page's
    /// authorization code flow with PKCE) and waits until the page says it has loaded (unless
    /// <paramref name="expectUpdated"/> is false: a test that makes a query fail).</summary>
    public async Task SignInAsync(string email, string pathAndQuery, bool expectUpdated = true)
    {
        await Page.GotoAsync(BaseAddress + pathAndQuery);
        await Page.ClickAsync("#signin");
        // The page starts the flow after hashing the PKCE verifier, and finishes it by redeeming
        // the code and rewriting its URL (history, no navigation): wait for the URLs themselves.
        await Assertions.Expect(Page).ToHaveURLAsync(new Regex("/account/login"), new() { Timeout = 20_000 });
        await Page.FillAsync("#email", email);
        await Page.FillAsync("#password", DashboardFixture.Password);
        await Page.ClickAsync("button[type=submit]");
        await Assertions.Expect(Page).ToHaveURLAsync(new Regex("^" + Regex.Escape(BaseAddress) + "/(?!account)(?!.*[?&]code=)"), new() { Timeout = 20_000 });
        if (expectUpdated) await Assertions.Expect(Page.Locator("#status")).ToContainTextAsync("Updated", new() { Timeout = (float)Patience.TotalMilliseconds });
    }

    /// <summary>The query string of the page's URL, decoded.</summary>
    public System.Collections.Specialized.NameValueCollection Query() => HttpUtility.ParseQueryString(new Uri(Page.Url).Query);

    /// <summary>Polls <paramref name="read"/> until <paramref name="check"/> finds nothing wrong
    /// (an empty list) or <see cref="Patience"/> passes; then fails with the last problems.</summary>
    public static async Task<T> EventuallyAsync<T>(string what, Func<Task<T>> read, Func<T, IReadOnlyList<string>> check)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var value = await read();
            var problems = check(value);
            if (problems.Count == 0) return value;
            if (clock.Elapsed > Patience) Assert.Fail($"{what}, after {Patience.TotalSeconds:0} s:\n  " + string.Join("\n  ", problems));
            await Task.Delay(100);
        }
    }

    /// <summary>Every card's data-raw (value and change), by metric; absent ones are missing.</summary>
    public async Task<Dictionary<string, (string? Value, string? Change)>> CardsAsync()
    {
        var json = await EvaluateJsonAsync("""
            () => Object.fromEntries([...document.querySelectorAll('[data-card]')].map(c => [c.dataset.card, [
                c.querySelector('[data-value]')?.getAttribute('data-raw') ?? null,
                c.querySelector('[data-change]')?.getAttribute('data-raw') ?? null]]))
            """);
        return json.EnumerateObject().ToDictionary(p => p.Name, p => (p.Value[0].GetString(), p.Value[1].GetString()));
    }

    public sealed record Row(string Key, Dictionary<string, string?> Cells);

    /// <summary>The rows under <paramref name="selector"/> in document order: each element with
    /// attribute <paramref name="row"/>, its <paramref name="key"/> and its <c>[data-col]</c> cells' data-raw.</summary>
    public async Task<List<Row>> RowsAsync(string selector, string row = "data-row", string key = "data-key")
    {
        var json = await EvaluateJsonAsync("""
            ([selector, row, key]) => [...document.querySelectorAll(`${selector} [${row}]`)].map(r => [r.getAttribute(key),
                Object.fromEntries([...r.querySelectorAll('[data-col]')].map(c => [c.dataset.col, c.getAttribute('data-raw')]))])
            """, new[] { selector, row, key });
        return [.. json.EnumerateArray().Select(r => new Row(r[0].GetString() ?? "",
            r[1].EnumerateObject().ToDictionary(c => c.Name, c => c.Value.ValueKind == JsonValueKind.Null ? null : c.Value.GetString())))];
    }

    /// <summary>A page function's result as JSON text, parsed here: plain JSON, whatever the
    /// driver's own serialisation of nested arrays and objects.</summary>
    private async Task<JsonElement> EvaluateJsonAsync(string function, object? arg = null)
    {
        string text = await Page.EvaluateAsync<string>($"arg => JSON.stringify(({function})(arg))", arg);
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.Clone();
    }

    public async Task<string> ScreenshotAsync(string name)
    {
        string path = Path.Combine(DashboardFixture.Artifacts, name + ".png");
        await Page.ScreenshotAsync(new() { Path = path, FullPage = true });
        return path;
    }

    public async ValueTask DisposeAsync()
    {
        await Context.CloseAsync();
    }

    public static string Date(DateOnly d) => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
