// Load tool: WebSocket ingest (/v1/ws, durable acks) or HTTP POST ingest (/v1/events) against the
// /v1/echo baseline (Kestrel's WebSocket path alone), same frames, same connections, same run.
// With --write-results it instead writes perf/RESULTS.md from a directory of results.
// See perf/README.md.
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using Analytics.EventLog.Kafka;
using Analytics.LoadTool;

var options = LoadOptions.Parse(args, out string? error);
if (options is null)
{
    if (!string.IsNullOrEmpty(error)) Console.Error.WriteLine($"error: {error}");
    Console.Error.WriteLine(LoadOptions.Usage);
    return 2;
}

if (options.WriteResults is not null)
{
    return ResultsWriter.Write(options.WriteResults, options.ResultsDirectory!, options.ResultsCommand);
}

using var cancel = new CancellationTokenSource();
// First Ctrl+C or SIGTERM: stop cleanly (the server is killed and its directory deleted in
// finally). A second Ctrl+C ends the process the default way. SIGTERM needs its own hook:
// without one, a SIGTERM ended the tool here and left the server running.
Console.CancelKeyPress += (_, e) =>
{
    if (cancel.IsCancellationRequested) return;
    e.Cancel = true;
    cancel.Cancel();
};
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    cancel.Cancel();
});

