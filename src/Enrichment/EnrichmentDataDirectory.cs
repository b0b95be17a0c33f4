namespace Analytics.Enrichment;

/// <summary>
/// Where the data installed by scripts/fetch-enrichment-data.sh lives: the directory named by
/// ANALYTICS_ENRICHMENT_DATA (test.sh, run.sh and perf/run-all.sh export it), else the nearest
/// <c>.cache/enrichment</c> above the given directory (a build output inside the repository).
/// </summary>
public static class EnrichmentDataDirectory
{
    public const string EnvironmentVariable = "ANALYTICS_ENRICHMENT_DATA";

    /// <exception cref="EnrichmentDataException">Neither is there.</exception>
    public static string Locate(string? startDirectory = null)
    {
        string? env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrEmpty(env)) return env;
        for (var dir = new DirectoryInfo(startDirectory ?? AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, ".cache", "enrichment");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new EnrichmentDataException($"enrichment data not found: set {EnvironmentVariable} or run scripts/fetch-enrichment-data.sh");
    }
}
