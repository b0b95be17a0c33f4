using Analytics.QueryService.Http;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// The purge contract of the surrogate keys: after reprocessing rebuilds a UTC site-day, purging
/// that site-day's keys must hit every cached answer whose range touches the day, and no answer
/// whose range does not. Checked on random ranges against plain interval arithmetic.
/// </summary>
public class SurrogateKeyTests
{
    private const string Site = "k7q2xw4mbd5rj3ta";

    [Fact]
    public void Purging_a_site_days_keys_hits_exactly_the_answers_whose_range_touches_that_day()
    {
        var random = new Random(20261130);
        var origin = new DateTimeOffset(2019, 1, 1, 0, 0, 0, TimeSpan.Zero);
        for (int i = 0; i < 3_000; i++)
        {
            // Lengths from minutes to ~12 years, so all three kinds of keys are exercised.
            var from = origin.AddMinutes(random.Next(0, 60 * 24 * 365 * 6));
            double minutes = Math.Exp(random.NextDouble() * Math.Log(60 * 24 * 365 * 12));
            var to = from.AddMinutes(Math.Max(1, minutes));
            var keys = SurrogateKeys.ForRange(Site, from, to).ToHashSet();
            Assert.NotEmpty(keys);
            foreach (int offset in new[] { -2, -1, 0, 1 })
            {
                foreach (var day in new[] { DateOnly.FromDateTime(from.UtcDateTime).AddDays(offset), DateOnly.FromDateTime(to.UtcDateTime).AddDays(offset), DateOnly.FromDateTime(from.UtcDateTime.AddTicks((to - from).Ticks / 2)) })
                {
                    var dayStart = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
                    bool touches = from < dayStart.AddDays(1) && to > dayStart;
                    bool purged = SurrogateKeys.ForSiteDay(Site, day).Any(keys.Contains);
                    // Month and year keys purge a little more than needed (the rest of their month or
                    // year), never less: a touched day must always be purged.
                    if (touches) Assert.True(purged, $"[{from:O}, {to:O}) touches {day} but its keys {string.Join(' ', keys.Take(5))}… miss it");
                    bool dayKeys = keys.All(k => k.StartsWith("sd-", StringComparison.Ordinal));
                    if (!touches && dayKeys) Assert.False(purged, $"[{from:O}, {to:O}) does not touch {day} but would be purged");
                }
            }
            Assert.True(keys.Count <= SurrogateKeys.MaxDayKeys, $"{keys.Count} keys for [{from:O}, {to:O})");
        }
    }

    [Fact]
    public void An_answer_with_a_comparison_names_the_days_of_both_ranges_and_long_pairs_share_one_tier()
    {
        var keys = new SurrogateKeys(new byte[32]);
        DateTimeOffset Utc(int y, int m, int d) => new(y, m, d, 0, 0, 0, TimeSpan.Zero);
        var week = keys.ForAnswer(1, Site, [(Utc(2026, 11, 23), Utc(2026, 11, 30)), (Utc(2026, 11, 16), Utc(2026, 11, 23))]);
        Assert.Equal(Enumerable.Range(23, 7).Select(d => $"sd-{Site}-2026-11-{d}").Concat(Enumerable.Range(16, 7).Select(d => $"sd-{Site}-2026-11-{d}")), week.Skip(2));
        // 60 + 60 days: over 92 together, so months for both ranges (Sep-Oct, then Jul-Aug).
        var months = keys.ForAnswer(1, Site, [(Utc(2026, 9, 1), Utc(2026, 10, 31)), (Utc(2026, 7, 3), Utc(2026, 9, 1))]);
        Assert.Equal([$"sm-{Site}-2026-09", $"sm-{Site}-2026-10", $"sm-{Site}-2026-07", $"sm-{Site}-2026-08"], months.Skip(2));
    }

    [Fact]
    public void The_merchant_key_is_stable_per_secret_distinct_per_merchant_and_hides_the_internal_id()
    {
        byte[] secret = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        var keys = new SurrogateKeys(secret);
        Assert.Equal(keys.Merchant(7), new SurrogateKeys(secret).Merchant(7));
        Assert.Equal(1000, Enumerable.Range(1, 1000).Select(m => keys.Merchant(m)).Distinct().Count());
        Assert.NotEqual(keys.Merchant(7), new SurrogateKeys(new byte[32]).Merchant(7));
        Assert.Matches("^m-[a-z2-7]{16}$", keys.Merchant(7));
        Assert.Throws<ArgumentException>(() => new SurrogateKeys(new byte[8]));
    }
}
