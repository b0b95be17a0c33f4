using System.Text;
using Analytics.FastIngest.Sites;

namespace Analytics.FastIngest.Tests;

public sealed class SiteRegistryTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "registry-tests-" + Guid.NewGuid().ToString("N"));
    private readonly SiteRegistry _registry;

    public SiteRegistryTests()
    {
        Directory.CreateDirectory(_dir);
        _registry = new SiteRegistry(Path.Combine(_dir, "registry.db"));
    }

    public void Dispose()
    {
        _registry.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void A_key_unknown_a_moment_ago_resolves_once_its_site_is_created_here()
    {
        Assert.Null(_registry.Resolve("late-key"u8));
        var site = _registry.CreateSite(_registry.CreateMerchant("M"), "m.example", "late-key");
        Assert.Equal(site, _registry.Resolve("late-key"u8));
    }

    [Fact]
    public void Sites_created_by_another_process_are_found_by_a_fresh_lookup()
    {
        using var other = new SiteRegistry(Path.Combine(_dir, "registry.db"));
        var site = other.CreateSite(other.CreateMerchant("M"), "m.example");
        Assert.Equal(site, _registry.Resolve(Encoding.ASCII.GetBytes(site.SiteKey)));
        Assert.Equal(site, _registry.FindById(site.SiteId));
    }

    [Fact]
    public void Generated_keys_are_unique_url_safe_and_twenty_characters()
    {
        long merchant = _registry.CreateMerchant("M");
        var keys = Enumerable.Range(0, 200).Select(i => _registry.CreateSite(merchant, $"s{i}.example").SiteKey).ToList();
        Assert.Equal(keys.Count, keys.Distinct().Count());
        Assert.All(keys, k => Assert.Matches("^[A-Za-z0-9_-]{20}$", k));
    }

    [Fact]
    public void The_daily_salt_is_shared_through_the_store_and_old_salts_are_deleted()
    {
        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        using var other = new SiteRegistry(Path.Combine(_dir, "registry.db"));
        var salt = _registry.GetSalt(today.AddDays(-5));
        Assert.Equal(salt, other.GetSalt(today.AddDays(-5)));
        Assert.NotEqual(salt, _registry.GetSalt(today));
        // Creating today's salt deleted everything older than yesterday: a new registry now
        // gets a new random salt for that old day, so old visitor ids cannot be recomputed.
        using var third = new SiteRegistry(Path.Combine(_dir, "registry.db"));
        Assert.NotEqual(salt, third.GetSalt(today.AddDays(-5)));
    }
}
