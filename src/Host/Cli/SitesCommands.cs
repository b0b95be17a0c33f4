// `analytics sites create|list`: the site registry in the data directory, JSON out. The registry
// is SQLite, so these run beside a server on the same directory.
using System.CommandLine;
using System.Text.Json;
using Analytics.FastIngest.Sites;

namespace Analytics.Host.Cli;

public sealed class SitesCommands : ICommandGroup
{
    public int Order => 20;

    public IEnumerable<Command> Commands()
    {
        var domain = new Option<string>("--domain") { Description = "The site's domain, e.g. shop.example", HelpName = "DOMAIN", Required = true };
        var merchant = new Option<string>("--merchant") { Description = "Create a new merchant with this name", HelpName = "NAME" };
        var merchantId = Settings.Id("--merchant-id", "Add the site to this existing merchant", required: false);
        var siteKey = new Option<string>("--site-key") { Description = "The site key agents send (random if not given)", HelpName = "KEY" };
        var create = new Command("create", "Create a site (and a merchant with --merchant)") { domain, merchant, merchantId, siteKey };
        create.Validators.Add(result =>
        {
            bool byName = result.GetResult(merchant) is not null, byId = result.GetResult(merchantId) is not null;
            if (byName == byId) result.AddError("give exactly one of --merchant NAME or --merchant-id ID");
        });
        create.SetAction(parse =>
        {
            using var registry = Open(parse);
            long id = parse.GetResult(merchantId) is not null ? parse.GetValue(merchantId) : registry.CreateMerchant(parse.GetValue(merchant)!);
            Console.WriteLine(JsonSerializer.Serialize(registry.CreateSite(id, parse.GetValue(domain)!, parse.GetValue(siteKey)), Json.Indented));
            return 0;
        });

        var list = new Command("list", "List every site");
        list.SetAction(parse =>
        {
            using var registry = Open(parse);
            Console.WriteLine(JsonSerializer.Serialize(registry.ListSites(), Json.Indented));
            return 0;
        });

        yield return new Command("sites", "Sites and merchants in the registry (JSON out)") { create, list };
    }

    private static SiteRegistry Open(ParseResult parse)
    {
        string data = Settings.Bind<CommonSettings>(parse).DataDirectory();
        DataDirectoryLock.Prepare(data);
        return new SiteRegistry(Path.Combine(data, "registry.db"));
    }
}
