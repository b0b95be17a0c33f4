using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.FastIngest.Tests;

/// <summary>Random but valid batches, built with the Google.Protobuf reference types.</summary>
internal static class Samples
{
    private static readonly string[] Texts = ["", "a", "pageview", "signup", "ünïcødé ✓", "日本語", "emoji 🎉", new string('x', 300)];

    public static Event RandomEvent(Random r)
    {
        var e = new Event
        {
            Id = ByteString.CopyFrom(RandomBytes(r, 16)),
            Name = r.Next(3) == 0 ? Texts[r.Next(Texts.Length)] : "pageview",
            ClientTimeMs = r.Next(4) == 0 ? 0 : 1_700_000_000_000 + r.Next(),
            Url = r.Next(5) == 0 ? "" : $"https://shop.example/{Texts[r.Next(Texts.Length)]}?utm_source=x&i={r.Next()}",
            Referrer = r.Next(2) == 0 ? "" : "https://www.google.com/search?q=" + r.Next(),
            RevenueMicros = r.Next(4) == 0 ? r.NextInt64(-1_000_000, 1_000_000_000) : 0,
            Currency = r.Next(4) == 0 ? "EUR" : "",
            ScreenWidth = (uint)r.Next(0, 3000),
            EngagementMs = (uint)r.Next(0, 100_000),
        };
        int props = r.Next(4) == 0 ? r.Next(0, 6) : 0;
        for (int i = 0; i < props; i++) e.Props.Add(new Property { Key = "k" + i, Value = Texts[r.Next(Texts.Length)] });
        return e;
    }

    public static EventBatch RandomBatch(Random r, int maxEvents = 8)
    {
        var batch = new EventBatch { SiteKey = "site_" + r.Next(1000), Seq = (ulong)r.NextInt64() };
        int n = r.Next(0, maxEvents + 1);
        for (int i = 0; i < n; i++) batch.Events.Add(RandomEvent(r));
        return batch;
    }

    public static Event ValidPageview() => new()
    {
        Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
        Name = "pageview",
        Url = "https://shop.example/products/1",
    };

    public static byte[] RandomBytes(Random r, int n)
    {
        var b = new byte[n];
        r.NextBytes(b);
        return b;
    }
}
