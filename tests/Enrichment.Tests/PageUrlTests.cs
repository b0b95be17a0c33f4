using System.Text;

namespace Analytics.Enrichment.Tests;

/// <summary>
/// PageUrl against System.Uri, the reference it replaces on the plain path: for every URL, the
/// same success and the same host (without case), AbsolutePath and Query. URLs come from a list
/// of odd ones, from every domain of Snowplow's referers.yml with real-looking paths and
/// campaign queries, and from a seeded generator mixing the characters and shapes Uri treats
/// specially (escapes, dot segments, ports, user info, IP literals, non-ASCII, whitespace).
/// </summary>
public class PageUrlTests
{
    public static readonly TheoryData<string> OddUrls =
    [
        "https://shop.example", "https://shop.example/", "https://shop.example?x=1", "https://shop.example#top", "https://shop.example/?", "https://shop.example/a?",
        "https://shop.example/a#", "https://shop.example/a?#", "https://shop.example/a??b=c", "https://shop.example/a?b=c#d?e", "https://shop.example/a#b/../c",
        "HTTPS://Shop.Example/A", "https://WWW.Shop.Example/Products/Red%20Shoes", "http://shop.example:8080/x", "http://shop.example:80/x", "https://shop.example:443/",
        "https://shop.example:99999/", "https://user:pw@shop.example/x", "https://@shop.example/", "https://shop.example./x", "https://.shop.example/", "https://shop..example/",
        "https://-shop.example/", "https://shop-.example/", "https://sh_op.example/", "https://127.0.0.1/x", "https://0x7f.1/x", "https://1.2.3/x", "https://123/x",
        "https://[::1]/x", "https://[2001:db8::1]:8443/x?y", "https://bücher.example/straße?q=ä", "https://xn--bcher-kva.example/", "https://shop.example/a b", "https://shop.example/a\tb",
        " https://shop.example/x ", "https://shop.example/x\n", "https://shop.example/a/./b", "https://shop.example/a/../b", "https://shop.example/a/..", "https://shop.example/.well-known/x",
        "https://shop.example/a/.b", "https://shop.example/%2e%2e/b", "https://shop.example/%41%42", "https://shop.example/a%2Fb", "https://shop.example/a%zz", "https://shop.example/?q=%zz",
        "https://shop.example/?q=%4", "https://shop.example/?q=%41%2F%20", "https://shop.example/?q=a+b&utm_source=x%20y", "https://shop.example/a\\b", "https://shop.example\\a",
        "https://shop.example/a|b", "https://shop.example/a^b", "https://shop.example/a`b", "https://shop.example/a{b}", "https://shop.example/a[b]", "https://shop.example/a\"b",
        "https://shop.example/a<b>", "https://shop.example/it's(ok)!*~$,;=:@", "https://shop.example//double//slashes", "http://localhost/x", "http://a/", "ftp://shop.example/x",
        "mailto:someone@shop.example", "file:///etc/passwd", "/relative/path", "relative", "", "http://", "https:///x", "https://shop.example/" + new string('a', 9000),
        "android-app://com.example.app/", "https://a.b.c.d.e.f.example/x", "https://" + new string('a', 64) + ".example/", "https://" + new string('a', 63) + ".example/",
        "https://shop.example/ä", "https://shop.example/?q=ä", "https://shop.example/#ä", "https://shop.example/#a b", "https://shop.example/?a b", "http://shop.example/x?%",
        "https://shop.example/?q=%C3%A4", "https://shop.example/?q=%7E%2d%2E%5F%7e", "https://shop.example/?q=%7F%00%0A%25%3D", "https://shop.example/#%41?q=%41",
    ];

    [Theory]
    [MemberData(nameof(OddUrls))]
    public void Odd_urls_give_what_Uri_gives(string url) => AssertLikeUri(url);

