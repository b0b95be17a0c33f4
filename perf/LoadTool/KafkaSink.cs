using System.Globalization;
using Analytics.EventLog.Kafka;
using Confluent.Kafka;

namespace Analytics.LoadTool;

/// <summary>
/// <c>--sink kafka</c>: a librdkafka mock cluster (real Kafka protocol over TCP on 127.0.0.1) in
/// the load tool's process, with the topic created up front, and the server started with
/// <c>--log kafka</c> against it. After the phases the topic's records are counted, so a server
/// that acknowledged events without writing them to Kafka fails the run.
/// </summary>
internal static class KafkaSink
{
    public const int Brokers = 3;
    public const int Partitions = 6;
    public const int ReplicationFactor = 3;
    public const string Topic = "analytics.events";

    /// <summary>For the report's server line: what the server writes to and where the brokers run.</summary>
    public static string Description { get; } =
        $"Kafka log: librdkafka mock cluster of {Brokers} brokers in the load tool's process (their CPU counts as client CPU, and is given on its own below), " +
        $"topic {Topic} with {Partitions} partitions, replication factor {ReplicationFactor}; the server acks a batch once the producer (acks=all, idempotent) has it acknowledged";

    /// <summary>Starts the cluster and creates the topic; the caller disposes the cluster.</summary>
    public static MockKafkaCluster StartCluster()
    {
        var cluster = MockKafkaCluster.Start(Brokers);
        try
        {
            cluster.CreateTopic(Topic, Partitions, ReplicationFactor);
            return cluster;
        }
        catch
        {
            cluster.Dispose();
            throw;
        }
    }

    /// <summary>
    /// CPU time of the mock cluster: librdkafka names its threads "rdk:…", and during the phases the
    /// only librdkafka handle in this process is the one hosting the cluster (its brokers all run on
    /// its "rdk:mock" thread; the handle's own threads are nearly idle). Null off Linux.
    /// </summary>
    public static TimeSpan? BrokersCpu()
    {
        if (!OperatingSystem.IsLinux()) return null;
        long ticks = 0;
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                if (!File.ReadAllText(Path.Combine(task, "comm")).StartsWith("rdk:", StringComparison.Ordinal)) continue;
                // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
                string stat = File.ReadAllText(Path.Combine(task, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                // The thread ended between listing and reading.
            }
        }
        return TimeSpan.FromSeconds(ticks / (double)ClockTicksPerSecond);
    }

    // USER_HZ: 100 on every Linux this runs on (sysconf(_SC_CLK_TCK)).
    private const int ClockTicksPerSecond = 100;

    /// <summary>Appended to the server's command line (after any --server-args).</summary>
    public static string[] ServerArgs(MockKafkaCluster cluster) =>
        ["--log", "kafka", "--kafka-bootstrap", cluster.BootstrapServers, "--kafka-topic", Topic];

    /// <summary>What the topic holds after the phases.</summary>
    /// <param name="Records">Records in the topic (high - low watermark over its partitions): one per event.</param>
    /// <param name="EventsAcked">Events the ingest phases (warm-up included) had acknowledged.</param>
    internal sealed record Result(int Brokers, int Partitions, int ReplicationFactor, string Topic, long Records, long EventsAcked)
    {
        public IEnumerable<string> Check()
        {
            if (Records == 0) yield return $"kafka: topic {Topic} is empty: nothing reached Kafka";
            else if (Records < EventsAcked) yield return $"kafka: topic {Topic} holds {Records} records, {EventsAcked} events were acknowledged";
        }
    }

    /// <summary>Counts the topic's records; <paramref name="eventsAcked"/> is what they are checked against.</summary>
    public static Task<Result> CountAsync(MockKafkaCluster cluster, long eventsAcked, CancellationToken cancellationToken) => Task.Run(() =>
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = "loadtool-count", // required by the client; nothing is subscribed or committed
        }).Build();
        long records = 0;
        for (int partition = 0; partition < Partitions; partition++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var offsets = consumer.QueryWatermarkOffsets(new TopicPartition(Topic, partition), TimeSpan.FromSeconds(10));
            // The high watermark alone: the topic is new, so it counts every record ever appended.
            // (The mock broker keeps only the last 5 MB or 100,000 message sets of a partition and
            // moves the low watermark up, so high - low would undercount a long run.)
            records += Math.Max(0, offsets.High.Value);
        }
        return new Result(Brokers, Partitions, ReplicationFactor, Topic, records, eventsAcked);
    }, cancellationToken);
}
