using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Analytics.FastIngest.Transport;

/// <summary>
/// RFC 6455 server-side framing, read straight from Kestrel's connection pipe. Written by hand
/// because the hot path needs what ManagedWebSocket over Kestrel's upgrade stream cannot give:
/// a gc-verbose trace of the ingest service at 1.4M events/s showed ~80 % of the bytes it
/// allocated were async state-machine boxes of the stream stack under each ReceiveAsync
/// (HttpRequestStream, Stream.ReadAtLeastAsync, ManagedWebSocket's receive and buffer fill),
/// plus a copy through ManagedWebSocket's own buffer. Here a frame is parsed from the pipe's
/// buffer synchronously and unmasked once into the message buffer. Only what an ingest endpoint
/// needs: no extensions (no permessage-deflate), no subprotocols, server frames unmasked and
/// unfragmented. Tests run it against ClientWebSocket and Chromium (the library and a browser).
/// </summary>
internal static class WebSocketFrames
{
    public const byte OpContinuation = 0x0;
    public const byte OpText = 0x1;
    public const byte OpBinary = 0x2;
    public const byte OpClose = 0x8;
    public const byte OpPing = 0x9;
    public const byte OpPong = 0xA;

    /// <summary>Close codes (RFC 6455 §7.4.1).</summary>
    public const ushort CloseNormal = 1000;
    public const ushort CloseGoingAway = 1001;
    public const ushort CloseProtocolError = 1002;
    public const ushort CloseUnsupportedData = 1003;
    public const ushort CloseInvalidPayload = 1007;
    public const ushort ClosePolicyViolation = 1008;
    public const ushort CloseMessageTooBig = 1009;

    /// <summary>Largest header a server frame needs (FIN/opcode, 127, 8-byte length).</summary>
    public const int MaxHeaderBytes = 10;

    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    /// <summary>Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.</summary>
    public static string AcceptKey(string clientKey)
    {
        Span<byte> hash = stackalloc byte[20];
        SHA1.HashData(Encoding.ASCII.GetBytes(clientKey.Trim() + AcceptGuid), hash);
        return Convert.ToBase64String(hash);
    }

    public enum ReadStatus
    {
        /// <summary>A whole frame was read (and unmasked into the destination for data frames).</summary>
        Frame,
        /// <summary>The buffer does not hold a whole frame yet.</summary>
        NeedMore,
        /// <summary>The frame breaks the protocol: close with 1002.</summary>
        ProtocolError,
        /// <summary>The frame would make the message larger than allowed: close with 1009.</summary>
        TooBig,
    }

    /// <summary>One client frame. Payload is unmasked; for data frames it was appended to the message buffer.</summary>
    public readonly record struct Frame(bool Fin, byte Opcode, int PayloadLength);

