using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.LoadTool;

/// <summary>What a phase expects back for every frame it sends.</summary>
internal enum ReplyKind
{
    /// <summary>/v1/echo: the same bytes (checked by length and seq).</summary>
    Echo,
    /// <summary>/v1/ws: one Ack, OK, same seq, every event accepted.</summary>
    Ack,
    /// <summary>The nginx baseline: HTTP 204 with no body for every request.</summary>
    NoContent,
}

/// <param name="BatchesPerSecondPerConnection">Null: send as fast as replies allow. Otherwise each
/// connection sends on a fixed schedule, and latency counts from the scheduled time, so a slow
/// server cannot hide its delays by slowing the sender down (coordinated omission).</param>
internal sealed record PhaseSpec(string Name, Uri Endpoint, ReplyKind Reply, Transport Transport, int Connections, int Pipeline, TimeSpan Duration, double? BatchesPerSecondPerConnection = null);

internal sealed class PhaseResult
{
    public required string Name { get; init; }
    public required string Endpoint { get; init; }
    /// <summary>"ws" or "http".</summary>
    public required string Transport { get; init; }
    public required double Seconds { get; init; }
    public required long BatchesSent { get; init; }
    public required long EventsSent { get; init; }
    /// <summary>Replies that passed every check.</summary>
    public required long BatchesOk { get; init; }
    /// <summary>Echo: events in correct echoes. Ingest: sum of Ack.accepted over OK acks.</summary>
    public required long EventsAcked { get; init; }
    public required long BadReplies { get; init; }
    public required long MissingReplies { get; init; }
    public required double EventsPerSecond { get; init; }
    public required double BatchesPerSecond { get; init; }
    public required double P50Ms { get; init; }
    public required double P99Ms { get; init; }
    public required double P999Ms { get; init; }
    public required double MaxMs { get; init; }
    public required long ServerAllocatedBytes { get; init; }
    public required double ServerBytesPerEvent { get; init; }
    /// <summary>Delta of analytics_ingest_events_accepted_total (0 expected for the baseline).</summary>
    public required long ServerEventsAccepted { get; init; }
    /// <summary>Delta of analytics_rollup_events_stored_total: Rollup work inside the allocation figure.</summary>
    public required long? ServerRollupStored { get; init; }
    /// <summary>CPU seconds per wall second (1.0 = one core busy) over the measured window.</summary>
    public required double ClientCpuCores { get; init; }
    public required double? ServerCpuCores { get; init; }
    /// <summary>--sink kafka: the mock brokers' share of <see cref="ClientCpuCores"/> (they run in the load tool); null otherwise.</summary>
    public double? BrokerCpuCores { get; init; }
    /// <summary>The mock brokers' CPU per event acknowledged; null without them.</summary>
    public double? BrokerCpuMicrosecondsPerEvent { get; init; }
    /// <summary>Server CPU time (user + system) over the window per event acknowledged; null with --url.</summary>
    public required double? ServerCpuMicrosecondsPerEvent { get; init; }
    /// <summary>Server RSS high-water mark (VmHWM) at the end of the phase, since the server started; null with --url.</summary>
    public required long? ServerPeakRssBytes { get; init; }
    /// <summary>All processes on the machine, same unit; null off Linux.</summary>
    public required double? MachineBusyCores { get; init; }
    /// <summary>The 1-minute load average (/proc/loadavg) just before the phase opened its connections; null off Linux.
    /// It includes this tool's own previous phase: compare runs, and read <see cref="OtherCpuCores"/> for the phase itself.</summary>
    public double? LoadAverageBefore { get; init; }
    /// <summary>MB/s into new page-cache pages just before the phase (<see cref="ServerMetrics.FreshPageCacheWriteMegabytesPerSecond"/>):
    /// low on a machine whose memory is cold, where the local log's writes cost several times more.</summary>
    public double? FreshPageCacheMegabytesPerSecond { get; init; }
    /// <summary>CPU seconds other processes used during the window: the machine's busy jiffies (/proc/stat) minus
    /// this run's processes (load tool, server, and a baseline server such as nginx); null off Linux or with --url.</summary>
    public double? OtherCpuSeconds { get; init; }
    /// <summary><see cref="OtherCpuSeconds"/> per wall second: 0 on a quiet machine, 1.0 = a core taken from the run.</summary>
    public double? OtherCpuCores { get; init; }
    public required List<string> Errors { get; init; }
}

