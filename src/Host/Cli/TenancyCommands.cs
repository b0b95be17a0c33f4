// `analytics bootstrap | clients create|revoke | users create | keys create|revoke`: who may call
// the APIs, managed in the control plane directly (no server needed, like `sites create`).
//
// Contract: secrets are printed once and kept nowhere in clear, except the admin client's, which
// `bootstrap` writes to DATA/admin-client.json (mode 0600, created with that mode) so that the
// CLI's admin commands (reprocess, export, partitions) can get a token. Passwords are read from
// standard input only, never from the command line (where `ps` would show them).
using System.CommandLine;
using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.Identity;
using Analytics.QueryService.Http;
using Analytics.Security;

namespace Analytics.Host.Cli;

public sealed class TenancyCommands : ICommandGroup
{
    public const string AdminClientFile = "admin-client.json";

    public int Order => 25;

    public IEnumerable<Command> Commands()
    {
        const string ScopesHelp = "stats:read (query API), sites:write (own sites), admin (all merchants: reprocess, export, partitions)";
        var merchant = Settings.Id("--merchant", "Merchant id", required: true);
        var name = new Option<string>("--name") { Description = "A label to recognise it by", HelpName = "NAME" };

        var bootstrapMerchant = Settings.Id("--merchant-id", "Give the admin client this merchant [default: a new merchant \"Operator\"]", required: false);
        var bootstrap = new Command("bootstrap", "Create the first admin client (once; saves it in DATA/admin-client.json, mode 0600)")
        {
            bootstrapMerchant, ControlPlaneSettings.Option(),
        };
        bootstrap.SetAction((parse, _) => WithStoreAsync(parse, (settings, store, services) =>
            BootstrapAsync(settings.DataDirectory(), store, services, parse.GetResult(bootstrapMerchant) is null ? null : parse.GetValue(bootstrapMerchant))));

        var clientScopes = new Option<string>("--scopes") { Description = "Space-separated scopes: " + ScopesHelp, HelpName = "SCOPES", Required = true };
        var clientCreate = new Command("create", "Create an API client (client credentials); prints its secret once")
        {
            merchant, clientScopes, name, ControlPlaneSettings.Option(),
        };
        clientCreate.SetAction((parse, _) => WithStoreAsync(parse, (_, _, services) =>
            CreateClientAsync(services, parse.GetValue(merchant), parse.GetValue(clientScopes)!, parse.GetValue(name) ?? "api client")));
        var clientId = new Option<string>("--client-id") { Description = "The client to revoke", HelpName = "ID", Required = true };
        var clientRevoke = new Command("revoke", "Revoke an API client: no new tokens, outstanding ones refused within 10 s")
        {
            clientId, ControlPlaneSettings.Option(),
            EdgePurgeOption.Create("Edge caches (Varnish with xkey) to purge of the client's cached answers, comma-separated, as given to `serve` [default: none]"),
        };
        clientRevoke.SetAction((parse, _) => RevokeAsync(parse, "client", store =>
        {
            string id = parse.GetValue(clientId)!;
            return (store.RevokeApiClient(id), id, CredentialNames.ApiClient(id));
        }));

        var email = new Option<string>("--email") { Description = "The user's email (their sign-in name)", HelpName = "EMAIL", Required = true };
        var passwordStdin = new Option<bool>("--password-stdin") { Description = "Read the password from standard input (required: never on the command line)" };
        var role = Settings.OneOf("--role", "The user's role", UserRoles.All.ToArray());
        role.DefaultValueFactory = _ => UserRoles.Owner;
        var userCreate = new Command("create", "Create a dashboard user") { merchant, email, passwordStdin, role, ControlPlaneSettings.Option() };
        userCreate.SetAction((parse, _) => WithStoreAsync(parse, (_, store, _) =>
        {
            if (!parse.GetValue(passwordStdin))
                throw new UsageException("--password-stdin is required: the password is read from standard input, never from the command line");
            return Task.FromResult(CreateUser(store, parse.GetValue(merchant), parse.GetValue(email)!, parse.GetValue(role)!, Console.In));
        }));

        var keyUser = new Option<string>("--user") { Description = "The user the key acts for (email)", HelpName = "EMAIL", Required = true };
        var keyScopes = new Option<string>("--scopes") { Description = "Space-separated scopes, at most the user's role's (owner, admin: stats:read sites:write; viewer: stats:read)", HelpName = "SCOPES", DefaultValueFactory = _ => Scopes.StatsRead };
        var keyCreate = new Command("create", "Create a personal API key for scripts; prints it once") { merchant, keyUser, keyScopes, name, ControlPlaneSettings.Option() };
        keyCreate.SetAction((parse, _) => WithStoreAsync(parse, (_, store, _) =>
            Task.FromResult(CreateKey(store, parse.GetValue(merchant), parse.GetValue(keyUser)!, parse.GetValue(keyScopes)!, parse.GetValue(name) ?? "script"))));
        var prefix = new Option<string>("--prefix") { Description = "The key's prefix (shown when it was created and by list)", HelpName = "PREFIX", Required = true };
        var keyRevoke = new Command("revoke", "Revoke a personal API key")
        {
            prefix, ControlPlaneSettings.Option(),
            EdgePurgeOption.Create("Edge caches (Varnish with xkey) to purge of the key's cached answers, comma-separated, as given to `serve` [default: none]"),
        };
        keyRevoke.SetAction((parse, _) => RevokeAsync(parse, "key", store =>
        {
            string p = parse.GetValue(prefix)!;
            if (store.FindApiKey(p) is not var (key, _)) return (false, p, "");
            return (store.RevokeApiKey(key.Id), key.Prefix, CredentialNames.ApiKey(key.Prefix));
        }));

        yield return bootstrap;
        yield return new Command("clients", "API clients (OAuth2 client credentials)") { clientCreate, clientRevoke };
        yield return new Command("users", "Dashboard users") { userCreate };
        yield return new Command("keys", "Personal API keys (Authorization: Bearer <key>)") { keyCreate, keyRevoke };
    }

