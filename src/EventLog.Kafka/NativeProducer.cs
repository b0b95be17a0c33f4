using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Analytics.EventLog.Kafka;

/// <summary>
/// A librdkafka producer driven through its C API rather than Confluent.Kafka's
/// <c>IProducer</c>, for the ingest hot path. Confluent.Kafka's Produce takes a <c>byte[]</c>
/// per value and key, a <c>Message</c>, a handler shim and a GCHandle per record, and builds a
/// DeliveryReport, TopicPartitionOffset and topic string per delivery: about 900 B of garbage per
/// event, 0.2 × the local log's allocation budget. Here a record is copied by librdkafka straight
/// from a span (RD_KAFKA_MSG_F_COPY), the per-record opaque is one GCHandle per <em>append</em>,
/// and the delivery callback reads the error code and that handle from the native message.
/// Same library, same configuration dictionary, same delivery semantics (a report per record on
/// this class's poll thread); tests/EventLog.Kafka.Tests checks the records against
/// Confluent.Kafka's consumer.
/// </summary>
internal sealed unsafe partial class NativeProducer : IDisposable
{
    private const string Library = NativeLibraryResolver.Library;
    private const int ErrorStringSize = 512;

    // rdkafka.h: rd_kafka_vtype_t, RD_KAFKA_MSG_F_COPY, RD_KAFKA_PRODUCER.
    private const int VtypeRkt = 2, VtypeValue = 4, VtypeKey = 5, VtypeOpaque = 6, VtypeMsgFlags = 7, VtypeHeader = 9;
    private const int MsgFlagCopy = 0x2;
    private const int ProducerType = 0;
    private const int PurgeQueued = 0x1, PurgeInFlight = 0x2;

    private IntPtr _handle;
    private readonly IntPtr _topic;
    private readonly Thread _poller;
    private volatile bool _stopping;

    static NativeProducer() => NativeLibraryResolver.Register();

    /// <summary>Creates the producer from librdkafka properties (keys librdkafka does not know,
    /// such as Confluent.Kafka's own "dotnet.*" settings, are left out).</summary>
    public NativeProducer(IEnumerable<KeyValuePair<string, string>> config, string topic)
    {
        var conf = rd_kafka_conf_new();
        var error = stackalloc byte[ErrorStringSize];
        foreach (var (name, value) in config)
        {
            if (name.StartsWith("dotnet.", StringComparison.Ordinal)) continue;
            if (rd_kafka_conf_set(conf, name, value, error, ErrorStringSize) != 0)
            {
                rd_kafka_conf_destroy(conf);
                throw new ArgumentException($"Kafka producer setting {name}: {Marshal.PtrToStringUTF8((IntPtr)error)}");
            }
        }
        rd_kafka_conf_set_dr_msg_cb(conf, &OnDelivery);
        // Broker errors surface per record in delivery reports (and so as RETRY answers), and
        // librdkafka recovers from non-fatal ones by itself: nothing to print on stderr.
        rd_kafka_conf_set_error_cb(conf, &IgnoreError);
        rd_kafka_conf_set_log_cb(conf, &IgnoreLog);
        _handle = rd_kafka_new(ProducerType, conf, error, ErrorStringSize);
        if (_handle == IntPtr.Zero)
        {
            rd_kafka_conf_destroy(conf);
            throw new ArgumentException($"Kafka producer: {Marshal.PtrToStringUTF8((IntPtr)error)}");
        }
        _topic = rd_kafka_topic_new(_handle, topic, IntPtr.Zero);
        // Delivery reports run here, like Confluent.Kafka's own poll thread.
        _poller = new Thread(Poll) { IsBackground = true, Name = "kafka-producer-poll" };
        _poller.Start();
    }

    /// <summary>Receives the delivery report of each record handed over with it (error code 0 =
    /// written to all in-sync replicas). Called on the producer's poll thread.</summary>
    public interface IDeliveryTarget
    {
        void Delivered(int error);
    }

    /// <summary>
    /// Hands one record to librdkafka, which copies key, value and header before returning.
    /// <paramref name="target"/> is a <see cref="GCHandle"/> (as an IntPtr) of an
    /// <see cref="IDeliveryTarget"/>, kept alive by the caller until every record given it has
    /// reported. Returns 0, or librdkafka's error code when the record was not taken (queue full,
    /// fatal error…), in which case it will not report.
    /// </summary>
    public int Produce(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, IntPtr target, ReadOnlySpan<byte> headerName, ReadOnlySpan<byte> headerValue)
    {
        ObjectDisposedException.ThrowIf(_handle == IntPtr.Zero, this);
        // The count is explicit: produceva takes no END sentinel.
        var args = stackalloc VarArg[6];
        int n = 0;
        fixed (byte* k = key)
        fixed (byte* v = value)
        fixed (byte* hn = headerName)
        fixed (byte* hv = headerValue)
        {
            args[n++] = new VarArg { Type = VtypeRkt, A = _topic };
            args[n++] = new VarArg { Type = VtypeKey, A = (IntPtr)k, B = key.Length };
            args[n++] = new VarArg { Type = VtypeValue, A = (IntPtr)v, B = value.Length };
            args[n++] = new VarArg { Type = VtypeMsgFlags, A = MsgFlagCopy };
            args[n++] = new VarArg { Type = VtypeOpaque, A = target };
            // headerName is NUL-terminated by the caller; the value's length is explicit.
            if (!headerName.IsEmpty) args[n++] = new VarArg { Type = VtypeHeader, A = (IntPtr)hn, B = (IntPtr)hv, C = headerValue.Length };
            var error = rd_kafka_produceva(_handle, args, (nuint)n);
            if (error == IntPtr.Zero) return 0;
            int code = rd_kafka_error_code(error);
            rd_kafka_error_destroy(error);
            return code;
        }
    }

