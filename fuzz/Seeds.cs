using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.Fuzz;

/// <summary>Valid inputs each target starts from (fuzz/corpus/TARGET is generated from these by
/// fuzz/run.sh --seed and checked in): batches and events encoded by Google.Protobuf, frames as a
/// browser's WebSocket sends them (masked, fragmented, control frames), and /v1/query bodies from
/// docs/query-api.md's kinds of question. Deterministic: the same bytes on every run.</summary>
internal static class Seeds
{
    public static IEnumerable<(string Name, byte[] Bytes)> For(string target) => target switch
    {
        "frames" => Frames(),
        "batch" => Batches().Select((b, i) => ($"batch-{i:00}", b.ToByteArray())),
        "validator" => Batches().SelectMany(b => b.Events).Select((e, i) => ($"event-{i:00}", e.ToByteArray())),
        "query" => Queries.Select((q, i) => ($"query-{i:00}.json", System.Text.Encoding.UTF8.GetBytes(q))),
        _ => [],
    };

    private static IEnumerable<EventBatch> Batches()
    {
        var r = new Random(7);
        string[] texts = ["", "pageview", "signup", "ünïcødé ✓", "日本語"];
        for (int b = 0; b < 8; b++)
        {
            var batch = new EventBatch { SiteKey = "site-key-" + b, Seq = (ulong)b };
            for (int i = 0; i < b % 4 + 1; i++)
            {
                var id = new byte[16];
                r.NextBytes(id);
                var e = new Event
                {
                    Id = ByteString.CopyFrom(id),
                    Name = i == 0 ? "pageview" : texts[r.Next(texts.Length)],
                    ClientTimeMs = 1_764_000_000_000 + r.Next(),
                    Url = $"https://shop.example/p/{texts[r.Next(texts.Length)]}?utm_source=news&i={i}",
                    Referrer = i % 2 == 0 ? "" : "https://www.google.com/search?q=shoes",
                    ScreenWidth = (uint)r.Next(320, 2560),
                    EngagementMs = (uint)r.Next(0, 60_000),
                };
                if (b % 3 == 1)
                {
                    e.Name = "purchase";
                    e.RevenueMicros = 19_990_000;
                    e.Currency = "EUR";
                }
                if (b % 2 == 1) e.Props.Add(new Property { Key = "plan", Value = texts[r.Next(texts.Length)] });
                batch.Events.Add(e);
            }
            yield return batch;
        }
    }

    private static IEnumerable<(string, byte[])> Frames()
    {
        var r = new Random(11);
        byte[] Frame(bool fin, byte opcode, int length)
        {
            var payload = new byte[length];
            r.NextBytes(payload);
            var frame = new List<byte> { (byte)((fin ? 0x80 : 0) | opcode) };
            if (length <= 125) frame.Add((byte)(0x80 | length));
            else if (length <= ushort.MaxValue) frame.AddRange([0x80 | 126, (byte)(length >> 8), (byte)length]);
            else frame.AddRange([0x80 | 127, 0, 0, 0, 0, (byte)(length >> 24), (byte)(length >> 16), (byte)(length >> 8), (byte)length]);
            var mask = new byte[4];
            r.NextBytes(mask);
            frame.AddRange(mask);
            for (int i = 0; i < length; i++) frame.Add((byte)(payload[i] ^ mask[i % 4]));
            return [.. frame];
        }
        yield return ("binary-small", Frame(true, 0x2, 40));
        yield return ("binary-126", Frame(true, 0x2, 300));
        yield return ("binary-127", Frame(true, 0x2, 70_000));
        yield return ("text", Frame(true, 0x1, 12));
        yield return ("fragmented", [.. Frame(false, 0x2, 20), .. Frame(false, 0x0, 20), .. Frame(true, 0x0, 5)]);
        yield return ("ping-between-fragments", [.. Frame(false, 0x2, 10), .. Frame(true, 0x9, 4), .. Frame(true, 0x0, 10)]);
        yield return ("close", [.. Frame(true, 0x8, 2)]);
        yield return ("pong-then-binary", [.. Frame(true, 0xA, 0), .. Frame(true, 0x2, 64)]);
    }

    private static readonly string[] Queries =
    [
        """{"site_id":"k7q2xw4mbd5rj3ta","date_range":"7d","metrics":["visitors","pageviews"]}""",
        """{"site_id":"k7q2xw4mbd5rj3ta","date_range":["2026-11-01","2026-11-30"],"metrics":["visitors"],"dimensions":["page","time:day"],"order_by":[["visitors","desc"]],"pagination":{"limit":10,"offset":5}}""",
        """{"site_id":"k7q2xw4mbd5rj3ta","date_range":"month","metrics":["visits","bounce_rate"],"filters":[["is_not","page",["/about"]],["matches","source",["^goo"]]],"include":{"comparisons":{"mode":"previous_period"}}}""",
        """{"site_id":"k7q2xw4mbd5rj3ta","date_range":"all","timezone":"Europe/Berlin","metrics":["percentage","events"],"dimensions":["country"],"include":{"comparisons":{"mode":"custom","date_range":["2025-11-01","2025-11-30"]},"time_labels":true}}""",
        """{"site_id":"k7q2xw4mbd5rj3ta","date_range":"30d","metrics":["visitors","conversion_rate"],"dimensions":["time:hour"],"filters":[["or",[["contains","page",["/blog"]],["is","country",["DE","FR"]]]]]}""",
        """{"site_id":"k7q2xw4mbd5rj3ta","date_range":"day","metrics":["pageviews","visit_duration","views_per_visit"],"dimensions":["source","device"],"filters":[["not",["is","browser",["Chrome"]]]]}""",
    ];
}