    [Fact]
    public void Pages_on_every_referers_yml_domain_give_what_Uri_gives_and_take_the_plain_path()
    {
        var domains = File.ReadLines(GeoReferrerData.EnrichmentData("referer-parser", "referers.yml"))
            .Select(l => l.Trim()).Where(l => l.StartsWith("- ", StringComparison.Ordinal)).Select(l => l[2..].Trim().Trim('"', '\''))
            .Where(d => d.Length > 0 && !d.Contains('/', StringComparison.Ordinal)).Distinct().ToList();
        var random = new Random(17);
        string[] paths = ["", "/", "/products/42", "/p/red-shoes", "/search", "/blog/2026/12/01/hello-world", "/a/b/c/", "/index.html", "/cart;jsessionid=AB12"];
        string[] queries = ["", "?utm_source=newsletter&utm_campaign=w1", "?q=red+shoes", "?gclid=Cj0KCQ&utm_medium=cpc", "?utm_campaign=spring%20sale", "?ref=home&page=2"];
        int plain = 0;
        foreach (var domain in domains)
        {
            string url = (random.Next(4) == 0 ? "http://" : "https://") + domain + paths[random.Next(paths.Length)] + queries[random.Next(queries.Length)]
                + (random.Next(10) == 0 ? "#reviews" : "");
            if (AssertLikeUri(url)) plain++;
        }
        Assert.True(domains.Count > 1000, $"only {domains.Count} domains");
        // Nearly all of them are plain DNS names: the fast path is the common one.
        Assert.True(plain > domains.Count * 0.95, $"{plain} of {domains.Count} took the plain path");
    }

    [Fact]
    public void Generated_urls_give_what_Uri_gives()
    {
        var random = new Random(20261201);
        string[] schemes = ["https://", "http://", "https://", "http://", "HTTP://", "Https://", "ftp://", "ws://", "https:/", "https:", "http:\\\\"];
        string[] hosts =
        [
            "shop.example", "www.shop.example", "Shop.Example", "WWW.SHOP.EXAMPLE", "a.b", "localhost", "x", "shop-1.example", "1shop.example", "shop.example1", "shop.1example",
            "shop.example.", "shop..example", "-shop.example", "sh_op.example", "127.0.0.1", "10.1", "0x7f.0.0.1", "[::1]", "[2001:db8::1]", "bücher.example", "xn--bcher-kva.example",
            "shop.example:8080", "shop.example:0", "shop.example:", "user@shop.example", "u:p@shop.example", "", " shop.example", "shop example", "shop.exa%6Dple",
        ];
        const string PathChars = "abcXYZ019-._~!$&'()*+,;=:@/%?#[]{}|\\^`\"<> \täé€";
        int plain = 0;
        const int Urls = 30_000;
        for (int i = 0; i < Urls; i++)
        {
            var url = new StringBuilder();
            // Half of them with nothing but plain parts and escapes, so both paths are exercised.
            bool odd = random.Next(2) == 0;
            url.Append(odd ? schemes[random.Next(schemes.Length)] : schemes[random.Next(2)]).Append(hosts[random.Next(odd ? hosts.Length : 6)]);
            int length = random.Next(0, 30);
            for (int c = 0; c < length; c++)
            {
                if (odd && random.Next(6) == 0) url.Append(PathChars[random.Next(PathChars.Length)]);
                else if (random.Next(8) == 0) url.Append(random.Next(4) switch { 0 => "/.", 1 => "/..", 2 => "%2F", _ => "%" + random.Next(256).ToString("X2", System.Globalization.CultureInfo.InvariantCulture) });
                else url.Append("abcdefghij/=&?"[random.Next(14)]);
            }
            if (AssertLikeUri(url.ToString())) plain++;
        }
        Assert.True(plain > Urls / 10, $"only {plain} of {Urls} took the plain path");
    }

    /// <summary>Asserts PageUrl agrees with Uri; true when the plain path answered.</summary>
    private static bool AssertLikeUri(string url)
    {
        bool expected = Uri.TryCreate(url, UriKind.Absolute, out var uri);
        Assert.Equal(expected, PageUrl.TryParse(url, out var parts));
        bool plain = PageUrl.TrySlicePlain(url, out var sliced);
        if (plain) Assert.True(expected, $"{url}: sliced, but Uri refuses it");
        if (!expected) return plain;
        AssertParts(url, "parsed", uri!, parts);
        if (plain) AssertParts(url, "sliced", uri!, sliced);
        return plain;
    }

    private static void AssertParts(string url, string how, Uri uri, PageUrl got)
    {
        Assert.True(uri.Host == got.Host.ToString().ToLowerInvariant(), $"{url} ({how}): host {got.Host} against Uri's {uri.Host}");
        Assert.True(uri.AbsolutePath == got.Path.ToString(), $"{url} ({how}): path {got.Path} against Uri's {uri.AbsolutePath}");
        Assert.True(uri.Query == got.Query.ToString(), $"{url} ({how}): query {got.Query} against Uri's {uri.Query}");
    }
}
