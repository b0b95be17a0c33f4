using System.Runtime.InteropServices;

namespace Analytics.EventLog.Kafka;

/// <summary>
/// Binds this assembly's own P/Invokes of "librdkafka" (the mock cluster, the native producer) to
/// the librdkafka Confluent.Kafka ships under runtimes/RID/native, which the default probing does
/// not search by that name. Same order as Confluent.Kafka's own loader: the default build needs
/// libsasl2.so.3 (absent on Debian), the centos8 build does not. A resolver can be set once per
/// assembly, hence one place for both callers.
/// </summary>
internal static class NativeLibraryResolver
{
    public const string Library = "librdkafka";
    private static int _registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1) return;
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraryResolver).Assembly, (name, _, _) =>
        {
            if (name != Library) return IntPtr.Zero;
            string arch = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
            string native = Path.Combine(AppContext.BaseDirectory, "runtimes", $"linux-{arch}", "native");
            foreach (var path in new[] { Path.Combine(native, "librdkafka.so"), Path.Combine(native, "centos8-librdkafka.so"), Path.Combine(AppContext.BaseDirectory, "librdkafka.so") })
            {
                if (NativeLibrary.TryLoad(path, out var handle)) return handle;
            }
            return IntPtr.Zero;
        });
    }
}
