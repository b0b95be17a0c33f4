// `analytics sites create|list`: sites in the control plane (SQLite in the data directory, or the
// PostgreSQL given by --control-plane), JSON out. Both backends take concurrent writers, so these
// run beside a server on the same control plane.
using System.CommandLine;
using System.Text.Json;
using Analytics.ControlPlane;

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
        var timeZone = new Option<string>("--time-zone") { Description = "The site's IANA time zone, the query API's default [default: UTC]", HelpName = "ZONE", DefaultValueFactory = _ => "UTC" };
        timeZone.Validators.Add(result =>
        {
            string? zone = result.GetValueOrDefault<string>();
            if (zone is null || !TimeZoneInfo.TryFindSystemTimeZoneById(zone, out _)) result.AddError($"--time-zone: '{zone}' is not an IANA time zone, e.g. Europe/Berlin");
        });
        var controlPlane = ControlPlaneSettings.Option();
        var create = new Command("create", "Create a site (and a merchant with --merchant)") { domain, merchant, merchantId, siteKey, timeZone, controlPlane };
        create.Validators.Add(result =>
        {
            bool byName = result.GetResult(merchant) is not null, byId = result.GetResult(merchantId) is not null;
            if (byName == byId) result.AddError("give exactly one of --merchant NAME or --merchant-id ID");
        });
        create.SetAction(parse =>
        {
            using var registry = Open(parse);
            long id = parse.GetResult(merchantId) is not null ? parse.GetValue(merchantId) : registry.CreateMerchant(parse.GetValue(merchant)!);
            Console.WriteLine(JsonSerializer.Serialize(registry.CreateSite(id, parse.GetValue(domain)!, parse.GetValue(siteKey), parse.GetValue(timeZone)!), Json.Indented));
            return 0;
        });

        var list = new Command("list", "List every site") { ControlPlaneSettings.Option() };
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
        var settings = Settings.Bind<ControlPlaneSettings>(parse);
        DataDirectoryLock.Prepare(settings.DataDirectory());
        return new SiteRegistry(ControlPlaneStore.Open(settings.ControlPlaneSpec()));
    }
}
