using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Analytics.FastIngest.Transport;

/// <summary>
/// A server WebSocket on Kestrel's connection pipes (see <see cref="WebSocketFrames"/> for why
/// not ManagedWebSocket). The caller owns the read loop, so a connection costs one async state
/// machine for its lifetime rather than several per message:
/// <code>
/// var read = await socket.Input.ReadAsync(ct);
/// var buffer = read.Buffer;
/// var step = socket.Parse(ref buffer);
/// socket.Input.AdvanceTo(buffer.Start, step == Step.NeedMore ? buffer.End : buffer.Start);
/// </code>
/// A completed data message stays in <see cref="Message"/> until <see cref="MessageDone"/>.
/// Pings are answered (pongs are written during Parse and flushed by <see cref="FlushAsync"/>).
/// The message buffer is rented from the shared pool for each message and returned after it,
/// so an idle connection holds none.
/// </summary>
internal sealed class PipeWebSocket : IDisposable
{
    private readonly int _maxMessageBytes;
    private byte[] _message = [];
    private int _messageLength;
    private byte _messageOpcode; // 0 while no message is in progress

    private PipeWebSocket(PipeReader input, PipeWriter output, int maxMessageBytes)
    {
        Input = input;
        Output = output;
        _maxMessageBytes = maxMessageBytes;
    }

    public PipeReader Input { get; }
    public PipeWriter Output { get; }

    /// <summary>What <see cref="Parse"/> found.</summary>
    public enum Step
    {
        NeedMore,
        Message,
        /// <summary>The peer sent a close frame; answer with <see cref="CloseAsync"/>.</summary>
        PeerClosed,
        /// <summary>A protocol violation (1002) or an oversized message (1009): <see cref="ErrorCode"/>.</summary>
        Error,
    }

    public ReadOnlyMemory<byte> Message => _message.AsMemory(0, _messageLength);
    public bool MessageIsText { get; private set; }
    /// <summary>A fragmented message has begun and its last frame has not arrived.</summary>
    public bool MessageInProgress => _messageOpcode != 0;
    public ushort ErrorCode { get; private set; }
    public bool HasPendingWrites { get; private set; }

    /// <summary>
    /// Completes the handshake (101 Switching Protocols) if the request is a WebSocket upgrade;
    /// null otherwise (nothing written: the caller answers).
    /// </summary>
    public static async Task<PipeWebSocket?> AcceptAsync(HttpContext context, int maxMessageBytes)
    {
        var upgrade = context.Features.Get<IHttpUpgradeFeature>();
        if (!context.WebSockets.IsWebSocketRequest || upgrade is not { IsUpgradableRequest: true }) return null;
        context.Response.Headers.Upgrade = "websocket";
        context.Response.Headers.SecWebSocketAccept = WebSocketFrames.AcceptKey(context.Request.Headers.SecWebSocketKey.ToString());
        // Sends 101 with Connection: Upgrade. From here the connection is ours: read and write the
        // connection's own pipes (what Kestrel's upgrade stream wraps, minus a stream adapter and
        // its per-read state machines). Without that feature, wrap the upgrade stream.
        var stream = await upgrade.UpgradeAsync();
        if (context.Features.Get<IConnectionTransportFeature>()?.Transport is { } transport)
            return new PipeWebSocket(transport.Input, transport.Output, maxMessageBytes);
        return new PipeWebSocket(PipeReader.Create(stream), PipeWriter.Create(stream), maxMessageBytes);
    }

    /// <summary>Reads frames from <paramref name="buffer"/> until a message is complete, more bytes are needed, or the connection must close.</summary>
    public Step Parse(ref ReadOnlySequence<byte> buffer)
    {
        Span<byte> control = stackalloc byte[125];
        while (true)
        {
            var status = WebSocketFrames.TryRead(ref buffer, ref _message, _messageLength, _maxMessageBytes, control, out var frame);
            switch (status)
            {
                case WebSocketFrames.ReadStatus.NeedMore:
                    return Step.NeedMore;
                case WebSocketFrames.ReadStatus.TooBig:
                    return Fail(WebSocketFrames.CloseMessageTooBig);
                case WebSocketFrames.ReadStatus.ProtocolError:
                    return Fail(WebSocketFrames.CloseProtocolError);
            }
            switch (frame.Opcode)
            {
                case WebSocketFrames.OpClose:
                    if (frame.PayloadLength == 1) return Fail(WebSocketFrames.CloseProtocolError);
                    return Step.PeerClosed;
                case WebSocketFrames.OpPing:
                    WriteFrame(WebSocketFrames.OpPong, control[..frame.PayloadLength]);
                    continue;
                case WebSocketFrames.OpPong:
                    continue;
                case WebSocketFrames.OpContinuation:
                    if (_messageOpcode == 0) return Fail(WebSocketFrames.CloseProtocolError);
                    break;
                default: // text or binary: starts a message
                    if (_messageOpcode != 0) return Fail(WebSocketFrames.CloseProtocolError);
                    _messageOpcode = frame.Opcode;
                    MessageIsText = frame.Opcode == WebSocketFrames.OpText;
                    break;
            }
            _messageLength += frame.PayloadLength;
            if (frame.Fin) return Step.Message;
        }
    }

