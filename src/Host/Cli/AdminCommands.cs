using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace Analytics.Host.Cli;

/// <summary>Where the admin commands find the server: --url and --token (or ANALYTICS_URL,
/// ANALYTICS_TOKEN); the token defaults to the one in --data.</summary>
public sealed class AdminSettings : CommonSettings
{
    public Uri Url { get; set; } = new("http://127.0.0.1:5080");
    public string? Token { get; set; }
}

/// <summary>
/// CLI commands that drive a running server's admin API: reprocess (with a progress bar on a
/// terminal, one JSON line per change otherwise), partitions status, export. The server does
/// the work because it owns the store and the log.
/// </summary>
public sealed class AdminCommands : ICommandGroup
{
    public int Order => 30;

    public IEnumerable<Command> Commands()
    {
        // Options are shared by the three commands (an option may have several parents).
        var url = new Option<string>("--url") { Description = $"The running server [default: {new AdminSettings().Url}]", HelpName = "URL" };
        var token = new Option<string>("--token") { Description = "An access token of an admin client (scope admin) [default: a token for the admin client `bootstrap` saved in --data]", HelpName = "TOKEN" };
        var merchant = Settings.Id("--merchant", "Merchant id", required: true);
        var site = new Option<string>("--site") { Description = "Only this site (its public id)", HelpName = "SITE-ID" };
        var from = Settings.Day("--from", "First day (UTC), e.g. 2026-01-01");
        var to = Settings.Day("--to", "Last day (UTC), inclusive");

        var dryRun = new Option<bool>("--dry-run") { Description = "Only list what would change" };
        var logicVersion = Settings.Integer<ushort>("--logic-version", "Rebuild with this processing-logic version [default: the server's]", 1, ushort.MaxValue);
        var reprocess = new Command("reprocess", "Rebuild derived data from raw events with the current (or a pinned) logic")
        {
            merchant, site, from, to, dryRun, logicVersion, url, token,
        };
        reprocess.SetAction(parse => RunAsync(parse, http => ReprocessAsync(http, new
        {
            merchantId = parse.GetValue(merchant),
            site = parse.GetValue(site),
            from = Day(parse.GetValue(from)),
            to = Day(parse.GetValue(to)),
            dryRun = parse.GetValue(dryRun),
            logicVersion = parse.GetResult(logicVersion) is null ? (ushort?)null : parse.GetValue(logicVersion),
        })));

        var status = new Command("status", "Site-days and the logic versions that built them") { merchant, site, url, token };
        status.SetAction(parse => RunAsync(parse, async http =>
        {
            string? siteId = parse.GetValue(site);
            return await PrintAsync(await http.GetAsync($"/admin/partitions?merchantId={parse.GetValue(merchant)}{(siteId is null ? "" : $"&site={Uri.EscapeDataString(siteId)}")}"));
        }));

        var kind = Settings.OneOf("--kind", "Which events", "raw", "enriched");
        kind.DefaultValueFactory = _ => "raw";
        var format = Settings.OneOf("--format", "File format", "parquet");
        format.DefaultValueFactory = _ => "parquet";
        var output = new Option<string>("--out") { Description = "Output directory (merchant_id=M/date=D/KIND.parquet below it)", HelpName = "DIR", DefaultValueFactory = _ => "export" };
        var export = new Command("export", "Export raw or enriched events as Parquet files")
        {
            merchant, site, from, to, kind, format, output, url, token,
        };
        export.SetAction(parse => RunAsync(parse, async http => await PrintAsync(await http.PostAsJsonAsync("/admin/export", new
        {
            merchantId = parse.GetValue(merchant),
            site = parse.GetValue(site),
            from = Day(parse.GetValue(from)),
            to = Day(parse.GetValue(to)),
            kind = parse.GetValue(kind),
            format = parse.GetValue(format),
            @out = Path.GetFullPath(parse.GetValue(output)!),
        }))));

        yield return reprocess;
        yield return new Command("partitions", "Partition status of a running server") { status };
        yield return export;
    }