/// <summary>
/// One phase: open every connection, read the server's counters, release all connections at
/// once, send for the duration (each connection keeps up to <c>pipeline</c> batches in flight),
/// wait for every outstanding reply, read the counters again, close. Latency is per batch, from
/// just before the send to the end of its reply. Connections are opened before and closed
/// after the measured window, so handshakes count neither in throughput nor in allocations.
/// </summary>
internal static class LoadPhase
{
    /// <summary>How long to wait for outstanding replies after the send window; then they count as missing.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(30);

    private static readonly string[] Browsers =
    [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    ];

    public static async Task<PhaseResult> RunAsync(PhaseSpec spec, BatchTemplate[] pool, ServerMetrics metrics, CancellationToken cancellationToken)
    {
        int receiveBytes = Math.Max(ConnectionFrames.MaxFrameBytes(pool), 64 * 1024) + 1;
        var connections = new Connection[spec.Connections];
        for (int i = 0; i < connections.Length; i++)
        {
            var frames = new ConnectionFrames(pool, i);
            connections[i] = spec.Transport == Transport.Http
                ? new HttpConnection(spec.Reply, frames, receiveBytes, spec.BatchesPerSecondPerConnection)
                : new WebSocketConnection(spec.Reply, frames, spec.Pipeline, receiveBytes, spec.BatchesPerSecondPerConnection);
        }
        double? loadAverage = ServerMetrics.LoadAverage();
        double? pageCache = ServerMetrics.FreshPageCacheWriteMegabytesPerSecond();
        try
        {
            await Task.WhenAll(connections.Select((c, i) => c.ConnectAsync(spec.Endpoint, Browsers[i % Browsers.Length], cancellationToken)));
            var before = await metrics.ScrapeAsync(cancellationToken);

            using var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            drain.CancelAfter(spec.Duration + DrainTimeout);
            long start = Stopwatch.GetTimestamp();
            long stopAt = start + (long)(spec.Duration.TotalSeconds * Stopwatch.Frequency);
            await Task.WhenAll(connections.Select(c => Task.Run(() => c.RunAsync(stopAt, drain.Token), CancellationToken.None)));
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            cancellationToken.ThrowIfCancellationRequested();

            var after = await metrics.ScrapeAsync(cancellationToken);
            return Summarize(spec, connections, seconds, before, after, loadAverage, pageCache);
        }
        finally
        {
            await Task.WhenAll(connections.Select(c => c.CloseAsync()));
        }
    }

