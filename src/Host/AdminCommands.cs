using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Analytics.Host;

/// <summary>
/// CLI commands that drive a running server's admin API: reprocess (with a progress bar on a
/// terminal, one JSON line per change otherwise), partitions status, export. The server does
/// the work because it owns the store and the log.
/// </summary>
public static class AdminCommands
{
    public static async Task<int> RunAsync(string command, CommandLine cli, string data)
    {
        using var http = new HttpClient { BaseAddress = new Uri(cli.Get("url", "http://127.0.0.1:5080")) };
        string? token = cli.Get("token") ?? await AdminClientTokenAsync(http, data);
        if (token is null) return 1;
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        string? site = cli.Get("site");
        if (!long.TryParse(cli.Get("merchant"), out long merchant))
        {
            Console.Error.WriteLine($"usage: analytics {command} --merchant ID [--site PUBLIC-ID] ... [--url {http.BaseAddress}]");
            return 2;
        }
        try
        {
            return command switch
            {
                "reprocess" => await ReprocessAsync(http, cli, merchant, site),
                "partitions" => await PrintAsync(await http.GetAsync($"/admin/partitions?merchantId={merchant}{(site is null ? "" : $"&site={Uri.EscapeDataString(site)}")}")),
                "export" => await PrintAsync(await http.PostAsJsonAsync("/admin/export", new
                {
                    merchantId = merchant,
                    site,
                    from = cli.Get("from"),
                    to = cli.Get("to"),
                    kind = cli.Get("kind", "raw"),
                    format = cli.Get("format", "parquet"),
                    @out = Path.GetFullPath(cli.Get("out", "export")),
                })),
                _ => 2,
            };
        }
        catch (HttpRequestException e)
        {
            Console.Error.WriteLine($"cannot reach the server at {http.BaseAddress}: {e.Message} (is ./run.sh running?)");
            return 1;
        }
    }

    /// <summary>
    /// The CLI's credential for the admin API: `--token` or `ANALYTICS_TOKEN` (an access token or
    /// an API key with the admin scope) if given; otherwise an access token obtained with client
    /// credentials from the admin client that `analytics bootstrap` saved in DATA/admin-client.json.
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
        try
        {
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
        }
        catch (HttpRequestException e)
        {
            Console.Error.WriteLine($"cannot reach the server at {http.BaseAddress}: {e.Message} (is ./run.sh running?)");
        }
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

    private static async Task<int> ReprocessAsync(HttpClient http, CommandLine cli, long merchant, string? site)
    {
        ushort? version = ushort.TryParse(cli.Get("logic-version"), out ushort v) ? v : null;
        var response = await http.PostAsJsonAsync("/admin/reprocess", new
        {
            merchantId = merchant,
            site,
            from = cli.Get("from"),
            to = cli.Get("to"),
            dryRun = cli.Flag("dry-run"),
            logicVersion = version,
        });
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
