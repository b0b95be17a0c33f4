using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Analytics.ControlPlane;
using Analytics.QueryService.Query;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// A coverage-less structural fuzzer (not SharpFuzz/libFuzzer) for the /v1/query request parser:
/// valid queries with random values swapped for hostile ones (wrong types, huge numbers, empty,
/// deep nesting, impossible dates, long strings, unknown names), keys dropped or duplicated.
/// The property: the parser answers, or refuses with QueryException (a 400 naming the field) or
/// UnknownSiteException (404); any other exception would be a 500. Bounded by time
/// (ANALYTICS_FUZZ_SECONDS, default 3 s; ANALYTICS_FUZZ_SEED replays).
/// </summary>
public class QueryParserFuzzTests
{
    private static readonly Site Site = new(1, "k7q2xw4mbd5rj3ta", 1, "key", "shop.example", "Europe/Berlin", "Shop");

    private static readonly string[] Seeds =
    [
        """{"site_id":"k7q2xw4mbd5rj3ta","date_range":"7d","metrics":["visitors","pageviews"]}""",
        """{"site_id":"k7q2xw4mbd5rj3ta","date_range":["2026-11-01","2026-11-30"],"metrics":["visitors"],"dimensions":["page","time:day"],"order_by":[["visitors","desc"]],"pagination":{"limit":10,"offset":5}}""",
        """{"site_id":"k7q2xw4mbd5rj3ta","date_range":"month","metrics":["visits","bounce_rate"],"filters":[["is_not","page",["/about"]],["matches","source",["^goo"]]],"include":{"comparisons":{"mode":"previous_period"}}}""",
        """{"site_id":"k7q2xw4mbd5rj3ta","date_range":"all","timezone":"Europe/Berlin","metrics":["percentage","events"],"dimensions":["country"],"include":{"comparisons":{"mode":"custom","date_range":["2025-11-01","2025-11-30"]},"time_labels":true}}""",
    ];

    private static readonly Func<JsonNode?>[] Hostile =
    [
        () => null, () => "", () => -1, () => 0, () => 1e308, () => long.MaxValue, () => 3.5, () => true,
        () => new JsonObject(), () => new JsonArray(), () => new JsonArray(new JsonArray(new JsonArray())),
        () => "2026-02-30", () => "9999-12-31T23:59:59Z", () => "0001-01-01", () => "time:minute", () => "time:week",
        () => new string('a', 10_000), () => "\u0000", () => "(unclosed", () => "Mars/Olympus", () => "desc",
        () => new JsonArray("is", "page"), () => new JsonArray("2026-11-30", "2026-11-01"), () => "realtime",
        () => new JsonArray("visitors", "visitors"), () => new JsonArray(Enumerable.Range(0, 50).Select(i => (JsonNode?)("p" + i)).ToArray()),
    ];

    private static void Mutate(Random r, JsonNode root)
    {
        var nodes = new List<JsonNode>();
        void Walk(JsonNode? n)
        {
            if (n is null) return;
            nodes.Add(n);
            if (n is JsonObject o) foreach (var (_, v) in o) Walk(v);
            if (n is JsonArray a) foreach (var v in a) Walk(v);
        }
        Walk(root);
        var target = nodes[r.Next(nodes.Count)];
        var replacement = Hostile[r.Next(Hostile.Length)]();
        switch (target.Parent)
        {
            case JsonObject o:
                string key = o.First(p => ReferenceEquals(p.Value, target)).Key;
                if (r.Next(5) == 0) o.Remove(key); else o[key] = replacement;
                break;
            case JsonArray a:
                int i = a.IndexOf(target);
                if (r.Next(5) == 0) a.RemoveAt(i); else a[i] = replacement;
                break;
            default:
                if (root is JsonObject top && r.Next(2) == 0) top["x" + r.Next(3)] = replacement;
                break;
        }
    }

    [Fact]
    public async Task Mutated_queries_are_answered_or_refused_with_a_field_never_crash_the_parser()
    {
        double seconds = double.TryParse(Environment.GetEnvironmentVariable("ANALYTICS_FUZZ_SECONDS"), System.Globalization.CultureInfo.InvariantCulture, out double s) ? s : 3;
        int seed = int.TryParse(Environment.GetEnvironmentVariable("ANALYTICS_FUZZ_SEED"), out int v) ? v : Environment.TickCount;
        var r = new Random(seed);
        var context = new QueryParser.Context(id => id == Site.PublicId ? Site : null, _ => [],
            _ => Task.FromResult<DateTimeOffset?>(new DateTimeOffset(2026, 3, 10, 5, 0, 0, TimeSpan.Zero)), _ => Task.FromResult<string?>(null),
            new DateTimeOffset(2026, 11, 30, 14, 0, 0, TimeSpan.Zero));
        long executions = 0, refused = 0;
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed.TotalSeconds < seconds)
        {
            var root = JsonNode.Parse(Seeds[r.Next(Seeds.Length)])!;
            for (int m = 1 + r.Next(3); m > 0; m--) Mutate(r, root);
            string text = root.ToJsonString();
            using var document = JsonDocument.Parse(text);
            try
            {
                await QueryParser.ParseAsync(document.RootElement, context);
            }
            catch (Exception e) when (e is QueryException or QueryParser.UnknownSiteException)
            {
                refused++;
            }
            catch (Exception e)
            {
                Assert.Fail($"the parser threw {e.GetType().Name} on {text} (ANALYTICS_FUZZ_SEED={seed}): {e}");
            }
            executions++;
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"query parser: {executions:N0} executions ({refused:N0} refused) in {watch.Elapsed.TotalSeconds:0.0} s, seed {seed}");
        Assert.True(executions > 0);
    }
}