    private Step Fail(ushort code)
    {
        ErrorCode = code;
        return Step.Error;
    }

    /// <summary>The current message is handled: the next Parse starts a new one. The buffer goes
    /// back to the pool (renting is cheap), so a connection holds none between messages.</summary>
    public void MessageDone()
    {
        _messageLength = 0;
        _messageOpcode = 0;
        ReleaseBuffer();
    }

    /// <summary>Writes one unmasked, unfragmented frame into the output (sent by the next flush).</summary>
    public void WriteFrame(byte opcode, ReadOnlySpan<byte> payload)
    {
        var destination = Output.GetSpan(WebSocketFrames.MaxHeaderBytes + payload.Length);
        Output.Advance(WebSocketFrames.Write(destination, opcode, payload));
        HasPendingWrites = true;
    }

    /// <summary>How long a flush may wait for the peer to take what was written (infinite unless
    /// set). Kestrel's minimum data rates do not apply to an upgraded connection, so without it a
    /// peer that never reads would hold its connection (and a drain) forever.</summary>
    public TimeSpan WriteTimeout { get; set; } = Timeout.InfiniteTimeSpan;

    public ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken)
    {
        HasPendingWrites = false;
        var pending = Output.FlushAsync(cancellationToken);
        return pending.IsCompleted || WriteTimeout == Timeout.InfiniteTimeSpan ? pending : FlushWithinAsync(pending);
    }

    /// <summary>Only when the output is backed up (the peer reads slower than it is sent to):
    /// then one timer, which cancels the pending flush at the deadline.</summary>
    private async ValueTask<FlushResult> FlushWithinAsync(ValueTask<FlushResult> pending)
    {
        using var deadline = new CancellationTokenSource(WriteTimeout);
        using var cancel = deadline.Token.Register(static output => ((PipeWriter)output!).CancelPendingFlush(), Output);
        var result = await pending;
        if (result.IsCanceled && deadline.IsCancellationRequested) throw new PeerNotReadingException(WriteTimeout);
        return result;
    }

    /// <summary>
    /// Sends a close frame and waits (briefly) for the peer's, as RFC 6455 §7.1.1 asks, so the
    /// client sees a clean close with the code. After a peer's close frame, only answers it.
    /// After a protocol error or an oversized message the offending frame is still unread, so
    /// the wait ends at once: the connection fails right after the close frame (§7.1.7).
    /// </summary>
    public async Task CloseAsync(ushort code, string reason, bool peerClosedFirst, CancellationToken cancellationToken)
    {
        Span<byte> payload = stackalloc byte[125];
        WriteFrame(WebSocketFrames.OpClose, payload[..WebSocketFrames.ClosePayload(payload, code, reason)]);
        await FlushAsync(cancellationToken);
        if (peerClosedFirst) return;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            while (true)
            {
                var read = await Input.ReadAsync(timeout.Token);
                var buffer = read.Buffer;
                var step = Parse(ref buffer);
                Input.AdvanceTo(buffer.Start, step == Step.NeedMore ? buffer.End : buffer.Start);
                if (step is Step.PeerClosed or Step.Error || read.IsCompleted) return;
                MessageDone(); // data after our close is discarded
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
        }
    }

    private void ReleaseBuffer()
    {
        if (_message.Length > 0) ArrayPool<byte>.Shared.Return(_message);
        _message = [];
    }

    public void Dispose() => ReleaseBuffer();
}

/// <summary>The peer did not take what was sent to it within <see cref="PipeWebSocket.WriteTimeout"/>.</summary>
internal sealed class PeerNotReadingException(TimeSpan timeout) : Exception($"the peer read nothing for {timeout.TotalSeconds:0} s");