    private static async Task<int> WithStoreAsync(ParseResult parse, Func<ControlPlaneSettings, IControlPlaneStore, IServiceProvider, Task<int>> run)
    {
        var settings = Settings.Bind<ControlPlaneSettings>(parse);
        DataDirectoryLock.Prepare(settings.DataDirectory());
        string spec = settings.ControlPlaneSpec();
        try
        {
            using var store = ControlPlaneStore.Open(spec);
            await using var services = ApiClients.OfflineServices(store, spec);
            await AnalyticsIdentity.CreateTablesAsync(services);
            return await run(settings, store, services);
        }
        catch (ArgumentException e)
        {
            // The control plane's own checks (a password too short, an unknown merchant).
            throw new StartupException(e.Message.TrimEnd('.') + ".");
        }
    }

    private static async Task<int> BootstrapAsync(string data, IControlPlaneStore store, IServiceProvider services, long? merchantId)
    {
        string file = Path.Combine(data, AdminClientFile);
        if (File.Exists(file))
            throw new StartupException($"already done ({file} exists); create more clients with `analytics clients create`");
        // Admin tokens need a merchant like every token; the operator gets a merchant of its own.
        long merchant = merchantId ?? store.CreateMerchant("Operator").Id;
        var (client, secret) = await ApiClients.CreateAsync(services, merchant, "admin (bootstrap)", [Scopes.Admin, Scopes.StatsRead, Scopes.SitesWrite]);
        WriteSecretFile(file, JsonSerializer.Serialize(new { clientId = client.ClientId, clientSecret = secret, merchantId = client.MerchantId }, Json.Indented));
        Console.WriteLine(JsonSerializer.Serialize(new { client.ClientId, clientSecret = secret, client.MerchantId, client.Scopes, savedTo = file }, Json.Indented));
        Console.Error.WriteLine("The secret is shown once; the CLI reads it from the file above (mode 0600).");
        return 0;
    }

    private static async Task<int> CreateClientAsync(IServiceProvider services, long merchant, string scopes, string name)
    {
        if (Scopes.Unknown(scopes) is { Count: > 0 } unknown) throw new UsageException($"unknown scopes: {string.Join(", ", unknown)}.");
        var (client, secret) = await ApiClients.CreateAsync(services, merchant, name, Scopes.Parse(scopes));
        Console.WriteLine(JsonSerializer.Serialize(new { client.ClientId, clientSecret = secret, client.MerchantId, client.Scopes }, Json.Indented));
        Console.Error.WriteLine("The secret is shown once: store it now.");
        return 0;
    }

    private static int CreateUser(IControlPlaneStore store, long merchant, string email, string role, TextReader stdin)
    {
        string password = (stdin.ReadLine() ?? "").TrimEnd('\r', '\n');
        if (store.GetMerchant(merchant) is null) throw new StartupException($"there is no merchant {merchant}");
        var user = store.CreateUser(merchant, email, UserPasswords.Hash(password), role);
        Console.WriteLine(JsonSerializer.Serialize(new { user.Id, user.Email, user.MerchantId, user.Role }, Json.Indented));
        return 0;
    }

