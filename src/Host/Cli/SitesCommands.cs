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
        // The control plane's own rules, checked while parsing: a mistake is one line, exit 2, and
        // nothing is created (not even the --merchant).
        domain.Validators.Add(result => Refusal(result, () => SiteRules.NormalizeDomain(result.GetValueOrDefault<string>()), "--domain"));
        siteKey.Validators.Add(result => Refusal(result, () => SiteRules.ValidSiteKey(result.GetValueOrDefault<string>() ?? ""), "--site-key"));
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
            try
            {
                // A new merchant comes with its site in one transaction: a refused site leaves none behind.
                var site = parse.GetResult(merchantId) is not null
                    ? registry.CreateSite(parse.GetValue(merchantId), parse.GetValue(domain)!, parse.GetValue(siteKey), parse.GetValue(timeZone)!)
                    : registry.CreateMerchantWithSite(parse.GetValue(merchant)!, parse.GetValue(domain)!, parse.GetValue(siteKey), parse.GetValue(timeZone)!);
                return Print(site);
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine(e.Message);
                return 2;
            }
        });

        var list = new Command("list", "List every site") { ControlPlaneSettings.Option() };
        list.SetAction(parse =>
        {
            using var registry = Open(parse);
            Console.WriteLine(JsonSerializer.Serialize(registry.ListSites(), Json.Indented));
            return 0;
        });

        yield return new Command("sites", "Sites and merchants in the registry (JSON out)") { create, list, Origins(), Keys() };
    }

    /// <summary>The rule's refusal as the option's parse error, e.g. "--domain: 'x:8080' is not a host name (it has a port); …".</summary>
    private static void Refusal(System.CommandLine.Parsing.OptionResult result, Action check, string option)
    {
        try
        {
            check();
        }
        catch (ControlPlaneValidationException e)
        {
            int colon = e.Message.IndexOf(": ", StringComparison.Ordinal);
            result.AddError($"{option}: {(colon >= 0 ? e.Message[(colon + 2)..] : e.Message)}");
        }
    }

    private static Option<string> SiteOption() => new("--site") { Description = "The site's public id", HelpName = "ID", Required = true };

    /// <summary>The site a public id names, or one line on stderr (exit 2 by the caller).</summary>
    private static Site? Find(SiteRegistry registry, string publicId)
    {
        var site = registry.FindByPublicId(publicId);
        if (site is null) Console.Error.WriteLine($"--site: there is no site '{publicId}'");
        return site;
    }

    // `sites origins list|add|remove`: which pages may send events (docs/security.md, "Origins").
    // A running server sees a change within its 10 s registry cache.
    private static Command Origins()
    {
        var site = SiteOption();
        var origin = new Option<string>("--origin") { Description = "scheme://host[:port], or scheme://*.domain for its subdomains", HelpName = "ORIGIN", Required = true };
        var list = new Command("list", "The site's allowed origins (none: its domain and subdomains)") { site, ControlPlaneSettings.Option() };
        list.SetAction(parse => Run(parse, site, (registry, s) => Print(new { origins = registry.Store.ListAllowedOrigins(s.SiteId) })));
        var add = new Command("add", "Allow an origin") { site, origin, ControlPlaneSettings.Option() };
        add.SetAction(parse => Run(parse, site, (registry, s) =>
        {
            registry.AddAllowedOrigin(s.SiteId, parse.GetValue(origin)!);
            return Print(new { origins = registry.Store.ListAllowedOrigins(s.SiteId) });
        }));
        var remove = new Command("remove", "Stop allowing an origin") { site, origin, ControlPlaneSettings.Option() };
        remove.SetAction(parse => Run(parse, site, (registry, s) =>
        {
            if (!registry.RemoveAllowedOrigin(s.SiteId, parse.GetValue(origin)!))
            {
                Console.Error.WriteLine($"--origin: '{parse.GetValue(origin)}' is not an allowed origin of this site");
                return 2;
            }
            return Print(new { origins = registry.Store.ListAllowedOrigins(s.SiteId) });
        }));
        return new Command("origins", "Origins whose pages may send events for a site") { list, add, remove };
    }

    // `sites keys rotate|revoke`: a rotated key works for --grace-hours more; a revoked one stops
    // at once (a running server: within its 10 s registry cache).
    private static Command Keys()
    {
        var site = SiteOption();
        var grace = Settings.Integer("--grace-hours", "How long the old key keeps working [default: 24]", 0, 720, 24);
        var key = new Option<string>("--key") { Description = "The site key to revoke (current or rotated)", HelpName = "KEY", Required = true };
        var rotate = new Command("rotate", "Give the site a new key; the old one keeps working for the grace period") { site, grace, ControlPlaneSettings.Option() };
        rotate.SetAction(parse => Run(parse, site, (registry, s) =>
            PrintKeys(registry, registry.RotateSiteKey(s.SiteId, TimeSpan.FromHours(parse.GetValue(grace)))!)));
        var revoke = new Command("revoke", "Refuse a key at once (the current key is replaced by a new one)") { site, key, ControlPlaneSettings.Option() };
        revoke.SetAction(parse => Run(parse, site, (registry, s) =>
        {
            if (registry.RevokeSiteKey(s.SiteId, parse.GetValue(key)!) is not { } after)
            {
                Console.Error.WriteLine("--key: not a current or rotated key of this site");
                return 2;
            }
            return PrintKeys(registry, after);
        }));
        return new Command("keys", "Rotate and revoke a site's keys") { rotate, revoke };
    }

    private static int Run(ParseResult parse, Option<string> siteOption, Func<SiteRegistry, Site, int> action)
    {
        using var registry = Open(parse);
        if (Find(registry, parse.GetValue(siteOption)!) is not { } site) return 2;
        try
        {
            return action(registry, site);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine(e.Message);
            return 2;
        }
    }

    private static int Print(object value)
    {
        Console.WriteLine(JsonSerializer.Serialize(value, Json.Indented));
        return 0;
    }

    private static int PrintKeys(SiteRegistry registry, Site site) => Print(new
    {
        siteKey = site.SiteKey,
        retiredKeys = registry.Store.ListRetiredSiteKeys(site.SiteId).Select(k => new { siteKey = k.SiteKey, validUntil = k.ValidUntil }),
    });

    private static SiteRegistry Open(ParseResult parse)
    {
        var settings = Settings.Bind<ControlPlaneSettings>(parse);
        DataDirectoryLock.Prepare(settings.DataDirectory());
        return new SiteRegistry(ControlPlaneStore.Open(settings.ControlPlaneSpec()));
    }
}
