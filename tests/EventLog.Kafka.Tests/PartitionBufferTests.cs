using Confluent.Kafka;

namespace Analytics.EventLog.Kafka.Tests;

/// <summary>How the Kafka consumer cuts a partition's records into batches of consecutive offsets.</summary>
public sealed class PartitionBufferTests
{
    private static KafkaLogConsumer.PartitionBuffer Buffer(params long[] offsets)
    {
        var buffer = new KafkaLogConsumer.PartitionBuffer(new TopicPartition("t", 3));
        foreach (long offset in offsets) buffer.Add(offset, new[] { (byte)offset });
        return buffer;
    }

    [Fact]
    public void A_gap_in_offsets_ends_a_batch_and_the_records_after_it_form_the_next()
    {
        var buffer = Buffer(5, 6, 7, 10, 11);
        Assert.True(buffer.Ready(100), "the records before the gap can go out without waiting for more");

        var first = buffer.Peek(100);
        Assert.Equal(("t/3", 5L, 8L, true), (first.Source, first.FirstOffset, first.NextOffset, first.Resumed));
        Assert.Equal([5, 6, 7], first.Records.Select(r => (int)r.Span[0]));
        buffer.Remove(first.Records.Count);

        Assert.False(buffer.Ready(100), "10-11 are consecutive: wait for more");
        var second = buffer.Peek(100);
        Assert.Equal((10L, 12L, false), (second.FirstOffset, second.NextOffset, second.Resumed));
        Assert.Equal([10, 11], second.Records.Select(r => (int)r.Span[0]));
        Assert.Equal(12L, buffer.NextToRead);
    }

    [Fact]
    public void Records_at_offsets_already_read_are_dropped_so_batches_never_go_back()
    {
        // 2 again while 0-2 are still buffered, then 1-2 again after they went out.
        var buffer = Buffer(0, 1, 2, 2, 3);
        var first = buffer.Peek(100);
        Assert.Equal((0L, 4L), (first.FirstOffset, first.NextOffset));
        Assert.Equal([0, 1, 2, 3], first.Records.Select(r => (int)r.Span[0]));
        buffer.Remove(first.Records.Count);

        foreach (long offset in new long[] { 1, 2, 4, 5 }) buffer.Add(offset, new[] { (byte)offset });
        var second = buffer.Peek(100);
        Assert.Equal((4L, 6L), (second.FirstOffset, second.NextOffset));
        Assert.Equal([4, 5], second.Records.Select(r => (int)r.Span[0]));
    }

    [Fact]
    public void A_batch_holds_at_most_max_records_and_the_rest_stays()
    {
        var buffer = Buffer(0, 1, 2, 3, 4);
        Assert.True(buffer.Ready(3));
        var batch = buffer.Peek(3);
        Assert.Equal((0L, 3L), (batch.FirstOffset, batch.NextOffset));
        buffer.Remove(3);
        Assert.Equal(2, buffer.Count);
        Assert.Equal(3L, buffer.FirstOffset);
    }
}
