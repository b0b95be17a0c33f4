using System.Globalization;

namespace Analytics.LoadTool;

/// <summary>How the ingest phase sends its batches.</summary>
internal enum Transport
{
    /// <summary>GET /v1/ws: one WebSocket per connection, one Ack message per batch.</summary>
    WebSocket,
    /// <summary>POST /v1/events: one request per batch over keep-alive HTTP/1.1 connections.</summary>
    Http,
}

/// <summary>What the ingest phase is compared with, in the same run.</summary>
internal enum BaselineKind
{
    /// <summary>GET /v1/echo on the server under test: Kestrel's WebSocket path with no ingest work.</summary>
    Echo,
    /// <summary>Debian's nginx answering <c>return 204</c> to the same HTTP requests (<see cref="NginxBaseline"/>).</summary>
    Nginx,
    /// <summary>No baseline phase (e.g. nginx is not installed).</summary>
    None,
}

/// <summary>Where the server under test writes what it acknowledges.</summary>
internal enum Sink
{
    /// <summary>The server's durable local log under its data directory (the default).</summary>
    Local,
    /// <summary>Kafka: a librdkafka mock cluster in the load tool's process (<see cref="KafkaSink"/>).</summary>
    Kafka,
}

/// <summary>Command-line options, hand-parsed as <c>--name value</c> pairs and bare flags.</summary>
internal sealed class LoadOptions
{
    public const string Usage = """
        usage: LoadTool [options]
          --server PATH      analytics.dll to start (default: src/Host/bin/Release, else Debug, under the repo root)
          --url URL          use an already running server (http://host:port, started with --demo --echo)
          --connections N    WebSocket connections per phase (default 32)
          --batch N          events per batch, 1-500 (default 50)
          --seconds S        measured seconds per phase (default 10)
          --warmup S         unmeasured seconds per phase before it (default 2)
          --pipeline N       batches in flight per connection (default 1: send, wait for ack, send)
          --server-roles R   pass --roles R to the server it starts (default: the server's, all roles);
                             e.g. "ingest" measures ingest without Rollup working in the same process
          --server-args "A B"  more arguments for the server it starts, appended to its command line
                             (split at spaces; double quotes keep one argument together)
          --transport T      ws (default): batches over WebSockets to /v1/ws; http: the same batches
                             POSTed to /v1/events over keep-alive connections (one per --connections)
          --sink S           local (default): the server's local log; kafka: start a 3-broker Kafka mock
                             cluster in this process (topic with 6 partitions, replication factor 3) and
                             the server with --log kafka --kafka-bootstrap pointing at it (not with --url)
          --baseline B       echo (default): the /v1/echo WebSocket phase first; nginx: Debian's nginx
                             (/usr/sbin/nginx, a child process, `return 204`) with the same HTTP requests
                             (needs --transport http); none: the ingest phase alone
          --label TEXT       what this run measures, for the table and RESULTS.md (default: from the options)
          --site-key KEY     site key for /v1/ws (default demo-site-key)
          --json FILE        also write the results as JSON
          --smoke            CI check: 8 connections, batch 10, 2 s, 0.5 s warm-up
          --rate N           offer N events/s in total, paced per connection (e.g. half of peak);
                             latency then counts from each batch's scheduled send time
          --rate-from FILE[,FILE...]  --rate = a fraction (--rate-fraction, default 0.5) of the ingest
                             events/s measured in an earlier run's --json FILE (several: their median)
          --freshness        during the ingest phase, probe send-to-visible time in the query API: one
                             pageview per --freshness-interval, each a sample; percentiles from 60 samples
          --freshness-interval MS  one probe pageview per MS milliseconds (default 100)
          --steps R1,R2,...  sustained load instead of the two phases: one paced ingest phase per rate
                             (events/s), each --seconds long with the freshness probe, Rollup caught up
                             before each; stops after the first step that fails (see SteppedLoad)
          --idle-connections N   afterwards, hold N idle WebSockets; report server RSS growth per connection
          --reprocess        afterwards, wait for Rollup to store everything, then reprocess it all
                             (POST /admin/reprocess) and report raw events reprocessed per second

        usage: LoadTool --write-results FILE.md --results DIR [--command TEXT]
          writes FILE.md (e.g. perf/RESULTS.md) from the JSON files in DIR: every LoadTool --json,
          StoreInsert --json and BenchmarkDotNet JSON report (under DIR, any depth)
        """;

