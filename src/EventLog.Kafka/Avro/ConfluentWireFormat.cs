using System.Buffers.Binary;

namespace Analytics.EventLog.Kafka.Avro;

/// <summary>
/// The Confluent wire format that Kafka Connect, ksqlDB and the schema-registry-aware Spark
/// readers expect in a record value: magic byte 0, the schema id as a 4-byte big-endian int,
/// then the Avro binary datum. The id names the writer schema in a schema registry, so readers
/// can resolve old records after the schema evolves.
/// </summary>
internal static class ConfluentWireFormat
{
    public const int HeaderSize = 5;

    private const byte MagicByte = 0;

    /// <summary>Writes the 5-byte header; the Avro datum follows at <see cref="HeaderSize"/>.</summary>
    public static void WriteHeader(Span<byte> destination, int schemaId)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, HeaderSize, nameof(destination));
        destination[0] = MagicByte;
        BinaryPrimitives.WriteInt32BigEndian(destination[1..], schemaId);
    }

    /// <summary>
    /// Splits a record value into schema id and Avro payload. False (nothing thrown) when the
    /// value is too short for a header or does not start with the magic byte: not this format.
    /// </summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> value, out int schemaId, out ReadOnlySpan<byte> payload)
    {
        if (value.Length < HeaderSize || value[0] != MagicByte)
        {
            schemaId = 0;
            payload = default;
            return false;
        }
        schemaId = BinaryPrimitives.ReadInt32BigEndian(value[1..]);
        payload = value[HeaderSize..];
        return true;
    }
}
