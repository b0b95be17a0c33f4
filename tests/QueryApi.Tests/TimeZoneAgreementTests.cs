using System.Globalization;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// Two time-zone databases meet in every answer with a time dimension: the engine's own (its SQL
/// labels the buckets: formatDateTime, toDate in the zone) and the system's tzdata, which .NET
/// reads (the range's local midnights, the `time_labels` list, comparison ranges). Where they
/// disagreed, a bucket's SQL label would be missing from .NET's list (its row dropped under
/// `time_labels`) and a range's edges would cut a local day at the wrong instant. This checks
/// every zone both know, every hour from the start of last year to the end of next year, the
/// local wall time each gives to the same instant. When a tzdata update reaches one side first
/// (a country changes its rules), this fails naming the zone.
/// </summary>
public class TimeZoneAgreementTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_engine_and_dotnet_give_every_zone_the_same_local_time_at_every_hour_of_three_years()
    {
        int year = DateTime.UtcNow.Year;
        var start = new DateTimeOffset(year - 1, 1, 1, 0, 0, 0, TimeSpan.Zero);
        int steps = (int)((new DateTimeOffset(year + 2, 1, 1, 0, 0, 0, TimeSpan.Zero) - start).TotalHours);
        // IANA ids (this runs on Linux, where .NET reads /usr/share/zoneinfo) that the engine knows
        // too; the query API refuses the others. The engine's list is needed, not only .NET's:
        // GetSystemTimeZones also returns every zone found by id earlier in this process, such as
        // right/UTC (a tzdata file the engine cannot load) from another test.
        var engineZones = (await engine.Store.QueryRowsAsync("SELECT time_zone FROM system.time_zones", Ct)).Select(r => r[0].GetString()!).ToHashSet(StringComparer.Ordinal);
        var zones = TimeZoneInfo.GetSystemTimeZones().Select(z => z.Id)
            .Where(id => (id.Contains('/', StringComparison.Ordinal) || id == "UTC") && engineZones.Contains(id)).ToList();
        Assert.True(zones.Count > 300, $"only {zones.Count} zones: is tzdata installed?");
        var disagreements = new List<string>();
        foreach (string id in zones)
        {
            var tz = TimeZoneInfo.FindSystemTimeZoneById(id);
            var rows = await engine.Store.QueryRowsAsync(
                $"SELECT groupArray(label) FROM (SELECT number, formatDateTime(toDateTime('{start:yyyy-MM-dd} 00:00:00', 'UTC') + number * 3600, '%Y-%m-%d %H:%i', '{id}') AS label " +
                $"FROM numbers({steps}) ORDER BY number)", Ct);
            var labels = rows[0][0].EnumerateArray().Select(l => l.GetString()).ToArray();
            Assert.Equal(steps, labels.Length);
            for (int i = 0; i < steps; i++)
            {
                var instant = start.AddHours(i);
                string local = TimeZoneInfo.ConvertTime(instant, tz).ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);
                if (local == labels[i]) continue;
                disagreements.Add($"{id}: at {instant:yyyy-MM-dd HH:mm}Z .NET says {local}, the engine {labels[i]}");
                break;
            }
        }
        Assert.True(disagreements.Count == 0, $"{disagreements.Count} of {zones.Count} zones disagree (first instant each):\n{string.Join('\n', disagreements)}");
    }
}