using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
ServerProcess? server = null;
MockKafkaCluster? cluster = null; // --sink kafka
NginxBaseline? nginx = null; // --baseline nginx
try
{
    double? rate = options.Rate;
    if (options.RateFrom.Count > 0)
    {
        // Several files (repeats of the peak run): the median of their peaks, as RESULTS.md reports it.
        var peaks = new List<double>();
        foreach (string file in options.RateFrom)
        {
            var earlier = RunReport.FromJson(await File.ReadAllTextAsync(file, cancel.Token))
                ?? throw new InvalidDataException($"{file} is not a LoadTool --json report");
            if (!earlier.Ok || !double.IsFinite(earlier.Ingest.EventsPerSecond) || earlier.Ingest.EventsPerSecond <= 0)
                throw new InvalidDataException($"{file}: its run failed its checks, so it has no peak to take a rate from");
            peaks.Add(earlier.Ingest.EventsPerSecond);
        }
        double peak = Repeated.MedianOf(peaks);
        rate = peak * options.RateFraction;
        Console.Error.WriteLine($"rate: {options.RateFraction:0.##} × {peak:N0} events/s (median of {peaks.Count} from {string.Join(", ", options.RateFrom)}) = {rate:N0} events/s");
    }

    Uri baseAddress;
    string serverLabel;
    if (options.Url is not null)
    {
        baseAddress = options.Url;
        serverLabel = $"already running at {baseAddress}";
    }
    else
    {
        string dll = options.Server ?? FindServer();
        IReadOnlyList<string> serverArgs = options.ServerArgs;
        if (options.Sink == Sink.Kafka)
        {
            cluster = KafkaSink.StartCluster();
            Console.Error.WriteLine($"kafka: mock cluster at {cluster.BootstrapServers}, topic {KafkaSink.Topic} ({KafkaSink.Partitions} partitions, replication factor {KafkaSink.ReplicationFactor})");
            serverArgs = [.. serverArgs, .. KafkaSink.ServerArgs(cluster)];
        }
        Console.Error.WriteLine($"starting {dll}");
        server = await ServerProcess.StartAsync(dll, options.ServerRoles, serverArgs, http, cancel.Token);
        baseAddress = server.BaseAddress;
        serverLabel = $"{DisplayPath(dll)} ({BuildConfiguration(dll)}), " +
            (options.Sink == Sink.Kafka ? KafkaSink.Description : "local log, fsync per group commit") + ", " +
            (options.ServerRoles is null ? "all roles (Rollup + chDB in the same process)" : $"roles {options.ServerRoles}") +
            (options.ServerArgs.Count == 0 ? "" : $", extra arguments `{string.Join(' ', options.ServerArgs)}`");
    }

    var pool = BatchTemplate.Build(options.SiteKey, options.Batch, count: 16);
    var metrics = new ServerMetrics(http, baseAddress, server);
    if (cluster is not null) metrics.BrokerCpu = KafkaSink.BrokersCpu;
    var failures = new List<string>();
    var phases = new List<PhaseResult>();
    long ingestAcked = 0; // warm-up included: what the Kafka topic must hold at least
    FreshnessProbe.Result? freshness = null;
    var steps = new List<SteppedLoad.Step>();
    // Runs one phase (after its unmeasured warm-up), with the freshness probe alongside when asked.
    async Task<(PhaseResult Result, FreshnessProbe.Result? Fresh)> Measure(string name, string path, ReplyKind reply, Transport transport, double? eventsPerSecond, bool probeIt, Uri? host = null)
    {
        var endpoint = new UriBuilder(host ?? baseAddress) { Path = path };
        if (transport == Transport.WebSocket) endpoint.Scheme = baseAddress.Scheme == "https" ? "wss" : "ws";
        // Paced like the phase, warm-up included: an unpaced warm-up would leave a Rollup backlog behind it.
        double? paced = eventsPerSecond is { } r ? r / options.Batch / options.Connections : null;
        if (options.Warmup > 0)
        {
            Console.Error.WriteLine($"{name}: warm-up {options.Warmup:0.#} s");
            var warm = await LoadPhase.RunAsync(new PhaseSpec(name + " warm-up", endpoint.Uri, reply, transport, options.Connections, options.Pipeline, TimeSpan.FromSeconds(options.Warmup), paced), pool, metrics, cancel.Token);
            failures.AddRange(RunReport.Check(warm, isIngest: reply == ReplyKind.Ack));
            if (reply == ReplyKind.Ack) ingestAcked += warm.EventsAcked;
        }
        Console.Error.WriteLine($"{name}: {options.Seconds:0.#} s against {endpoint.Uri}");
        using var probeStop = CancellationTokenSource.CreateLinkedTokenSource(cancel.Token);
        using var prepared = probeIt && reply == ReplyKind.Ack && server is not null
            ? await FreshnessProbe.PrepareAsync(http, baseAddress, server.DataDirectory, cancel.Token)
            : null;
        var probe = prepared is not null ? FreshnessProbe.RunAsync(prepared, http, baseAddress, options.FreshnessInterval, probeStop.Token, cancel.Token) : null;
        var result = await LoadPhase.RunAsync(new PhaseSpec(name, endpoint.Uri, reply, transport, options.Connections, options.Pipeline, TimeSpan.FromSeconds(options.Seconds), paced), pool, metrics, cancel.Token);
        FreshnessProbe.Result? fresh = null;
        if (probe is not null)
        {
            await probeStop.CancelAsync();
            fresh = await probe;
        }
        if (reply == ReplyKind.Ack) ingestAcked += result.EventsAcked;
        return (result, fresh);
    }

    if (options.Steps.Count == 0)
    {
        if (options.Baseline == BaselineKind.Nginx)
        {
            // The same HTTP requests to nginx's `return 204`: the ceiling for one request per event here.
            nginx = await NginxBaseline.StartAsync(cancel.Token);
            metrics.HelperCpu = () => nginx.CpuTime;
            Console.Error.WriteLine($"nginx: {nginx.Description} at {nginx.BaseAddress}");
            var (baseline, _) = await Measure("nginx", "/v1/events", ReplyKind.NoContent, Transport.Http, rate, probeIt: false, nginx.BaseAddress);
            failures.AddRange(RunReport.Check(baseline, isIngest: false));
            phases.Add(baseline);
            // Stopped before the ingest phase, so it takes no memory or CPU from the server under test.
            var cpu = nginx.CpuTime;
            await nginx.DisposeAsync();
            metrics.HelperCpu = () => cpu;
        }
        else if (options.Baseline == BaselineKind.Echo)
        {
            // The WebSocket echo, also for HTTP: the server has no HTTP echo endpoint (see RunReport.BaselineNoteForHttp).
            var (baseline, _) = await Measure("baseline", "/v1/echo", ReplyKind.Echo, Transport.WebSocket, rate, probeIt: false);
            failures.AddRange(RunReport.Check(baseline, isIngest: false));
            phases.Add(baseline);
        }
        var (ingest, fresh) = await Measure("ingest", options.Transport == Transport.Http ? "/v1/events" : "/v1/ws", ReplyKind.Ack, options.Transport, rate, options.Freshness);
        freshness = fresh;
        if (fresh is { Samples: 0 }) failures.Add("freshness: no sample completed during the ingest phase");
        failures.AddRange(RunReport.Check(ingest, isIngest: true, fresh?.EventsSent ?? 0));
        phases.Add(ingest);
    }
    else
    {
        // Sustained load: one paced ingest phase per step, no baseline; see SteppedLoad.
        foreach (double offered in options.Steps)
        {
            Console.Error.WriteLine($"step {offered:N0} events/s: waiting for Rollup to store the backlog");
            if (!await SteppedLoad.WaitForRollupAsync(http, baseAddress, cancel.Token))
            {
                Console.Error.WriteLine($"step {offered:N0} events/s: Rollup still behind after the previous step; stepping stops");
                break;
            }
            string name = $"step {offered.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)} events/s";
            var (phase, fresh) = await Measure(name, options.Transport == Transport.Http ? "/v1/events" : "/v1/ws", ReplyKind.Ack, options.Transport, offered, probeIt: true);
            var checks = RunReport.Check(phase, isIngest: true, fresh?.EventsSent ?? 0);
            failures.AddRange(checks);
            phases.Add(phase);
            var step = SteppedLoad.Judge(offered, phase, fresh, checks);
            steps.Add(step);
            Console.Error.WriteLine($"{name}: {step.Verdict}");
            if (step.Judged && !step.Passed) break;
        }
    }

    // The parts after the phases fail on their own: their failure is reported, the phases' numbers are kept.
    // The Kafka topic first, while nothing else writes to it: it must hold every event acknowledged.
    KafkaSink.Result? kafka = null;
    if (cluster is not null)
    {
        kafka = await AfterPhase("kafka", failures, () => KafkaSink.CountAsync(cluster, ingestAcked, cancel.Token));
        if (kafka is not null) failures.AddRange(kafka.Check());
    }
    // Then reprocess, before idle: it waits until Rollup has stored the backlog, so the idle measurement after
    // it sees a server at rest rather than RSS moving with Rollup's work.
    ReprocessPhase.Result? reprocess = null;
    if (options.Reprocess)
    {
        if (server is null) throw new InvalidOperationException("--reprocess needs a server the tool starts (it bootstraps an admin client in its data directory)");
        Console.Error.WriteLine("reprocess: waiting for Rollup to store everything, then rebuilding it");
        long ingested = phases[^1].EventsAcked; // warm-up events come on top; lag 0 covers them
        reprocess = await AfterPhase("reprocess", failures, () => ReprocessPhase.RunAsync(http, baseAddress, server.DataDirectory, ingested, cancel.Token));
    }
    IdleConnections.Result? idle = null;
    if (options.IdleConnections > 0)
    {
        if (server is null) throw new InvalidOperationException("--idle-connections needs a server the tool starts (it reads the server's RSS)");
        Console.Error.WriteLine($"idle: opening {options.IdleConnections} WebSockets");
        idle = await AfterPhase("idle connections", failures, () => IdleConnections.RunAsync(baseAddress, server.ResidentBytes, options.IdleConnections, cancel.Token));
    }

    var report = new RunReport
    {
        Label = options.Label ?? DefaultLabel(options, rate),
        Transport = options.Transport == Transport.Http ? "http" : "ws",
        Sink = options.Sink == Sink.Kafka ? "kafka" : "local",
        Kafka = kafka,
        OfferedEventsPerSecond = rate,
        ServerArgs = options.ServerArgs,
        ServerRoles = options.ServerRoles,
        Command = "LoadTool " + string.Join(' ', args.Select(a => a.Contains(' ', StringComparison.Ordinal) ? $"\"{a}\"" : a)),
        Machine = MachineInfo.Current(),
        Settings = new RunSettings(options.Connections, options.Batch, options.Pipeline, options.Seconds, options.Warmup,
            (int)pool.Average(t => t.Frame.Length), serverLabel),
        Phases = phases,
        IngestToBaselineRatio = phases.Count == 2 && steps.Count == 0 ? phases[1].EventsPerSecond / phases[0].EventsPerSecond : double.NaN,
        BaselineKind = steps.Count > 0 ? "none" : options.Baseline.ToString().ToLowerInvariant(),
        BaselineNote = options.Baseline switch
        {
            BaselineKind.Nginx => nginx?.Description,
            BaselineKind.None when steps.Count == 0 => "none (--baseline none)",
            _ => null,
        },
        Steps = steps.Count == 0 ? null : steps,
        Freshness = freshness,
        Idle = idle,
        Reprocess = reprocess,
        Failures = failures,
    };
    Console.WriteLine(report.ToMarkdown());
    // Also on stderr, where a caller that keeps only the last lines of the log still sees them.
    foreach (string failure in failures) Console.Error.WriteLine($"FAILED: {failure}");
    if (options.Json is not null)
    {
        await File.WriteAllTextAsync(options.Json, report.ToJson(), CancellationToken.None);
        Console.Error.WriteLine($"wrote {options.Json}");
    }
    return report.Ok ? 0 : 1;
}
catch (OperationCanceledException) when (cancel.IsCancellationRequested)
{
    Console.Error.WriteLine("interrupted");
    return 130;
}
catch (Exception e)
{
    Console.Error.WriteLine($"load tool failed: {e}");
    if (server is not null) Console.Error.WriteLine($"server output (last lines):\n{server.RecentOutput()}");
    return 1;
}
finally
{
    if (nginx is not null) await nginx.DisposeAsync();
    if (server is not null) await server.DisposeAsync();
    cluster?.Dispose(); // after the server: its producer and Rollup consumer talk to it until killed
}

