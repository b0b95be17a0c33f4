using System.Diagnostics;
using System.Globalization;

namespace Analytics.LoadTool;

/// <summary>
/// Sustained end-to-end load (issue #17): all roles in one process, paced load stepped up
/// (<c>--steps 50000,100000,…</c>) with the freshness probe running through every step. A step
/// passes when, over at least <see cref="MinimumSeconds"/> s and <see cref="FreshnessProbe.MinimumSamples"/>
/// probe samples, freshness p99 ≤ 5 s with no probe pageview left unfinished, the server accepted at
/// least <see cref="MinimumAcceptedFraction"/> of the offered rate, and the phase passed its checks.
/// Each step starts with Rollup caught up (lag 0), so a backlog of one step does not count against the
/// next. Stepping stops after the first step that fails on its figures; a step too short to judge
/// (smoke, or too few samples) does not stop it. The highest passing rate is the sustained rate.
/// </summary>
internal static class SteppedLoad
{
    public const double MinimumSeconds = 60;
    public const double TargetFreshnessP99Ms = 5_000;
    /// <summary>A server that falls behind the schedule is not sustaining the offered rate.</summary>
    public const double MinimumAcceptedFraction = 0.95;
    /// <summary>How long a step waits for Rollup to store the previous step's backlog before it gives up.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromMinutes(2);

    /// <param name="Judged">False when the step was too short or had too few samples to pass or fail (smoke).</param>
    public sealed record Step(double OfferedEventsPerSecond, double AcceptedEventsPerSecond, double Seconds, FreshnessProbe.Result? Freshness,
        bool Passed, bool Judged, string Verdict, double? LoadAverageBefore, double? OtherCpuCores);

    public static Step Judge(double offered, PhaseResult phase, FreshnessProbe.Result? probe, IReadOnlyList<string> checkFailures)
    {
        var reasons = new List<string>();
        bool judged = true;
        if (checkFailures.Count > 0) reasons.Add("checks failed");
        if (phase.EventsPerSecond < MinimumAcceptedFraction * offered)
            reasons.Add(string.Create(CultureInfo.InvariantCulture, $"accepted {phase.EventsPerSecond / offered:P0} of the offered rate"));
        if (probe is null || !probe.Measured)
        {
            // Few samples on a long step means pageviews were not becoming visible: a failure; on a short one, not judged.
            if (phase.Seconds >= MinimumSeconds) reasons.Add(probe?.Percentiles ?? "no freshness probe");
            else judged = false;
        }
        else if (probe.P99Ms > TargetFreshnessP99Ms) reasons.Add(string.Create(CultureInfo.InvariantCulture, $"freshness p99 {probe.P99Ms:N0} ms > 5,000"));
        if (probe is { Unfinished: > 0 }) reasons.Add($"{probe.Unfinished} probe pageviews never visible");
        if (phase.Seconds < MinimumSeconds && reasons.Count == 0)
        {
            judged = false;
            reasons.Add(string.Create(CultureInfo.InvariantCulture, $"step of {phase.Seconds:0.#} s, shorter than {MinimumSeconds:0} s (smoke)"));
        }
        bool passed = judged && reasons.Count == 0;
        string verdict = passed ? "passed" : (judged ? "failed: " : "not judged: ") + string.Join("; ", reasons);
        if (!judged && probe is { Measured: false }) verdict = $"not judged: {probe.Percentiles}, step of {phase.Seconds.ToString("0.#", CultureInfo.InvariantCulture)} s (smoke)";
        return new Step(offered, phase.EventsPerSecond, phase.Seconds, probe, passed, judged, verdict, phase.LoadAverageBefore, phase.OtherCpuCores);
    }

    /// <summary>Waits until Rollup has stored everything ingested so far (lag 0); false after <see cref="DrainTimeout"/>.</summary>
    public static async Task<bool> WaitForRollupAsync(HttpClient http, Uri baseAddress, CancellationToken ct)
    {
        var waited = Stopwatch.StartNew();
        while (waited.Elapsed < DrainTimeout)
        {
            string metrics = await http.GetStringAsync(new Uri(baseAddress, "/metrics"), ct);
            if (ReprocessPhase.Metric(metrics, "analytics_rollup_lag_records") == 0) return true;
            await Task.Delay(500, ct);
        }
        return false;
    }
}
