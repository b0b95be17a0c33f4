using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Analytics.Store;

namespace Analytics.QueryService.PreAggregates;

/// <summary>
/// Each site's active generations (schemas/clickhouse/003_generations.sql: per day, the generation
/// activated last; a day without a row is generation 0), read once and kept for as long as no
/// generation has been activated since (<see cref="GenerationActivations"/>). The planners then
/// write them into their statements as constants instead of reading <c>generations</c> in every
/// statement, which cost a small merchant's pre-aggregated statement about a quarter of its time
/// (docs/query-performance.md, "Active generations, kept between questions").
/// <para>
/// Exact because generations change only by activation, and activations are counted around their
/// inserts: a list is used only for a question that began while none ran, is kept only if none
/// started while it was read, and the question is asked again the old way (each statement reading
/// generations itself) if one started before its statement finished, since reprocessing may then
/// have deleted the rows the list points to (QueryEngine.RawAsync). Only sound where every
/// activation goes through this process (the embedded engine); the host gives the query engine
/// the count only then.
/// </para>
/// </summary>
internal sealed class ActiveGenerationCache(string database, GenerationActivations activations)
{
    // A site's entry is the days it ever reprocessed (none for most sites): small. The bound
    // keeps a process that serves very many sites from growing without limit.
    private const int MaxSites = 100_000;

    public GenerationActivations Activations => activations;

    private readonly ConcurrentDictionary<(long Merchant, long Site), (long Activations, IReadOnlyDictionary<DateOnly, ulong> Days)> _sites = new();

    /// <summary>The site's active generation of every day that has one, as of <paramref name="started"/>
    /// activations with none running (<see cref="GenerationActivations.TryQuiet"/>, asked by the
    /// caller before it reads anything else of the question); <paramref name="run"/> runs a statement.</summary>
    public async Task<IReadOnlyDictionary<DateOnly, ulong>> GetAsync(long merchantId, long siteId, long started,
        Func<string, CancellationToken, Task<IReadOnlyList<JsonElement[]>>> run, CancellationToken ct)
    {
        if (_sites.TryGetValue((merchantId, siteId), out var kept) && kept.Activations == started) return kept.Days;
        var rows = await run(string.Create(CultureInfo.InvariantCulture,
            $"SELECT toString(day), argMax(generation, activated_at) FROM {database}.generations " +
            $"WHERE merchant_id = {merchantId} AND site_id = {siteId} GROUP BY day"), ct);
        var days = new Dictionary<DateOnly, ulong>(rows.Count);
        foreach (var row in rows)
            days[DateOnly.ParseExact(row[0].GetString()!, "yyyy-MM-dd", CultureInfo.InvariantCulture)] = row[1].GetUInt64();
        if (activations.Started == started)
        {
            if (_sites.Count >= MaxSites) _sites.Clear();
            _sites[(merchantId, siteId)] = (started, days);
        }
        return days;
    }
}
