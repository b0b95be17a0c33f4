using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Analytics.Rollup.Reprocessing;

public sealed record ReprocessRequest(long MerchantId, long? SiteId, DateOnly From, DateOnly To, bool DryRun, ushort? LogicVersion);

/// <summary>One site-day to rebuild: the unit of work, of atomic switch-over and of progress.</summary>
public sealed class ReprocessUnit
{
    public long SiteId { get; set; }
    public DateOnly Day { get; set; }
    public long RawEvents { get; set; }
    public bool Done { get; set; }
    /// <summary>Dry runs: the day's numbers now and with the requested logic.</summary>
    public MetricDelta? Delta { get; set; }
    /// <summary>Rows the rebuild writes (a dry run: would write), per table.</summary>
    public Dictionary<string, long>? RowsWritten { get; set; }
    /// <summary>The generation the rebuild built (null until done): what the job's cleanup keeps
    /// (or, after a dry run, deletes).</summary>
    public ulong? Generation { get; set; }
}

public sealed record MetricValues(long Events, long Pageviews, long Visitors, long Visits);

public sealed record BucketDelta(DateTimeOffset Hour, MetricValues Before, MetricValues After);

public sealed record MetricDelta(MetricValues Before, MetricValues After, IReadOnlyList<BucketDelta> SampleBuckets);

/// <summary>
/// How a job is cut into steps: the next site-days in plan order whose raw events fit in
/// <c>maxEvents</c> (a round's worth, RollupOptions.MaxBatchRecords), one at least, at most
/// SiteDayRebuilder.MaxSiteDays of at most SiteDayRebuilder.MaxDays days. Rebuilt together they
/// cost a fixed number of statements (one read per page, one insert, four rollups, a count, one
/// activation), so many small site-days cost about what one large one does; and live rounds,
/// which run between steps, wait at most a round's worth of rebuilding, as they wait behind a
/// catch-up round. The old generations' rows are deleted once for the whole job, in its last step
/// (SiteDayRebuilder.DeleteSupersededAsync).
/// </summary>
public static class ReprocessSteps
{
    public static List<T> Next<T>(IEnumerable<T> pending, Func<T, long> rawEvents, Func<T, DateOnly> dayOf, long maxEvents)
    {
        var step = new List<T>();
        var days = new HashSet<DateOnly>();
        long events = 0;
        foreach (var unit in pending)
        {
            long n = rawEvents(unit);
            var day = dayOf(unit);
            if (step.Count > 0 && (events + n > maxEvents || step.Count == SiteDayRebuilder.MaxSiteDays
                || (days.Count == SiteDayRebuilder.MaxDays && !days.Contains(day)))) break;
            step.Add(unit);
            days.Add(day);
            events += n;
        }
        return step;
    }
}

/// <summary>
/// A reprocessing job and its progress. Persisted as JSON after every unit, so a job survives a
/// restart and resumes with the units not done yet (rebuilding a unit twice gives the same
/// result, so a unit that was interrupted is simply rebuilt).
/// </summary>
public sealed class ReprocessJob
{
    public required string Id { get; init; }
    public required ReprocessRequest Request { get; init; }
    public ushort LogicVersion { get; init; }
    public string State { get; set; } = "queued";
    public List<ReprocessUnit>? Units { get; set; }
    public long EventsTotal { get; set; }
    public long EventsDone { get; set; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    public double EventsPerSecond { get; set; }
    /// <summary>Whether the rows the job's rebuilds superseded are deleted (its last step).</summary>
    public bool Cleaned { get; set; }
    public string? Error { get; set; }

    [JsonIgnore]
    public bool IsFinished => State is "done" or "failed";

    /// <summary>Rows each table gets (dry runs: would get) and partitions touched.</summary>
    public long Partitions => Units?.Count ?? 0;
}

/// <summary>Jobs in memory and on disk (one JSON file per job); the API and Rollup share it.</summary>
public sealed class ReprocessQueue
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };
    private readonly string _directory;
    private readonly ConcurrentDictionary<string, ReprocessJob> _jobs = new();
    private readonly Lock _saveLock = new();

    public ReprocessQueue(string directory)
    {
        _directory = directory;
        Directory.CreateDirectory(directory);
        foreach (var file in Directory.EnumerateFiles(directory, "*.json"))
        {
            var job = JsonSerializer.Deserialize<ReprocessJob>(File.ReadAllText(file), Json);
            if (job is not null) _jobs[job.Id] = job;
        }
    }

    /// <summary>Raised on Rollup's loop once a rebuilt site-day (merchant id, site id, UTC day) is
    /// active, i.e. readers see the new numbers; never for a dry run. Handlers must return at once
    /// and never throw: the edge purge notifier only queues the day (src/Host/EdgePurger.cs).</summary>
    public event Action<long, long, DateOnly>? SiteDayActivated;

    public void OnSiteDayActivated(long merchantId, long siteId, DateOnly day) => SiteDayActivated?.Invoke(merchantId, siteId, day);

    public ReprocessJob Enqueue(ReprocessRequest request, ushort logicVersion)
    {
        var job = new ReprocessJob
        {
            Id = DateTimeOffset.UtcNow.ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..8],
            Request = request,
            LogicVersion = logicVersion,
            CreatedAt = DateTimeOffset.UtcNow,
        };
        _jobs[job.Id] = job;
        Save(job);
        return job;
    }

    public ReprocessJob? Get(string id) => _jobs.TryGetValue(id, out var job) ? job : null;

    /// <summary>The oldest job not finished yet (queued, or running when the process stopped).</summary>
    public ReprocessJob? NextPending() => _jobs.Values.Where(j => !j.IsFinished).OrderBy(j => j.CreatedAt).FirstOrDefault();

    public void Save(ReprocessJob job)
    {
        lock (_saveLock)
        {
            string path = Path.Combine(_directory, job.Id + ".json");
            string temp = path + ".tmp";
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write))
            {
                JsonSerializer.Serialize(stream, job, Json);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
    }

    /// <summary>A snapshot for the API (the worker keeps mutating the live object).</summary>
    public string Describe(ReprocessJob job)
    {
        lock (_saveLock) return JsonSerializer.Serialize(job, Json);
    }
}
