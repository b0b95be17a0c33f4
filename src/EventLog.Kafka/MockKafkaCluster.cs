using System.Runtime.InteropServices;
using System.Text;

namespace Analytics.EventLog.Kafka;

/// <summary>
/// librdkafka's built-in mock cluster: brokers in this process that speak the real Kafka
/// protocol over TCP on 127.0.0.1 (produce, fetch, consumer groups, offset commits, idempotence).
/// For development (`analytics kafka-mock`) and tests; there is no Kafka broker package on this
/// machine. Fault injection (request errors, broker down, leader moves) goes through librdkafka's
/// C API, which Confluent.Kafka does not wrap, so this class calls it directly on a handle of
/// its own. The cluster lives until Dispose.
/// </summary>
public sealed partial class MockKafkaCluster : IDisposable
{
    private const string Library = NativeLibraryResolver.Library;

    static MockKafkaCluster() => NativeLibraryResolver.Register();

    private IntPtr _handle;
    private readonly IntPtr _cluster;

    private MockKafkaCluster(IntPtr handle, IntPtr cluster, string bootstrapServers)
    {
        _handle = handle;
        _cluster = cluster;
        BootstrapServers = bootstrapServers;
    }

    /// <summary>"127.0.0.1:PORT,…" for producers and consumers.</summary>
    public string BootstrapServers { get; }

    /// <summary>Starts <paramref name="brokers"/> brokers (ids 1..N).</summary>
    public static MockKafkaCluster Start(int brokers = 3)
    {
        var conf = rd_kafka_conf_new();
        var error = new StringBuilder(512);
        Check(rd_kafka_conf_set(conf, "test.mock.num.brokers", brokers.ToString(System.Globalization.CultureInfo.InvariantCulture), error, error.Capacity), error);
        // A producer handle that never produces: it only owns the mock cluster.
        var handle = rd_kafka_new(0, conf, error, error.Capacity);
        if (handle == IntPtr.Zero) throw new InvalidOperationException($"librdkafka: {error}");
        var cluster = rd_kafka_handle_mock_cluster(handle);
        var bootstraps = Marshal.PtrToStringUTF8(rd_kafka_mock_cluster_bootstraps(cluster))!;
        return new MockKafkaCluster(handle, cluster, bootstraps);
    }

    /// <summary>Creates a topic (auto-created topics get the mock's default partition count).</summary>
    public void CreateTopic(string topic, int partitions, int replicationFactor = 3) =>
        CheckError(rd_kafka_mock_topic_create(_cluster, topic, partitions, replicationFactor));

    /// <summary>The next <paramref name="count"/> requests of a kind (any broker) fail with <paramref name="errorCode"/>.</summary>
    public void PushRequestErrors(ApiKey api, int errorCode, int count)
    {
        var errors = Enumerable.Repeat(errorCode, count).ToArray();
        rd_kafka_mock_push_request_errors_array(_cluster, (short)api, (nuint)count, errors);
    }

    /// <summary>Drops pending injected errors of a kind.</summary>
    public void ClearRequestErrors(ApiKey api) => rd_kafka_mock_clear_request_errors(_cluster, (short)api);

    /// <summary>Takes a broker down: its connections close and new ones are refused.</summary>
    public void SetBrokerDown(int brokerId) => CheckError(rd_kafka_mock_broker_set_down(_cluster, brokerId));

    public void SetBrokerUp(int brokerId) => CheckError(rd_kafka_mock_broker_set_up(_cluster, brokerId));

    /// <summary>Moves a partition's leadership (clients learn it from NOT_LEADER errors and metadata).</summary>
    public void SetPartitionLeader(string topic, int partition, int brokerId) =>
        CheckError(rd_kafka_mock_partition_set_leader(_cluster, topic, partition, brokerId));

    public void Dispose()
    {
        if (_handle != IntPtr.Zero)
        {
            rd_kafka_destroy(_handle);
            _handle = IntPtr.Zero;
        }
    }

    /// <summary>Kafka protocol API keys used by tests.</summary>
    public enum ApiKey : short
    {
        Produce = 0,
    }

    /// <summary>Kafka protocol error codes used by tests.</summary>
    public static class Errors
    {
        public const int RequestTimedOut = 7;
        public const int NotEnoughReplicas = 19;
    }

    private static void Check(int result, StringBuilder error)
    {
        if (result != 0) throw new InvalidOperationException($"librdkafka: {error}");
    }

    private static void CheckError(int error)
    {
        if (error != 0) throw new InvalidOperationException($"librdkafka mock: error {error}");
    }

    [DllImport(Library)] private static extern IntPtr rd_kafka_conf_new();
    [DllImport(Library)] private static extern int rd_kafka_conf_set(IntPtr conf, [MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, StringBuilder errstr, nint errstrSize);
    [DllImport(Library)] private static extern IntPtr rd_kafka_new(int type, IntPtr conf, StringBuilder errstr, nint errstrSize);
    [DllImport(Library)] private static extern void rd_kafka_destroy(IntPtr rk);
    [DllImport(Library)] private static extern IntPtr rd_kafka_handle_mock_cluster(IntPtr rk);
    [DllImport(Library)] private static extern IntPtr rd_kafka_mock_cluster_bootstraps(IntPtr mcluster);
    [DllImport(Library)] private static extern int rd_kafka_mock_topic_create(IntPtr mcluster, [MarshalAs(UnmanagedType.LPUTF8Str)] string topic, int partitionCount, int replicationFactor);
    [DllImport(Library)] private static extern void rd_kafka_mock_push_request_errors_array(IntPtr mcluster, short apiKey, nuint count, int[] errors);
    [DllImport(Library)] private static extern void rd_kafka_mock_clear_request_errors(IntPtr mcluster, short apiKey);
    [DllImport(Library)] private static extern int rd_kafka_mock_broker_set_down(IntPtr mcluster, int brokerId);
    [DllImport(Library)] private static extern int rd_kafka_mock_broker_set_up(IntPtr mcluster, int brokerId);
    [DllImport(Library)] private static extern int rd_kafka_mock_partition_set_leader(IntPtr mcluster, [MarshalAs(UnmanagedType.LPUTF8Str)] string topic, int partition, int brokerId);
}
