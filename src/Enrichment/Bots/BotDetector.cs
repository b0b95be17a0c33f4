using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Analytics.Enrichment.UserAgents;

namespace Analytics.Enrichment.Bots;

/// <summary>Why a client counts as a bot (<see cref="None"/>: it does not).</summary>
public enum BotReason : byte
{
    None = 0,
    /// <summary>No user agent at all: every browser sends one.</summary>
    EmptyUserAgent,
    /// <summary>A headless browser build ("HeadlessChrome", "Headless" in the product token).</summary>
    Headless,
    /// <summary>uap-core's device rules call it a spider (device family "Spider").</summary>
    UapSpider,
    /// <summary>A pattern of the crawler-user-agents list matches.</summary>
    CrawlerList,
}

/// <summary>
/// Bots and automation from the crawler-user-agents list (npm package of that name, pinned by
/// scripts/fetch-enrichment-data.sh) plus the signals the server has: an empty user agent, a
/// headless browser, and uap-core's "Spider" device family. Contract: a pure, thread-safe
/// function of the user agent and its uap-core description; the list's patterns match
/// case-sensitively and unanchored, as the list's own validators run them.
///
/// Of the ~1,500 patterns, ~1,460 are plain text once their escapes are read ("Googlebot\/" is
/// "Googlebot/"): those are one <see cref="SearchValues{T}"/> of strings, a vectorised
/// multi-substring search (Teddy / Aho-Corasick) over the user agent in one pass. The few real
/// regexes are alternations compiled with <see cref="RegexOptions.NonBacktracking"/> (one linear
/// pass each, whatever the pattern count). A loop of 1,500 regexes or one backtracking
/// alternation retries every pattern at every position: 10 to 500 times slower, measured in
/// perf/Benchmarks (BotListBenchmarks) and docs/enrichment.md. The list uses no lookaround or
/// backreference, which the NonBacktracking engine cannot run; loading fails loudly if a newer
/// list brings one.
/// </summary>
public sealed class BotDetector
{
    // Headless Chrome/Edge/Firefox builds mark themselves in the product token; case-sensitive
    // on purpose, so the word inside a URL or a phone model does not count.
    private static readonly Regex HeadlessPattern = new("Headless|PhantomJS", RegexOptions.CultureInvariant);

    /// <summary>
    /// Patterns of the list that also match real devices, narrowed to the bots they were written
    /// for (found by running uap-core's 16,111 device test user agents through the list; the
    /// list's own samples for each still match, see the BotDetector tests). Keyed by the list's
    /// pattern text, so a newer list that fixes one simply no longer applies it.
    /// </summary>
    public static IReadOnlyDictionary<string, string> PatternOverrides { get; } = new Dictionary<string, string>
    {
        // Topsy's crawler "Butterfly/1.0"; the bare word matched HTC Butterfly phones.
        ["Butterfly"] = @"Butterfly\/",
        // "Sonic/1.0" and "RankSonicSiteAuditor/1.0"; the bare word matched ViewSonic tablets and
        // the Lucky Ultra Sonic phone.
        ["Sonic"] = @"Sonic(?:SiteAuditor)?\/",
        // Entireweb's "Speedy Spider"; lowercase "speedy" matched Yahoo Mail's Android app.
        ["speedy"] = @"Speedy ?Spider",
        // 80legs' "008/0.83"; without a boundary it matched phone models such as "sprd-L008/1.0".
        [@"008\/"] = @"(?:^|[^\w-])008\/",
    };

    private readonly SearchValues<string> _literals;
    private readonly Regex[] _crawlers;

    private BotDetector(SearchValues<string> literals, int literalCount, Regex[] crawlers, int patternCount)
    {
        _literals = literals;
        LiteralCount = literalCount;
        _crawlers = crawlers;
        PatternCount = patternCount;
    }

    public int PatternCount { get; }

    /// <summary>How many patterns are plain text, matched by the multi-substring search.</summary>
    public int LiteralCount { get; }

    /// <summary>How many combined regexes the other patterns were compiled into.</summary>
    public int GroupCount => _crawlers.Length;

