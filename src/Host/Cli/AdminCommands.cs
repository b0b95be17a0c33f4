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
/// terminal; otherwise JSON lines only, one per change and the finished job), partitions status,
/// export. The server does
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
        }, $"merchant {parse.GetValue(merchant)}{(parse.GetValue(site) is { } s ? $", site {s}," : "")} from {Day(parse.GetValue(from))} to {Day(parse.GetValue(to))}")));

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
        export.SetAction(parse => RunAsync(parse, async admin => await PrintAsync(await admin.Http.PostAsJsonAsync("/admin/export", new
        {
            merchantId = parse.GetValue(merchant),
            site = parse.GetValue(site),
            from = Day(parse.GetValue(from)),
            to = Day(parse.GetValue(to)),
            kind = parse.GetValue(kind),
            format = parse.GetValue(format),
            @out = Path.GetFullPath(parse.GetValue(output)!),
        }))));

        // An inverted range is a mistake in the call: said here, before the server is asked.
        foreach (var command in new[] { reprocess, export })
        {
            command.Validators.Add(result =>
            {
                if (result.GetResult(from) is { Implicit: false } && result.GetResult(to) is { Implicit: false }
                    && result.GetValue(from) is var first && result.GetValue(to) is var last && first > last)
                    result.AddError($"--from {Day(first)} is after --to {Day(last)}");
            });
        }

        yield return reprocess;
        yield return new Command("partitions", "Partition status of a running server") { status };
        yield return export;
    }

    private static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static async Task<int> RunAsync(ParseResult parse, Func<AdminConnection, Task<int>> call)
    {
        // The call carries the admin client's secret or a token: plain HTTP only to this machine.
        var settings = Settings.Bind<AdminSettings>(parse, s => s.AddSingleton<IValidateOptions<AdminSettings>, AdminUrlValidator>());
        using var http = new HttpClient { BaseAddress = settings.Url };
        try
        {
            string data = settings.DataDirectory();
            // A token obtained from the admin client file can be obtained again when it expires
            // (they live 15 minutes); a token given by --token/ANALYTICS_TOKEN cannot.
            Func<Task<string?>>? renew = settings.Token is null ? () => AdminClientTokenAsync(http, data) : null;
            string? token = settings.Token ?? await renew!();
            if (token is null) return 1;
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            return await call(new AdminConnection(http, renew));
        }
        catch (HttpRequestException e) when (e.StatusCode is null)
        {
            Console.Error.WriteLine($"cannot reach the server at {http.BaseAddress}: {e.Message} (is ./run.sh running?)");
            return 1;
        }
    }

    /// <summary>--url (or ANALYTICS_URL): an absolute URL; plain http only to this machine, since
    /// the call carries the admin client's secret or a token.</summary>
    private sealed class AdminUrlValidator : IValidateOptions<AdminSettings>
    {
        public ValidateOptionsResult Validate(string? name, AdminSettings a) => a.Url switch
        {
            { IsAbsoluteUri: false } or { Scheme: not ("http" or "https") } =>
                ValidateOptionsResult.Fail($"--url '{a.Url.OriginalString}' is not a URL: give the server's address, e.g. http://127.0.0.1:5080"),
            { Scheme: "http", IsLoopback: false } => ValidateOptionsResult.Fail(
                "--url: http:// only on this machine (e.g. http://127.0.0.1:5080), https:// for another: the admin credentials must not cross the network in plain text"),
            _ => ValidateOptionsResult.Success,
        };
    }

    /// <summary>The server's client with the admin token, and how to get a new token when it
    /// expires (null when the token was given, not obtained).</summary>
    private sealed record AdminConnection(HttpClient Http, Func<Task<string?>>? Renew)
    {
        /// <summary>GET, once more with a new token if the server says the token expired (401).</summary>
        public async Task<HttpResponseMessage> GetAsync(string path)
        {
            var response = await Http.GetAsync(path);
            if (response.StatusCode != System.Net.HttpStatusCode.Unauthorized || Renew is null) return response;
            response.Dispose();
            if (await Renew() is not { } token) return new HttpResponseMessage(System.Net.HttpStatusCode.Unauthorized);
            Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            return await Http.GetAsync(path);
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
            Console.Error.WriteLine(Refusal(response, body));
            return 1;
        }
        Console.WriteLine(JsonSerializer.Serialize(JsonDocument.Parse(body).RootElement, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    /// <summary>A refusal in one line: "404 Unknown merchant: There is no merchant 9." for a
    /// problem+json body, else the status and the body.</summary>
    private static string Refusal(HttpResponseMessage response, string body)
    {
        string status = $"{(int)response.StatusCode} {response.ReasonPhrase}";
        try
        {
            var problem = JsonDocument.Parse(body).RootElement;
            if (problem.ValueKind == JsonValueKind.Object && problem.TryGetProperty("title", out var title))
                return $"{(int)response.StatusCode} {title.GetString()}: {(problem.TryGetProperty("detail", out var detail) ? detail.GetString() : "")}";
        }
        catch (JsonException)
        {
        }
        return body.Length == 0 ? status : $"{status}: {body.ReplaceLineEndings(" ")}";
    }

    /// <summary>How long a job may stay queued before the CLI says so (once, on stderr, and keeps
    /// following it): a job is planned within seconds unless another job runs first (jobs run one
    /// at a time, oldest first) or no process with the Rollup role takes jobs on this data.</summary>
    private static readonly TimeSpan QueuedPatience = TimeSpan.FromSeconds(60);

    private static async Task<int> ReprocessAsync(AdminConnection connection, object request, string range)
    {
        var http = connection.Http;
        var response = await http.PostAsJsonAsync("/admin/reprocess", request);
        if (!response.IsSuccessStatusCode) return await PrintAsync(response);
        var job = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        string id = job.GetProperty("id").GetString()!;
        string follow = $"GET {new Uri(http.BaseAddress!, $"/admin/reprocess/{id}")}";
        bool terminal = !Console.IsOutputRedirected;
        // The id at once, so that a job whose CLI stops can still be followed. Redirected, the first
        // JSON line (below, before any wait) carries it; stderr stays for what went wrong.
        if (terminal) Console.Error.WriteLine($"job {id} accepted ({follow})");
        long lastDone = -1;
        var queuedSince = System.Diagnostics.Stopwatch.StartNew();
        bool saidQueued = false;
        while (true)
        {
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
                // Redirected: one line, like the progress lines before it; on a terminal, readable.
                Console.WriteLine(JsonSerializer.Serialize(job, new JsonSerializerOptions { WriteIndented = terminal }));
                if (state == "done" && job.GetProperty("partitions").GetInt64() == 0)
                    Console.Error.WriteLine($"nothing was reprocessed: {range} holds no raw events (check --merchant, --site, --from and --to)");
                return state == "done" ? 0 : 1;
            }
            if (state != "queued") queuedSince.Restart();
            else if (queuedSince.Elapsed > QueuedPatience && !saidQueued)
            {
                saidQueued = true;
                if (terminal) Console.WriteLine();
                Console.Error.WriteLine($"job {id} is still queued after {QueuedPatience.TotalSeconds:0} s: another job runs first, or no process with the rollup role " +
                    $"takes jobs on this server's data; still following it (Ctrl+C stops following, not the job; {follow})");
            }
            await Task.Delay(500);
            using var poll = await connection.GetAsync($"/admin/reprocess/{id}");
            string body = await poll.Content.ReadAsStringAsync();
            if (poll.StatusCode == System.Net.HttpStatusCode.Unauthorized && connection.Renew is null)
            {
                if (terminal) Console.WriteLine();
                Console.Error.WriteLine($"the access token expired (tokens live 15 minutes; --token/ANALYTICS_TOKEN cannot be renewed); job {id} keeps running: " +
                    $"follow it with {follow} and a new token, or run without --token to use the admin client of --data");
                return 1;
            }
            if (!poll.IsSuccessStatusCode)
            {
                if (terminal) Console.WriteLine();
                Console.Error.WriteLine($"following job {id}: {Refusal(poll, body)}; the job may still be running: {follow}");
                return 1;
            }
            job = JsonDocument.Parse(body).RootElement;
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
