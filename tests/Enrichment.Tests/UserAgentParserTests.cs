using Analytics.Enrichment.UserAgents;

namespace Analytics.Enrichment.Tests;

/// <summary>
/// uap-core's own test files of the pinned release, every case, compared field by field with the
/// raw uap-core results (families and all version parts as the data set writes them). One test
/// per file: it reports the pass count and fails listing the first mismatches.
/// </summary>
public class UserAgentParserTests
{
    private static readonly UserAgentParser Parser = SharedParsers.UserAgents;

    [Fact]
    public void Every_case_of_test_ua_yaml_gives_uap_cores_browser_family_and_version() =>
        RunFile("test_ua.yaml", ["family", "major", "minor", "patch"], ua =>
        {
            var b = Parser.ParseBrowser(ua);
            return [b.Family, b.Major, b.Minor, b.Patch];
        });

    [Fact]
    public void Every_case_of_test_os_yaml_gives_uap_cores_os_family_and_version() =>
        RunFile("test_os.yaml", ["family", "major", "minor", "patch", "patch_minor"], ua =>
        {
            var o = Parser.ParseOs(ua);
            return [o.Family, o.Major, o.Minor, o.Patch, o.PatchMinor];
        });

    [Fact]
    public void Every_case_of_test_device_yaml_gives_uap_cores_device_family_brand_and_model() =>
        RunFile("test_device.yaml", ["family", "brand", "model"], ua =>
        {
            var d = Parser.ParseDevice(ua);
            return [d.Family, d.Brand, d.Model];
        });

    private static void RunFile(string file, string[] fields, Func<string, string?[]> parse)
    {
        var cases = UapTestCases.Load(file);
        var failures = new List<string>();
        foreach (var c in cases)
        {
            string ua = c["user_agent_string"]!;
            string?[] actual = parse(ua);
            for (int i = 0; i < fields.Length; i++)
            {
                string? expected = c.TryGetValue(fields[i], out var e) ? e : null;
                if (expected != actual[i])
                {
                    failures.Add($"{ua}\n    {fields[i]}: expected {expected ?? "(none)"}, got {actual[i] ?? "(none)"}");
                    break;
                }
            }
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"{file}: {cases.Count - failures.Count}/{cases.Count} cases pass");
        Assert.True(cases.Count > 100, $"{file}: only {cases.Count} cases loaded");
        Assert.True(failures.Count == 0,
            $"{file}: {cases.Count - failures.Count}/{cases.Count} cases pass; first failures:\n" + string.Join("\n", failures.Take(15)));
    }

    [Fact]
    public void Parse_gives_major_minor_versions_and_empty_strings_for_unknowns()
    {
        // Chrome on Windows 10: values from uap-core's test_ua.yaml/test_os.yaml conventions.
        var d = Parser.Parse("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.85 Safari/537.36");
        Assert.Equal(new ClientDescription("Chrome", "131.0", "Windows", "10", "", "", "Other"), d);

        var empty = Parser.Parse("");
        Assert.Equal(new ClientDescription("Other", "", "Other", "", "", "", "Other"), empty);
    }

    [Fact]
    public void Load_of_a_missing_file_fails_with_one_clear_message()
    {
        var e = Assert.Throws<EnrichmentDataException>(() => UserAgentParser.Load(Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"), "regexes.yaml")));
        Assert.Contains("file not found", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}

/// <summary>
/// Hostile user agents: long runs of the separators uap-core's rules backtrack over. The parser
/// cuts input to 512 characters, so each parse stays bounded; the bound asserted is loose (the
/// test machine is shared) and the measured worst case is printed.
/// </summary>
public class UserAgentHostileInputTests
{
    public static TheoryData<string> HostileInputs() =>
    [
        new string(';', 5_000),
        "Mozilla/5.0 (Linux; Android 4.4; " + string.Concat(Enumerable.Repeat("a; ", 2_000)),
        "Mozilla/5.0 (" + string.Concat(Enumerable.Repeat(" Build/", 1_000)),
        string.Concat(Enumerable.Repeat("Mozilla/5.0 (iPhone; CPU iPhone OS 1_1 like Mac OS X) ", 100)),
        new string(' ', 3_000) + "Build",
        string.Concat(Enumerable.Repeat("SAMSUNG-", 500)),
        string.Concat(Enumerable.Repeat("(", 3_000)),
    ];

    [Theory]
    [MemberData(nameof(HostileInputs))]
    public void A_hostile_user_agent_is_parsed_in_bounded_time(string ua)
    {
        var parser = SharedParsers.UserAgents;
        // The first run of each compiled rule pays its JIT (milliseconds per rule); time the second.
        parser.Parse(ua);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var d = parser.Parse(ua);
        watch.Stop();
        TestContext.Current.TestOutputHelper?.WriteLine($"{watch.Elapsed.TotalMilliseconds:F1} ms for {ua.Length} chars: {d}");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"{watch.Elapsed.TotalMilliseconds} ms");
    }
}