    /// <summary>librdkafka's text for an error code.</summary>
    public static string ErrorText(int code) => Marshal.PtrToStringUTF8(rd_kafka_err2str(code)) ?? $"error {code}";

    /// <summary>The error code librdkafka uses for a local failure.</summary>
    public const int LocalFail = -196;

    /// <summary>Waits up to <paramref name="timeout"/> for records handed over to be delivered or fail.</summary>
    public void Flush(TimeSpan timeout)
    {
        if (_handle == IntPtr.Zero) return;
        rd_kafka_flush(_handle, (int)timeout.TotalMilliseconds);
    }

    /// <summary>Fails the records still queued or in flight (their reports say purged, so no
    /// caller waits forever), stops polling and destroys the handle. <see cref="Flush"/> first to
    /// give them their chance.</summary>
    public void Dispose()
    {
        if (_handle == IntPtr.Zero) return;
        rd_kafka_purge(_handle, PurgeQueued | PurgeInFlight);
        rd_kafka_flush(_handle, 1000);
        _stopping = true;
        _poller.Join();
        rd_kafka_topic_destroy(_topic);
        rd_kafka_destroy(_handle);
        _handle = IntPtr.Zero;
    }

    private void Poll()
    {
        while (!_stopping) rd_kafka_poll(_handle, 100);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnDelivery(IntPtr rk, IntPtr message, IntPtr opaque)
    {
        // rd_kafka_message_t: err at offset 0, _private (the record's opaque) at offset 64.
        int error = *(int*)message;
        var target = *(IntPtr*)((byte*)message + 64);
        ((IDeliveryTarget)GCHandle.FromIntPtr(target).Target!).Delivered(error);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void IgnoreError(IntPtr rk, int error, IntPtr reason, IntPtr opaque) { }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void IgnoreLog(IntPtr rk, int level, IntPtr facility, IntPtr text) { }

    /// <summary>rd_kafka_vu_t: the type, then a 64-byte union (the widest member used here is a
    /// header: name, value, size).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 72)]
    private struct VarArg
    {
        [FieldOffset(0)] public int Type;
        [FieldOffset(8)] public IntPtr A;
        [FieldOffset(16)] public IntPtr B;
        [FieldOffset(24)] public nint C;
    }

    [LibraryImport(Library)] private static partial IntPtr rd_kafka_conf_new();
    [LibraryImport(Library)] private static partial void rd_kafka_conf_destroy(IntPtr conf);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] private static partial int rd_kafka_conf_set(IntPtr conf, string name, string value, byte* errstr, nint errstrSize);
    [LibraryImport(Library)] private static partial void rd_kafka_conf_set_dr_msg_cb(IntPtr conf, delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr, void> callback);
    [LibraryImport(Library)] private static partial void rd_kafka_conf_set_error_cb(IntPtr conf, delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr, IntPtr, void> callback);
    [LibraryImport(Library)] private static partial void rd_kafka_conf_set_log_cb(IntPtr conf, delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr, IntPtr, void> callback);
    [LibraryImport(Library)] private static partial IntPtr rd_kafka_new(int type, IntPtr conf, byte* errstr, nint errstrSize);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] private static partial IntPtr rd_kafka_topic_new(IntPtr rk, string topic, IntPtr conf);
    [LibraryImport(Library)] private static partial void rd_kafka_topic_destroy(IntPtr rkt);
    [LibraryImport(Library)] private static partial IntPtr rd_kafka_produceva(IntPtr rk, VarArg* vus, nuint count);
    [LibraryImport(Library)] private static partial int rd_kafka_error_code(IntPtr error);
    [LibraryImport(Library)] private static partial void rd_kafka_error_destroy(IntPtr error);
    [LibraryImport(Library)] private static partial IntPtr rd_kafka_err2str(int error);
    [LibraryImport(Library)] private static partial int rd_kafka_poll(IntPtr rk, int timeoutMs);
    [LibraryImport(Library)] private static partial int rd_kafka_flush(IntPtr rk, int timeoutMs);
    [LibraryImport(Library)] private static partial int rd_kafka_purge(IntPtr rk, int flags);
    [LibraryImport(Library)] private static partial void rd_kafka_destroy(IntPtr rk);
}