    public string? Server { get; private set; }
    public Uri? Url { get; private set; }
    public int Connections { get; private set; } = 32;
    public int Batch { get; private set; } = 50;
    public double Seconds { get; private set; } = 10;
    public double Warmup { get; private set; } = 2;
    public int Pipeline { get; private set; } = 1;
    public string SiteKey { get; private set; } = "demo-site-key";
    public string? ServerRoles { get; private set; }
    /// <summary>Extra server arguments, already split.</summary>
    public IReadOnlyList<string> ServerArgs { get; private set; } = [];
    public Transport Transport { get; private set; } = Transport.WebSocket;
    public Sink Sink { get; private set; } = Sink.Local;
    public BaselineKind Baseline { get; private set; } = BaselineKind.Echo;
    public string? Label { get; private set; }
    public string? Json { get; private set; }
    public bool Smoke { get; private set; }
    /// <summary>After the phases: reprocess everything ingested and measure raw events/s.</summary>
    public bool Reprocess { get; private set; }
    /// <summary>During the ingest phase: how long until an acknowledged event shows in the query API.</summary>
    public bool Freshness { get; private set; }
    /// <summary>One probe pageview per this interval (each one sample): 100 ms gives 100 samples in a 10 s phase.</summary>
    public TimeSpan FreshnessInterval { get; private set; } = TimeSpan.FromMilliseconds(100);
    /// <summary>After the phases: open this many idle WebSockets and measure server memory per connection.</summary>
    public int IdleConnections { get; private set; }
    /// <summary>Total events/s to offer (paced, latency from the schedule); null = as fast as possible.</summary>
    public double? Rate { get; private set; }
    /// <summary>Take <see cref="Rate"/> from this earlier report: <see cref="RateFraction"/> of its ingest events/s.</summary>
    public IReadOnlyList<string> RateFrom { get; private set; } = [];
    /// <summary>Sustained mode: these offered rates in turn, no baseline (<see cref="SteppedLoad"/>).</summary>
    public IReadOnlyList<double> Steps { get; private set; } = [];
    public double RateFraction { get; private set; } = 0.5;

    /// <summary>Results mode: write this Markdown file from the JSON files in <see cref="ResultsDirectory"/>.</summary>
    public string? WriteResults { get; private set; }
    public string? ResultsDirectory { get; private set; }
    /// <summary>The command that produced the results, quoted in the Markdown file.</summary>
    public string? ResultsCommand { get; private set; }

