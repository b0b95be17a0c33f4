using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Analytics.Enrichment.UserAgents;

/// <summary>Browser family and version as uap-core's <c>user_agent_parsers</c> give them.</summary>
public sealed record BrowserResult(string Family, string? Major, string? Minor, string? Patch);

/// <summary>Operating system family and version as uap-core's <c>os_parsers</c> give them.</summary>
public sealed record OsResult(string Family, string? Major, string? Minor, string? Patch, string? PatchMinor);

/// <summary>Device family, brand and model as uap-core's <c>device_parsers</c> give them.</summary>
public sealed record DeviceResult(string Family, string? Brand, string? Model);

/// <summary>
/// What a user agent says about the client, in the shape the stored rows want: families exactly
/// as uap-core names them ("Chrome Mobile", "Mobile Safari", "Mac OS X"), versions as
/// "major.minor" (or "major" alone, or empty), brand and model empty when unknown.
/// </summary>
public readonly record struct ClientDescription(
    string Browser, string BrowserVersion, string Os, string OsVersion,
    string DeviceBrand, string DeviceModel, string DeviceFamily);

/// <summary>
/// uap-core's user agent, OS and device rules (<c>regexes.yaml</c>), loaded once and compiled.
/// Contract: a pure function of the user agent string, thread-safe, same answers as uap-core's
/// reference parsers on uap-core's own test files (see the UserAgentParser tests). Unknown
/// families are "Other", as uap-core specifies. Every call runs the rule lists in order (about
/// 600 browser, 100 OS and 500 device rules); a rule whose required text is absent from the user
/// agent is skipped without entering the regex engine (RequiredLiteral: 1,069 of the 1,162 rules
/// have such a prefilter), so a common browser runs about 100 regexes, ~85 µs in all. Callers that see the same user agents again go through <see cref="UserAgentEnricher"/>,
/// which caches.
/// </summary>
public sealed class UserAgentParser
{
    public const string Other = "Other";

    /// <summary>
    /// Inputs longer than this are cut before matching. FastIngest stores at most 512 bytes of a
    /// User-Agent (IngestLimits.MaxUserAgentBytes), real ones are shorter, and some uap-core
    /// rules backtrack over long runs of separators, so the cap bounds the cost of a hostile user
    /// agent (at most ~6 ms per parse measured on a heavily loaded machine), which is paid once
    /// per connection and then cached. The first use of each compiled rule also pays its JIT
    /// (about a millisecond each), once per process. There is deliberately no regex timeout:
    /// under CPU contention it fired on legitimate inputs and made answers depend on load (a
    /// timed-out rule is skipped and a later one answers).
    /// </summary>
    public const int MaxUserAgentLength = 512;

    private static readonly string[] BrowserFields = ["family_replacement", "v1_replacement", "v2_replacement", "v3_replacement"];
    private static readonly string[] OsFields = ["os_replacement", "os_v1_replacement", "os_v2_replacement", "os_v3_replacement", "os_v4_replacement"];
    private static readonly string[] DeviceFields = ["device_replacement", "brand_replacement", "model_replacement"];

    private readonly UapRule[] _browsers;
    private readonly UapRule[] _oses;
    private readonly UapRule[] _devices;

    private UserAgentParser(UapRule[] browsers, UapRule[] oses, UapRule[] devices)
    {
        _browsers = browsers;
        _oses = oses;
        _devices = devices;
    }

    public int RuleCount => _browsers.Length + _oses.Length + _devices.Length;

    /// <summary>Rules skipped without running their regex when their required literal is absent (see RequiredLiteral).</summary>
    public int PrefilteredRuleCount => _browsers.Count(r => r.HasPrefilter) + _oses.Count(r => r.HasPrefilter) + _devices.Count(r => r.HasPrefilter);

    /// <summary>Loads and compiles uap-core's <c>regexes.yaml</c>.</summary>
    /// <exception cref="EnrichmentDataException">The file is missing, is not uap-core's format, or a rule does not compile.</exception>
    public static UserAgentParser Load(string regexesYamlPath)
    {
        YamlMappingNode root = EnrichmentDataException.Guard(regexesYamlPath, () =>
        {
            using var reader = File.OpenText(regexesYamlPath);
            var stream = new YamlStream();
            stream.Load(reader);
            return stream.Documents.Count == 1 && stream.Documents[0].RootNode is YamlMappingNode m
                ? m
                : throw new EnrichmentDataException($"{regexesYamlPath}: not a uap-core regexes.yaml (expected one mapping document)");
        });
        return new UserAgentParser(
            Rules(regexesYamlPath, root, "user_agent_parsers", BrowserFields),
            Rules(regexesYamlPath, root, "os_parsers", OsFields),
            Rules(regexesYamlPath, root, "device_parsers", DeviceFields));
    }

