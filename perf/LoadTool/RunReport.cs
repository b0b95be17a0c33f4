using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Analytics.LoadTool;

internal sealed record MachineInfo(int Cores, string Cpu, string Os, string Runtime, string DateUtc)
{
    public static MachineInfo Current() => new(
        Environment.ProcessorCount,
        CpuModel(),
        RuntimeInformation.OSDescription,
        RuntimeInformation.FrameworkDescription,
        DateTimeOffset.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture));

    private static string CpuModel()
    {
        try
        {
            const string prefix = "model name";
            string? line = File.Exists("/proc/cpuinfo")
                ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal))
                : null;
            return line is null ? RuntimeInformation.ProcessArchitecture.ToString() : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        catch (IOException)
        {
            return RuntimeInformation.ProcessArchitecture.ToString();
        }
    }
}

internal sealed record RunSettings(int Connections, int Batch, int Pipeline, double Seconds, double Warmup, int AverageFrameBytes, string Server);

/// <summary>The run's results, checks and context, as a Markdown table and as JSON.</summary>
internal sealed class RunReport
{
    public required string Command { get; init; }
    public required MachineInfo Machine { get; init; }
    public required RunSettings Settings { get; init; }
    public required IReadOnlyList<PhaseResult> Phases { get; init; }
    public double IngestToBaselineRatio { get; init; }
    public required IReadOnlyList<string> Failures { get; init; }
    public bool Ok => Failures.Count == 0;

    /// <param name="otherEvents">At most this many events came from other clients (the freshness probe,
    /// which runs alongside the phase and is not synchronised with its counter readings).</param>
    public static IReadOnlyList<string> Check(PhaseResult phase, bool isIngest, long otherEvents = 0)
    {
        var failures = new List<string>();
        string p = phase.Name;
        if (phase.BatchesSent == 0) failures.Add($"{p}: nothing was sent");
        if (phase.MissingReplies != 0) failures.Add($"{p}: {phase.MissingReplies} of {phase.BatchesSent} batches got no reply");
        if (phase.BadReplies != 0) failures.Add($"{p}: {phase.BadReplies} replies not OK");
        if (phase.EventsAcked != phase.EventsSent) failures.Add($"{p}: {phase.EventsAcked} events acknowledged of {phase.EventsSent} sent");
        if (isIngest && (phase.ServerEventsAccepted < phase.EventsSent || phase.ServerEventsAccepted > phase.EventsSent + otherEvents))
        {
            string others = otherEvents == 0 ? "" : $" (+ up to {otherEvents} from the freshness probe)";
            failures.Add($"{p}: server counter analytics_ingest_events_accepted_total rose by {phase.ServerEventsAccepted}, {phase.EventsSent} events were sent{others}");
        }
        failures.AddRange(phase.Errors.Select(e => $"{p}: {e}"));
        return failures;
    }

    public string ToMarkdown()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("| phase | endpoint | events/s | batches/s | ack p50 ms | ack p99 ms | ack p99.9 ms | server B/event | CPU client / server (cores) | events sent | events acked |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in Phases)
        {
            sb.Append(ci, $"| {r.Name} | {r.Endpoint} | {r.EventsPerSecond:N0} | {r.BatchesPerSecond:N0} | {r.P50Ms:0.00} | {r.P99Ms:0.00} | {r.P999Ms:0.00} | ")
              .Append(ci, $"{r.ServerBytesPerEvent:0.0} | {r.ClientCpuCores:0.00} / {(r.ServerCpuCores is double cpu ? cpu.ToString("0.00", ci) : "?")} | ")
              .AppendLine(ci, $"{r.EventsSent:N0} | {r.EventsAcked:N0} |");
        }
        sb.AppendLine();
        sb.AppendLine(ci, $"ingest/baseline events/s: **{IngestToBaselineRatio:0.00}**");
        sb.AppendLine();
        var s = Settings;
        sb.AppendLine(ci, $"- load: {s.Connections} connections, {s.Batch} events/batch (~{s.AverageFrameBytes:N0} B/frame), pipeline {s.Pipeline}, {s.Seconds:0.#} s measured per phase after {s.Warmup:0.#} s warm-up");
        sb.AppendLine(ci, $"- server: {s.Server}");
        foreach (var r in Phases)
        {
            sb.Append(ci, $"- {r.Name}: ");
            if (r.MachineBusyCores is double busy)
            {
                double other = busy - r.ClientCpuCores - (r.ServerCpuCores ?? 0);
                sb.Append(ci, $"machine busy {busy:0.00} of {Machine.Cores} cores (other processes {Math.Max(0, other):0.00})");
            }
            if (r.ServerRollupStored is long stored) sb.Append(ci, $"; Rollup stored {stored:N0} events (its allocations are in server B/event)");
            sb.AppendLine();
        }
        var m = Machine;
        sb.AppendLine(ci, $"- machine: {m.Cores} cores ({m.Cpu}), {m.Os}, {m.Runtime}, {m.DateUtc}; client and server on the same machine");
        sb.AppendLine(ci, $"- command: `{Command}`");
        sb.AppendLine(Ok ? "- checks: OK (every batch answered, every event acknowledged, server counter matches)" : "- checks: FAILED");
        foreach (var f in Failures) sb.AppendLine(ci, $"  - {f}");
        return sb.ToString();
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        // A phase with no replies has NaN percentiles; keep them rather than failing the write.
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        // A file for people and scripts, never embedded in HTML: keep '+' and quotes readable.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public string ToJson() => JsonSerializer.Serialize(new
    {
        Command,
        Machine,
        Settings,
        Phases,
        IngestToBaselineRatio,
        Ok,
        Failures,
    }, JsonOptions);
}