    /// <summary>
    /// Reads one frame from <paramref name="input"/> (advancing it past the frame on success).
    /// Data frames (text, binary, continuation) are unmasked into
    /// <paramref name="message"/> at <paramref name="messageLength"/>, growing it from the
    /// shared pool; control frames into <paramref name="control"/> (125 bytes at most).
    /// A frame is only taken whole: the message limit bounds how much the pipe buffers.
    /// </summary>
    public static ReadStatus TryRead(ref ReadOnlySequence<byte> input, ref byte[] message, int messageLength, int maxMessageBytes, Span<byte> control, out Frame frame)
    {
        frame = default;
        Span<byte> header = stackalloc byte[14];
        int available = (int)Math.Min(input.Length, header.Length);
        if (available < 2) return ReadStatus.NeedMore;
        input.Slice(0, available).CopyTo(header);
        byte b0 = header[0], b1 = header[1];
        bool fin = (b0 & 0x80) != 0;
        byte opcode = (byte)(b0 & 0x0F);
        // No extension was negotiated, so the reserved bits must be 0; clients must mask.
        if ((b0 & 0x70) != 0 || (b1 & 0x80) == 0) return ReadStatus.ProtocolError;
        bool isControl = opcode >= OpClose;
        if (opcode is not (OpContinuation or OpText or OpBinary or OpClose or OpPing or OpPong)) return ReadStatus.ProtocolError;

        int headerLength = 2;
        ulong length = (ulong)(b1 & 0x7F);
        if (length == 126)
        {
            if (available < 4) return ReadStatus.NeedMore;
            length = BinaryPrimitives.ReadUInt16BigEndian(header[2..]);
            headerLength = 4;
        }
        else if (length == 127)
        {
            if (available < 10) return ReadStatus.NeedMore;
            length = BinaryPrimitives.ReadUInt64BigEndian(header[2..]);
            if (length > long.MaxValue) return ReadStatus.ProtocolError;
            headerLength = 10;
        }
        if (isControl && (!fin || length > 125)) return ReadStatus.ProtocolError;
        if (!isControl && (ulong)messageLength + length > (ulong)maxMessageBytes) return ReadStatus.TooBig;
        if (available < headerLength + 4) return ReadStatus.NeedMore;
        uint mask = BinaryPrimitives.ReadUInt32LittleEndian(header[headerLength..]);
        headerLength += 4;
        if ((ulong)input.Length < (ulong)headerLength + length) return ReadStatus.NeedMore;

        int payloadLength = (int)length;
        var payload = input.Slice(headerLength, payloadLength);
        Span<byte> destination;
        if (isControl)
        {
            destination = control[..payloadLength];
        }
        else
        {
            if (message.Length < messageLength + payloadLength)
            {
                var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(messageLength + payloadLength, Math.Min(message.Length * 2, maxMessageBytes)));
                message.AsSpan(0, messageLength).CopyTo(bigger);
                if (message.Length > 0) ArrayPool<byte>.Shared.Return(message);
                message = bigger;
            }
            destination = message.AsSpan(messageLength, payloadLength);
        }
        payload.CopyTo(destination);
        Unmask(destination, mask);
        input = input.Slice(headerLength + payloadLength);
        frame = new Frame(fin, opcode, payloadLength);
        return ReadStatus.Frame;
    }

    /// <summary>XORs with the 4-byte masking key (little-endian as read), 8 bytes at a time.</summary>
    public static void Unmask(Span<byte> data, uint mask)
    {
        ulong mask64 = mask | ((ulong)mask << 32);
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        if (Vector.IsHardwareAccelerated && words.Length >= Vector<ulong>.Count)
        {
            var vectorMask = new Vector<ulong>(mask64);
            var vectors = MemoryMarshal.Cast<ulong, Vector<ulong>>(words);
            for (int i = 0; i < vectors.Length; i++) vectors[i] ^= vectorMask;
            words = words[(vectors.Length * Vector<ulong>.Count)..];
        }
        for (int i = 0; i < words.Length; i++) words[i] ^= mask64;
        int done = data.Length & ~7;
        // The key repeats every 4 bytes and 8 is a multiple of 4, so the tail starts at key byte 0.
        for (int i = done; i < data.Length; i++) data[i] ^= (byte)(mask >> (8 * ((i - done) & 3)));
    }

    /// <summary>Writes an unmasked, unfragmented server frame.</summary>
    public static int Write(Span<byte> destination, byte opcode, ReadOnlySpan<byte> payload)
    {
        int header;
        destination[0] = (byte)(0x80 | opcode);
        if (payload.Length <= 125)
        {
            destination[1] = (byte)payload.Length;
            header = 2;
        }
        else if (payload.Length <= ushort.MaxValue)
        {
            destination[1] = 126;
            BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)payload.Length);
            header = 4;
        }
        else
        {
            destination[1] = 127;
            BinaryPrimitives.WriteUInt64BigEndian(destination[2..], (ulong)payload.Length);
            header = 10;
        }
        payload.CopyTo(destination[header..]);
        return header + payload.Length;
    }

    /// <summary>A close frame's payload: the code, then a UTF-8 reason cut to fit 125 bytes.</summary>
    public static int ClosePayload(Span<byte> destination, ushort code, string reason)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, code);
        int max = 123;
        int length = Encoding.UTF8.GetByteCount(reason) <= max ? Encoding.UTF8.GetBytes(reason, destination[2..]) : Encoding.UTF8.GetBytes(reason.AsSpan(0, Math.Min(reason.Length, max / 3)), destination[2..]);
        return 2 + length;
    }
}
