using System.Globalization;

namespace Analytics.LoadTool;

/// <summary>
/// Counters at one moment. <paramref name="RollupStored"/> is null when the server does not run
/// Rollup; <paramref name="ServerCpu"/> and <paramref name="ServerPeakRss"/> when the server is not
/// our child process (--url), because only then do we know its PID.
/// </summary>
/// <paramref name="HelperCpu"/>: CPU time of another process this run started (the nginx baseline), zero without one.
/// <paramref name="BrokerCpu"/>: CPU time of the mock Kafka cluster in this process (part of <paramref name="ClientCpu"/>); null without one.
internal readonly record struct ServerCounters(long AllocatedBytes, long EventsAccepted, long? RollupStored, TimeSpan? ServerCpu, long? ServerPeakRss, TimeSpan ClientCpu, TimeSpan? MachineBusy, TimeSpan HelperCpu = default, TimeSpan? BrokerCpu = null);

/// <summary>
/// Reads the two counters the tool needs from GET /metrics (Prometheus text). The scrape itself
/// allocates a few KiB on the server, twice per phase: noise next to the phase's total. Also
/// samples CPU time of both processes: on a shared machine, the client's share is the first
/// thing to check before trusting a throughput figure.
/// </summary>
internal sealed class ServerMetrics(HttpClient http, Uri baseAddress, ServerProcess? server)
{
    private const string Allocated = "dotnet_gc_allocated_bytes_total";
    private const string Accepted = "analytics_ingest_events_accepted_total";
    // Optional: tells how much Rollup work (decode, insert into chDB) the allocation figure includes.
    private const string RollupStored = "analytics_rollup_events_stored_total";

    private readonly Uri _metrics = new(baseAddress, "/metrics");

    /// <summary>CPU time of a baseline server this run started (nginx), so that it counts as ours, not as another process's.</summary>
    public Func<TimeSpan>? HelperCpu { get; set; }

    /// <summary>CPU time of the mock Kafka cluster (--sink kafka), which runs in this process.</summary>
    public Func<TimeSpan?>? BrokerCpu { get; set; }

    public async Task<ServerCounters> ScrapeAsync(CancellationToken cancellationToken)
    {
        string text = await http.GetStringAsync(_metrics, cancellationToken);
        long? allocated = null, accepted = null, rollup = null;
        foreach (var line in text.AsSpan().EnumerateLines())
        {
            if (line.IsEmpty || line[0] == '#') continue;
            int space = line.LastIndexOf(' ');
            if (space < 0) continue;
            var name = line[..space].Trim();
            // OpenTelemetry's exporter writes a series without labels as "name{} value".
            if (name.EndsWith("{}", StringComparison.Ordinal)) name = name[..^2];
            if (name.SequenceEqual(Allocated)) allocated = ParseValue(line[(space + 1)..]);
            else if (name.SequenceEqual(Accepted)) accepted = ParseValue(line[(space + 1)..]);
            else if (name.SequenceEqual(RollupStored)) rollup = ParseValue(line[(space + 1)..]);
        }
        if (allocated is null || accepted is null)
        {
            throw new InvalidDataException($"{_metrics} lacks {(allocated is null ? Allocated : Accepted)}");
        }
        return new ServerCounters(allocated.Value, accepted.Value, rollup, server?.CpuTime, server?.PeakResidentBytes(),
            Environment.CpuUsage.TotalTime, MachineBusy(), HelperCpu?.Invoke() ?? TimeSpan.Zero, BrokerCpu?.Invoke());
    }

    // Prometheus values are floats; these counters are integers, possibly written as 1.5e+09.
    private static long ParseValue(ReadOnlySpan<char> value) =>
        long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n)
            ? n
            : (long)double.Parse(value, NumberStyles.Float, CultureInfo.InvariantCulture);

    /// <summary>
    /// MB/s at which 64 MiB go into a new file of the temporary directory's file system (page
    /// cache only: the file is deleted before any of it reaches the disk). It tells a cold
    /// machine: on a fresh VM whose memory the host has not yet backed (or has taken back: this
    /// one pages out memory unused for a minute), every new page-cache page costs a host fault,
    /// and the local log's writes with it. Measured 2026-12-02 on this VM: 464 MB/s on never
    /// touched memory against 3.8 GB/s on reused pages (dd, 1 GB), and the ingest role spent 22 %
    /// of its CPU copying into new pages (perf) against 1 % once memory was warm.
    /// </summary>
    public static double? FreshPageCacheWriteMegabytesPerSecond()
    {
        const int chunk = 1 << 20, chunks = 64;
        try
        {
            var buffer = new byte[chunk];
            Random.Shared.NextBytes(buffer);
            string path = Path.Combine(Path.GetTempPath(), $"loadtool-page-cache-{Guid.NewGuid():N}");
            var watch = System.Diagnostics.Stopwatch.StartNew();
            using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0, FileOptions.DeleteOnClose))
            {
                for (int i = 0; i < chunks; i++) file.Write(buffer);
            }
            return chunks * (double)chunk / 1e6 / watch.Elapsed.TotalSeconds;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The 1-minute load average from /proc/loadavg ("0.52 0.58 0.59 1/467 12345"); null off Linux.</summary>
    public static double? LoadAverage()
    {
        try
        {
            if (!OperatingSystem.IsLinux()) return null;
            string first = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            return double.Parse(first, NumberStyles.Float, CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>
    /// Busy CPU time of the whole machine (Linux /proc/stat, all cores): busy minus client minus
    /// server is what other processes took from the run, which makes a noisy neighbour visible.
    /// </summary>
    private static TimeSpan? MachineBusy()
    {
        // /proc/stat counts in USER_HZ, 100 on every mainstream Linux build.
        const double TicksPerSecond = 100;
        try
        {
            if (!OperatingSystem.IsLinux()) return null;
            string? cpu = File.ReadLines("/proc/stat").FirstOrDefault(l => l.StartsWith("cpu ", StringComparison.Ordinal));
            if (cpu is null) return null;
            var f = cpu.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // cpu user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
            long busy = 0;
            for (int i = 1; i <= 8 && i < f.Length; i++)
            {
                if (i is 4 or 5) continue;
                busy += long.Parse(f[i], CultureInfo.InvariantCulture);
            }
            return TimeSpan.FromSeconds(busy / TicksPerSecond);
        }
        catch (IOException)
        {
            return null;
        }
    }
}
