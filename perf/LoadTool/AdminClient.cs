using System.Diagnostics;
using System.Text.Json;

namespace Analytics.LoadTool;

/// <summary>
/// The load tool's admin credentials: `analytics bootstrap` run against the started server's
/// data directory creates the first admin client and saves it (admin-client.json, 0600); a token
/// is then fetched with client credentials from the server's token endpoint, as any client does.
/// </summary>
public static class AdminClient
{
    public static async Task BootstrapAsync(string serverDll, string dataDirectory, CancellationToken ct)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in (string[])[serverDll, "bootstrap", "--data", dataDirectory]) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        string output = await process.StandardOutput.ReadToEndAsync(ct) + await process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        if (process.ExitCode != 0) throw new InvalidOperationException($"analytics bootstrap failed ({process.ExitCode}): {output}");
    }

    /// <summary>An admin access token and the admin client's own merchant.</summary>
    public static async Task<(string Token, long MerchantId)> TokenAsync(HttpClient http, Uri baseAddress, string dataDirectory, CancellationToken ct)
    {
        var saved = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(dataDirectory, "admin-client.json"), ct)).RootElement;
        using var response = await http.PostAsync(new Uri(baseAddress, "/connect/token"), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = saved.GetProperty("clientId").GetString()!,
            ["client_secret"] = saved.GetProperty("clientSecret").GetString()!,
        }), ct);
        string body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"token endpoint refused the admin client: {(int)response.StatusCode} {body}");
        return (JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!, saved.GetProperty("merchantId").GetInt64());
    }
}