    private static UapRule[] Rules(string path, YamlMappingNode root, string section, string[] fields)
    {
        if (!root.Children.TryGetValue(new YamlScalarNode(section), out var node) || node is not YamlSequenceNode list)
            throw new EnrichmentDataException($"{path}: section '{section}' is missing");
        var rules = new UapRule[list.Children.Count];
        for (int i = 0; i < rules.Length; i++)
        {
            var entry = list.Children[i] as YamlMappingNode
                ?? throw new EnrichmentDataException($"{path}: {section}[{i}] is not a mapping");
            string pattern = Scalar(entry, "regex") ?? throw new EnrichmentDataException($"{path}: {section}[{i}] has no regex");
            var options = RegexOptions.Compiled | RegexOptions.CultureInvariant;
            if (Scalar(entry, "regex_flag") == "i") options |= RegexOptions.IgnoreCase;
            Regex regex;
            try
            {
                // Used as written: the pinned release has no construct that means something else in
                // .NET (no possessive quantifiers, atomic groups, inline flags or Python-only
                // syntax). A newer release is checked the same way, by its own test files
                // (UserAgentParserTests); one that does not compile fails here, naming the rule.
                regex = new Regex(pattern, options);
            }
            catch (ArgumentException e)
            {
                throw new EnrichmentDataException($"{path}: {section}[{i}] regex does not compile ({e.Message}): {pattern}");
            }
            var templates = new string?[fields.Length];
            for (int f = 0; f < fields.Length; f++) templates[f] = Scalar(entry, fields[f]);
            rules[i] = new UapRule(regex, pattern, templates);
        }
        return rules;
    }

    private static string? Scalar(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var v) && v is YamlScalarNode s ? s.Value : null;

    public BrowserResult ParseBrowser(string userAgent)
    {
        if (FirstMatch(_browsers, Cap(userAgent), out var rule, out var m))
            return new BrowserResult(rule.Field(m, 0, 1) ?? Other, rule.Field(m, 1, 2), rule.Field(m, 2, 3), rule.Field(m, 3, 4));
        return new BrowserResult(Other, null, null, null);
    }

    public OsResult ParseOs(string userAgent)
    {
        if (FirstMatch(_oses, Cap(userAgent), out var rule, out var m))
            return new OsResult(rule.Field(m, 0, 1) ?? Other, rule.Field(m, 1, 2), rule.Field(m, 2, 3), rule.Field(m, 3, 4), rule.Field(m, 4, 5));
        return new OsResult(Other, null, null, null, null);
    }

    public DeviceResult ParseDevice(string userAgent)
    {
        // Brand has no default group: without a brand_replacement it is undefined (spec).
        if (FirstMatch(_devices, Cap(userAgent), out var rule, out var m))
            return new DeviceResult(rule.Field(m, 0, 1) ?? Other, rule.Field(m, 1, int.MaxValue), rule.Field(m, 2, 1));
        return new DeviceResult(Other, null, null);
    }

    public ClientDescription Parse(string userAgent)
    {
        var b = ParseBrowser(userAgent);
        var o = ParseOs(userAgent);
        var d = ParseDevice(userAgent);
        return new ClientDescription(b.Family, MajorMinor(b.Major, b.Minor), o.Family, MajorMinor(o.Major, o.Minor),
            d.Brand ?? "", d.Model ?? "", d.Family);
    }

    /// <summary>
    /// "major.minor", "major" when there is no minor, "" when there is no major. Patch levels are
    /// dropped on purpose: a breakdown by "Chrome 131.0.6778.85" splits one browser into dozens of
    /// rows that nobody reads apart, and the major alone hides Safari's meaningful minors (17.4).
    /// </summary>
    public static string MajorMinor(string? major, string? minor) =>
        major is null ? "" : minor is null ? major : string.Concat(major, ".", minor);

    private static string Cap(string userAgent) =>
        userAgent.Length > MaxUserAgentLength ? userAgent[..MaxUserAgentLength] : userAgent;

    private static bool FirstMatch(UapRule[] rules, string input, out UapRule rule, out Match match)
    {
        foreach (var r in rules)
        {
            var m = r.Match(input);
            if (m.Success)
            {
                rule = r;
                match = m;
                return true;
            }
        }
        rule = null!;
        match = null!;
        return false;
    }
}
