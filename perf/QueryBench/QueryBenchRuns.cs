namespace Analytics.Perf.QueryBench;

/// <summary>How many runs a p95 of QueryBench stands on; shared with LoadTool's RESULTS.md writer
/// (linked there), which reads QueryBench's JSON and says "not measured" below it.</summary>
public static class QueryBenchRuns
{
    /// <summary>The nearest-rank p95 of fewer runs than this is the slowest of them
    /// (ceil(0.95 n) = n for n &lt; 20).</summary>
    public const int MinimumForP95 = 20;
}
