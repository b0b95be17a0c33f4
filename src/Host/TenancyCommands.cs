using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.Identity;
using Analytics.Security;

namespace Analytics.Host;

/// <summary>
/// CLI commands that manage who may call the APIs, run against the control plane directly (no
/// server needed, like `sites create`): `bootstrap` (the first admin client), `clients create|revoke`,
/// `users create`, `keys create|revoke`. Secrets are printed once and kept nowhere in clear,
/// except the admin client's, which `bootstrap` writes to `DATA/admin-client.json` (mode 0600)
/// so that the CLI's admin commands (reprocess, export, partitions) can get a token.
/// </summary>
public static class TenancyCommands
{
    public const string AdminClientFile = "admin-client.json";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>Runs one command; <paramref name="args"/> are its options (see <see cref="Usage"/>).</summary>
    public static async Task<int> RunAsync(string command, CommandLine cli, string data, TextReader stdin)
    {
        string spec = cli.Get("control-plane") ?? ControlPlaneStore.DefaultSpec(data);
        Directory.CreateDirectory(data);
        try
        {
            using var store = ControlPlaneStore.Open(spec);
            await using var services = ApiClients.OfflineServices(store, spec);
            await AnalyticsIdentity.CreateTablesAsync(services);
            return command switch
            {
                "bootstrap" => await BootstrapAsync(cli, data, store, services),
                "clients create" => await CreateClientAsync(cli, store, services),
                "clients revoke" => Revoke(store.RevokeApiClient(cli.Get("client-id") ?? ""), "client", cli.Get("client-id")),
                "users create" => CreateUser(cli, store, stdin),
                "keys create" => CreateKey(cli, store),
                "keys revoke" => store.FindApiKey(cli.Get("prefix") ?? "") is var (key, _) ? Revoke(store.RevokeApiKey(key.Id), "key", key.Prefix) : Revoke(false, "key", cli.Get("prefix")),
                _ => Usage(),
            };
        }
        catch (Exception e) when (e is ArgumentException or ControlPlaneConflictException or ControlPlaneUnavailableException)
        {
            Console.Error.WriteLine($"analytics {command}: {e.Message}");
            return 1;
        }
    }

    public static int Usage()
    {
        Console.Error.WriteLine("""
            usage: analytics bootstrap [--merchant-id M]                       the first admin client (once; writes DATA/admin-client.json)
                   analytics clients create --merchant M --scopes "stats:read sites:write" [--name N]
                   analytics clients revoke --client-id ID
                   analytics users create --merchant M --email E --password-stdin [--role owner|admin|viewer]
                   analytics keys create --merchant M --user EMAIL --scopes "stats:read" [--name N]
                   analytics keys revoke --prefix P
              scopes: stats:read (query API), sites:write (own sites), admin (all merchants: reprocess, export, partitions)
            """);
        return 2;
    }

    private static async Task<int> BootstrapAsync(CommandLine cli, string data, IControlPlaneStore store, IServiceProvider services)
    {
        string file = Path.Combine(data, AdminClientFile);
        if (File.Exists(file))
        {
            Console.Error.WriteLine($"analytics bootstrap: already done ({file} exists); create more clients with `analytics clients create`.");
            return 1;
        }
        // Admin tokens need a merchant like every token; the operator gets a merchant of its own.
        long merchant = long.TryParse(cli.Get("merchant-id"), out long m) ? m : store.CreateMerchant("Operator").Id;
        var (client, secret) = await ApiClients.CreateAsync(services, merchant, "admin (bootstrap)", [Scopes.Admin, Scopes.StatsRead, Scopes.SitesWrite]);
        WriteSecretFile(file, JsonSerializer.Serialize(new { clientId = client.ClientId, clientSecret = secret, merchantId = client.MerchantId }, Json));
        Console.WriteLine(JsonSerializer.Serialize(new { client.ClientId, clientSecret = secret, client.MerchantId, client.Scopes, savedTo = file }, Json));
        Console.Error.WriteLine("The secret is shown once; the CLI reads it from the file above (mode 0600).");
        return 0;
    }

    private static async Task<int> CreateClientAsync(CommandLine cli, IControlPlaneStore store, IServiceProvider services)
    {
        long merchant = RequireMerchant(cli);
        string scopes = cli.Get("scopes") ?? throw new ArgumentException("--scopes is required, e.g. --scopes \"stats:read\".");
        if (Scopes.Unknown(scopes) is { Count: > 0 } unknown) throw new ArgumentException($"unknown scopes: {string.Join(", ", unknown)}.");
        var (client, secret) = await ApiClients.CreateAsync(services, merchant, cli.Get("name", "api client"), Scopes.Parse(scopes));
        Console.WriteLine(JsonSerializer.Serialize(new { client.ClientId, clientSecret = secret, client.MerchantId, client.Scopes }, Json));
        Console.Error.WriteLine("The secret is shown once: store it now.");
        return 0;
    }

    private static int CreateUser(CommandLine cli, IControlPlaneStore store, TextReader stdin)
    {
        long merchant = RequireMerchant(cli);
        string email = cli.Get("email") ?? throw new ArgumentException("--email is required.");
        if (!cli.Flag("password-stdin")) throw new ArgumentException("--password-stdin is required: the password is read from standard input, never from the command line.");
        string password = (stdin.ReadLine() ?? "").TrimEnd('\r', '\n');
        string role = cli.Get("role", UserRoles.Owner);
        if (!UserRoles.All.Contains(role)) throw new ArgumentException($"--role: one of {string.Join(", ", UserRoles.All)}.");
        if (store.GetMerchant(merchant) is null) throw new ArgumentException($"There is no merchant {merchant}.");
        var user = store.CreateUser(merchant, email, UserPasswords.Hash(password), role);
        Console.WriteLine(JsonSerializer.Serialize(new { user.Id, user.Email, user.MerchantId, user.Role }, Json));
        return 0;
    }

    private static int CreateKey(CommandLine cli, IControlPlaneStore store)
    {
        long merchant = RequireMerchant(cli);
        string email = cli.Get("user") ?? throw new ArgumentException("--user EMAIL is required (a key acts for one user).");
        var user = store.FindUserByEmail(email);
        if (user is null || user.MerchantId != merchant) throw new ArgumentException($"Merchant {merchant} has no user {email}.");
        string scopes = cli.Get("scopes", Scopes.StatsRead);
        if (Scopes.Unknown(scopes) is { Count: > 0 } unknown) throw new ArgumentException($"unknown scopes: {string.Join(", ", unknown)}.");
        var (key, secret) = ApiKeys.Create(store, merchant, user.Id, cli.Get("name", "script"), string.Join(' ', Scopes.Parse(scopes)));
        Console.WriteLine(JsonSerializer.Serialize(new { key.Prefix, key = secret, key.MerchantId, key.Scopes }, Json));
        Console.Error.WriteLine("The key is shown once: store it now. Use it as: Authorization: Bearer <key>");
        return 0;
    }

    private static int Revoke(bool done, string what, string? id)
    {
        if (done) Console.WriteLine($"revoked {what} {id}");
        else Console.Error.WriteLine($"no such {what}: {id}");
        return done ? 0 : 1;
    }

    private static long RequireMerchant(CommandLine cli) =>
        long.TryParse(cli.Get("merchant"), out long m) ? m : throw new ArgumentException("--merchant ID is required.");

    /// <summary>A file only the owner can read, created with that mode (never briefly wider).</summary>
    public static void WriteSecretFile(string path, string content)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var writer = new StreamWriter(new FileStream(path, options));
        writer.Write(content);
    }
}