    private static int CreateKey(IControlPlaneStore store, long merchant, string email, string scopes, string name)
    {
        var user = store.FindUserByEmail(email);
        if (user is null || user.MerchantId != merchant) throw new StartupException($"merchant {merchant} has no user {email}");
        if (Scopes.Unknown(scopes) is { Count: > 0 } unknown) throw new UsageException($"unknown scopes: {string.Join(", ", unknown)}.");
        var allowed = Scopes.ForRole(user.Role);
        if (Scopes.Parse(scopes).Where(s => !allowed.Contains(s)).ToList() is { Count: > 0 } beyond)
            throw new UsageException($"a {user.Role}'s key may have only {string.Join(" ", allowed)}, not {string.Join(", ", beyond)}; admin work uses an admin client (analytics bootstrap, clients create).");
        var (key, secret) = ApiKeys.Create(store, merchant, user.Id, name, string.Join(' ', Scopes.Parse(scopes)));
        Console.WriteLine(JsonSerializer.Serialize(new { key.Prefix, key = secret, key.MerchantId, key.Scopes }, Json.Indented));
        Console.Error.WriteLine("The key is shown once: store it now. Use it as: Authorization: Bearer <key>");
        return 0;
    }

    /// <summary>Purges <paramref name="keys"/> at every edge, as the server's EdgePurger would;
    /// 0 once all did, else 1 with one line per edge that did not.</summary>
    /// <summary>Revokes a credential (<paramref name="revoke"/>: whether it existed, its id, its
    /// CredentialNames name) and purges its cached answers from the edges of --edge-purge-url.</summary>
    private static Task<int> RevokeAsync(ParseResult parse, string what, Func<IControlPlaneStore, (bool Done, string Id, string Credential)> revoke)
    {
        // Checked before anything is revoked: a revocation whose purge cannot even start would
        // leave the credential's answers at the edge for up to an hour, unnoticed.
        var settings = Settings.Bind<RevokeSettings>(parse);
        if (!EdgePurgeOption.TryParse(settings.EdgePurgeUrl, out var edges, out string? edgeError)) throw new UsageException(edgeError!);
        SurrogateKeys? surrogateKeys = null;
        if (edges.Length > 0 && (surrogateKeys = ApiConventions.ExistingSurrogateKeys(settings.DataDirectory())) is null)
            throw new StartupException($"{Path.Combine(settings.DataDirectory(), ApiConventions.SurrogateSecretFile)} does not exist: the edge names a {what}'s answers with the query nodes' secret, so run this on a query node's data directory (nothing was revoked)");
        return WithStoreAsync(parse, async (_, store, _) =>
        {
            var (done, id, credential) = revoke(store);
            Revoked(done, what, id);
            return edges.Length == 0 ? 0 : await PurgeAsync(edges, what, surrogateKeys!.Credential(credential));
        });
    }

    private static async Task<int> PurgeAsync(IReadOnlyList<Uri> edges, string what, string keys)
    {
        using var http = new HttpClient { Timeout = EdgePurger.RequestTimeout };
        var errors = await Task.WhenAll(edges.Select(edge => EdgePurger.SendAsync(http, edge, keys, null, CancellationToken.None)));
        int failed = 0;
        for (int i = 0; i < edges.Count; i++)
        {
            if (errors[i] is null)
            {
                Console.WriteLine($"purged {keys} at {edges[i]}");
                continue;
            }
            failed++;
            Console.Error.WriteLine($"analytics {what}s revoke: edge {edges[i]} did not purge {keys} after {EdgePurger.Attempts} attempts ({errors[i]}): it serves the {what}'s cached answers until their max-age ends (an hour at most)");
        }
        return failed == 0 ? 0 : 1;
    }

    private static int Revoked(bool done, string what, string? id)
    {
        if (!done) throw new StartupException($"no such {what}: {id}");
        Console.WriteLine($"revoked {what} {id}");
        return 0;
    }

    /// <summary>A file only the owner can read, created with that mode (never briefly wider).</summary>
    public static void WriteSecretFile(string path, string content)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var writer = new StreamWriter(new FileStream(path, options));
        writer.Write(content);
    }
}

/// <summary>`keys revoke` and `clients revoke`: the control plane, and the edges to purge.</summary>
public sealed class RevokeSettings : ControlPlaneSettings
{
    public string EdgePurgeUrl { get; set; } = "";
}
