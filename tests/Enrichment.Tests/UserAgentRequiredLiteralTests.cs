using Analytics.Enrichment.UserAgents;

namespace Analytics.Enrichment.Tests;

/// <summary>
/// The prefilters' reading of regex text, against what the regex language says must appear in
/// every match (worked out by hand per pattern). The end-to-end check is that every uap-core test
/// case still passes with the prefilter on (UserAgentParserTests).
/// </summary>
public class UserAgentRequiredLiteralTests
{
    [Theory]
    [InlineData(@"; *(PEDI)_(PLUS)_(W) Build", " Build")]        // " *" may be empty: the space is not required
    [InlineData(@"Win(95|98|3.1|NT|ME|2000)", "Win")]            // alternation inside a group is skipped, not fatal
    [InlineData(@"Chrom(?:e|ium)/(\d+)", "Chrom")]
    [InlineData(@"Opera Mini?/(\d+)", "Opera Min")]              // "i?" is optional
    [InlineData(@"Mobile Safari/(\d+)\.(\d+)", "Mobile Safari/")]
    [InlineData(@"\(iPad; CPU OS (\d+)", "(iPad; CPU OS ")]      // escaped punctuation is literal
    [InlineData(@"HbbTV/\d+\.\d+\.\d+ \(", "HbbTV/")]
    [InlineData(@"Xy{0,3}z+Kindle", "Kindle")]                   // "y{0,3}" optional, "z+" ends a run
    [InlineData(@"[Kk]indle Fire", "indle Fire")]                // a class is not literal
    [InlineData(@"Firefox\d+ab", "Firefox")]                     // \d is not literal
    public void The_required_literal_is_the_longest_text_every_match_contains(string pattern, string expected) =>
        Assert.Equal(expected, RequiredLiteral.Find(pattern));

    [Theory]
    [InlineData(@"Googlebot|bingbot")]           // top-level alternation: nothing is required
    [InlineData(@"(?i)android")]                 // inline options change matching
    [InlineData(@"(Namoroka|Shiretoko)/(\d+)")]  // only "/" is required: too short to pay off
    [InlineData(@"ab\x41cd")]                    // multi-character escapes are not read
    public void Patterns_without_a_usable_literal_always_run(string pattern) =>
        Assert.Null(RequiredLiteral.Find(pattern));

    [Theory]
    [InlineData(@"Googlebot\/", "Googlebot/")]
    [InlineData(@"Mediapartners \(Googlebot\)", "Mediapartners (Googlebot)")]
    [InlineData(@"facebookexternalhit", "facebookexternalhit")]
    [InlineData(@"^curl", null)]
    [InlineData(@"[wW]get", null)]
    [InlineData(@"BlogTraffic\/\d\.\d+ Feed-Fetcher", null)]
    [InlineData(@"Automaton|Newsify Feed Fetcher", null)]
    public void Bot_list_patterns_without_regex_syntax_are_plain_text(string pattern, string? expected) =>
        Assert.Equal(expected, RequiredLiteral.PlainText(pattern));

    [Theory]
    [InlineData(@"(Googlebot|bingbot|Slurp)/(\d+)", "Googlebot,bingbot,Slurp")]
    [InlineData(@"(?:Chrome|CriOS)/(\d+)", "Chrome,CriOS")]
    [InlineData(@"Googlebot|bingbot", "Googlebot,bingbot")]                 // the whole pattern
    [InlineData(@"^(x)(Opera Mini|Opera Mobi)\b", "Opera Mini,Opera Mobi")] // the first usable group
    [InlineData(@"\(iPad|iPhone\)", "(iPad,iPhone)")]
    [InlineData(@"(Googlebot|Accoona-[A-z]{1,30}-Agent|\b\w{0,30}favicon\w{0,30}\b)/", "Googlebot,Accoona-,favicon")] // each alternative's own literal
    public void A_group_of_alternatives_requires_one_of_their_texts(string pattern, string expected) =>
        Assert.Equal(expected.Split(','), RequiredLiteral.FindAlternatives(pattern));

    [Theory]
    [InlineData(@"(Googlebot|bingbot)?/(\d+)")]    // the group may be absent
    [InlineData(@"(Googlebot|)/(\d+)")]            // an empty alternative
    [InlineData(@"(G[a-z]+|bingbot)/")]            // an alternative with no usable literal
    [InlineData(@"(?=Googlebot|bingbot)x")]        // lookahead
    [InlineData(@"(a|bingbot)x")]                  // an alternative too short to pay off
    public void Groups_that_do_not_require_plain_text_give_no_alternatives(string pattern) =>
        Assert.Null(RequiredLiteral.FindAlternatives(pattern));
}
