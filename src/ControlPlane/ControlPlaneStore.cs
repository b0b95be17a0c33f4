using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Analytics.ControlPlane;

/// <summary>Opens the control plane named by <c>--control-plane</c>: <c>sqlite:PATH</c> or
/// <c>postgres:CONNECTION-STRING</c> (Npgsql keywords, e.g. <c>postgres:Host=db;Database=analytics;Username=u;Password=p</c>).</summary>
public static class ControlPlaneStore
{
    /// <summary>The embedded default's file in the data directory.</summary>
    public const string DefaultFileName = "control-plane.db";

    /// <summary>The file of the site registry before the control plane existed.</summary>
    public const string LegacyFileName = "registry.db";

    public static string DefaultSpec(string dataDirectory) => "sqlite:" + System.IO.Path.Combine(dataDirectory, DefaultFileName);

    /// <summary>Opens and migrates; every failure is a <see cref="ControlPlaneUnavailableException"/> with one clear line.</summary>
    public static IControlPlaneStore Open(string spec)
    {
        int colon = spec.IndexOf(':');
        string kind = colon < 0 ? "" : spec[..colon];
        string target = colon < 0 ? "" : spec[(colon + 1)..];
        if (target.Length == 0 || kind is not ("sqlite" or "postgres"))
            throw new ControlPlaneUnavailableException($"--control-plane '{spec}': use sqlite:PATH or postgres:CONNECTION-STRING.");
        try
        {
            if (kind == "postgres") return new PostgresControlPlaneStore(target);
            var store = new SqliteControlPlaneStore(target);
            ImportLegacyRegistry(store);
            return store;
        }
        catch (Exception e) when (e is DbException or ArgumentException or InvalidOperationException or IOException or UnauthorizedAccessException or TimeoutException)
        {
            throw new ControlPlaneUnavailableException($"control plane {kind} ({Describe(kind, target)}): {e.Message}", e);
        }
    }

    private static string Describe(string kind, string target)
    {
        if (kind == "sqlite") return target;
        try
        {
            var b = new Npgsql.NpgsqlConnectionStringBuilder(target);
            return $"{b.Host}:{b.Port}/{b.Database}";
        }
        catch (ArgumentException)
        {
            return "connection string";
        }
    }

    /// <summary>
    /// Data directories from before the control plane keep <c>registry.db</c> (merchants, sites,
    /// salts, no version table). When a new SQLite control plane is empty and such a file sits
    /// beside it, its rows are copied over with their internal ids (ClickHouse rows refer to
    /// them) and keys, each site gets a public id, and the old file is renamed
    /// <c>registry.db.imported</c>. Done once; a no-op afterwards.
    /// </summary>
    private static void ImportLegacyRegistry(SqliteControlPlaneStore store)
    {
        string legacy = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(store.FilePath))!, LegacyFileName);
        if (!File.Exists(legacy) || store.ListMerchants().Count > 0) return;
        using (var old = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = legacy, Pooling = false }.ToString()))
        using (var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = store.FilePath, Pooling = false, ForeignKeys = true }.ToString()))
        {
            old.Open();
            db.Open();
            using var tx = db.BeginTransaction();
            foreach (var (id, name) in Sql.Rows(old, null, r => (r.Long(0), r.GetString(1)), "SELECT id, name FROM merchants ORDER BY id"))
                Sql.Execute(db, tx, "INSERT INTO merchants (id, name, created_at) VALUES (@i, @n, @t)", ("@i", id), ("@n", name), ("@t", Sql.Millis(DateTimeOffset.UtcNow)));
            foreach (var (id, merchant, key, domain) in Sql.Rows(old, null, r => (r.Long(0), r.Long(1), r.GetString(2), r.GetString(3)), "SELECT id, merchant_id, site_key, domain FROM sites ORDER BY id"))
            {
                Sql.Execute(db, tx, "INSERT INTO sites (id, public_id, merchant_id, site_key, domain, time_zone, created_at) VALUES (@i, @p, @m, @k, @d, 'UTC', @t)",
                    ("@i", id), ("@p", Identifiers.NewPublicId()), ("@m", merchant), ("@k", key), ("@d", domain), ("@t", Sql.Millis(DateTimeOffset.UtcNow)));
            }
            foreach (var (day, salt) in Sql.Rows(old, null, r => (r.GetString(0), (byte[])r.GetValue(1)), "SELECT day, salt FROM visitor_salts"))
                Sql.Execute(db, tx, "INSERT INTO visitor_salts (day, salt) VALUES (@d, @s)", ("@d", day), ("@s", salt));
            Sql.Execute(db, tx, "UPDATE id_sequences SET last_value = (SELECT COALESCE(MAX(id), 0) FROM merchants) WHERE name = 'merchants'");
            Sql.Execute(db, tx, "UPDATE id_sequences SET last_value = (SELECT COALESCE(MAX(id), 0) FROM sites) WHERE name = 'sites'");
            tx.Commit();
        }
        File.Move(legacy, legacy + ".imported");
    }
}
