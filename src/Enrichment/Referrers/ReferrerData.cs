using System.Collections.Frozen;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Analytics.Enrichment.Referrers;

/// <summary>A referrer data set that cannot be used; the message is one line for the operator.</summary>
public sealed class ReferrerDataException(string message) : Exception(message);

/// <summary>
/// Snowplow's referers.yml and our own table (referers-extra.yml, embedded in this assembly),
/// indexed for allocation-free lookups by host span.
///
/// Contract: a host maps to rules (path prefix, source), most specific path first and, for the
/// same path, our table before referers.yml, so our entries take precedence. Hosts are stored
/// without "www." and matched case-insensitively. Source names (and our aliases) map to a source
/// for classifying utm_source; on a name clash our table wins, then search, social, email.
/// </summary>
internal sealed class ReferrerData
{
    internal readonly record struct HostRule(string Path, KnownSource Source);

    private readonly FrozenDictionary<string, HostRule[]>.AlternateLookup<ReadOnlySpan<char>> _hosts;
    private readonly FrozenDictionary<string, KnownSource>.AlternateLookup<ReadOnlySpan<char>> _apps;
    private readonly FrozenDictionary<string, KnownSource>.AlternateLookup<ReadOnlySpan<char>> _names;

    public int HostCount { get; }

    private ReferrerData(Dictionary<string, List<HostRule>> hosts, Dictionary<string, KnownSource> apps, Dictionary<string, KnownSource> names)
    {
        var frozenHosts = hosts.ToFrozenDictionary(
            h => h.Key,
            h => h.Value.OrderByDescending(r => r.Path.Length).ToArray(),   // stable: ours stay first
            StringComparer.OrdinalIgnoreCase);
        _hosts = frozenHosts.GetAlternateLookup<ReadOnlySpan<char>>();
        _apps = apps.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase).GetAlternateLookup<ReadOnlySpan<char>>();
        _names = names.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase).GetAlternateLookup<ReadOnlySpan<char>>();
        HostCount = frozenHosts.Count;
    }

    /// <summary>Reads referers.yml from <paramref name="referersYmlPath"/> and our embedded table.</summary>
    public static ReferrerData Load(string referersYmlPath)
    {
        if (!File.Exists(referersYmlPath)) throw new ReferrerDataException($"referer-parser data not found: {referersYmlPath}");
        using var extra = typeof(ReferrerData).Assembly.GetManifestResourceStream("Analytics.Enrichment.Referrers.referers-extra.yml")
            ?? throw new InvalidOperationException("embedded referers-extra.yml is missing");
        using var extraReader = new StreamReader(extra);
        using var snowplowReader = File.OpenText(referersYmlPath);
        return Load(snowplowReader, referersYmlPath, extraReader, "referers-extra.yml (embedded)");
    }

    internal static ReferrerData Load(TextReader snowplow, string snowplowName, TextReader extra, string extraName)
    {
        var ours = Read(extra, extraName, allowExtensions: true);
        var theirs = Read(snowplow, snowplowName, allowExtensions: false);

        var hosts = new Dictionary<string, List<HostRule>>(StringComparer.OrdinalIgnoreCase);
        var apps = new Dictionary<string, KnownSource>(StringComparer.OrdinalIgnoreCase);
        var names = new Dictionary<string, KnownSource>(StringComparer.OrdinalIgnoreCase);
        // Ours first everywhere: precedence is insertion order.
        foreach (var entry in ours.Concat(theirs))
        {
            foreach (string domain in entry.Domains)
            {
                var (host, path) = SplitDomain(domain);
                if (!hosts.TryGetValue(host, out var rules)) hosts[host] = rules = [];
                if (!rules.Exists(r => r.Path == path)) rules.Add(new HostRule(path, entry.Source));
            }
            foreach (string app in entry.Apps) apps.TryAdd(app, entry.Source);
            foreach (string alias in entry.Aliases) names.TryAdd(alias, entry.Source);
        }
        ReferrerCategory[] nameOrder = [ReferrerCategory.Ai, ReferrerCategory.Video, ReferrerCategory.Search, ReferrerCategory.Social, ReferrerCategory.Email];
        foreach (var category in nameOrder)
            foreach (var entry in ours.Concat(theirs).Where(e => e.Source.Category == category))
                names.TryAdd(entry.Source.Name, entry.Source);
        return new ReferrerData(hosts, apps, names);
    }

    /// <summary>The rules for exactly this host (no subdomain stripping here).</summary>
    public bool TryGetHost(ReadOnlySpan<char> host, out HostRule[] rules) => _hosts.TryGetValue(host, out rules!);

    public bool TryGetApp(ReadOnlySpan<char> package, out KnownSource source) => _apps.TryGetValue(package, out source!);

    public bool TryGetName(ReadOnlySpan<char> name, out KnownSource source) => _names.TryGetValue(name, out source!);

    private static (string Host, string Path) SplitDomain(string domain)
    {
        string d = domain.Trim().ToLowerInvariant();
        int slash = d.IndexOf('/');
        string host = slash < 0 ? d : d[..slash];
        string path = slash < 0 ? "/" : d[slash..];
        if (host.StartsWith("www.", StringComparison.Ordinal)) host = host[4..];
        return (host, path);
    }

    private sealed record Entry(KnownSource Source, List<string> Domains, List<string> Apps, List<string> Aliases);

    /// <summary>
    /// Reads medium -> source -> {domains, parameters, apps, aliases} from the YAML event stream
    /// rather than a node tree: referers.yml 0.3.0 repeats a source name within one medium
    /// ("Comcast" under search), which a mapping node refuses as a duplicate key; each
    /// occurrence is kept, so both lists of domains count.
    /// </summary>
    private static List<Entry> Read(TextReader reader, string origin, bool allowExtensions)
    {
        var entries = new List<Entry>();
        var parser = new Parser(reader);
        try
        {
            parser.Consume<StreamStart>();
            if (parser.TryConsume<StreamEnd>(out _)) return entries;
            parser.Consume<DocumentStart>();
            parser.Consume<MappingStart>();
            while (!parser.TryConsume<MappingEnd>(out _))
            {
                var mediumNode = parser.Consume<Scalar>();
                var category = mediumNode.Value switch
                {
                    "search" => ReferrerCategory.Search,
                    "social" => ReferrerCategory.Social,
                    "email" => ReferrerCategory.Email,
                    "unknown" => ReferrerCategory.Unknown,
                    "video" when allowExtensions => ReferrerCategory.Video,
                    "ai" when allowExtensions => ReferrerCategory.Ai,
                    _ => throw new ReferrerDataException($"{origin}: unknown medium \"{mediumNode.Value}\" at line {mediumNode.Start.Line}"),
                };
                parser.Consume<MappingStart>();
                while (!parser.TryConsume<MappingEnd>(out _))
                {
                    string name = parser.Consume<Scalar>().Value;
                    var entry = new Entry(new KnownSource(name, category), [], [], []);
                    parser.Consume<MappingStart>();
                    while (!parser.TryConsume<MappingEnd>(out _))
                    {
                        var keyNode = parser.Consume<Scalar>();
                        var list = keyNode.Value switch
                        {
                            "domains" => entry.Domains,
                            "parameters" => null,   // search-term parameters: not used here
                            "apps" when allowExtensions => entry.Apps,
                            "aliases" when allowExtensions => entry.Aliases,
                            _ => throw new ReferrerDataException($"{origin}: unknown key \"{keyNode.Value}\" under \"{name}\" at line {keyNode.Start.Line}"),
                        };
                        parser.Consume<SequenceStart>();
                        while (!parser.TryConsume<SequenceEnd>(out _))
                        {
                            string value = parser.Consume<Scalar>().Value.Trim();
                            if (value.Length > 0) list?.Add(value);
                        }
                    }
                    entries.Add(entry);
                }
            }
            parser.Consume<DocumentEnd>();
        }
        catch (YamlException e)
        {
            throw new ReferrerDataException($"{origin}: not the referers.yml layout at line {e.Start.Line}, column {e.Start.Column}: {e.Message}");
        }
        return entries;
    }
}
