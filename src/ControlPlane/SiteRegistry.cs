using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Analytics.ControlPlane;

/// <summary>
/// Site keys resolve to merchant and site, with the site's <see cref="OriginPolicy"/>. The source
/// of truth is the control plane's store (<see cref="IControlPlaneStore"/>: SQLite embedded,
/// PostgreSQL shared by several nodes); the ingest path reads it through an in-memory cache, so no
/// event ever waits on I/O once its key is known. Every entry lives <see cref="CacheTtl"/>:
/// <list type="bullet">
/// <item>A known key past its TTL is still answered from the cache while one background lookup
/// refreshes it, so a revoked or expired key, or a changed list of allowed origins, made on
/// another node or by the CLI takes effect within the TTL (plus that one lookup), and the hot
/// path never waits for the store. Changes made through this instance apply at once.</item>
/// <item>Unknown keys are remembered for the TTL too, so a client hammering with a bad key costs
/// one lookup per TTL, while a site created on another node becomes usable within the TTL (at
/// once if this node never missed it).</item>
/// </list>
/// Public site ids (query and admin URLs) are cached positively only, without a TTL.
///
/// The registry also keeps the visitor-id salts: one random secret per UTC day, shared by every
/// node through the store (the first node to ask creates it, every other node reads that one),
/// deleted once it is two days old so that visitor ids can never be recomputed from stored data
/// afterwards.
/// </summary>
public sealed class SiteRegistry : IDisposable
{
    /// <summary>How long a key's answer (site and origins, or unknown) is believed without asking the store.</summary>
    public static readonly TimeSpan CacheTtl = TimeSpan.FromSeconds(10);

    /// <summary>Unknown keys remembered at most: a client inventing keys must not grow memory
    /// without bound. Past this, misses go to the store (rate limiting is the defence there).</summary>
    public const int MaxNegativeEntries = 100_000;
    private int _negativeEntries;

    private readonly ConcurrentDictionary<string, CacheEntry> _byKey = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, CacheEntry>.AlternateLookup<ReadOnlySpan<char>> _byKeySpan;
    private readonly ConcurrentDictionary<string, Site> _byPublicId = new(StringComparer.Ordinal);
    private readonly Lock _saltLock = new();
    private (DateOnly Day, byte[] Salt) _salt;

    private sealed class CacheEntry(string key, SiteAccess? access, long expiresAtTicks)
    {
        public readonly string Key = key;
        public readonly SiteAccess? Access = access;
        public readonly long ExpiresAtTicks = expiresAtTicks;
        /// <summary>1 while a background lookup refreshes this entry.</summary>
        public int Refreshing;
    }

    public SiteRegistry(IControlPlaneStore store)
    {
        Store = store;
        _byKeySpan = _byKey.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The store underneath, for everything that is not a hot-path lookup.</summary>
    public IControlPlaneStore Store { get; }

    /// <summary>Hot path: resolves an ASCII site key given as UTF-8 bytes; null when unknown.</summary>
    public SiteAccess? ResolveAccess(ReadOnlySpan<byte> siteKeyUtf8)
    {
        // Keys are validated ASCII of at most 64 bytes: widen on the stack, look up without a string.
        Span<char> chars = stackalloc char[siteKeyUtf8.Length];
        for (int i = 0; i < siteKeyUtf8.Length; i++) chars[i] = (char)siteKeyUtf8[i];
        if (_byKeySpan.TryGetValue(chars, out var entry) && Fresh(entry)) return entry.Access;
        return Load(new string(chars));
    }

    public Site? Resolve(ReadOnlySpan<byte> siteKeyUtf8) => ResolveAccess(siteKeyUtf8)?.Site;

    public Site? Resolve(string siteKey)
    {
        if (_byKey.TryGetValue(siteKey, out var entry) && Fresh(entry)) return entry.Access?.Site;
        return Load(siteKey)?.Site;
    }

    /// <summary>True when the entry may answer: within its TTL, or a known site whose refresh has
    /// just been started in the background.</summary>
    private bool Fresh(CacheEntry entry)
    {
        if (entry.ExpiresAtTicks > Environment.TickCount64) return true;
        if (entry.Access is null) return false;
        if (Interlocked.Exchange(ref entry.Refreshing, 1) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static state =>
            {
                var (registry, stale) = state;
                try
                {
                    registry.Load(stale.Key);
                }
                catch (Exception)
                {
                    // The store is unreachable: keep answering from the stale entry, try again later.
                    Volatile.Write(ref stale.Refreshing, 0);
                }
            }, (this, entry), preferLocal: false);
        }
        return true;
    }

