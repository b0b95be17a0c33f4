using System.Buffers;
using System.Buffers.Binary;
using System.Net.WebSockets;
using System.Text;
using Analytics.FastIngest.Transport;
using static Analytics.FastIngest.Transport.WebSocketFrames;

namespace Analytics.FastIngest.Tests;

/// <summary>
/// The hand-written RFC 6455 framing against a naive reference (unmasking), a test encoder
/// (parsing) and the library's ManagedWebSocket as a client (writing).
/// </summary>
public class WebSocketFramesTests
{
    private const int Unlimited = 1 << 20;

    // ---- a test encoder: client frames as RFC 6455 §5.2 lays them out ----

    /// <summary>The header: FIN/RSV/opcode byte, mask bit and the shortest length form, then the key.</summary>
    private static byte[] Header(byte b0, ulong length, byte[]? key)
    {
        var header = new List<byte> { b0 };
        byte maskBit = key is null ? (byte)0 : (byte)0x80;
        if (length <= 125)
        {
            header.Add((byte)(maskBit | (byte)length));
        }
        else if (length <= ushort.MaxValue)
        {
            header.Add((byte)(maskBit | 126));
            header.AddRange([(byte)(length >> 8), (byte)length]);
        }
        else
        {
            header.Add((byte)(maskBit | 127));
            for (int shift = 56; shift >= 0; shift -= 8) header.Add((byte)(length >> shift));
        }
        if (key is not null) header.AddRange(key);
        return [.. header];
    }

    private static byte[] ClientFrame(byte opcode, byte[] payload, bool fin = true, bool masked = true, byte rsv = 0, int seed = 1)
    {
        byte[]? key = null;
        if (masked)
        {
            key = new byte[4];
            new Random(seed).NextBytes(key);
        }
        var frame = new List<byte>(Header((byte)((fin ? 0x80 : 0) | rsv | opcode), (ulong)payload.Length, key));
        for (int i = 0; i < payload.Length; i++) frame.Add(key is null ? payload[i] : (byte)(payload[i] ^ key[i % 4]));
        return [.. frame];
    }

