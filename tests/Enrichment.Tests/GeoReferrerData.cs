namespace Analytics.Enrichment.Tests;

/// <summary>
/// Where the tests find their data: committed fixtures next to the test assembly, and the real
/// data sets that scripts/fetch-enrichment-data.sh installs (test.sh runs it first). A missing
/// data set fails the test with the command to run: these tests never skip.
/// </summary>
internal static class GeoReferrerData
{
    public static string Fixture(params string[] parts) =>
        Path.Combine([AppContext.BaseDirectory, "TestData", .. parts]);

    public static string EnrichmentData(params string[] parts)
    {
        string root = Environment.GetEnvironmentVariable("ANALYTICS_ENRICHMENT_DATA") is { Length: > 0 } fromEnv
            ? fromEnv
            : Path.Combine(RepositoryRoot(), ".cache", "enrichment");
        string path = Path.Combine([root, .. parts]);
        if (!File.Exists(path))
            Assert.Fail($"{path} is missing: run scripts/fetch-enrichment-data.sh (test.sh does).");
        return path;
    }

    /// <summary>Runs a test in a directory of its own, removed afterwards whatever happens.</summary>
    public static void InTempDirectory(string prefix, Action<string> test)
    {
        string dir = Directory.CreateTempSubdirectory(prefix).FullName;
        try { test(dir); }
        finally { Directory.Delete(dir, recursive: true); }
    }

    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Analytics.sln"))) return dir.FullName;
        throw new InvalidOperationException("Analytics.sln not found above " + AppContext.BaseDirectory);
    }
}
