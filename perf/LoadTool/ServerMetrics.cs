using System.Globalization;

namespace Analytics.LoadTool;

/// <summary>
/// Counters at one moment. <paramref name="RollupStored"/> is null when the server does not run
/// Rollup, <paramref name="ServerCpu"/> when the server is not our child process.
/// </summary>
internal readonly record struct ServerCounters(long AllocatedBytes, long EventsAccepted, long? RollupStored, TimeSpan? ServerCpu, TimeSpan ClientCpu);

/// <summary>
/// Reads the two counters the tool needs from GET /metrics (Prometheus text). The scrape itself
/// allocates a few KiB on the server, twice per phase: noise next to the phase's total. Also
/// samples CPU time of both processes: on a shared machine, the client's share is the first
/// thing to check before trusting a throughput figure.
/// </summary>
internal sealed class ServerMetrics(HttpClient http, Uri baseAddress, Func<TimeSpan?> serverCpu)
{
    private const string Allocated = "dotnet_gc_allocated_bytes_total";
    private const string Accepted = "analytics_ingest_events_accepted_total";
    // Optional: tells how much Rollup work (decode, insert into chDB) the allocation figure includes.
    private const string RollupStored = "analytics_rollup_events_stored_total";

    private readonly Uri _metrics = new(baseAddress, "/metrics");

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
            if (name.SequenceEqual(Allocated)) allocated = ParseValue(line[(space + 1)..]);
            else if (name.SequenceEqual(Accepted)) accepted = ParseValue(line[(space + 1)..]);
            else if (name.SequenceEqual(RollupStored)) rollup = ParseValue(line[(space + 1)..]);
        }
        if (allocated is null || accepted is null)
        {
            throw new InvalidDataException($"{_metrics} lacks {(allocated is null ? Allocated : Accepted)}");
        }
        return new ServerCounters(allocated.Value, accepted.Value, rollup, serverCpu(), Environment.CpuUsage.TotalTime);
    }

    // Prometheus values are floats; these counters are integers, possibly written as 1.5e+09.
    private static long ParseValue(ReadOnlySpan<char> value) =>
        long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n)
            ? n
            : (long)double.Parse(value, NumberStyles.Float, CultureInfo.InvariantCulture);
}
