using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Analytics.ControlPlane;

/// <summary>
/// Site keys resolve to merchant and site. The source of truth is the control plane's store
/// (<see cref="IControlPlaneStore"/>: SQLite embedded, PostgreSQL shared by several nodes); the
/// ingest path reads it through an in-memory cache, so no event ever waits on I/O once its key
/// is known. A key is looked up in the store once; unknown keys are remembered for
/// <see cref="NegativeCacheTtl"/> so a client hammering with a bad key costs one lookup per TTL,
/// while a site created on another node becomes usable within the TTL (at once if this node
/// never missed it). Sites created through this instance are visible at once. Public site ids
/// (query and admin URLs) are cached the same way, positively only.
///
/// The registry also keeps the visitor-id salts: one random secret per UTC day, shared by every
/// node through the store (the first node to ask creates it, every other node reads that one),
/// deleted once it is two days old so that visitor ids can never be recomputed from stored data
/// afterwards.
/// </summary>
public sealed class SiteRegistry : IDisposable
{
    public static readonly TimeSpan NegativeCacheTtl = TimeSpan.FromSeconds(10);

    /// <summary>Unknown keys remembered at most: a client inventing keys must not grow memory
    /// without bound. Past this, misses go to the store (rate limiting is the defence there).</summary>
    public const int MaxNegativeEntries = 100_000;
    private int _negativeEntries;

    private readonly ConcurrentDictionary<string, CacheEntry> _byKey = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, CacheEntry>.AlternateLookup<ReadOnlySpan<char>> _byKeySpan;
    private readonly ConcurrentDictionary<string, Site> _byPublicId = new(StringComparer.Ordinal);
    private readonly Lock _saltLock = new();
    private (DateOnly Day, byte[] Salt) _salt;

    private sealed record CacheEntry(Site? Site, long ExpiresAtTicks);

    public SiteRegistry(IControlPlaneStore store)
    {
        Store = store;
        _byKeySpan = _byKey.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The store underneath, for everything that is not a hot-path lookup.</summary>
    public IControlPlaneStore Store { get; }

    /// <summary>Hot path: resolves an ASCII site key given as UTF-8 bytes; null when unknown.</summary>
    public Site? Resolve(ReadOnlySpan<byte> siteKeyUtf8)
    {
        // Keys are validated ASCII of at most 64 bytes: widen on the stack, look up without a string.
        Span<char> chars = stackalloc char[siteKeyUtf8.Length];
        for (int i = 0; i < siteKeyUtf8.Length; i++) chars[i] = (char)siteKeyUtf8[i];
        if (_byKeySpan.TryGetValue(chars, out var entry) && (entry.Site is not null || entry.ExpiresAtTicks > Environment.TickCount64))
        {
            return entry.Site;
        }
        return ResolveSlow(new string(chars));
    }

    public Site? Resolve(string siteKey)
    {
        if (_byKey.TryGetValue(siteKey, out var entry) && (entry.Site is not null || entry.ExpiresAtTicks > Environment.TickCount64))
        {
            return entry.Site;
        }
        return ResolveSlow(siteKey);
    }

    private Site? ResolveSlow(string siteKey)
    {
        var site = Store.FindSiteByKey(siteKey);
        if (site is not null)
        {
            _byKey[siteKey] = new CacheEntry(site, long.MaxValue);
        }
        else if (Volatile.Read(ref _negativeEntries) < MaxNegativeEntries)
        {
            if (_byKey.TryAdd(siteKey, new CacheEntry(null, Environment.TickCount64 + (long)NegativeCacheTtl.TotalMilliseconds)))
                Interlocked.Increment(ref _negativeEntries);
            else
                _byKey[siteKey] = new CacheEntry(null, Environment.TickCount64 + (long)NegativeCacheTtl.TotalMilliseconds);
        }
        return site;
    }

    /// <summary>The site a public id names, or null (malformed ids never reach the store).</summary>
    public Site? FindByPublicId(string publicId)
    {
        if (_byPublicId.TryGetValue(publicId, out var site)) return site;
        if (!Identifiers.IsPublicIdFormat(publicId)) return null;
        site = Store.FindSiteByPublicId(publicId);
        if (site is not null) _byPublicId[publicId] = site;
        return site;
    }

    public Site? FindById(long siteId) => Store.FindSiteById(siteId);

    public IReadOnlyList<Site> ListSites(long? merchantId = null) => Store.ListSites(merchantId);

    public long CreateMerchant(string name) => Store.CreateMerchant(name).Id;

    /// <summary>Creates a site with a new random key (or the given one, for demos and tests).</summary>
    public Site CreateSite(long merchantId, string domain, string? siteKey = null, string timeZone = "UTC")
    {
        var created = Store.CreateSite(merchantId, domain, siteKey, timeZone);
        if (_byKey.TryRemove(created.SiteKey, out var stale) && stale.Site is null) Interlocked.Decrement(ref _negativeEntries);
        return Resolve(created.SiteKey) ?? throw new InvalidOperationException("site vanished after insert");
    }

    /// <summary>The secret salt for a UTC day; created on first use, shared through the store.</summary>
    public byte[] GetSalt(DateOnly utcDay)
    {
        var current = _salt;
        if (current.Day == utcDay && current.Salt is not null) return current.Salt;
        lock (_saltLock)
        {
            if (_salt.Day == utcDay && _salt.Salt is not null) return _salt.Salt;
            var salt = Store.GetOrCreateSalt(utcDay, RandomNumberGenerator.GetBytes(32), utcDay.AddDays(-1));
            _salt = (utcDay, salt);
            return salt;
        }
    }

    public void Dispose() => Store.Dispose();
}
