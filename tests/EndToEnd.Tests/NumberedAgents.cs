using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using Analytics.Contracts.V1;
using Google.Protobuf;

namespace Analytics.EndToEnd.Tests;

/// <summary>
/// WebSocket clients that treat the ingest endpoint as the browser agent does: every event has a
/// number (its 16-byte id is run marker, client, number), a batch stays pending until its OK ack,
/// a RETRY ack is honoured after its delay, and after any close or failure the client reconnects
/// (100 ms backoff) and resends the pending batch unchanged. What they record is the test's
/// expected value: the ids the server acknowledged, the close codes it sent, and how long each
/// client went without an acknowledgement after losing its connection.
/// </summary>
public sealed class NumberedAgents : IAsyncDisposable
{
    private readonly Uri _endpoint;
    private readonly string _siteKey;
    private readonly int _eventsPerBatch;
    private readonly TimeSpan _pause;
    private readonly int _marker = Random.Shared.Next();
    private readonly CancellationTokenSource _stop = new();   // no new batches
    private readonly CancellationTokenSource _abort = new();  // give up at once
    private readonly Task[] _clients;
    private long _sentEvents, _resentBatches, _retryAcks;

    public NumberedAgents(Uri endpoint, string siteKey, int clients, int eventsPerBatch, TimeSpan pause)
    {
        (_endpoint, _siteKey, _eventsPerBatch, _pause) = (endpoint, siteKey, eventsPerBatch, pause);
        _clients = Enumerable.Range(0, clients).Select(c => Task.Run(() => RunAsync(c))).ToArray();
    }

    /// <summary>Event ids acknowledged OK (a resent batch acknowledged again adds nothing).</summary>
    public ConcurrentDictionary<Guid, byte> Acked { get; } = new();
    public long AckedCount => Acked.Count;
    /// <summary>Distinct events made (each once, however often resent).</summary>
    public long SentEvents => Interlocked.Read(ref _sentEvents);
    public long ResentBatches => Interlocked.Read(ref _resentBatches);
    public long RetryAcks => Interlocked.Read(ref _retryAcks);
    /// <summary>Close codes the server sent (1001 when a node drains).</summary>
    public ConcurrentQueue<int> CloseCodes { get; } = new();
    /// <summary>Per lost connection: from the loss to the next OK ack, through a reconnect.</summary>
    public ConcurrentQueue<TimeSpan> Outages { get; } = new();
    /// <summary>Failures the protocol does not explain (an ack for another seq, events rejected).</summary>
    public ConcurrentQueue<string> Anomalies { get; } = new();

    public async Task WaitForAckedAsync(long count, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (AckedCount < count)
        {
            if (deadline.Elapsed > timeout) throw new TimeoutException($"{AckedCount} of {count} events acknowledged after {timeout.TotalSeconds:0} s");
            if (_clients.FirstOrDefault(c => c.IsFaulted) is { } failed) await failed;
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
    }

    /// <summary>Stops making batches and waits until every pending one is acknowledged; past
    /// <paramref name="timeout"/> the clients are aborted and this throws.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        await _stop.CancelAsync();
        var all = Task.WhenAll(_clients);
        if (await Task.WhenAny(all, Task.Delay(timeout, TestContext.Current.CancellationToken)) != all)
        {
            await _abort.CancelAsync();
            throw new TimeoutException($"clients still had unacknowledged batches {timeout.TotalSeconds:0} s after stopping");
        }
        await all;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _abort.CancelAsync();
        try { await Task.WhenAll(_clients); } catch (OperationCanceledException) { }
        _stop.Dispose();
        _abort.Dispose();
    }

    private async Task RunAsync(int client)
    {
        ulong seq = 0;
        long number = 0;
        EventBatch? pending = null;
        Stopwatch? lost = null;
        var abort = _abort.Token;
        while (!(_stop.IsCancellationRequested && pending is null))
        {
            abort.ThrowIfCancellationRequested();
            using var socket = new ClientWebSocket();
            socket.Options.SetRequestHeader("User-Agent", TestHost.BrowserUserAgent + " numbered-agent/" + client);
            try
            {
                using (var connect = CancellationTokenSource.CreateLinkedTokenSource(abort))
                {
                    connect.CancelAfter(TimeSpan.FromSeconds(5));
                    await socket.ConnectAsync(_endpoint, connect.Token);
                }
                if (pending is not null) Interlocked.Increment(ref _resentBatches);
                var buffer = new byte[4096];
                while (true)
                {
                    if (pending is null)
                    {
                        if (_stop.IsCancellationRequested) break;
                        pending = new EventBatch { SiteKey = _siteKey, Seq = ++seq };
                        for (int i = 0; i < _eventsPerBatch; i++) pending.Events.Add(NumberedEvent(client, ++number));
                        Interlocked.Add(ref _sentEvents, _eventsPerBatch);
                    }
                    using var answer = CancellationTokenSource.CreateLinkedTokenSource(abort);
                    answer.CancelAfter(TimeSpan.FromSeconds(15));
                    await socket.SendAsync(pending.ToByteArray(), WebSocketMessageType.Binary, true, answer.Token);
                    var result = await socket.ReceiveAsync(buffer, answer.Token);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        CloseCodes.Enqueue((int)(socket.CloseStatus ?? 0));
                        // Complete the close handshake at once, as a browser does.
                        try { await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, abort); } catch (WebSocketException) { }
                        throw new WebSocketException($"closed by the server: {socket.CloseStatus} {socket.CloseStatusDescription}");
                    }
                    var ack = Ack.Parser.ParseFrom(buffer, 0, result.Count);
                    if (ack.Seq != pending.Seq) Anomalies.Enqueue($"client {client}: ack for seq {ack.Seq}, expected {pending.Seq}");
                    if (ack.Status == AckStatus.Retry)
                    {
                        Interlocked.Increment(ref _retryAcks);
                        await Task.Delay(TimeSpan.FromMilliseconds(Math.Max(50, ack.RetryAfterMs)), abort);
                        continue;
                    }
                    if (ack.Status != AckStatus.Ok || ack.Accepted != pending.Events.Count)
                        Anomalies.Enqueue($"client {client}: ack {ack.Status} accepted {ack.Accepted} of {pending.Events.Count}");
                    foreach (var e in pending.Events) Acked.TryAdd(new Guid(e.Id.Span), 0);
                    pending = null;
                    if (lost is not null)
                    {
                        Outages.Enqueue(lost.Elapsed);
                        lost = null;
                    }
                    if (_pause > TimeSpan.Zero) await Task.Delay(_pause, abort);
                }
                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, abort);
                return;
            }
            catch (Exception e) when (e is WebSocketException or IOException or HttpRequestException || (e is OperationCanceledException && !abort.IsCancellationRequested))
            {
                lost ??= Stopwatch.StartNew();
                await Task.Delay(100, abort);
            }
        }
    }

    private Event NumberedEvent(int client, long number)
    {
        var id = new byte[16];
        BitConverter.TryWriteBytes(id.AsSpan(0, 4), _marker);
        BitConverter.TryWriteBytes(id.AsSpan(4, 4), client);
        BitConverter.TryWriteBytes(id.AsSpan(8, 8), number);
        return new Event { Id = ByteString.CopyFrom(id), Name = "numbered", Url = $"https://demo.localhost/{client}/{number}" };
    }
}
