using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.Identity;
using Analytics.Host.Cli;
using Analytics.Security;

namespace Analytics.Host;

/// <summary>
/// `serve --demo` signs nobody in automatically: it makes sure the demo merchant has a dashboard
/// user and an API client, keeps their secrets in the data directory (mode 0600, created once,
/// so every start prints the same ones) and prints how to use them. Demo only: a real deployment
/// creates users and clients with `analytics users create` / `clients create`.
/// </summary>
public static class DemoAccess
{
    public const string Email = "demo@example.com";
    public const string PasswordFile = "demo-password";
    public const string ClientFile = "demo-client.json";

    public sealed record Credentials(string Email, string Password, string ClientId, string ClientSecret);

    public static async Task<Credentials> EnsureAsync(IServiceProvider services, string data, Site site)
    {
        var store = services.GetRequiredService<IControlPlaneStore>();
        string passwordPath = Path.Combine(data, PasswordFile);
        var user = store.FindUserByEmail(Email);
        if (user is null || !File.Exists(passwordPath))
        {
            string password = Identifiers.RandomBase32(16);
            if (File.Exists(passwordPath)) File.Delete(passwordPath);
            TenancyCommands.WriteSecretFile(passwordPath, password);
            if (user is null) store.CreateUser(site.MerchantId, Email, UserPasswords.Hash(password), UserRoles.Owner);
            else store.UpdateUser(user.Id, UserPasswords.Hash(password), user.Role);
        }
        string clientPath = Path.Combine(data, ClientFile);
        JsonElement saved = File.Exists(clientPath) ? JsonDocument.Parse(await File.ReadAllTextAsync(clientPath)).RootElement : default;
        if (saved.ValueKind != JsonValueKind.Object || store.FindApiClient(saved.GetProperty("clientId").GetString()!) is not { RevokedAt: null })
        {
            var (client, secret) = await ApiClients.CreateAsync(services, site.MerchantId, "demo script", [Scopes.StatsRead]);
            if (File.Exists(clientPath)) File.Delete(clientPath);
            TenancyCommands.WriteSecretFile(clientPath, JsonSerializer.Serialize(new { clientId = client.ClientId, clientSecret = secret }));
            saved = JsonDocument.Parse(await File.ReadAllTextAsync(clientPath)).RootElement;
        }
        return new Credentials(Email, (await File.ReadAllTextAsync(passwordPath)).Trim(), saved.GetProperty("clientId").GetString()!, saved.GetProperty("clientSecret").GetString()!);
    }
}
