using System.Net.WebSockets;
using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.Host;

/// <summary>
/// Simulated visitors for the demo: each is one browser (its own User-Agent, so its own visitor
/// id) holding one WebSocket, browsing a few pages and now and then signing up. Prints what the
/// server acknowledged.
/// </summary>
public static class DemoTraffic
{
    private static readonly string[] Pages = ["/", "/pricing", "/docs", "/blog/fast-ingest", "/blog/cookieless", "/signup"];
    private static readonly string[] Referrers = ["", "", "https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/abc"];

    public static async Task<int> RunAsync(string url, string siteKey, int visitors, TimeSpan duration)
    {
        using var stop = new CancellationTokenSource(duration);
        long accepted = 0;
        Console.WriteLine($"demo traffic: {visitors} visitors for {duration.TotalSeconds:0} s -> {url} (site key {siteKey})");
        var tasks = Enumerable.Range(0, visitors).Select(async v =>
        {
            var random = new Random(v);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var socket = new ClientWebSocket();
                    socket.Options.SetRequestHeader("User-Agent", $"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.{v}.0 Safari/537.36");
                    await socket.ConnectAsync(new Uri(url), stop.Token);
                    ulong seq = 0;
                    int pages = random.Next(1, 6);
                    string referrer = Referrers[random.Next(Referrers.Length)];
                    for (int p = 0; p < pages && !stop.IsCancellationRequested; p++)
                    {
                        var batch = new EventBatch { SiteKey = siteKey, Seq = ++seq };
                        string page = Pages[random.Next(Pages.Length)];
                        batch.Events.Add(NewEvent("pageview", $"https://demo.localhost{page}", p == 0 ? referrer : "", random));
                        if (page == "/signup" && random.Next(2) == 0)
                        {
                            var signup = NewEvent("signup", $"https://demo.localhost{page}", "", random);
                            signup.Props.Add(new Property { Key = "plan", Value = random.Next(2) == 0 ? "free" : "pro" });
                            batch.Events.Add(signup);
                        }
                        await socket.SendAsync(batch.ToByteArray(), WebSocketMessageType.Binary, true, stop.Token);
                        var buffer = new byte[4096];
                        var result = await socket.ReceiveAsync(buffer, stop.Token);
                        var ack = Ack.Parser.ParseFrom(buffer, 0, result.Count);
                        Interlocked.Add(ref accepted, ack.Accepted);
                        await Task.Delay(random.Next(500, 4000), stop.Token);
                    }
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
                }
                catch (OperationCanceledException)
                {
                }
                catch (WebSocketException e)
                {
                    Console.Error.WriteLine($"visitor {v}: {e.Message}; retrying in 1 s");
                    await Task.Delay(1000, CancellationToken.None);
                }
            }
        }).ToList();
        var progress = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try { await Task.Delay(5000, stop.Token); } catch (OperationCanceledException) { break; }
                Console.WriteLine($"  {Interlocked.Read(ref accepted)} events acknowledged");
            }
        });
        await Task.WhenAll(tasks);
        await progress;
        Console.WriteLine($"done: {accepted} events acknowledged");
        return 0;
    }

    private static Event NewEvent(string name, string url, string referrer, Random random) => new()
    {
        Id = ByteString.CopyFrom(Guid.NewGuid().ToByteArray()),
        Name = name,
        Url = url,
        Referrer = referrer,
        ClientTimeMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        ScreenWidth = (uint)(random.Next(3) switch { 0 => 390, 1 => 1280, _ => 1920 }),
        EngagementMs = (uint)random.Next(1000, 30000),
    };
}
