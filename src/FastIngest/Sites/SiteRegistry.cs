using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Data.Sqlite;

namespace Analytics.FastIngest.Sites;

public sealed record Site(long SiteId, long MerchantId, string SiteKey, string Domain, string MerchantName);

/// <summary>
/// Site keys resolve to merchant and site. The source of truth is a store made for point
/// lookups and updates (SQLite in the embedded deployment: one file, transactional, no server);
/// the ingest path reads it through an in-memory cache, so no event ever waits on I/O. A key is
/// looked up in the store once; unknown keys are remembered for <see cref="NegativeCacheTtl"/> so
/// a client hammering with a bad key costs one lookup per TTL, while a site created on another
/// node becomes usable within the TTL. Sites created through this instance are visible at once.
///
/// The registry also keeps the visitor-id salts: one random secret per UTC day, shared by every
/// ingest node through the store, deleted once it is two days old so that visitor ids can never
/// be recomputed from stored data afterwards.
/// </summary>
public sealed class SiteRegistry : IDisposable
{
    public static readonly TimeSpan NegativeCacheTtl = TimeSpan.FromSeconds(10);

    /// <summary>Unknown keys remembered at most: a client inventing keys must not grow memory
    /// without bound. Past this, misses go to the store (rate limiting is the defence there).</summary>
    public const int MaxNegativeEntries = 100_000;
    private int _negativeEntries;

    private readonly string _connectionString;
    private readonly ConcurrentDictionary<string, CacheEntry> _byKey = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, CacheEntry>.AlternateLookup<ReadOnlySpan<char>> _byKeySpan;
    private readonly Lock _saltLock = new();
    private (DateOnly Day, byte[] Salt) _salt;

    private sealed record CacheEntry(Site? Site, long ExpiresAtTicks);

    public SiteRegistry(string databasePath)
    {
        _connectionString = new SqliteConnectionStringBuilder { DataSource = databasePath, Pooling = true }.ToString();
        _byKeySpan = _byKey.GetAlternateLookup<ReadOnlySpan<char>>();
        using var db = Open();
        Execute(db, """
            PRAGMA journal_mode = WAL;
            CREATE TABLE IF NOT EXISTS merchants (
              id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, created_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS sites (
              id INTEGER PRIMARY KEY AUTOINCREMENT,
              merchant_id INTEGER NOT NULL REFERENCES merchants(id),
              site_key TEXT NOT NULL UNIQUE, domain TEXT NOT NULL, created_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS visitor_salts (day TEXT PRIMARY KEY, salt BLOB NOT NULL);
            """);
    }

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
        var site = Query("s.site_key = $p", siteKey).FirstOrDefault();
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

    public Site? FindById(long siteId) => Query("s.id = $p", siteId).FirstOrDefault();

    public IReadOnlyList<Site> ListSites() => Query("$p IS NULL", DBNull.Value);

    public long CreateMerchant(string name)
    {
        using var db = Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "INSERT INTO merchants (name, created_at) VALUES ($n, $t) RETURNING id";
        cmd.Parameters.AddWithValue("$n", name);
        cmd.Parameters.AddWithValue("$t", DateTime.UtcNow.ToString("O"));
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>Creates a site with a new random key (or the given one, for demos and tests).</summary>
    public Site CreateSite(long merchantId, string domain, string? siteKey = null)
    {
        siteKey ??= NewSiteKey();
        using var db = Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "INSERT INTO sites (merchant_id, site_key, domain, created_at) VALUES ($m, $k, $d, $t) RETURNING id";
        cmd.Parameters.AddWithValue("$m", merchantId);
        cmd.Parameters.AddWithValue("$k", siteKey);
        cmd.Parameters.AddWithValue("$d", domain);
        cmd.Parameters.AddWithValue("$t", DateTime.UtcNow.ToString("O"));
        cmd.ExecuteScalar();
        if (_byKey.TryRemove(siteKey, out var stale) && stale.Site is null) Interlocked.Decrement(ref _negativeEntries);
        return Resolve(siteKey) ?? throw new InvalidOperationException("site vanished after insert");
    }

    /// <summary>The secret salt for a UTC day; created on first use, shared through the store.</summary>
    public byte[] GetSalt(DateOnly utcDay)
    {
        var current = _salt;
        if (current.Day == utcDay && current.Salt is not null) return current.Salt;
        lock (_saltLock)
        {
            if (_salt.Day == utcDay && _salt.Salt is not null) return _salt.Salt;
            using var db = Open();
            using var tx = db.BeginTransaction();
            string day = utcDay.ToString("yyyy-MM-dd");
            using (var insert = db.CreateCommand())
            {
                insert.Transaction = tx;
                insert.CommandText = "INSERT OR IGNORE INTO visitor_salts (day, salt) VALUES ($d, $s); DELETE FROM visitor_salts WHERE day < $old;";
                insert.Parameters.AddWithValue("$d", day);
                insert.Parameters.AddWithValue("$s", RandomNumberGenerator.GetBytes(32));
                insert.Parameters.AddWithValue("$old", utcDay.AddDays(-1).ToString("yyyy-MM-dd"));
                insert.ExecuteNonQuery();
            }
            using var select = db.CreateCommand();
            select.Transaction = tx;
            select.CommandText = "SELECT salt FROM visitor_salts WHERE day = $d";
            select.Parameters.AddWithValue("$d", day);
            var salt = (byte[])select.ExecuteScalar()!;
            tx.Commit();
            _salt = (utcDay, salt);
            return salt;
        }
    }

    private static string NewSiteKey()
    {
        // 15 random bytes as base64url: 20 characters, 120 bits, unguessable and URL/attribute safe.
        return Convert.ToBase64String(RandomNumberGenerator.GetBytes(15)).Replace('+', '-').Replace('/', '_');
    }

    private List<Site> Query(string where, object parameter)
    {
        using var db = Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = $"""
            SELECT s.id, s.merchant_id, s.site_key, s.domain, m.name
            FROM sites s JOIN merchants m ON m.id = s.merchant_id WHERE {where} ORDER BY s.id
            """;
        cmd.Parameters.AddWithValue("$p", parameter);
        using var reader = cmd.ExecuteReader();
        var result = new List<Site>();
        while (reader.Read())
        {
            result.Add(new Site(reader.GetInt64(0), reader.GetInt64(1), reader.GetString(2), reader.GetString(3), reader.GetString(4)));
        }
        return result;
    }

    private SqliteConnection Open()
    {
        var db = new SqliteConnection(_connectionString);
        db.Open();
        return db;
    }

    private static void Execute(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    public void Dispose() => SqliteConnection.ClearAllPools();
}
