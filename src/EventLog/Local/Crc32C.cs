using System.Buffers.Binary;
using System.Numerics;

namespace Analytics.EventLog.Local;

/// <summary>
/// CRC-32C (Castagnoli) over spans, built on <see cref="BitOperations.Crc32C(uint, ulong)"/>,
/// which uses the SSE4.2 / ARMv8 CRC instructions when present and a table otherwise.
/// The BCL only offers the per-value step; System.IO.Hashing would need a package.
/// </summary>
internal static class Crc32C
{
    public const uint Seed = 0xFFFF_FFFFu;

    /// <summary>Standard CRC-32C of <paramref name="data"/> ("123456789" → 0xE3069283).</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Update(Seed, data);

    /// <summary>Folds <paramref name="data"/> into a running (non-finalised) CRC.</summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        // 8 bytes per step: the instruction's latency is the bottleneck, so wider steps win.
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        if (data.Length >= 4)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt32LittleEndian(data));
            data = data[4..];
        }
        foreach (byte b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }
        return crc;
    }

    /// <summary>
    /// The checksum stored in a record header: CRC-32C of the 4 length bytes followed by the
    /// payload. Covering the length means a bit flip in it is caught, and an all-zero header
    /// (what a torn, zero-filled tail looks like) never passes as an empty record, because
    /// CRC-32C of the empty payload alone would be 0.
    /// </summary>
    public static uint ForRecord(uint length, ReadOnlySpan<byte> payload)
    {
        uint crc = BitOperations.Crc32C(Seed, length); // little-endian byte order, as stored
        return ~Update(crc, payload);
    }
}
