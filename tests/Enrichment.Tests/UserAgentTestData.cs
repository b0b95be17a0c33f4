using Analytics.Enrichment.UserAgents;
using YamlDotNet.RepresentationModel;

namespace Analytics.Enrichment.Tests;

/// <summary>The enrichment data of this run (see EnrichmentDataDirectory: ANALYTICS_ENRICHMENT_DATA or the repo's .cache).</summary>
public static class EnrichmentData
{
    public static string Root { get; } = EnrichmentDataDirectory.Locate();

    public static string UapCore(string relative) => Path.Combine(Root, "uap-core", relative);

    public static string CrawlerUserAgentsJson => Path.Combine(Root, "crawler-user-agents", "crawler-user-agents.json");
}

/// <summary>One parser per test run: compiling the ~1,200 rules takes seconds, and the parser is immutable.</summary>
public static class SharedParsers
{
    private static readonly Lazy<UserAgentParser> LazyParser = new(() => UserAgentParser.Load(EnrichmentData.UapCore("regexes.yaml")));

    public static UserAgentParser UserAgents => LazyParser.Value;
}

/// <summary>The test cases of uap-core's tests/*.yaml: a list of mappings of scalar fields (empty = undefined).</summary>
public static class UapTestCases
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<IReadOnlyList<IReadOnlyDictionary<string, string?>>>> Loaded = new();

    /// <summary>The cases of one file, read once per test run (test_device.yaml is 3 MB).</summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, string?>> Load(string file) =>
        Loaded.GetOrAdd(file, f => new(() => Read(f))).Value;

    private static IReadOnlyList<IReadOnlyDictionary<string, string?>> Read(string file)
    {
        using var reader = File.OpenText(EnrichmentData.UapCore(Path.Combine("tests", file)));
        var stream = new YamlStream();
        stream.Load(reader);
        var root = (YamlMappingNode)stream.Documents[0].RootNode;
        var cases = (YamlSequenceNode)root.Children[new YamlScalarNode("test_cases")];
        var result = new List<IReadOnlyDictionary<string, string?>>(cases.Children.Count);
        foreach (YamlMappingNode c in cases.Children.Cast<YamlMappingNode>())
        {
            var fields = new Dictionary<string, string?>();
            foreach (var (k, v) in c.Children)
            {
                string? value = ((YamlScalarNode)v).Value;
                // uap-core writes an undefined field as an empty value (`patch:`) or `~`.
                fields[((YamlScalarNode)k).Value!] = string.IsNullOrEmpty(value) || (value == "~" && ((YamlScalarNode)v).Style == YamlDotNet.Core.ScalarStyle.Plain) ? null : value;
            }
            result.Add(fields);
        }
        return result;
    }
}
