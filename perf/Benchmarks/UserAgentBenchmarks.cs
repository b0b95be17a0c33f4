using System.Text.Json;
using System.Text.RegularExpressions;
using Analytics.Enrichment;
using Analytics.Enrichment.Bots;
using Analytics.Enrichment.UserAgents;
using BenchmarkDotNet.Attributes;

namespace Analytics.Benchmarks;

/// <summary>
/// User-agent enrichment per event over a realistic mix: 10,000 events, 70% from twelve current
/// browser user agents (weighted like a typical shop's traffic), 30% drawn from uap-core's
/// test_ua.yaml (1,425 user agents, long tail). Cached = the Rollup path (UserAgentEnricher,
/// default capacity, warm); Uncached = uap-core parse + bot list + device rules every time.
/// Results are per event (OperationsPerInvoke).
/// </summary>
[MemoryDiagnoser]
public class UserAgentBenchmarks
{
    private const int Events = 10_000;
    private const int UncachedEvents = 500;

    private UserAgentParser _parser = null!;
    private BotDetector _bots = null!;
    private UserAgentEnricher _enricher = null!;
    private string[] _mix = [];
    private readonly ClientHints _hints = new("?0", "\"Windows\"", "", "");

    [GlobalSetup]
    public void Setup()
    {
        string root = EnrichmentDataDirectory.Locate();
        _parser = UserAgentParser.Load(Path.Combine(root, "uap-core", "regexes.yaml"));
        _bots = BotDetector.Load(Path.Combine(root, "crawler-user-agents", "crawler-user-agents.json"));
        _enricher = new UserAgentEnricher(_parser, _bots);
        _mix = UserAgentMix.Build(root, Events);
        // Fresh string instances, as Rollup decodes them per event: the cache compares content.
        for (int i = 0; i < _mix.Length; i++) _mix[i] = new string(_mix[i].AsSpan());
        foreach (string ua in _mix) _enricher.Describe(ua, _hints, 1280);
    }

    [Benchmark(OperationsPerInvoke = Events)]
    public int Cached()
    {
        int n = 0;
        foreach (string ua in _mix) n += _enricher.Describe(ua, _hints, 1280).DeviceType.Length;
        return n;
    }

    [Benchmark(OperationsPerInvoke = UncachedEvents)]
    public int Uncached()
    {
        int n = 0;
        for (int i = 0; i < UncachedEvents; i++)
        {
            string ua = _mix[i];
            var client = _parser.Parse(ua);
            var reason = _bots.Reason(ua, client);
            n += reason == BotReason.None ? DeviceClassifier.Classify(ua, client, _hints, 1280).Length : 0;
        }
        return n;
    }
}

/// <summary>
/// How the ~1,500 patterns of crawler-user-agents are best run, per user agent of the same mix
/// (no uap-core step): BotDetector (plain-text patterns as one SearchValues multi-substring
/// search, the ~40 real regexes as NonBacktracking alternations), one compiled backtracking
/// alternation of all patterns, and a loop over 1,500 compiled regexes.
/// </summary>
[MemoryDiagnoser]
public class BotListBenchmarks
{
    // 200 user agents: enough for the mix, and the slow variants (milliseconds each) finish in seconds.
    private const int Events = 200;

    private Analytics.Enrichment.Bots.BotDetector _bots = null!;
    private Regex _alternation = null!;
    private Regex[] _each = [];
    private string[] _mix = [];
    private readonly ClientDescription _notSpider = new("Chrome", "131.0", "Windows", "10", "", "", "Other");

    [GlobalSetup]
    public void Setup()
    {
        string root = EnrichmentDataDirectory.Locate();
        string json = Path.Combine(root, "crawler-user-agents", "crawler-user-agents.json");
        _bots = Analytics.Enrichment.Bots.BotDetector.Load(json);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(json));
        var patterns = doc.RootElement.EnumerateArray().Select(e => e.GetProperty("pattern").GetString()!).ToList();
        _alternation = new Regex(string.Join("|", patterns.Select(p => $"(?:{p})")), RegexOptions.Compiled | RegexOptions.CultureInvariant);
        _each = patterns.Select(p => new Regex(p, RegexOptions.Compiled | RegexOptions.CultureInvariant)).ToArray();
        _mix = UserAgentMix.Build(root, Events);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Events)]
    public int BotDetector()
    {
        int n = 0;
        foreach (string ua in _mix) n += _bots.IsBot(ua, _notSpider) ? 1 : 0;
        return n;
    }

    [Benchmark(OperationsPerInvoke = Events)]
    public int OneCompiledAlternation()
    {
        int n = 0;
        foreach (string ua in _mix) n += _alternation.IsMatch(ua) ? 1 : 0;
        return n;
    }

    [Benchmark(OperationsPerInvoke = Events)]
    public int LoopOfCompiledRegexes()
    {
        int n = 0;
        foreach (string ua in _mix)
        {
            foreach (var r in _each)
            {
                if (r.IsMatch(ua))
                {
                    n++;
                    break;
                }
            }
        }
        return n;
    }
}

internal static class UserAgentMix
{
    // Twelve current user agents with weights in percent of all events (summing to 70), roughly
    // the browser/OS shares a European shop sees: mobile Safari and Chrome lead.
    private static readonly (string Ua, int Weight)[] Common =
    [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", 16),
        ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", 14),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 12),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", 6),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", 5),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 4),
        ("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", 3),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 3),
        ("Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", 2),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", 2),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 2),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 1),
    ];

    /// <summary><paramref name="count"/> user agents in a fixed pseudo-random order (seeded: same mix every run).</summary>
    public static string[] Build(string root, int count)
    {
        var tail = ReadTestUserAgents(Path.Combine(root, "uap-core", "tests", "test_ua.yaml"));
        var random = new Random(20_26);
        var mix = new string[count];
        for (int i = 0; i < count; i++)
        {
            int roll = random.Next(100);
            string? pick = null;
            foreach (var (ua, weight) in Common)
            {
                if (roll < weight)
                {
                    pick = ua;
                    break;
                }
                roll -= weight;
            }
            mix[i] = pick ?? tail[random.Next(tail.Count)];
        }
        return mix;
    }

    // test_ua.yaml writes every user agent on one line: `  - user_agent_string: '...'` (single
    // quotes, '' for a quote) or with double quotes; read those lines instead of parsing YAML.
    private static List<string> ReadTestUserAgents(string path)
    {
        const string key = "- user_agent_string: ";
        var list = new List<string>();
        foreach (string line in File.ReadLines(path))
        {
            int at = line.IndexOf(key, StringComparison.Ordinal);
            if (at < 0) continue;
            string value = line[(at + key.Length)..].Trim();
            if (value.Length >= 2 && value[0] == '\'' && value[^1] == '\'') value = value[1..^1].Replace("''", "'");
            else if (value.Length >= 2 && value[0] == '"' && value[^1] == '"') value = value[1..^1].Replace("\\\"", "\"");
            list.Add(value);
        }
        return list;
    }
}