    private static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary><paramref name="bytes"/> as a sequence of segments cut at <paramref name="cuts"/> (ascending).</summary>
    private static ReadOnlySequence<byte> Segmented(byte[] bytes, params int[] cuts)
    {
        int start = cuts.Length == 0 ? bytes.Length : cuts[0];
        var first = new Segment(bytes.AsMemory(0, start), 0);
        var last = first;
        for (int i = 0; i < cuts.Length; i++)
        {
            int end = i + 1 < cuts.Length ? cuts[i + 1] : bytes.Length;
            last = last.Append(bytes.AsMemory(start, end - start));
            start = end;
        }
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private readonly record struct Result(ReadStatus Status, Frame Frame, byte[] Payload, ReadOnlySequence<byte> Rest);

    /// <summary>TryRead with a fresh message buffer; the payload is what landed in the message or control buffer.</summary>
    private static Result Read(ReadOnlySequence<byte> input, int maxMessageBytes = Unlimited)
    {
        byte[] message = [];
        var control = new byte[125];
        var status = TryRead(ref input, ref message, 0, maxMessageBytes, control, out var frame);
        byte[] payload = status != ReadStatus.Frame ? [] : frame.Opcode >= OpClose ? control[..frame.PayloadLength] : message[..frame.PayloadLength];
        return new Result(status, frame, payload, input);
    }

    private static Result Read(byte[] bytes, int maxMessageBytes = Unlimited) => Read(new ReadOnlySequence<byte>(bytes), maxMessageBytes);

    // ---- Unmask ----

    [Fact]
    public void Unmask_equals_a_byte_by_byte_xor_for_every_length_alignment_and_key()
    {
        var r = new Random(6455);
        for (int length = 0; length <= 200; length++)
        {
            for (int offset = 0; offset < 8; offset++)
            {
                var key = new byte[4];
                r.NextBytes(key);
                var buffer = new byte[offset + length + 8];
                r.NextBytes(buffer);
                var expected = (byte[])buffer.Clone();
                for (int i = 0; i < length; i++) expected[offset + i] ^= key[i % 4];

                Unmask(buffer.AsSpan(offset, length), BinaryPrimitives.ReadUInt32LittleEndian(key));

                Assert.True(expected.AsSpan().SequenceEqual(buffer), $"length {length}, offset {offset}");
            }
        }
    }

    // ---- TryRead: well-formed frames ----

    /// <summary>Payload lengths at the edges of the 7-bit, 16-bit and 64-bit length forms, with the header size each takes.</summary>
    public static TheoryData<int, int> LengthForms => new()
    {
        { 0, 2 }, { 1, 2 }, { 125, 2 }, { 126, 4 }, { 65535, 4 }, { 65536, 10 }, { 200_000, 10 },
    };

    [Theory]
    [MemberData(nameof(LengthForms))]
    public void A_binary_frame_of_each_length_form_reads_whole_and_unmasked(int length, int headerBytes)
    {
        var payload = RandomBytes(length, length);
        var bytes = ClientFrame(OpBinary, payload);
        Assert.Equal(headerBytes + 4 + length, bytes.Length); // 4: the masking key

        var result = Read(bytes);

        Assert.Equal(ReadStatus.Frame, result.Status);
        Assert.Equal(new Frame(true, OpBinary, length), result.Frame);
        Assert.Equal(payload, result.Payload);
        Assert.Equal(0, result.Rest.Length);
    }

    [Fact]
    public void A_frame_advances_the_input_exactly_past_itself()
    {
        var first = ClientFrame(OpText, "hello"u8.ToArray(), fin: false);
        var second = ClientFrame(OpContinuation, RandomBytes(300, 3), seed: 2);
        var result = Read([.. first, .. second]);

        Assert.Equal(new Frame(false, OpText, 5), result.Frame);
        Assert.Equal("hello"u8.ToArray(), result.Payload);
        Assert.Equal(second, result.Rest.ToArray());
    }

    [Fact]
    public void A_continuation_is_appended_after_the_message_so_far_when_the_buffer_grows()
    {
        var start = RandomBytes(1000, 4);
        var rest = RandomBytes(5000, 5);
        byte[] message = new byte[1024];
        start.CopyTo(message, 0);
        var input = new ReadOnlySequence<byte>(ClientFrame(OpContinuation, rest));

        var status = TryRead(ref input, ref message, start.Length, Unlimited, new byte[125], out var frame);

        Assert.Equal(ReadStatus.Frame, status);
        Assert.Equal(new Frame(true, OpContinuation, rest.Length), frame);
        Assert.Equal([.. start, .. rest], message[..(start.Length + rest.Length)]);
    }

    [Theory]
    [InlineData(OpClose)]
    [InlineData(OpPing)]
    [InlineData(OpPong)]
    public void A_control_frame_goes_to_the_control_buffer_and_not_the_message(byte opcode)
    {
        var payload = RandomBytes(125, opcode);
        byte[] message = [];
        var control = new byte[125];
        var input = new ReadOnlySequence<byte>(ClientFrame(opcode, payload));

        // Control frames do not count against the message limit.
        var status = TryRead(ref input, ref message, 0, 10, control, out var frame);

        Assert.Equal(ReadStatus.Frame, status);
        Assert.Equal(new Frame(true, opcode, 125), frame);
        Assert.Equal(payload, control);
        Assert.Empty(message);
    }

    [Theory]
    [InlineData(OpBinary, 0)]
    [InlineData(OpBinary, 10)]
    [InlineData(OpBinary, 126)]
    [InlineData(OpBinary, 65536)]
    [InlineData(OpPing, 7)]
    public void Every_proper_prefix_of_a_frame_needs_more_and_leaves_the_input_alone(byte opcode, int length)
    {
        var bytes = ClientFrame(opcode, RandomBytes(length, length));
        for (int cut = 0; cut < bytes.Length; cut++)
        {
            var input = new ReadOnlySequence<byte>(bytes, 0, cut);
            var before = input;
            byte[] message = [];

            var status = TryRead(ref input, ref message, 0, Unlimited, new byte[125], out var frame);

            Assert.Equal(ReadStatus.NeedMore, status);
            Assert.Equal(before.Start, input.Start);
            Assert.Equal(before.End, input.End);
            Assert.Equal(default, frame);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    [InlineData(126)]
    [InlineData(65536)]
    public void A_frame_split_across_segments_reads_the_same_at_every_cut(int length)
    {
        var payload = RandomBytes(length, length + 1);
        var frame = ClientFrame(OpBinary, payload);
        var trailer = ClientFrame(OpPing, [1, 2, 3], seed: 9);
        byte[] bytes = [.. frame, .. trailer];
        // Every cut through the header and mask, and a spread of cuts through the payload.
        var cuts = Enumerable.Range(1, Math.Min(frame.Length, 40)).Concat(Enumerable.Range(1, 20).Select(i => frame.Length * i / 21)).Append(frame.Length).Distinct();
        foreach (int cut in cuts)
        {
            foreach (var input in new[] { Segmented(bytes, cut), Segmented(bytes, cut / 2, cut, cut, frame.Length + 1) })
            {
                var result = Read(input);
                Assert.Equal(ReadStatus.Frame, result.Status);
                Assert.Equal(new Frame(true, OpBinary, length), result.Frame);
                Assert.Equal(payload, result.Payload);
                Assert.Equal(trailer, result.Rest.ToArray());
            }
        }
    }

    [Fact]
    public void A_frame_in_one_byte_segments_reads_the_same()
    {
        var payload = RandomBytes(300, 11);
        var bytes = ClientFrame(OpBinary, payload, fin: false);
        var result = Read(Segmented(bytes, [.. Enumerable.Range(1, bytes.Length - 1)]));

        Assert.Equal(new Frame(false, OpBinary, payload.Length), result.Frame);
        Assert.Equal(payload, result.Payload);
        Assert.Equal(0, result.Rest.Length);
    }

    // ---- TryRead: protocol errors ----

    [Theory]
    [InlineData(OpBinary)]
    [InlineData(OpText)]
    [InlineData(OpContinuation)]
    [InlineData(OpPing)]
    [InlineData(OpClose)]
    public void An_unmasked_client_frame_is_a_protocol_error(byte opcode)
    {
        Assert.Equal(ReadStatus.ProtocolError, Read(ClientFrame(opcode, [1, 2, 3], masked: false)).Status);
    }

    [Theory]
    [InlineData(0x40)]
    [InlineData(0x20)]
    [InlineData(0x10)]
    [InlineData(0x70)]
    public void Any_reserved_bit_is_a_protocol_error(byte rsv)
    {
        Assert.Equal(ReadStatus.ProtocolError, Read(ClientFrame(OpBinary, [1, 2, 3], rsv: rsv)).Status);
        Assert.Equal(ReadStatus.ProtocolError, Read(ClientFrame(OpPing, [], rsv: rsv)).Status);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(13)]
    [InlineData(14)]
    [InlineData(15)]
    public void An_unknown_opcode_is_a_protocol_error(byte opcode)
    {
        Assert.Equal(ReadStatus.ProtocolError, Read(ClientFrame(opcode, [1, 2, 3])).Status);
    }

    [Theory]
    [InlineData(OpClose)]
    [InlineData(OpPing)]
    [InlineData(OpPong)]
    public void A_fragmented_control_frame_is_a_protocol_error(byte opcode)
    {
        Assert.Equal(ReadStatus.ProtocolError, Read(ClientFrame(opcode, [3, 232], fin: false)).Status);
    }

    [Theory]
    [InlineData(OpClose, 126)]
    [InlineData(OpPing, 126)]
    [InlineData(OpPong, 126)]
    [InlineData(OpPing, 65536)]
    public void A_control_frame_over_125_bytes_is_a_protocol_error(byte opcode, int length)
    {
        Assert.Equal(ReadStatus.ProtocolError, Read(ClientFrame(opcode, new byte[length])).Status);
    }

    [Fact]
    public void A_64_bit_length_with_the_top_bit_set_is_a_protocol_error()
    {
        var header = Header(0x80 | OpBinary, 1UL << 63, [1, 2, 3, 4]);
        Assert.Equal(ReadStatus.ProtocolError, Read(header, int.MaxValue).Status);
    }

    // ---- TryRead: the message limit ----

    [Theory]
    [InlineData(1001UL, 2 + 2)]
    [InlineData(70_000UL, 2 + 8)]
    [InlineData(1UL << 40, 2 + 8)]
    public void A_data_frame_over_the_limit_is_too_big_from_its_header_alone(ulong length, int headerBytes)
    {
        // Only the header (without even the masking key): the payload never has to arrive.
        var header = Header(0x80 | OpBinary, length, key: null)[..headerBytes];
        header[1] |= 0x80;
        Assert.Equal(ReadStatus.TooBig, Read(header, maxMessageBytes: 1000).Status);
        Assert.Equal(ReadStatus.TooBig, Read(Header(0x80 | OpBinary, length, [9, 8, 7, 6]), maxMessageBytes: 1000).Status);
    }

    [Fact]
    public void A_continuation_that_takes_the_message_over_the_limit_is_too_big()
    {
        byte[] message = new byte[1000];
        var control = new byte[125];
        var over = new ReadOnlySequence<byte>(ClientFrame(OpContinuation, new byte[401]));
        var exact = new ReadOnlySequence<byte>(ClientFrame(OpContinuation, new byte[400]));

        Assert.Equal(ReadStatus.TooBig, TryRead(ref over, ref message, 600, 1000, control, out _));
        Assert.Equal(ReadStatus.Frame, TryRead(ref exact, ref message, 600, 1000, control, out var frame));
        Assert.Equal(400, frame.PayloadLength);
    }

    [Fact]
    public void A_message_of_exactly_the_limit_is_read()
    {
        var payload = RandomBytes(1000, 12);
        var result = Read(ClientFrame(OpBinary, payload), maxMessageBytes: 1000);
        Assert.Equal(ReadStatus.Frame, result.Status);
        Assert.Equal(payload, result.Payload);
    }

    // ---- Write, read back by the library as a client ----

    /// <summary>The library as a client, reading <paramref name="serverBytes"/> (its own writes go after them).</summary>
    private static WebSocket ClientOver(byte[] serverBytes)
    {
        var stream = new MemoryStream();
        stream.Write(serverBytes);
        stream.Position = 0;
        return WebSocket.CreateFromStream(stream, isServer: false, subProtocol: null, keepAliveInterval: Timeout.InfiniteTimeSpan);
    }

    private static void WriteFrame(Stream stream, byte opcode, ReadOnlySpan<byte> payload)
    {
        var destination = new byte[MaxHeaderBytes + payload.Length];
        stream.Write(destination, 0, Write(destination, opcode, payload));
    }

    private static async Task<(WebSocketMessageType Type, byte[] Payload)> ReceiveMessageAsync(WebSocket client)
    {
        var received = new MemoryStream();
        var buffer = new byte[16 * 1024];
        while (true)
        {
            var result = await client.ReceiveAsync(buffer, TestContext.Current.CancellationToken);
            received.Write(buffer, 0, result.Count);
            if (result.EndOfMessage) return (result.MessageType, received.ToArray());
        }
    }

    [Theory]
    [MemberData(nameof(LengthForms))]
    public async Task Written_frames_are_read_back_by_the_library_as_a_client(int length, int headerBytes)
    {
        var payload = RandomBytes(length, length + 2);
        var destination = new byte[MaxHeaderBytes + length];
        int written = Write(destination, OpBinary, payload);
        Assert.Equal(headerBytes + length, written);

        using var client = ClientOver(destination[..written]);
        var (type, received) = await ReceiveMessageAsync(client);

        Assert.Equal(WebSocketMessageType.Binary, type);
        Assert.Equal(payload, received);
    }

    [Fact]
    public async Task Frames_written_back_to_back_are_read_back_in_order_with_a_close_at_the_end()
    {
        int[] lengths = [0, 125, 126, 65535, 65536, 3];
        var payloads = lengths.Select((l, i) => RandomBytes(l, 100 + i)).ToArray();
        var stream = new MemoryStream();
        foreach (var payload in payloads)
        {
            WriteFrame(stream, OpBinary, payload);
            WriteFrame(stream, OpPong, [1, 2, 3, 4]); // not a message: the client skips it
        }
        var reason = string.Concat(Enumerable.Repeat("😀", 100)); // 400 UTF-8 bytes: cut to fit, still valid UTF-8
        var close = new byte[125];
        WriteFrame(stream, OpClose, close.AsSpan(0, ClosePayload(close, CloseProtocolError, reason)));

        using var client = ClientOver(stream.ToArray());
        foreach (var payload in payloads)
        {
            var (type, received) = await ReceiveMessageAsync(client);
            Assert.Equal(WebSocketMessageType.Binary, type);
            Assert.Equal(payload, received);
        }
        var closing = await client.ReceiveAsync(new byte[16], TestContext.Current.CancellationToken);
        Assert.Equal(WebSocketMessageType.Close, closing.MessageType);
        Assert.Equal(WebSocketCloseStatus.ProtocolError, client.CloseStatus);
        Assert.StartsWith("😀", client.CloseStatusDescription, StringComparison.Ordinal);
    }

    [Fact]
    public void A_close_payload_is_the_code_then_the_reason_and_fits_a_control_frame()
    {
        var payload = new byte[125];
        int length = ClosePayload(payload, CloseMessageTooBig, "message over 262144 bytes");
        Assert.Equal(CloseMessageTooBig, BinaryPrimitives.ReadUInt16BigEndian(payload));
        Assert.Equal("message over 262144 bytes", Encoding.UTF8.GetString(payload, 2, length - 2));

        foreach (var reason in new[] { new string('x', 123), new string('x', 500), new string('é', 100), new string('日', 100) })
        {
            length = ClosePayload(payload, CloseNormal, reason);
            Assert.InRange(length, 2, 125);
            var text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(payload, 2, length - 2);
            Assert.StartsWith(text, reason, StringComparison.Ordinal);
        }
    }

    // ---- handshake ----

    [Fact]
    public void The_accept_key_is_the_one_in_RFC_6455()
    {
        Assert.Equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="));
    }
}
