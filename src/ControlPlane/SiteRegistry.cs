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
/// <item>Unknown keys are remembered for the TTL too, at most <see cref="MaxNegativeEntries"/>
/// of them (past that the oldest is forgotten), so a client hammering with a bad key costs one
/// lookup per TTL, while a site created on another node becomes usable within the TTL (at once
/// if this node never missed it).</item>
/// </list>
/// A key missing from the cache is looked up once however many batches ask at the same time:
/// the others wait for that lookup's answer. A failing store surfaces as
/// <see cref="ControlPlaneUnavailableException"/> (ingest answers RETRY), except for the
/// background refresh of a known key, which keeps answering from the stale entry.
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
    /// without bound. Past this the oldest is forgotten, so a key repeated after a flood of
    /// invented ones is still remembered (the per-IP rate limit, charged before the lookup,
    /// bounds how many invented keys reach the store).</summary>
    public const int MaxNegativeEntries = 100_000;

    private readonly TimeProvider _clock;
    private readonly long _ttlTimestamp;
    private readonly ConcurrentDictionary<string, CacheEntry> _byKey = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, CacheEntry>.AlternateLookup<ReadOnlySpan<char>> _byKeySpan;
    // Unknown keys and when their answer expires (a TimeProvider timestamp), in a dictionary of
    // their own so the count is exact: added and removed only under _unknownGate, with the
    // queue in insertion order, which is expiry order since every entry lives the same TTL.
    private readonly ConcurrentDictionary<string, long> _unknown = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long>.AlternateLookup<ReadOnlySpan<char>> _unknownSpan;
    private readonly Queue<(string Key, long ExpiresAt)> _unknownOrder = new();
    private readonly Lock _unknownGate = new();
    private int _unknownCount;
    // Lookups under way, one per key: a flood of one key costs one query, not one per batch.
    private readonly ConcurrentDictionary<string, Lazy<SiteAccess?>> _lookups = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Site> _byPublicId = new(StringComparer.Ordinal);
    private readonly Lock _saltLock = new();
    private (DateOnly Day, byte[] Salt) _salt;

    private sealed class CacheEntry(string key, SiteAccess access, long expiresAt)
    {
        public readonly string Key = key;
        public readonly SiteAccess Access = access;
        public readonly long ExpiresAt = expiresAt;
        /// <summary>1 while a background lookup refreshes this entry.</summary>
        public int Refreshing;
    }

    /// <param name="clock">Only its timestamps: when cached answers expire (tests move it).</param>
    public SiteRegistry(IControlPlaneStore store, TimeProvider? clock = null)
    {
        Store = store;
        _clock = clock ?? TimeProvider.System;
        _ttlTimestamp = (long)(CacheTtl.TotalSeconds * _clock.TimestampFrequency);
        _byKeySpan = _byKey.GetAlternateLookup<ReadOnlySpan<char>>();
        _unknownSpan = _unknown.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The store underneath, for everything that is not a hot-path lookup.</summary>
    public IControlPlaneStore Store { get; }

    /// <summary>Unknown keys remembered now (at most <see cref="MaxNegativeEntries"/>).</summary>
    public int UnknownKeysCached => Volatile.Read(ref _unknownCount);

    /// <summary>Hot path: resolves an ASCII site key given as UTF-8 bytes; null when unknown.
    /// Throws <see cref="ControlPlaneUnavailableException"/> when the store must be asked and fails.</summary>
    public SiteAccess? ResolveAccess(ReadOnlySpan<byte> siteKeyUtf8)
    {
        // Keys are validated ASCII of at most 64 bytes: widen on the stack, look up without a string.
        Span<char> chars = stackalloc char[siteKeyUtf8.Length];
        for (int i = 0; i < siteKeyUtf8.Length; i++) chars[i] = (char)siteKeyUtf8[i];
        return Cached(chars, out var access) ? access : Load(new string(chars));
    }

    public Site? Resolve(ReadOnlySpan<byte> siteKeyUtf8) => ResolveAccess(siteKeyUtf8)?.Site;

    public Site? Resolve(string siteKey) => (Cached(siteKey, out var access) ? access : Load(siteKey))?.Site;

    /// <summary>True when the cache may answer for the key (a site, or null: unknown).</summary>
    private bool Cached(ReadOnlySpan<char> key, out SiteAccess? access)
    {
        access = null;
        if (_byKeySpan.TryGetValue(key, out var entry))
        {
            access = entry.Access;
            RefreshWhenStale(entry);
            return true;
        }
        return _unknownSpan.TryGetValue(key, out long expiresAt) && expiresAt > _clock.GetTimestamp();
    }

    /// <summary>A known site answers from the cache even past its TTL; then one background
    /// lookup refreshes it.</summary>
    private void RefreshWhenStale(CacheEntry entry)
    {
        if (entry.ExpiresAt > _clock.GetTimestamp() || Interlocked.Exchange(ref entry.Refreshing, 1) != 0) return;
        ThreadPool.UnsafeQueueUserWorkItem(static state =>
        {
            var (registry, stale) = state;
            try
            {
                registry.Load(stale.Key);
            }
            catch (ControlPlaneUnavailableException)
            {
                // The store is unreachable: keep answering from the stale entry, try again later.
                Volatile.Write(ref stale.Refreshing, 0);
            }
        }, (this, entry), preferLocal: false);
    }

    /// <summary>Asks the store, joining a lookup of the same key already under way.</summary>
    private SiteAccess? Load(string siteKey)
    {
        var mine = new Lazy<SiteAccess?>(() => LoadFromStore(siteKey), LazyThreadSafetyMode.ExecutionAndPublication);
        var lookup = _lookups.GetOrAdd(siteKey, mine);
        try
        {
            // Everyone waiting gets the same answer, or the same exception.
            return lookup.Value;
        }
        finally
        {
            if (ReferenceEquals(lookup, mine)) _lookups.TryRemove(new KeyValuePair<string, Lazy<SiteAccess?>>(siteKey, mine));
        }
    }

    private SiteAccess? LoadFromStore(string siteKey)
    {
        SiteAccess? access;
        try
        {
            var site = Store.FindSiteByKey(siteKey);
            access = site is null ? null : new SiteAccess(site, OriginPolicy.For(site.Domain, Store.ListAllowedOrigins(site.SiteId)));
        }
        catch (Exception e)
        {
            throw new ControlPlaneUnavailableException($"control plane: site key lookup failed: {e.Message}", e);
        }
        long expiresAt = _clock.GetTimestamp() + _ttlTimestamp;
        if (access is not null)
        {
            _byKey[siteKey] = new CacheEntry(siteKey, access, expiresAt);
            ForgetUnknown(siteKey);
            return access;
        }
        _byKey.TryRemove(siteKey, out _); // revoked, or its grace period is over
        RememberUnknown(siteKey, expiresAt);
        return null;
    }

    private void RememberUnknown(string siteKey, long expiresAt)
    {
        long now = _clock.GetTimestamp();
        lock (_unknownGate)
        {
            // Expired entries leave first; at the cap, the oldest live one too. A queue item whose
            // key was renewed or forgotten since removes nothing (its value no longer matches).
            while (_unknownOrder.TryPeek(out var oldest) && (oldest.ExpiresAt <= now || _unknownCount >= MaxNegativeEntries))
            {
                _unknownOrder.Dequeue();
                if (_unknown.TryRemove(new KeyValuePair<string, long>(oldest.Key, oldest.ExpiresAt))) _unknownCount--;
            }
            if (_unknown.TryAdd(siteKey, expiresAt)) _unknownCount++;
            else _unknown[siteKey] = expiresAt;
            _unknownOrder.Enqueue((siteKey, expiresAt));
        }
    }

    private void ForgetUnknown(string siteKey)
    {
        if (!_unknown.ContainsKey(siteKey)) return;
        lock (_unknownGate)
        {
            if (_unknown.TryRemove(siteKey, out _)) _unknownCount--;
        }
    }

    /// <summary>Forgets every cached key of a site, so the next batch reads its current state.</summary>
    private void Forget(long siteId)
    {
        foreach (var (key, entry) in _byKey)
        {
            if (entry.Access.Site.SiteId == siteId) _byKey.TryRemove(key, out _);
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
        ForgetUnknown(created.SiteKey);
        return Resolve(created.SiteKey) ?? throw new InvalidOperationException("site vanished after insert");
    }

    /// <summary>The secret salt for a UTC day; created on first use, shared through the store.
    /// Throws <see cref="ControlPlaneUnavailableException"/> when the store fails.</summary>
    public byte[] GetSalt(DateOnly utcDay)
    {
        var current = _salt;
        if (current.Day == utcDay && current.Salt is not null) return current.Salt;
        lock (_saltLock)
        {
            if (_salt.Day == utcDay && _salt.Salt is not null) return _salt.Salt;
            byte[] salt;
            try
            {
                salt = Store.GetOrCreateSalt(utcDay, RandomNumberGenerator.GetBytes(32), utcDay.AddDays(-1));
            }
            catch (Exception e)
            {
                throw new ControlPlaneUnavailableException($"control plane: visitor salt for {utcDay:yyyy-MM-dd} failed: {e.Message}", e);
            }
            _salt = (utcDay, salt);
            return salt;
        }
    }

    public void Dispose() => Store.Dispose();
}

/// <summary>What ingest needs to know about a site key: the site and which pages may use it.</summary>
public sealed record SiteAccess(Site Site, OriginPolicy Origins);