async Task<T?> AfterPhase<T>(string name, List<string> failures, Func<Task<T>> run) where T : class
{
    try
    {
        return await run();
    }
    catch (Exception e) when (e is not OperationCanceledException || !cancel.IsCancellationRequested)
    {
        failures.Add($"{name}: {e.Message}");
        if (server is not null) Console.Error.WriteLine($"{name} failed: {e}\nserver output (last lines):\n{server.RecentOutput()}");
        return null;
    }
}

static string DefaultLabel(LoadOptions options, double? rate)
{
    var label = new System.Text.StringBuilder(options.Transport == Transport.Http ? "HTTP POST /v1/events" : "WebSocket /v1/ws");
    if (options.Sink == Sink.Kafka) label.Append(" → Kafka (mock cluster)");
    label.Append(System.Globalization.CultureInfo.InvariantCulture, $", {options.Connections} connections × {options.Batch} events");
    if (rate is double r) label.Append(System.Globalization.CultureInfo.InvariantCulture, $", paced at {r:N0} events/s");
    if (options.ServerRoles is not null) label.Append(", server roles ").Append(options.ServerRoles);
    if (options.ServerArgs.Count > 0) label.Append(", server `").AppendJoin(' ', options.ServerArgs).Append('`');
    return label.ToString();
}