    private static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static async Task<int> RunAsync(ParseResult parse, Func<HttpClient, Task<int>> call)
    {
        // The call carries the admin client's secret or a token: plain HTTP only to this machine.
        var settings = Settings.Bind<AdminSettings>(parse, s => s.AddSingleton<IValidateOptions<AdminSettings>>(new ValidateOptions<AdminSettings>(
            null, a => a.Url is { IsAbsoluteUri: true, Scheme: "https" } or { IsAbsoluteUri: true, Scheme: "http", IsLoopback: true },
            "--url: http:// only on this machine (e.g. http://127.0.0.1:5080), https:// for another: the admin credentials must not cross the network in plain text")));
        using var http = new HttpClient { BaseAddress = settings.Url };
        try
        {
            string? token = settings.Token ?? await AdminClientTokenAsync(http, settings.DataDirectory());
            if (token is null) return 1;
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            return await call(http);
        }
        catch (HttpRequestException e)
        {
            Console.Error.WriteLine($"cannot reach the server at {http.BaseAddress}: {e.Message} (is ./run.sh running?)");
            return 1;
        }
    }

    /// <summary>
    /// The CLI's credential when neither --token nor ANALYTICS_TOKEN is given (either holds an admin
    /// client's access token): an access token obtained with client credentials from the
    /// admin client that `analytics bootstrap` saved in DATA/admin-client.json.
    /// </summary>
    private static async Task<string?> AdminClientTokenAsync(HttpClient http, string data)
    {
        string file = Path.Combine(data, TenancyCommands.AdminClientFile);
        if (!File.Exists(file))
        {
            Console.Error.WriteLine($"no credentials: run `analytics bootstrap` (writes {file}) or pass --token / ANALYTICS_TOKEN.");
            return null;
        }
        var client = JsonDocument.Parse(await File.ReadAllTextAsync(file)).RootElement;
        using var response = await http.PostAsync("/connect/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = client.GetProperty("clientId").GetString()!,
            ["client_secret"] = client.GetProperty("clientSecret").GetString()!,
            ["scope"] = "admin",
        }));
        string body = await response.Content.ReadAsStringAsync();
        if (response.IsSuccessStatusCode) return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString();
        Console.Error.WriteLine($"the server refused the admin client of {file}: {(int)response.StatusCode} {body}");
        return null;
    }

    private static async Task<int> PrintAsync(HttpResponseMessage response)
    {
        string body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
        {
            Console.Error.WriteLine($"{(int)response.StatusCode}: {body}");
            return 1;
        }
        Console.WriteLine(JsonSerializer.Serialize(JsonDocument.Parse(body).RootElement, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    private static async Task<int> ReprocessAsync(HttpClient http, object request)
    {
        var response = await http.PostAsJsonAsync("/admin/reprocess", request);
        if (!response.IsSuccessStatusCode) return await PrintAsync(response);
        string id = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        bool terminal = !Console.IsOutputRedirected;
        long lastDone = -1;
        while (true)
        {
            var job = JsonDocument.Parse(await http.GetStringAsync($"/admin/reprocess/{id}")).RootElement;
            string state = job.GetProperty("state").GetString()!;
            long done = job.GetProperty("eventsDone").GetInt64(), total = job.GetProperty("eventsTotal").GetInt64();
            double rate = job.GetProperty("eventsPerSecond").GetDouble();
            if (terminal)
            {
                Console.Write("\r" + ProgressLine(state, done, total, rate));
            }
            else if (done != lastDone || state is "done" or "failed")
            {
                Console.WriteLine(JsonSerializer.Serialize(new { job = id, state, eventsDone = done, eventsTotal = total, eventsPerSecond = Math.Round(rate) }));
            }
            lastDone = done;
            if (state is "done" or "failed")
            {
                if (terminal) Console.WriteLine();
                Console.WriteLine(JsonSerializer.Serialize(job, new JsonSerializerOptions { WriteIndented = true }));
                return state == "done" ? 0 : 1;
            }
            await Task.Delay(500);
        }
    }

    public static string ProgressLine(string state, long done, long total, double rate)
    {
        const int width = 30;
        double fraction = total == 0 ? (state == "done" ? 1 : 0) : Math.Min(1, (double)done / total);
        int filled = (int)(fraction * width);
        string eta = rate > 0 && total > done ? TimeSpan.FromSeconds((total - done) / rate).ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture) : "-";
        return string.Create(CultureInfo.InvariantCulture,
            $"[{new string('#', filled)}{new string('.', width - filled)}] {fraction * 100,5:0.0}%  {done:N0}/{total:N0} events  {rate:N0} events/s  ETA {eta}  {state}   ");
    }
}