    private SiteAccess? Load(string siteKey)
    {
        var site = Store.FindSiteByKey(siteKey);
        long expires = Environment.TickCount64 + (long)CacheTtl.TotalMilliseconds;
        if (site is not null)
        {
            var access = new SiteAccess(site, OriginPolicy.For(site.Domain, Store.ListAllowedOrigins(site.SiteId)));
            _byKey[siteKey] = new CacheEntry(siteKey, access, expires);
            return access;
        }
        if (_byKey.TryGetValue(siteKey, out var old) && old.Access is null)
            _byKey[siteKey] = new CacheEntry(siteKey, null, expires);
        else if (Volatile.Read(ref _negativeEntries) < MaxNegativeEntries)
        {
            _byKey[siteKey] = new CacheEntry(siteKey, null, expires);
            Interlocked.Increment(ref _negativeEntries);
        }
        else
            _byKey.TryRemove(siteKey, out _); // a revoked key past the cap: not remembered, still refused
        return null;
    }

    /// <summary>Forgets every cached key of a site, so the next batch reads its current state.</summary>
    private void Forget(long siteId)
    {
        foreach (var (key, entry) in _byKey)
        {
            if (entry.Access?.Site.SiteId == siteId) _byKey.TryRemove(key, out _);
        }
    }

    /// <summary>A new key for the site; the old one works for <paramref name="grace"/> more (this node: at once gone when zero).</summary>
    public Site? RotateSiteKey(long siteId, TimeSpan grace)
    {
        var site = Store.RotateSiteKey(siteId, grace);
        Forget(siteId);
        return site;
    }

    /// <summary>Ends a key of the site at once on this node (within <see cref="CacheTtl"/> on others).</summary>
    public Site? RevokeSiteKey(long siteId, string siteKey)
    {
        var site = Store.RevokeSiteKey(siteId, siteKey);
        Forget(siteId);
        return site;
    }

    public bool AddAllowedOrigin(long siteId, string origin)
    {
        bool added = Store.AddAllowedOrigin(siteId, origin);
        Forget(siteId);
        return added;
    }

    public bool RemoveAllowedOrigin(long siteId, string origin)
    {
        bool removed = Store.RemoveAllowedOrigin(siteId, origin);
        Forget(siteId);
        return removed;
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
    public Site CreateSite(long merchantId, string domain, string? siteKey = null, string timeZone = "UTC") =>
        Created(Store.CreateSite(merchantId, domain, siteKey, timeZone));

    /// <summary>A new merchant with its first site, in one transaction (see <see cref="IControlPlaneStore.CreateMerchantWithSite"/>).</summary>
    public Site CreateMerchantWithSite(string merchantName, string domain, string? siteKey = null, string timeZone = "UTC") =>
        Created(Store.CreateMerchantWithSite(merchantName, domain, siteKey, timeZone));

    private Site Created(Site created)
    {
        if (_byKey.TryRemove(created.SiteKey, out var stale) && stale.Access is null) Interlocked.Decrement(ref _negativeEntries);
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

/// <summary>What ingest needs to know about a site key: the site and which pages may use it.</summary>
public sealed record SiteAccess(Site Site, OriginPolicy Origins);
