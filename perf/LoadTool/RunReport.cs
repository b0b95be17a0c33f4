using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Analytics.LoadTool;

internal sealed record MachineInfo(int Cores, string Cpu, long MemoryBytes, string Os, string Runtime, string DateUtc)
{
    public static MachineInfo Current() => new(
        Environment.ProcessorCount,
        CpuModel(),
        MemTotal(),
        OsName(),
        RuntimeInformation.FrameworkDescription,
        DateTimeOffset.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture));

    /// <summary>One line: "2 cores (AMD EPYC), 23.5 GiB RAM, Debian GNU/Linux 12 (bookworm) (kernel 6.1.0), .NET 10.0.12".</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{Cores} cores ({Cpu}), {MemoryBytes / 1073741824.0:0.0} GiB RAM, {Os}, {Runtime}");

    private static string CpuModel() =>
        ProcLine("/proc/cpuinfo", "model name") is { } line
            ? line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim()
            : RuntimeInformation.ProcessArchitecture.ToString();

    // "MemTotal:       24608432 kB"
    private static long MemTotal() =>
        ProcLine("/proc/meminfo", "MemTotal:") is { } line
            ? long.Parse(line["MemTotal:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024
            : 0;

    // PRETTY_NAME="Debian GNU/Linux 12 (bookworm)" plus the kernel: the distribution alone hides the VM's kernel.
    private static string OsName() =>
        ProcLine("/etc/os-release", "PRETTY_NAME=") is { } line
            ? $"{line["PRETTY_NAME=".Length..].Trim('"')} (kernel {Environment.OSVersion.Version})"
            : RuntimeInformation.OSDescription;

    private static string? ProcLine(string file, string prefix)
    {
        try
        {
            return File.Exists(file) ? File.ReadLines(file).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal)) : null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}

internal sealed record RunSettings(int Connections, int Batch, int Pipeline, double Seconds, double Warmup, int AverageFrameBytes, string Server);

/// <summary>
/// The run's results, checks and context, as a Markdown table and as JSON. The JSON reads back
/// (<see cref="FromJson"/>): perf/run-all.sh takes a rate from one run and RESULTS.md from all.
/// </summary>
internal sealed class RunReport
{
    /// <summary>Tells a LoadTool report from the other JSON files in a results directory.</summary>
    public const string KindName = "load";

    public string Kind => KindName;
    /// <summary>What the run measures, e.g. "WebSocket /v1/ws" or the --label given.</summary>
    public required string Label { get; init; }
    /// <summary>Of the ingest phase: "ws" or "http" (the baseline is always the WebSocket echo).</summary>
    public required string Transport { get; init; }
    /// <summary>Where the server writes what it acknowledges: "local" (its local log) or "kafka" (--sink kafka).
    /// Reports written before the option read as "local".</summary>
    public string Sink { get; init; } = "local";
    /// <summary>--sink kafka: the mock cluster and what its topic held after the phases.</summary>
    public KafkaSink.Result? Kafka { get; init; }
    /// <summary>Events/s offered with --rate or --rate-from; null = as fast as possible.</summary>
    public double? OfferedEventsPerSecond { get; init; }
    public IReadOnlyList<string> ServerArgs { get; init; } = [];
    /// <summary>What the first phase ran against: "echo" (/v1/echo, the default and every report before the
    /// option), "nginx" (--baseline nginx: nginx's return 204) or "none" (no baseline phase).</summary>
    public string BaselineKind { get; init; } = "echo";
    /// <summary>--baseline nginx: the nginx binary and how it ran; --baseline none: why there is none.</summary>
    public string? BaselineNote { get; init; }
    /// <summary>--server-roles given to the server (null: all roles, the embedded default).</summary>
    public string? ServerRoles { get; init; }
    public required string Command { get; init; }
    public required MachineInfo Machine { get; init; }
    public required RunSettings Settings { get; init; }
    public required IReadOnlyList<PhaseResult> Phases { get; init; }
    public double IngestToBaselineRatio { get; init; }
    public FreshnessProbe.Result? Freshness { get; init; }
    /// <summary>--steps: one entry per step run, in order (the phases hold the same steps' full figures).</summary>
    public IReadOnlyList<SteppedLoad.Step>? Steps { get; init; }
    public IdleConnections.Result? Idle { get; init; }
    public ReprocessPhase.Result? Reprocess { get; init; }
    public required IReadOnlyList<string> Failures { get; init; }
    public bool Ok => Failures.Count == 0;

    /// <summary>The echo phase; null in a --steps run, which has none.</summary>
    [JsonIgnore] public PhaseResult? Baseline => Steps is null && BaselineKind != "none" && Phases.Count > 1 ? Phases[0] : null;
    [JsonIgnore] public PhaseResult Ingest => Phases[^1];
    [JsonIgnore] public string SinkName => Sink == "kafka" ? "Kafka (mock cluster)" : "local log";

    /// <param name="otherEvents">At most this many events came from other clients (the freshness probe,
    /// which runs alongside the phase and is not synchronised with its counter readings).</param>
    public static IReadOnlyList<string> Check(PhaseResult phase, bool isIngest, long otherEvents = 0)
    {
        var failures = new List<string>();
        string p = phase.Name;
        if (phase.BatchesSent == 0) failures.Add($"{p}: nothing was sent");
        if (phase.MissingReplies != 0) failures.Add($"{p}: {phase.MissingReplies} of {phase.BatchesSent} batches got no reply");
        if (phase.BadReplies != 0) failures.Add($"{p}: {phase.BadReplies} replies not OK");
        if (phase.EventsSent > 0 && phase.EventsAcked == 0) failures.Add($"{p}: no event was acknowledged");
        else if (phase.EventsAcked != phase.EventsSent) failures.Add($"{p}: {phase.EventsAcked} events acknowledged of {phase.EventsSent} sent");
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
        sb.AppendLine(Label);
        sb.AppendLine();
        sb.AppendLine("| phase | endpoint | sink | events/s | batches/s | ack p50 ms | ack p99 ms | ack p99.9 ms | server B/event | server CPU µs/event | server peak RSS MiB | CPU client / server (cores) | events sent | events acked |");
        sb.AppendLine("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in Phases)
        {
            sb.Append(ci, $"| {r.Name} | {r.Endpoint} ({r.Transport}) | {(r != Baseline ? SinkName : BaselineKind == "nginx" ? "none (nginx 204)" : "none (echo)")} | {r.EventsPerSecond:N0} | {r.BatchesPerSecond:N0} | {r.P50Ms:0.00} | {r.P99Ms:0.00} | {r.P999Ms:0.00} | ")
              .Append(ci, $"{Format.OrNa(r.ServerBytesPerEvent, "0.0")} | {Format.OrNa(r.ServerCpuMicrosecondsPerEvent, "0.00")} | {Format.OrNa(r.ServerPeakRssBytes / 1048576.0, "0.0")} | ")
              .Append(ci, $"{r.ClientCpuCores:0.00} / {Format.OrNa(r.ServerCpuCores, "0.00")} | ")
              .AppendLine(ci, $"{r.EventsSent:N0} | {r.EventsAcked:N0} |");
        }
        sb.AppendLine();
        if (Baseline is not null)
        {
            sb.AppendLine(ci, $"ingest/baseline events/s: **{IngestToBaselineRatio:0.00}**");
            sb.AppendLine();
        }
        if (Steps is not null)
        {
            sb.AppendLine("| step: offered events/s | accepted events/s | seconds | freshness samples | unfinished | p50 ms | p95 ms | p99 ms | max ms | load before / other cores | verdict |");
            sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
            foreach (var step in Steps) sb.AppendLine(StepRow(step));
            sb.AppendLine();
        }
        var s = Settings;
        sb.AppendLine(ci, $"- load: {s.Connections} connections, {s.Batch} events/batch (~{s.AverageFrameBytes:N0} B/frame), pipeline {s.Pipeline}, {s.Seconds:0.#} s measured per phase after {s.Warmup:0.#} s warm-up");
        if (OfferedEventsPerSecond is double offered) sb.AppendLine(ci, $"- paced: {offered:N0} events/s offered in total; latency counts from each batch's scheduled send time");
        if (BaselineNote is not null) sb.AppendLine(ci, $"- baseline: {BaselineNote}");
        else if (Transport == "http") sb.AppendLine(BaselineNoteForHttp);
        sb.AppendLine(ci, $"- server: {s.Server}");
        if (Kafka is { } kafka) sb.AppendLine(ci, $"- kafka: topic {kafka.Topic} held {kafka.Records:N0} records after the phases, for {kafka.EventsAcked:N0} events acknowledged by the ingest phase and its warm-up");
        foreach (var r in Phases)
        {
            sb.Append(ci, $"- {r.Name}: {MachineState(r, Machine.Cores)}");
            if (r.ServerRollupStored is long stored) sb.Append(ci, $"; Rollup stored {stored:N0} events (its allocations are in server B/event)");
            if (r.BrokerCpuCores is double brokers && r.ServerEventsAccepted > 0)
                sb.Append(ci, $"; the mock brokers took {brokers:0.00} of the client's {r.ClientCpuCores:0.00} cores ({r.BrokerCpuMicrosecondsPerEvent:0.00} µs per event)");
            sb.AppendLine();
        }
        var m = Machine;
        sb.AppendLine(ci, $"- machine: {m.Describe()}, {m.DateUtc}; client and server on the same machine");
        sb.AppendLine(ci, $"- command: `{Command}`");
        sb.AppendLine(Ok ? "- checks: OK (every batch answered, every event acknowledged, server counter matches)" : "- checks: FAILED");
        foreach (var f in Failures) sb.AppendLine(ci, $"  - {f}");
        if (Freshness is { } fresh)
        {
            sb.AppendLine();
            sb.AppendLine("| freshness under the ingest load | samples | unfinished | send → visible p50 ms | p95 ms | p99 ms | max ms |");
            sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
            sb.AppendLine(ci, $"| one pageview per {fresh.IntervalMs:0} ms to a probe site, polled every 20 ms | {fresh.Samples} | {fresh.Unfinished} | {fresh.Show(fresh.P50Ms)} | {fresh.Show(fresh.P95Ms)} | {fresh.Show(fresh.P99Ms)} | {Format.OrNa(fresh.MaxMs, "N0")} |");
        }
        if (Idle is { } idle)
        {
            sb.AppendLine();
            sb.AppendLine("| idle connections | server RSS before | after | per connection |");
            sb.AppendLine("|---:|---:|---:|---:|");
            sb.AppendLine(ci, $"| {idle.Connections:N0} | {idle.RssBeforeBytes / 1048576.0:0.0} MiB | {idle.RssAfterBytes / 1048576.0:0.0} MiB | {idle.BytesPerConnection / 1024:0.0} KiB |");
        }
        if (Reprocess is { } r2)
        {
            sb.AppendLine();
            sb.AppendLine("| reprocess | raw events | site-days | seconds | raw events/s | Rollup catch-up before it (s) |");
            sb.AppendLine("|---|---:|---:|---:|---:|---:|");
            sb.AppendLine(ci, $"| demo merchant, all of it | {r2.RawEvents:N0} | {r2.SiteDays} | {r2.Seconds:0.0} | {r2.EventsPerSecond:N0} | {r2.StoreWaitSeconds:0.0} |");
        }
        return sb.ToString();
    }

    /// <summary>One row of the steps table, here and in RESULTS.md.</summary>
    public static string StepRow(SteppedLoad.Step s)
    {
        var f = s.Freshness;
        string probe = f is null ? "0 | 0 | n/a | n/a | n/a | n/a" : $"{f.Samples} | {f.Unfinished} | {f.Show(f.P50Ms)} | {f.Show(f.P95Ms)} | {f.Show(f.P99Ms)} | {Format.OrNa(f.MaxMs, "N0")}";
        return string.Create(CultureInfo.InvariantCulture,
            $"| {s.OfferedEventsPerSecond:N0} | {s.AcceptedEventsPerSecond:N0} | {s.Seconds:0.#} | {probe} | {Format.OrNa(s.LoadAverageBefore, "0.00")} / {Format.OrNa(s.OtherCpuCores, "0.00")} | {(s.Passed ? "**passed**" : s.Verdict)} |");
    }

    /// <summary>
    /// A phase's machine state in one phrase: the load average before it, the whole machine's busy
    /// cores and how much of that other processes took (a slow run shows here, not in its numbers).
    /// </summary>
    public static string MachineState(PhaseResult r, int cores)
    {
        var ci = CultureInfo.InvariantCulture;
        var parts = new List<string>();
        if (r.LoadAverageBefore is double load) parts.Add(string.Create(ci, $"load average {load:0.00} before"));
        if (r.FreshPageCacheMegabytesPerSecond is double pages) parts.Add(string.Create(ci, $"new page-cache writes {pages:N0} MB/s before"));
        if (r.MachineBusyCores is double busy) parts.Add(string.Create(ci, $"machine busy {busy:0.00} of {cores} cores"));
        if (r.OtherCpuSeconds is double other) parts.Add(string.Create(ci, $"other processes {other:0.0} CPU s ({r.OtherCpuCores:0.00} cores)"));
        return parts.Count == 0 ? "machine state not measured" : string.Join(", ", parts);
    }

    /// <summary>Why an HTTP run's baseline is a WebSocket echo: said wherever its ratio is shown.</summary>
    public const string BaselineNoteForHttp =
        "- baseline: the WebSocket echo (/v1/echo), same frames and Kestrel; the server has no HTTP echo endpoint, " +
        "so ingest/baseline for HTTP also contains the cost of HTTP requests over WebSocket messages";

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        // A phase with no replies has NaN percentiles; keep them rather than failing the write.
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        // A file for people and scripts, never embedded in HTML: keep '+' and quotes readable.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads a report written by <see cref="ToJson"/>; null when the JSON is another kind of file.</summary>
    public static RunReport? FromJson(string json)
    {
        using var document = JsonDocument.Parse(json);
        if (!document.RootElement.TryGetProperty("kind", out var kind) || kind.GetString() != KindName) return null;
        return document.RootElement.Deserialize<RunReport>(JsonOptions);
    }
}

/// <summary>Number formatting shared by the report and RESULTS.md.</summary>
internal static class Format
{
    /// <summary>"n/a" where a figure cannot be measured (the server is not our child process) or was not.</summary>
    public static string OrNa(double? value, string format) =>
        value is double v && double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "n/a";
}
