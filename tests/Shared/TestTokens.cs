using System.Net.Http.Json;
using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.Identity;

namespace Analytics.Tests.Shared;

/// <summary>
/// Credentials for tests that call the APIs: an API client created the way `analytics clients
/// create` does (in the running host's services, or offline in a data directory's control plane
/// as `analytics bootstrap` does), and its access token fetched over HTTP from the token
/// endpoint with client credentials, as any client would. Link into a test project with
/// <c>&lt;Compile Include="../Shared/TestTokens.cs" /&gt;</c>.
/// </summary>
public static class TestTokens
{
    public const string AllScopes = "admin stats:read sites:write";

    /// <summary>A new client of <paramref name="merchantId"/> in a running host, and a token for it.</summary>
    public static async Task<string> ClientTokenAsync(IServiceProvider services, HttpClient http, long merchantId, string scopes = AllScopes)
    {
        var (client, secret) = await ApiClients.CreateAsync(services, merchantId, "test client", scopes.Split(' '));
        return await ClientCredentialsAsync(http, client.ClientId, secret);
    }

    /// <summary>An admin client created offline in the data directory's control plane (the server
    /// may be running or not yet started); returns its id and secret.</summary>
    public static async Task<(string ClientId, string Secret, long MerchantId)> OfflineAdminClientAsync(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        string spec = ControlPlaneStore.DefaultSpec(dataDirectory);
        using var store = ControlPlaneStore.Open(spec);
        await using var services = ApiClients.OfflineServices(store, spec);
        await AnalyticsIdentity.CreateTablesAsync(services);
        long merchant = store.CreateMerchant("Operator").Id;
        var (client, secret) = await ApiClients.CreateAsync(services, merchant, "test admin", AllScopes.Split(' '));
        return (client.ClientId, secret, merchant);
    }

    public static async Task<string> ClientCredentialsAsync(HttpClient http, string clientId, string secret, string? scope = null)
    {
        var form = new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = secret };
        if (scope is not null) form["scope"] = scope;
        using var response = await http.PostAsync("/connect/token", new FormUrlEncodedContent(form));
        string body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode) throw new HttpRequestException($"token endpoint: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
    }
}
