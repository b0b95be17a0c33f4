using System.Reflection;
using Analytics.ControlPlane;

namespace Analytics.Tests.Shared;

/// <summary>
/// A control-plane store for the lookups ingest makes, without a database: one known site, every
/// other key unknown, a fixed salt. It counts the key lookups, can hold them at a gate (to see
/// concurrent ones) and can fail them or the salt as a store whose server went away does.
/// Anything else it is asked throws: a test using it only exercises the registry's lookups.
/// </summary>
public class ScriptedControlPlaneStore : DispatchProxy
{
    public static readonly Site KnownSite = new(7, "pub-known", 3, "known-key", "shop.example", "UTC", "Shop");

    private int _keyLookups;

    /// <summary>FindSiteByKey calls so far.</summary>
    public int KeyLookups => Volatile.Read(ref _keyLookups);
    /// <summary>Set: key lookups throw, as a store whose server is down.</summary>
    public bool FailKeys { get; set; }
    /// <summary>Set: salt lookups throw.</summary>
    public bool FailSalt { get; set; }
    /// <summary>When set, each key lookup waits for it (after counting itself).</summary>
    public ManualResetEventSlim? Gate { get; set; }

    public static (IControlPlaneStore Store, ScriptedControlPlaneStore Script) Create()
    {
        var store = Create<IControlPlaneStore, ScriptedControlPlaneStore>();
        return (store, (ScriptedControlPlaneStore)(object)store);
    }

    protected override object? Invoke(MethodInfo? method, object?[]? args)
    {
        switch (method!.Name)
        {
            case nameof(IControlPlaneStore.FindSiteByKey):
                Interlocked.Increment(ref _keyLookups);
                Gate?.Wait(TimeSpan.FromSeconds(30));
                if (FailKeys) throw new InvalidOperationException("connection refused (scripted)");
                return (string)args![0]! == KnownSite.SiteKey ? KnownSite : null;
            case nameof(IControlPlaneStore.ListAllowedOrigins):
                return Array.Empty<string>();
            case nameof(IControlPlaneStore.GetOrCreateSalt):
                if (FailSalt) throw new InvalidOperationException("connection refused (scripted)");
                return new byte[32];
            case nameof(IDisposable.Dispose):
                return null;
            default:
                throw new NotSupportedException(method.Name);
        }
    }
}