    private static PhaseResult Summarize(PhaseSpec spec, Connection[] connections, double seconds, ServerCounters before, ServerCounters after, double? loadAverage, double? pageCache)
    {
        // Other processes = everything busy minus ours; unknown when the server is not our child (--url).
        double? other = after.MachineBusy - before.MachineBusy - (after.ClientCpu - before.ClientCpu) - (after.ServerCpu - before.ServerCpu) - (after.HelperCpu - before.HelperCpu) is TimeSpan o
            ? Math.Max(0, o.TotalSeconds)
            : null;
        long samples = connections.Sum(c => (long)c.LatencyCount);
        var all = new long[samples];
        int at = 0;
        foreach (var c in connections)
        {
            c.Latencies.AsSpan(0, c.LatencyCount).CopyTo(all.AsSpan(at));
            at += c.LatencyCount;
        }
        Array.Sort(all);
        long eventsAcked = connections.Sum(c => c.EventsAcked);
        long batchesOk = connections.Sum(c => c.BatchesOk);
        long allocated = after.AllocatedBytes - before.AllocatedBytes;
        // Against nginx the server figures are nginx's CPU; it has no .NET allocations to count.
        bool nginx = spec.Reply == ReplyKind.NoContent;
        TimeSpan? serverCpu = nginx ? after.HelperCpu - before.HelperCpu : after.ServerCpu - before.ServerCpu;
        return new PhaseResult
        {
            Name = spec.Name,
            Endpoint = spec.Endpoint.AbsolutePath,
            Transport = spec.Transport == Transport.Http ? "http" : "ws",
            Seconds = seconds,
            BatchesSent = connections.Sum(c => c.BatchesSent),
            EventsSent = connections.Sum(c => c.EventsSent),
            BatchesOk = batchesOk,
            EventsAcked = eventsAcked,
            BadReplies = connections.Sum(c => c.BadReplies),
            MissingReplies = connections.Sum(c => c.BatchesSent - c.Replies),
            EventsPerSecond = eventsAcked / seconds,
            BatchesPerSecond = batchesOk / seconds,
            P50Ms = PercentileMs(all, 0.50),
            P99Ms = PercentileMs(all, 0.99),
            P999Ms = PercentileMs(all, 0.999),
            MaxMs = all.Length == 0 ? double.NaN : TicksToMs(all[^1]),
            ServerAllocatedBytes = allocated,
            ServerBytesPerEvent = eventsAcked == 0 || nginx ? double.NaN : (double)allocated / eventsAcked,
            ServerEventsAccepted = after.EventsAccepted - before.EventsAccepted,
            ServerRollupStored = after.RollupStored - before.RollupStored,
            ClientCpuCores = (after.ClientCpu - before.ClientCpu).TotalSeconds / seconds,
            ServerCpuCores = serverCpu?.TotalSeconds / seconds,
            BrokerCpuCores = (after.BrokerCpu - before.BrokerCpu)?.TotalSeconds / seconds,
            BrokerCpuMicrosecondsPerEvent = eventsAcked == 0 ? null : (after.BrokerCpu - before.BrokerCpu)?.TotalMicroseconds / eventsAcked,
            ServerCpuMicrosecondsPerEvent = eventsAcked == 0 ? null : serverCpu?.TotalMicroseconds / eventsAcked,
            ServerPeakRssBytes = nginx ? null : after.ServerPeakRss,
            MachineBusyCores = (after.MachineBusy - before.MachineBusy)?.TotalSeconds / seconds,
            LoadAverageBefore = loadAverage,
            FreshPageCacheMegabytesPerSecond = pageCache,
            OtherCpuSeconds = other,
            OtherCpuCores = other / seconds,
            Errors = connections.SelectMany(c => c.Errors).Distinct().Take(10).ToList(),
        };
    }