    /// <summary>Loads crawler-user-agents.json (an array of entries with a <c>pattern</c>).</summary>
    /// <exception cref="EnrichmentDataException">The file is missing, malformed, or a pattern does not compile.</exception>
    public static BotDetector Load(string crawlerJsonPath)
    {
        var patterns = EnrichmentDataException.Guard(crawlerJsonPath, () =>
        {
            using var stream = File.OpenRead(crawlerJsonPath);
            using var doc = JsonDocument.Parse(stream);
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
                throw new EnrichmentDataException($"{crawlerJsonPath}: not crawler-user-agents.json (expected an array)");
            var list = new List<string>();
            foreach (var entry in doc.RootElement.EnumerateArray())
            {
                if (entry.ValueKind != JsonValueKind.Object || !entry.TryGetProperty("pattern", out var p) || p.ValueKind != JsonValueKind.String)
                    throw new EnrichmentDataException($"{crawlerJsonPath}: entry {list.Count} has no string 'pattern'");
                string pattern = p.GetString()!;
                list.Add(PatternOverrides.TryGetValue(pattern, out var narrowed) ? narrowed : pattern);
            }
            return list;
        });
        var literals = new List<string>();
        var regexes = new List<string>();
        for (int i = 0; i < patterns.Count; i++)
        {
            if (RequiredLiteral.PlainText(patterns[i]) is { } literal)
            {
                literals.Add(literal);
                continue;
            }
            try
            {
                _ = new Regex(patterns[i], RegexOptions.CultureInvariant);
            }
            catch (ArgumentException e)
            {
                throw new EnrichmentDataException($"{crawlerJsonPath}: pattern {i} does not compile ({e.Message}): {patterns[i]}", e);
            }
            regexes.Add(patterns[i]);
        }
        return new BotDetector(SearchValues.Create(literals.ToArray(), StringComparison.Ordinal), literals.Count,
            Combine(crawlerJsonPath, regexes), patterns.Count);
    }

    private const RegexOptions CombinedOptions = RegexOptions.NonBacktracking | RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture;

    private static Regex[] Combine(string path, List<string> patterns)
    {
        var groups = new List<Regex>();
        if (patterns.Count > 0) Split(path, patterns, 0, patterns.Count, groups);
        return [.. groups];
    }

    // The NonBacktracking engine refuses patterns whose automaton could exceed 10,000 nodes (the
    // whole list needs ~90,000); halving until each group fits yields about a dozen groups, each
    // still one linear pass. Raising the limit instead would need a process-wide AppContext switch.
    private static void Split(string path, List<string> patterns, int start, int count, List<Regex> groups)
    {
        var sb = new StringBuilder();
        for (int i = start; i < start + count; i++)
        {
            if (i > start) sb.Append('|');
            sb.Append("(?:").Append(patterns[i]).Append(')');
        }
        try
        {
            groups.Add(new Regex(sb.ToString(), CombinedOptions));
        }
        catch (NotSupportedException e)
        {
            if (count == 1)
                throw new EnrichmentDataException($"{path}: pattern '{patterns[start]}' needs lookaround or backreferences, which the bot matcher cannot run ({e.Message})", e);
            Split(path, patterns, start, count / 2, groups);
            Split(path, patterns, start + count / 2, count - count / 2, groups);
        }
    }

    public bool IsBot(string userAgent, in ClientDescription description) => Reason(userAgent, description) != BotReason.None;

    /// <summary>The first signal that makes the client a bot, cheapest first.</summary>
    public BotReason Reason(string userAgent, in ClientDescription description)
    {
        if (string.IsNullOrWhiteSpace(userAgent)) return BotReason.EmptyUserAgent;
        if (description.DeviceFamily == "Spider") return BotReason.UapSpider;
        var ua = userAgent.Length > UserAgentParser.MaxUserAgentLength ? userAgent.AsSpan(0, UserAgentParser.MaxUserAgentLength) : userAgent.AsSpan();
        if (HeadlessPattern.IsMatch(ua)) return BotReason.Headless;
        if (ua.ContainsAny(_literals)) return BotReason.CrawlerList;
        foreach (var group in _crawlers)
        {
            if (group.IsMatch(ua)) return BotReason.CrawlerList;
        }
        return BotReason.None;
    }
}
