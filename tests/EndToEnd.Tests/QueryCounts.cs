using System.Text.Json;

namespace Analytics.EndToEnd.Tests;

/// <summary>Event counts from a running server's query API (the numbers a merchant sees).</summary>
public static class QueryCounts
{
    /// <summary>Polls until the count reaches <paramref name="expected"/> (or 60 s pass); returns the last count.</summary>
    public static async Task<long> WaitForEventsAsync(int port, string site, string token, long expected, string? eventName = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        long last;
        do
        {
            last = await EventsAsync(port, site, token, eventName);
            if (last >= expected) return last;
            await Task.Delay(200, TestContext.Current.CancellationToken);
        }
        while (DateTime.UtcNow < deadline);
        return last;
    }

    /// <summary>The `events` metric from yesterday to tomorrow (UTC), optionally of one event name.</summary>
    public static async Task<long> EventsAsync(int port, string site, string token, string? eventName = null)
    {
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", token);
        string from = DateTime.UtcNow.AddDays(-1).ToString("yyyy-MM-dd"), to = DateTime.UtcNow.AddDays(1).ToString("yyyy-MM-dd");
        string filter = eventName is null ? "" : "&event=" + Uri.EscapeDataString(eventName);
        var json = JsonDocument.Parse(await http.GetStringAsync($"http://127.0.0.1:{port}/v1/sites/{site}/aggregate?metrics=events&from={from}&to={to}{filter}", TestContext.Current.CancellationToken));
        return json.RootElement.GetProperty("results").GetProperty("events").GetInt64();
    }
}
