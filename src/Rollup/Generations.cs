using System.Globalization;
using Analytics.Store;

namespace Analytics.Rollup;

/// <summary>
/// Which generation of derived rows is active for each (merchant, site, day); see
/// schemas/clickhouse/003_generations.sql. Live Rollup writes into the active generation;
/// a rebuild writes a new one and activates it. Both run in the Rollup loop, one after the
/// other, so the cache here is always what the store says. Every activation is counted in
/// <paramref name="activations"/> (when given), which tells the query service's cache of active
/// generations to read again.
/// </summary>
public sealed class Generations(IColumnStore store, string db, GenerationActivations? activations = null)
{
    private readonly Dictionary<(ulong Merchant, ulong Site, DateOnly Day), ulong> _active = new();

    /// <summary>Looks up the site-days not cached yet (one query) so that Active never waits.</summary>
    public async Task LoadAsync(IEnumerable<(ulong Merchant, ulong Site, DateOnly Day)> keys, CancellationToken ct)
    {
        var missing = keys.Distinct().Where(k => !_active.ContainsKey(k)).ToList();
        foreach (var chunk in missing.Chunk(2000))
        {
            string tuples = string.Join(',', chunk.Select(k => string.Create(CultureInfo.InvariantCulture, $"({k.Merchant},{k.Site},'{DerivedRows.Day(k.Day)}')")));
            var rows = await store.QueryRowsAsync(
                $"SELECT merchant_id, site_id, toString(day), argMax(generation, activated_at) FROM {db}.generations " +
                $"WHERE (merchant_id, site_id, day) IN ({tuples}) GROUP BY merchant_id, site_id, day", ct);
            foreach (var k in chunk) _active[k] = 0;
            foreach (var row in rows)
            {
                _active[(row[0].GetUInt64(), row[1].GetUInt64(), DateOnly.Parse(row[2].GetString()!, CultureInfo.InvariantCulture))] = row[3].GetUInt64();
            }
        }
    }

    public ulong Active(ulong merchant, ulong site, DateOnly day) => _active[(merchant, site, day)];

    /// <summary>Makes <paramref name="generation"/> the one readers see, in one atomic insert.</summary>
    public Task ActivateAsync(ulong merchant, ulong site, DateOnly day, ulong generation, ushort logicVersion, long events, CancellationToken ct) =>
        ActivateAsync([((merchant, site, day), events)], generation, logicVersion, ct);

    /// <summary>Makes <paramref name="generation"/> the one readers see for every site-day given,
    /// in one insert: one block, so readers switch all of them at once.</summary>
    public async Task ActivateAsync(IReadOnlyList<((ulong Merchant, ulong Site, DateOnly Day) Key, long Events)> siteDays, ulong generation, ushort logicVersion, CancellationToken ct)
    {
        if (siteDays.Count == 0) return;
        string rows = string.Join(", ", siteDays.Select(s => string.Create(CultureInfo.InvariantCulture,
            $"({s.Key.Merchant}, {s.Key.Site}, '{DerivedRows.Day(s.Key.Day)}', {generation}, {logicVersion}, {s.Events}, now64(6))")));
        // Counted around the insert, whatever its outcome (a failed insert may still have stored
        // the rows): a reader that kept the active generations reads them again.
        activations?.Starting();
        try
        {
            await store.ExecuteAsync($"INSERT INTO {db}.generations VALUES {rows}", ct);
        }
        finally
        {
            activations?.Finished();
        }
        foreach (var s in siteDays) _active[s.Key] = generation;
    }
}
