using System.Net;
using System.Text.Json;

namespace Analytics.Tenancy.Tests;

/// <summary>The `analytics` CLI's credential commands, run as a child process on a running host's
/// data directory; what they create is then used over HTTP like any client would.</summary>
public class CliTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_cli_creates_and_revokes_clients_users_and_keys_that_the_server_honours()
    {
        await using var host = await AuthHost.StartAsync(engine);
        var (merchant, site) = host.NewMerchant("Cli Shop");
        string m = merchant.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);

        var client = JsonDocument.Parse((await RunAsync(host, null, "clients", "create", "--merchant", m, "--scopes", "stats:read")).Output).RootElement;
        string clientId = client.GetProperty("clientId").GetString()!, secret = client.GetProperty("clientSecret").GetString()!;
        string token = await Analytics.Tests.Shared.TestTokens.ClientCredentialsAsync(host.Http, clientId, secret);
        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(site), token)).StatusCode);

        await RunAsync(host, "a long passphrase\n", "users", "create", "--merchant", m, "--email", "ann@cli.example", "--password-stdin");
        Assert.True((await host.SignInAsync("ann@cli.example", "a long passphrase")).TryGetProperty("access_token", out _));

        var key = JsonDocument.Parse((await RunAsync(host, null, "keys", "create", "--merchant", m, "--user", "ann@cli.example", "--scopes", "stats:read")).Output).RootElement;
        string secretKey = key.GetProperty("key").GetString()!;
        Assert.Equal(HttpStatusCode.OK, (await host.GetAsync(AuthHost.AggregatePath(site), secretKey)).StatusCode);
        await RunAsync(host, null, "keys", "revoke", "--prefix", key.GetProperty("prefix").GetString()!);
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.GetAsync(AuthHost.AggregatePath(site), secretKey)).StatusCode);

        await RunAsync(host, null, "clients", "revoke", "--client-id", clientId);
        await Assert.ThrowsAsync<HttpRequestException>(() => Analytics.Tests.Shared.TestTokens.ClientCredentialsAsync(host.Http, clientId, secret));

        // Mistakes end with one clear line and a non-zero exit.
        var badScope = await RunAsync(host, null, expectSuccess: false, "clients", "create", "--merchant", m, "--scopes", "stats:write");
        Assert.Equal("analytics clients create: unknown scopes: stats:write.", badScope.Error.Trim());
        // A personal key gets no more than its user's role: never admin (operators use an admin client).
        var adminKey = await RunAsync(host, null, expectSuccess: false, "keys", "create", "--merchant", m, "--user", "ann@cli.example", "--scopes", "stats:read admin");
        Assert.Single(adminKey.Error.Trim().Split('\n'));
        Assert.Contains("not admin", adminKey.Error);
        Assert.DoesNotContain(host.Store.ListApiKeys(merchant.Id), k => k.Scopes.Contains("admin", StringComparison.Ordinal));
        var noStdin = await RunAsync(host, null, expectSuccess: false, "users", "create", "--merchant", m, "--email", "bob@cli.example", "--password", "x");
        // "--password" is not an option (a password on the command line shows in ps): refused, naming the right one.
        Assert.Contains("--password-stdin", noStdin.Error);
        var missingStdin = await RunAsync(host, null, expectSuccess: false, "users", "create", "--merchant", m, "--email", "bob@cli.example");
        Assert.Contains("--password-stdin is required", missingStdin.Error);
        var shortPassword = await RunAsync(host, "short\n", expectSuccess: false, "users", "create", "--merchant", m, "--email", "bob@cli.example", "--password-stdin");
        Assert.Single(shortPassword.Error.Trim().Split('\n'));
    }

    [Fact]
    public async Task A_signing_key_file_others_can_read_stops_the_server_with_one_line()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix file modes");
            return;
        }
        string data = Path.Combine(Path.GetTempPath(), "analytics-tenancy-keys-" + Guid.NewGuid().ToString("N"));
        try
        {
            Analytics.Host.Cli.DataDirectoryLock.CreateOwnerOnly(Path.Combine(data, "identity"));
            string key = Path.Combine(data, "identity", Analytics.Identity.IssuerKeys.SigningFile);
            await File.WriteAllTextAsync(key, System.Security.Cryptography.RSA.Create(2048).ExportPkcs8PrivateKeyPem(), Ct);
            File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            var (exit, error) = await ServeUntilExitAsync(data);
            Assert.Equal(1, exit);
            Assert.Equal($"analytics serve: {key} is readable or writable by group or others; run: chmod 600 {key}", error.Trim());
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task An_identity_directory_others_can_list_stops_the_server_with_one_line()
    {
        if (OperatingSystem.IsWindows())
        {
            Assert.Skip("Unix file modes");
            return;
        }
        string data = Path.Combine(Path.GetTempPath(), "analytics-tenancy-keydir-" + Guid.NewGuid().ToString("N"));
        try
        {
            string identity = Path.Combine(data, "identity");
            Directory.CreateDirectory(identity, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                                UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            var (exit, error) = await ServeUntilExitAsync(data);
            Assert.Equal(1, exit);
            Assert.Equal($"analytics serve: {identity} is accessible by group or others; run: chmod 700 {identity}", error.Trim());
            Assert.Empty(Directory.GetFiles(identity)); // no key was written into it
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    /// <summary>Runs <c>analytics serve</c> on a data directory that must stop it (HostCommand kills it after 60 s).</summary>
    private static async Task<(int Exit, string Error)> ServeUntilExitAsync(string data)
    {
        var result = await HostCommand.RunAsync("serve", "--data", data, "--urls", "http://127.0.0.1:0", "--quiet");
        return (result.ExitCode, result.Stderr);
    }

    private static Task<(string Output, string Error)> RunAsync(AuthHost host, string? stdin, params string[] args) => RunAsync(host, stdin, true, args);

    private static async Task<(string Output, string Error)> RunAsync(AuthHost host, string? stdin, bool expectSuccess, params string[] args)
    {
        var result = await HostCommand.RunAsync([.. args, "--data", host.DataDirectory], environment: null, stdin: stdin);
        Assert.True((result.ExitCode == 0) == expectSuccess, result.ToString());
        return (result.Stdout, result.Stderr);
    }
}
