using Analytics.Rollup;
using Analytics.Store;

namespace Analytics.Perf.StoreInsert;

/// <summary>
/// Realistic raw events (pageviews with UTM'd URLs over 50 merchants, a signup in ten with two
/// properties; about 294 bytes per row), encoded with the product's <see cref="DerivedRows.WriteRaw"/>
/// so every store path gets the bytes Rollup sends. Shared by StoreInsert and the Benchmarks'
/// store insert benchmark (linked into both).
/// </summary>
internal static class RawEventRows
{
    private static readonly long Start = new DateTimeOffset(2026, 11, 24, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds();

    /// <summary>Row <paramref name="i"/>; <paramref name="random"/> (seeded by the caller) picks ids, pages and visitors.</summary>
    public static RawEvent Create(int i, Random random)
    {
        var id = new byte[16];
        random.NextBytes(id);
        var signup = i % 10 == 0;
        var received = Start + (long)i * 17;
        return new RawEvent(
            (ulong)(i % 50) + 1, (ulong)(i % 50) * 10 + 1, id, received, received - 120, signup ? "signup" : "pageview",
            $"https://shop{i % 50}.example/products/{random.Next(5000)}?utm_source=newsletter&utm_campaign=w{i % 7}",
            i % 3 == 0 ? "https://www.google.com/" : "",
            signup ? [KeyValuePair.Create("plan", "pro"), KeyValuePair.Create("trial", "14d")] : [],
            signup ? 19_990_000 : 0, signup ? "EUR" : "", 1440, (uint)random.Next(60_000), (ulong)random.NextInt64(),
            "203.0.113.0", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
            "DE", "perf", i);
    }

    /// <summary><paramref name="rows"/> rows in RowBinary batches of <paramref name="batchSize"/>, encoded once.</summary>
    public static List<byte[]> EncodeBatches(int rows, int batchSize)
    {
        var random = new Random(42);
        var batches = new List<byte[]>();
        using var writer = new RowBinaryWriter(batchSize * 400);
        for (var i = 0; i < rows; i++)
        {
            DerivedRows.WriteRaw(writer, Create(i, random));
            if ((i + 1) % batchSize == 0 || i + 1 == rows)
            {
                batches.Add(writer.WrittenSpan.ToArray());
                writer.Reset();
            }
        }
        return batches;
    }
}
