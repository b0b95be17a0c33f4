using Analytics.EventLog.Local;

namespace Analytics.EventLog.Tests;

public class Crc32CTests
{
    [Fact]
    public void Crc32C_matches_the_standard_check_value() =>
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));

    [Fact]
    public void Crc32C_of_every_length_matches_a_bitwise_reference()
    {
        var data = new byte[100];
        new Random(42).NextBytes(data);
        for (int length = 0; length <= data.Length; length++)
        {
            Assert.Equal(Reference(data.AsSpan(0, length)), Crc32C.Compute(data.AsSpan(0, length)));
        }
    }

    [Fact]
    public void The_record_checksum_of_an_empty_record_is_not_zero() =>
        Assert.NotEqual(0u, Crc32C.ForRecord(0, []));

    private static uint Reference(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
            }
        }
        return ~crc;
    }
}
