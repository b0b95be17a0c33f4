using System.Buffers;
using System.Buffers.Binary;
using System.Net.WebSockets;
using Analytics.Contracts.V1;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;

namespace Analytics.Benchmarks;

/// <summary>
/// WebSocket frame handling alone, without a network or our protocol, for one masked client frame
/// holding a batch of 50 events: receive the whole message into a pooled buffer, then frame a
/// small Ack. Baseline: the server end of <see cref="WebSocket.CreateFromStream(Stream, WebSocketCreationOptions)"/>
/// (the managed WebSocket ASP.NET Core would hand to /v1/ws) over an in-memory stream replaying
/// the frame. Ours: WebSocketFrames (what /v1/ws runs on Kestrel's connection pipe) over the
/// same bytes as a ReadOnlySequence. Neither side touches a socket; under load the difference
/// that matters more is the managed WebSocket's per-receive async state machines on Kestrel's
/// stream stack (see perf/README.md, "where the time goes").
/// </summary>
[MemoryDiagnoser]
public class WebSocketFrameBenchmarks
{
    private WebSocket _server = null!;
    private byte[] _buffer = [];
    private byte[] _ack = [];

    [GlobalSetup(Target = nameof(ReceiveBatchOf50AndSendAck))]
    public void Setup()
    {
        byte[] payload = Batches.Realistic(50).ToByteArray();
        var stream = new ReplayStream(MaskedClientFrame(payload));
        _server = WebSocket.CreateFromStream(stream, new WebSocketCreationOptions { IsServer = true, KeepAliveInterval = TimeSpan.Zero });
        // What a connection holds after its first ~5 KB batch grew the 4 KiB buffer: kept while under 64 KiB.
        _buffer = ArrayPool<byte>.Shared.Rent(8192);
        _ack = new Ack { Seq = 1, Status = AckStatus.Ok, Accepted = 50 }.ToByteArray();
        // A benchmark that measured a short read would look fast: check one operation first.
        int length = ReceiveBatchOf50AndSendAck().AsTask().GetAwaiter().GetResult();
        if (length != payload.Length || !_buffer.AsSpan(0, length).SequenceEqual(payload))
            throw new InvalidOperationException($"received {length} bytes, sent a {payload.Length}-byte batch");
    }

    [GlobalCleanup(Target = nameof(ReceiveBatchOf50AndSendAck))]
    public void Cleanup()
    {
        _server.Dispose();
        ArrayPool<byte>.Shared.Return(_buffer);
    }

    [GlobalCleanup(Target = nameof(PipeFramingBatchOf50AndAck))]
    public void CleanupPipeFraming() => ArrayPool<byte>.Shared.Return(_message);

    [Benchmark(Baseline = true)]
    public async ValueTask<int> ReceiveBatchOf50AndSendAck()
    {
        int length = 0;
        while (true)
        {
            var received = await _server.ReceiveAsync(_buffer.AsMemory(length), CancellationToken.None);
            length += received.Count;
            if (received.EndOfMessage) break;
        }
        await _server.SendAsync(_ack, WebSocketMessageType.Binary, endOfMessage: true, CancellationToken.None);
        return length;
    }

    private ReadOnlySequence<byte> _frame;
    private byte[] _message = [];
    private readonly byte[] _out = new byte[256];

    [GlobalSetup(Target = nameof(PipeFramingBatchOf50AndAck))]
    public void SetupPipeFraming()
    {
        byte[] payload = Batches.Realistic(50).ToByteArray();
        _frame = new ReadOnlySequence<byte>(MaskedClientFrame(payload));
        _message = ArrayPool<byte>.Shared.Rent(8192);
        _ack = new Ack { Seq = 1, Status = AckStatus.Ok, Accepted = 50 }.ToByteArray();
        if (PipeFramingBatchOf50AndAck() != payload.Length + _ack.Length + 2 || !_message.AsSpan(0, payload.Length).SequenceEqual(payload))
            throw new InvalidOperationException("the frame did not read back as the batch");
    }

    [Benchmark]
    public int PipeFramingBatchOf50AndAck()
    {
        var input = _frame;
        Span<byte> control = stackalloc byte[125];
        if (Analytics.FastIngest.Transport.WebSocketFrames.TryRead(ref input, ref _message, 0, 256 * 1024, control, out var frame) != Analytics.FastIngest.Transport.WebSocketFrames.ReadStatus.Frame)
            throw new InvalidOperationException("no frame");
        return frame.PayloadLength + Analytics.FastIngest.Transport.WebSocketFrames.Write(_out, Analytics.FastIngest.Transport.WebSocketFrames.OpBinary, _ack);
    }

    /// <summary>A binary client frame: FIN, opcode 2, masked (clients must mask), 16-bit length.</summary>
    private static byte[] MaskedClientFrame(byte[] payload)
    {
        if (payload.Length is <= 125 or > ushort.MaxValue) throw new ArgumentException("payload must need the 16-bit length form", nameof(payload));
        ReadOnlySpan<byte> key = [0x37, 0xFA, 0x21, 0x3D];
        var frame = new byte[2 + 2 + 4 + payload.Length];
        frame[0] = 0x82;
        frame[1] = 0x80 | 126;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), (ushort)payload.Length);
        key.CopyTo(frame.AsSpan(4));
        for (int i = 0; i < payload.Length; i++) frame[8 + i] = (byte)(payload[i] ^ key[i % 4]);
        return frame;
    }

    /// <summary>
    /// Reads return the same frame over and over, synchronously (data already in the socket
    /// buffer, the common case under load); writes are dropped.
    /// </summary>
    private sealed class ReplayStream(byte[] frame) : Stream
    {
        private int _position;

        public override bool CanRead => true;
        public override bool CanWrite => true;
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(Span<byte> buffer)
        {
            int n = Math.Min(buffer.Length, frame.Length - _position);
            frame.AsSpan(_position, n).CopyTo(buffer);
            _position = (_position + n) % frame.Length;
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Write(byte[] buffer, int offset, int count)
        {
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.CompletedTask;

        public override void Flush()
        {
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