    /// <summary>Nearest-rank percentile of sorted samples.</summary>
    private static double PercentileMs(long[] sorted, double p)
    {
        if (sorted.Length == 0) return double.NaN;
        int rank = (int)Math.Ceiling(p * sorted.Length);
        return TicksToMs(sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)]);
    }

    private static double TicksToMs(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    /// <summary>
    /// One connection and its counters. A single task alternates: fill the window with sends, then
    /// read one reply. Sends and receives never overlap on the connection, so no locks, and with
    /// pipeline 1 it is the plain send-wait-send loop of a browser tab. Subclasses move the bytes.
    /// </summary>
    private abstract class Connection(ReplyKind reply, ConnectionFrames frames, int pipeline, int receiveBytes, double? batchesPerSecond)
    {
        private readonly InFlight[] _window = new InFlight[pipeline];

        /// <summary>What every reply must be.</summary>
        protected ReplyKind Reply => reply;

        /// <summary>Where a reply is read to; a reply that does not fit is an error.</summary>
        protected byte[] Receive { get; } = new byte[receiveBytes];

        public long BatchesSent, EventsSent, Replies, BatchesOk, EventsAcked, BadReplies;
        public long[] Latencies = new long[4096];
        public int LatencyCount;
        public List<string> Errors { get; } = [];

        private readonly record struct InFlight(long SentAt, ulong Seq, int SeqOffset, int Length, int Events);

        /// <summary>Opens the connection (handshake outside the measured window).</summary>
        public abstract Task ConnectAsync(Uri endpoint, string userAgent, CancellationToken cancellationToken);

        protected abstract ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken);

        /// <summary>Reads the reply to the oldest batch in flight into <see cref="Receive"/>; returns its length.</summary>
        protected abstract ValueTask<int> ReceiveAsync(CancellationToken cancellationToken);

        public abstract Task CloseAsync();

        public async Task RunAsync(long stopAt, CancellationToken drain)
        {
            int head = 0, inFlight = 0;
            long interval = batchesPerSecond is { } rate ? (long)(Stopwatch.Frequency / rate) : 0;
            // Connections start spread over one interval so a paced phase has no thundering herd.
            long nextSend = Stopwatch.GetTimestamp() + (interval == 0 ? 0 : Random.Shared.NextInt64(interval));
            try
            {
                while (true)
                {
                    while (inFlight < _window.Length && Stopwatch.GetTimestamp() < stopAt)
                    {
                        long sentAt = Stopwatch.GetTimestamp();
                        if (interval != 0)
                        {
                            if (nextSend >= stopAt) break;
                            if (nextSend > sentAt) await Task.Delay(Stopwatch.GetElapsedTime(sentAt, nextSend), drain);
                            sentAt = nextSend; // latency from the schedule, not from when we got round to it
                            nextSend += interval;
                        }
                        var (frame, seq, seqOffset, events) = frames.Next();
                        _window[(head + inFlight) % _window.Length] = new InFlight(sentAt, seq, seqOffset, frame.Length, events);
                        await SendAsync(frame, drain);
                        inFlight++;
                        BatchesSent++;
                        EventsSent += events;
                    }
                    if (inFlight == 0) return;

                    int length = await ReceiveAsync(drain);
                    long receivedAt = Stopwatch.GetTimestamp();
                    var sent = _window[head];
                    head = (head + 1) % _window.Length;
                    inFlight--;
                    Replies++;
                    RecordLatency(receivedAt - sent.SentAt);
                    Check(sent, Receive.AsSpan(0, length));
                }
            }
            catch (OperationCanceledException)
            {
                Errors.Add($"{inFlight} replies not received within {DrainTimeout.TotalSeconds:0} s after the send window");
            }
            catch (Exception e) when (e is WebSocketException or HttpRequestException or InvalidDataException or InvalidProtocolBufferException)
            {
                Errors.Add(e.Message);
            }
        }

        private void Check(in InFlight sent, ReadOnlySpan<byte> message)
        {
            if (reply == ReplyKind.NoContent)
            {
                // HttpConnection has already checked the 204; there is nothing else to compare.
                if (message.IsEmpty)
                {
                    BatchesOk++;
                    EventsAcked += sent.Events;
                    return;
                }
                Bad($"204 for seq {sent.Seq} with a {message.Length}-byte body");
                return;
            }
            if (reply == ReplyKind.Echo)
            {
                if (message.Length == sent.Length && BatchTemplate.ReadSeq(message, sent.SeqOffset) == sent.Seq)
                {
                    BatchesOk++;
                    EventsAcked += sent.Events;
                    return;
                }
                Bad($"echo of seq {sent.Seq}: {message.Length} bytes, expected {sent.Length}");
                return;
            }

            // Acks are a few bytes; the generated parser is the reference and costs ~100 ns here.
            var ack = Ack.Parser.ParseFrom(message);
            if (ack.Status == AckStatus.Ok && ack.Seq == sent.Seq) EventsAcked += ack.Accepted;
            if (ack.Status == AckStatus.Ok && ack.Seq == sent.Seq && ack.Accepted == sent.Events && ack.Rejected == 0)
            {
                BatchesOk++;
                return;
            }
            Bad($"ack for seq {sent.Seq}: {ack}");
        }

        private void Bad(string description)
        {
            BadReplies++;
            // The first few tell the story; a broken run would otherwise print millions.
            if (Errors.Count < 3) Errors.Add(description);
        }

        private void RecordLatency(long ticks)
        {
            if (LatencyCount == Latencies.Length) Array.Resize(ref Latencies, Latencies.Length * 2);
            Latencies[LatencyCount++] = ticks;
        }

        protected InvalidDataException TooLarge() => new($"reply larger than {Receive.Length - 1} bytes");
    }

    /// <summary>A WebSocket (/v1/ws or /v1/echo): one binary message per batch, one message back.</summary>
    private sealed class WebSocketConnection(ReplyKind reply, ConnectionFrames frames, int pipeline, int receiveBytes, double? batchesPerSecond)
        : Connection(reply, frames, pipeline, receiveBytes, batchesPerSecond)
    {
        private readonly ClientWebSocket _socket = new();

        public override async Task ConnectAsync(Uri endpoint, string userAgent, CancellationToken cancellationToken)
        {
            _socket.Options.SetRequestHeader("User-Agent", userAgent);
            // No pings inside a measured phase.
            _socket.Options.KeepAliveInterval = TimeSpan.Zero;
            await _socket.ConnectAsync(endpoint, cancellationToken);
        }

        protected override ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken) =>
            _socket.SendAsync(frame, WebSocketMessageType.Binary, endOfMessage: true, cancellationToken);

        protected override async ValueTask<int> ReceiveAsync(CancellationToken cancellationToken)
        {
            int length = 0;
            while (true)
            {
                if (length == Receive.Length) throw TooLarge();
                var result = await _socket.ReceiveAsync(Receive.AsMemory(length), cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    throw new InvalidDataException($"server closed the connection: {_socket.CloseStatus} {_socket.CloseStatusDescription}");
                }
                length += result.Count;
                if (result.EndOfMessage) return length;
            }
        }

        public override async Task CloseAsync()
        {
            try
            {
                if (_socket.State == WebSocketState.Open)
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
                }
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
                // Closing is best effort; the phase's numbers are already taken.
            }
            finally
            {
                _socket.Dispose();
            }
        }
    }

    /// <summary>
    /// POST /v1/events over one keep-alive HTTP/1.1 connection of its own (a handler per
    /// connection with MaxConnectionsPerServer 1), like a browser tab beaconing batches. The
    /// connection is opened before the window with a GET /healthz, so no handshake is measured.
    /// </summary>
    private sealed class HttpConnection(ReplyKind reply, ConnectionFrames frames, int receiveBytes, double? batchesPerSecond)
        : Connection(reply, frames, pipeline: 1, receiveBytes, batchesPerSecond)
    {
        private readonly HttpClient _client = new(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 1,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
            UseCookies = false,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan, // the phase's drain token bounds every request
        };
        private Uri _endpoint = null!;
        private Task<HttpResponseMessage>? _pending;

        public override async Task ConnectAsync(Uri endpoint, string userAgent, CancellationToken cancellationToken)
        {
            _endpoint = endpoint;
            _client.DefaultRequestHeaders.TryAddWithoutValidation("User-Agent", userAgent);
            using var response = await _client.GetAsync(new Uri(endpoint, "/healthz"), cancellationToken);
            response.EnsureSuccessStatusCode();
        }

        protected override ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
        {
            var content = new ReadOnlyMemoryContent(frame);
            content.Headers.TryAddWithoutValidation("Content-Type", "application/x-protobuf");
            var request = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = content };
            // Completes when the answer's headers are in; the body (the Ack) is read in ReceiveAsync.
            _pending = _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            return ValueTask.CompletedTask;
        }

        protected override async ValueTask<int> ReceiveAsync(CancellationToken cancellationToken)
        {
            using var response = await _pending!;
            _pending = null;
            // 200 OK, 403 unknown site and 503 retry all carry an Ack (checked by the caller);
            // anything else is problem+json and ends this connection's run. nginx answers 204 only.
            bool expected = Reply == ReplyKind.NoContent
                ? response.StatusCode == HttpStatusCode.NoContent
                : response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Forbidden or HttpStatusCode.ServiceUnavailable;
            if (!expected)
            {
                string body = await response.Content.ReadAsStringAsync(cancellationToken);
                throw new InvalidDataException($"POST {_endpoint.AbsolutePath}: HTTP {(int)response.StatusCode} {body[..Math.Min(body.Length, 200)]}");
            }
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            int length = 0;
            while (true)
            {
                if (length == Receive.Length) throw TooLarge();
                int n = await stream.ReadAsync(Receive.AsMemory(length), cancellationToken);
                if (n == 0) return length;
                length += n;
            }
        }

        public override Task CloseAsync()
        {
            _client.Dispose();
            return Task.CompletedTask;
        }
    }
}
