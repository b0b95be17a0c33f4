using System.Globalization;

namespace Analytics.LoadTool;

/// <summary>
/// LoadTool runs with the same label: repeats of one measurement (perf/run-all.sh runs the
/// headline parts three times in a full run, once in a smoke run). A figure is read as the median
/// over the repeats (for an even count, the mean of the middle two) and shown as
/// "median (min–max)" so the spread between runs on this noisy machine stays visible; a single
/// run shows its plain value.
/// </summary>
internal sealed class Repeated(List<RunReport> runs)
{
    public const string Note = "- runs > 1: the same command repeated; each figure is the median over the runs with (min–max) behind it, and load before / other cores lists every run in order";

    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    public List<RunReport> Runs => runs;
    public RunReport First => runs[0];

    /// <summary>", median of 3 runs" for a label of targets; empty for a single run.</summary>
    public string Count => runs.Count > 1 ? $", median of {runs.Count} runs" : "";

    /// <summary>Groups by label, in the order the labels first appear.</summary>
    public static List<Repeated> Group(IEnumerable<RunReport> reports) =>
        reports.GroupBy(r => r.Label, StringComparer.Ordinal).Select(g => new Repeated(g.ToList())).ToList();

    public double? Median(Func<RunReport, double?> measure)
    {
        var values = Values(measure);
        return values.Count == 0 ? null : MedianOf(values);
    }

    /// <summary>The median of a non-empty list (for an even count, the mean of the middle two).</summary>
    public static double MedianOf(IReadOnlyCollection<double> values)
    {
        var sorted = values.Order().ToList();
        int middle = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    /// <summary>The run whose figure is the median (the lower middle for an even count), for tables that need one whole run.</summary>
    public RunReport MedianRun(Func<RunReport, double?> measure) =>
        runs.Where(r => measure(r) is double v && double.IsFinite(v)).OrderBy(r => measure(r)).ElementAtOrDefault((Values(measure).Count - 1) / 2) ?? First;

    public string Show(Func<RunReport, double?> measure, string format)
    {
        var values = Values(measure);
        if (values.Count == 0) return "n/a";
        string median = Median(measure)!.Value.ToString(format, Ci);
        return values.Count == 1 ? median : $"{median} ({values[0].ToString(format, Ci)}–{values[^1].ToString(format, Ci)})";
    }

    private List<double> Values(Func<RunReport, double?> measure) =>
        runs.Select(measure).OfType<double>().Where(double.IsFinite).Order().ToList();
}