    /// <summary>Parses <paramref name="args"/>; null with <paramref name="error"/> set when they are wrong.</summary>
    public static LoadOptions? Parse(string[] args, out string? error)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var options = new LoadOptions();
        error = null;
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (arg is "--smoke")
            {
                options.Smoke = true;
                continue;
            }
            if (arg is "--reprocess")
            {
                options.Reprocess = true;
                continue;
            }
            if (arg is "--freshness")
            {
                options.Freshness = true;
                continue;
            }
            if (arg is "-h" or "--help")
            {
                error = "";
                return null;
            }
            if (!arg.StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                error = $"unexpected argument '{arg}'";
                return null;
            }
            values[arg[2..]] = args[++i];
        }

        // --smoke sets small defaults; explicit options still win. 8 connections, not 2: the server's
        // per-connection bucket (20,000 events/s, a burst of 100,000; not a setting, unlike the
        // per-IP and per-site ones the server is started with lifted) refused 18 batches of a
        // smoke run at 139,820 events/s over 2 connections (2.5 s at 70,000/s each).
        if (options.Smoke)
        {
            options.Connections = 8;
            options.Batch = 10;
            options.Seconds = 2;
            options.Warmup = 0.5;
        }
        try
        {
            foreach (var (name, value) in values)
            {
                switch (name)
                {
                    case "server": options.Server = Path.GetFullPath(value); break;
                    case "url": options.Url = new Uri(value, UriKind.Absolute); break;
                    case "connections": options.Connections = Int(name, value, 1, 10_000); break;
                    case "batch": options.Batch = Int(name, value, 1, 500); break;
                    case "seconds": options.Seconds = Double(name, value, 0.1, 3600); break;
                    case "warmup": options.Warmup = Double(name, value, 0, 3600); break;
                    case "pipeline": options.Pipeline = Int(name, value, 1, 1024); break;
                    case "site-key": options.SiteKey = value; break;
                    case "server-roles": options.ServerRoles = value; break;
                    case "json": options.Json = Path.GetFullPath(value); break;
                    case "rate": options.Rate = Double(name, value, 1, 1e9); break;
                    case "rate-from": options.RateFrom = [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(Path.GetFullPath)]; break;
                    case "rate-fraction": options.RateFraction = Double(name, value, 0.001, 10); break;
                    case "freshness-interval": options.FreshnessInterval = TimeSpan.FromMilliseconds(Double(name, value, 10, 60_000)); break;
                    case "steps": options.Steps = [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(v => Double(name, v, 1, 1e9))]; break;
                    case "idle-connections": options.IdleConnections = Int(name, value, 0, 1_000_000); break;
                    case "server-args": options.ServerArgs = SplitArguments(value); break;
                    case "label": options.Label = value; break;
                    case "transport": options.Transport = Choice(name, value, ("ws", Transport.WebSocket), ("http", Transport.Http)); break;
                    case "baseline": options.Baseline = Choice(name, value, ("echo", BaselineKind.Echo), ("nginx", BaselineKind.Nginx), ("none", BaselineKind.None)); break;
                    case "sink": options.Sink = Choice(name, value, ("local", Sink.Local), ("kafka", Sink.Kafka)); break;
                    case "write-results": options.WriteResults = Path.GetFullPath(value); break;
                    case "results": options.ResultsDirectory = Path.GetFullPath(value); break;
                    case "command": options.ResultsCommand = value; break;
                    default: error = $"unknown option --{name}"; return null;
                }
            }
        }
        catch (FormatException e)
        {
            error = e.Message;
            return null;
        }
        error = options.Conflicts();
        return error is null ? options : null;
    }

    private string? Conflicts()
    {
        if (WriteResults is not null) return ResultsDirectory is null ? "--write-results needs --results DIR" : null;
        if (Rate is not null && RateFrom.Count > 0) return "give --rate or --rate-from, not both";
        if (Steps.Count > 0 && (Rate is not null || RateFrom.Count > 0)) return "--steps sets the rate of each step; leave out --rate and --rate-from";
        if (Baseline == BaselineKind.Nginx && Transport != Transport.Http) return "--baseline nginx compares HTTP requests: it needs --transport http";
        if (Steps.Count > 0 && Url is not null) return "--steps needs a server the tool starts (the freshness probe reads its admin client)";
        // HTTP/1.1 has no pipelining in HttpClient: a second request on the connection would
        // only queue in the client, and the frame it carries would be patched while queued.
        if (Transport == Transport.Http && Pipeline != 1) return "--pipeline applies to --transport ws only";
        // The tool owns the cluster and the server's --log options; an external server has its own log.
        if (Sink == Sink.Kafka && Url is not null) return "--sink kafka starts its own server and mock cluster; it cannot be used with --url";
        if (Sink == Sink.Kafka && ServerArgs.Any(a => a.StartsWith("--log", StringComparison.Ordinal) || a.StartsWith("--kafka-", StringComparison.Ordinal)))
            return "--sink kafka sets the server's --log and --kafka-* options itself; leave them out of --server-args";
        return null;
    }

    /// <summary>Splits at spaces; double quotes group (<c>--name "two words"</c>). No escapes: server options need none.</summary>
    internal static string[] SplitArguments(string text)
    {
        var result = new List<string>();
        var current = new System.Text.StringBuilder();
        bool quoted = false, any = false;
        foreach (char c in text)
        {
            if (c == '"')
            {
                quoted = !quoted;
                any = true;
            }
            else if (c == ' ' && !quoted)
            {
                if (any) result.Add(current.ToString());
                current.Clear();
                any = false;
            }
            else
            {
                current.Append(c);
                any = true;
            }
        }
        if (quoted) throw new FormatException("--server-args has an unclosed double quote");
        if (any) result.Add(current.ToString());
        return [.. result];
    }

    private static T Choice<T>(string name, string value, params (string Name, T Value)[] choices) =>
        choices.FirstOrDefault(c => c.Name == value) is { Name: not null } match
            ? match.Value
            : throw new FormatException($"--{name} must be {string.Join(" or ", choices.Select(c => c.Name))}, not '{value}'");

    private static int Int(string name, string value, int min, int max) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= min && n <= max
            ? n
            : throw new FormatException($"--{name} must be an integer from {min} to {max}, not '{value}'");

    private static double Double(string name, string value, double min, double max) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double n) && n >= min && n <= max
            ? n
            : throw new FormatException($"--{name} must be a number from {min} to {max}, not '{value}'");
}
