// Load tool: WebSocket ingest (/v1/ws, durable acks) against the /v1/echo baseline (Kestrel's
// WebSocket path alone), same frames, same connections, same run. See perf/README.md.
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using Analytics.LoadTool;

var options = LoadOptions.Parse(args, out string? error);
if (options is null)
{
    if (!string.IsNullOrEmpty(error)) Console.Error.WriteLine($"error: {error}");
    Console.Error.WriteLine(LoadOptions.Usage);
    return 2;
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
try
{
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
        Console.Error.WriteLine($"starting {dll}");
        server = await ServerProcess.StartAsync(dll, options.ServerRoles, http, cancel.Token);
        baseAddress = server.BaseAddress;
        serverLabel = $"{DisplayPath(dll)} ({BuildConfiguration(dll)}), fsync per group commit, " +
            (options.ServerRoles is null ? "all roles (Rollup + chDB in the same process)" : $"roles {options.ServerRoles}");
    }

    var pool = BatchTemplate.Build(options.SiteKey, options.Batch, count: 16);
    var metrics = new ServerMetrics(http, baseAddress, () => server?.CpuTime);
    var ws = new UriBuilder(baseAddress) { Scheme = baseAddress.Scheme == "https" ? "wss" : "ws" };
    var failures = new List<string>();
    var phases = new List<PhaseResult>();
    FreshnessProbe.Result? freshness = null;
    foreach (var (name, path, reply) in ((string, string, ReplyKind)[])[("baseline", "/v1/echo", ReplyKind.Echo), ("ingest", "/v1/ws", ReplyKind.Ack)])
    {
        ws.Path = path;
        if (options.Warmup > 0)
        {
            Console.Error.WriteLine($"{name}: warm-up {options.Warmup:0.#} s");
            // Paced like the phase: an unpaced warm-up would leave a Rollup backlog behind it.
            double? warmPaced = options.Rate is { } warmRate ? warmRate / options.Batch / options.Connections : null;
            var warm = await LoadPhase.RunAsync(new PhaseSpec(name + " warm-up", ws.Uri, reply, options.Connections, options.Pipeline, TimeSpan.FromSeconds(options.Warmup), warmPaced), pool, metrics, cancel.Token);
            failures.AddRange(RunReport.Check(warm, isIngest: reply == ReplyKind.Ack));
        }
        Console.Error.WriteLine($"{name}: {options.Seconds:0.#} s against {ws.Uri}");
        using var probeStop = CancellationTokenSource.CreateLinkedTokenSource(cancel.Token);
        var probe = options.Freshness && reply == ReplyKind.Ack && server is not null
            ? FreshnessProbe.RunAsync(http, baseAddress, server.DataDirectory, probeStop.Token)
            : null;
        double? paced = options.Rate is { } rate ? rate / options.Batch / options.Connections : null;
        var result = await LoadPhase.RunAsync(new PhaseSpec(name, ws.Uri, reply, options.Connections, options.Pipeline, TimeSpan.FromSeconds(options.Seconds), paced), pool, metrics, cancel.Token);
        if (probe is not null)
        {
            await probeStop.CancelAsync();
            freshness = await probe;
        }
        failures.AddRange(RunReport.Check(result, isIngest: reply == ReplyKind.Ack, freshness?.EventsSent ?? 0));
        phases.Add(result);
    }

    var report = new RunReport
    {
        Command = "LoadTool " + string.Join(' ', args.Select(a => a.Contains(' ', StringComparison.Ordinal) ? $"\"{a}\"" : a)),
        Machine = MachineInfo.Current(),
        Settings = new RunSettings(options.Connections, options.Batch, options.Pipeline, options.Seconds, options.Warmup,
            (int)pool.Average(t => t.Frame.Length), serverLabel),
        Phases = phases,
        IngestToBaselineRatio = phases[1].EventsPerSecond / phases[0].EventsPerSecond,
        Failures = failures,
    };
    Console.WriteLine(report.ToMarkdown());
    if (freshness is not null)
    {
        Console.WriteLine($"""

            | freshness under the ingest load | samples | ack → visible p50 ms | p99 ms | max ms |
            |---|---:|---:|---:|---:|
            | one pageview at a time to a probe site, polled every 20 ms | {freshness.Samples} | {freshness.P50Ms:0} | {freshness.P99Ms:0} | {freshness.MaxMs:0} |
            """);
        if (freshness.Samples == 0) failures.Add("freshness: no sample completed during the ingest phase");
    }
    if (options.IdleConnections > 0)
    {
        if (server is null) throw new InvalidOperationException("--idle-connections needs a server the tool starts (it reads the server's RSS)");
        Console.Error.WriteLine($"idle: opening {options.IdleConnections} WebSockets");
        var idle = await IdleConnections.RunAsync(baseAddress, server.ResidentBytes, options.IdleConnections, cancel.Token);
        Console.WriteLine($"""

            | idle connections | server RSS before | after | per connection |
            |---:|---:|---:|---:|
            | {idle.Connections:N0} | {idle.RssBeforeBytes / 1048576.0:0.0} MiB | {idle.RssAfterBytes / 1048576.0:0.0} MiB | {idle.BytesPerConnection / 1024:0.0} KiB |
            """);
    }
    if (options.Reprocess)
    {
        if (server is null) throw new InvalidOperationException("--reprocess needs a server the tool starts (it reads the admin token from its data directory)");
        Console.Error.WriteLine("reprocess: waiting for Rollup to store everything, then rebuilding it");
        long ingested = phases[1].EventsAcked; // warm-up events come on top; lag 0 covers them
        var r = await ReprocessPhase.RunAsync(http, baseAddress, server.DataDirectory, ingested, cancel.Token);
        Console.WriteLine($"""

            | reprocess | raw events | site-days | seconds | raw events/s | Rollup catch-up before it (s) |
            |---|---:|---:|---:|---:|---:|
            | demo merchant, all of it | {r.RawEvents:N0} | {r.SiteDays} | {r.Seconds:0.0} | {r.EventsPerSecond:N0} | {r.StoreWaitSeconds:0.0} |
            """);
    }
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
    if (server is not null) await server.DisposeAsync();
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
