namespace Analytics.ControlPlane.Tests;

/// <summary>
/// The origin rules as docs/security.md states them, case by case. Origins are written as
/// browsers send them (RFC 6454 serialisation: scheme://host[:port], lower case, default port
/// omitted).
/// </summary>
public class OriginPolicyTests
{
    [Theory]
    [InlineData("https://shop.example", true)]
    [InlineData("http://shop.example", true)]
    [InlineData("https://www.shop.example", true)]
    [InlineData("https://a.b.shop.example:8443", true)]
    [InlineData("http://shop.example:3000", true)]
    [InlineData("https://notshop.example", false)]
    [InlineData("https://shop.example.evil.example", false)]
    [InlineData("https://evil.example", false)]
    [InlineData("null", false)]
    [InlineData("file://", false)]
    [InlineData("chrome-extension://abcdef", false)]
    [InlineData("https://", false)]
    [InlineData("https://shop.example:0", false)]
    [InlineData("https://shop.example:99999", false)]
    public void A_site_without_allowed_origins_accepts_its_domain_and_subdomains_on_any_scheme_and_port(string origin, bool allowed) =>
        Assert.Equal(allowed, OriginPolicy.For("shop.example", []).Allows(origin));

    [Theory]
    [InlineData("https://shop.example", true)]
    [InlineData("https://shop.example:443", true)]
    [InlineData("http://shop.example", false)]
    [InlineData("https://shop.example:8443", false)]
    [InlineData("https://www.shop.example", false)]
    [InlineData("https://a.cdn.example", true)]
    [InlineData("https://x.y.cdn.example", true)]
    [InlineData("https://cdn.example", false)]
    [InlineData("http://localhost:3000", true)]
    [InlineData("http://localhost:3001", false)]
    [InlineData("http://[::1]:8080", true)]
    public void Allowed_origins_replace_the_domain_default_and_match_scheme_host_and_port(string origin, bool allowed) =>
        Assert.Equal(allowed, OriginPolicy.For("shop.example", ["https://shop.example", "https://*.cdn.example", "http://localhost:3000", "http://[::1]:8080"]).Allows(origin));

    [Theory]
    [InlineData("https://shop.example/", "https://shop.example")]
    [InlineData("https://shop.example:8443/a/b?c=d#e", "https://shop.example:8443")]
    [InlineData("https://shop.example?x=1", "https://shop.example")]
    [InlineData("not a url", "")]
    public void The_origin_of_a_referer_is_its_scheme_host_and_port(string referer, string origin) =>
        Assert.Equal(origin, OriginPolicy.OriginOfUrl(referer).ToString());

    [Fact]
    public void Checking_an_origin_allocates_nothing()
    {
        var policy = OriginPolicy.For("shop.example", ["https://shop.example", "https://*.cdn.example"]);
        Assert.True(policy.Allows("https://a.cdn.example"));
        // The fewest bytes of a few rounds: the runtime may allocate on this thread once while it
        // recompiles the loop or the method at a higher tier (a CI run on a busy machine saw
        // 49,200 B in the one round this test had), while a check that allocates does so in
        // every round.
        long fewest = long.MaxValue;
        for (int round = 0; round < 5 && fewest > 0; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 10_000; i++) policy.Allows("https://a.cdn.example");
            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.Equal(0, fewest);
    }
}