// The repo root is the first directory upwards (from here, then from the tool's binary) that
// holds Analytics.sln; Release is preferred because that is what the numbers should come from.
static string FindServer()
{
    foreach (string start in (string[])[Environment.CurrentDirectory, AppContext.BaseDirectory])
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            if (!File.Exists(Path.Combine(dir.FullName, "Analytics.sln"))) continue;
            foreach (string configuration in (string[])["Release", "Debug"])
            {
                string dll = Path.Combine(dir.FullName, "src", "Host", "bin", configuration, "net10.0", "analytics.dll");
                if (File.Exists(dll)) return dll;
            }
            throw new FileNotFoundException($"no server build under {dir.FullName}/src/Host/bin; run `dotnet build src/Host -c Release` or pass --server");
        }
    }
    throw new FileNotFoundException("repository root (Analytics.sln) not found; pass --server PATH/analytics.dll or --url");
}

// The server's [AssemblyConfiguration] ("Release"/"Debug"), read from its metadata without
// loading it: numbers from a Debug server must not pass for Release ones.
static string BuildConfiguration(string dll)
{
    try
    {
        using var pe = new PEReader(File.OpenRead(dll));
        var md = pe.GetMetadataReader();
        foreach (var handle in md.GetAssemblyDefinition().GetCustomAttributes())
        {
            var attribute = md.GetCustomAttribute(handle);
            if (attribute.Constructor.Kind != HandleKind.MemberReference) continue;
            var type = md.GetMemberReference((MemberReferenceHandle)attribute.Constructor).Parent;
            if (type.Kind != HandleKind.TypeReference || !md.StringComparer.Equals(md.GetTypeReference((TypeReferenceHandle)type).Name, "AssemblyConfigurationAttribute")) continue;
            // Blob: prolog 0x0001, then the one string argument (SerString).
            var blob = md.GetBlobReader(attribute.Value);
            if (blob.ReadUInt16() == 1 && blob.ReadSerializedString() is { Length: > 0 } configuration) return configuration;
        }
    }
    catch (BadImageFormatException)
    {
    }
    return "unknown configuration";
}

static string DisplayPath(string path)
{
    string relative = Path.GetRelativePath(Environment.CurrentDirectory, path);
    return relative.StartsWith("..", StringComparison.Ordinal) ? path : relative;
}
