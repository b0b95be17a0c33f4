using System.Data.Common;

namespace Analytics.ControlPlane;

/// <summary>
/// The control plane's schema: ONE list of migrations for both backends, plain SQL in the subset
/// SQLite and PostgreSQL share. Rules that keep it common: BIGINT ids assigned from
/// <c>id_sequences</c> (SQLite's AUTOINCREMENT and PostgreSQL's identity columns differ), times as
/// BIGINT Unix milliseconds, BYTEA for bytes (SQLite stores blobs as given in any column),
/// TEXT for strings, ON CONFLICT … DO NOTHING and RETURNING (SQLite ≥ 3.35, bundled).
/// Applied versions are recorded in <c>schema_migrations</c>; opening a store applies the
/// missing ones in one transaction under a lock (PostgreSQL: an advisory lock; SQLite: an
/// immediate transaction), so several nodes starting together apply each migration once.
/// Append new migrations; never edit an applied one.
/// </summary>
public static class Migrations
{
    public sealed record Migration(int Version, string Name, string Sql);

    public static readonly IReadOnlyList<Migration> All =
    [
        new(1, "control plane", """
            CREATE TABLE id_sequences (name TEXT PRIMARY KEY, last_value BIGINT NOT NULL);
            INSERT INTO id_sequences (name, last_value) VALUES
              ('merchants', 0), ('users', 0), ('sites', 0), ('api_clients', 0), ('api_keys', 0), ('goals', 0), ('funnels', 0);
            CREATE TABLE merchants (
              id BIGINT PRIMARY KEY, name TEXT NOT NULL, created_at BIGINT NOT NULL);
            CREATE TABLE users (
              id BIGINT PRIMARY KEY, merchant_id BIGINT NOT NULL REFERENCES merchants (id),
              email TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, role TEXT NOT NULL, created_at BIGINT NOT NULL);
            CREATE INDEX users_merchant ON users (merchant_id);
            CREATE TABLE sites (
              id BIGINT PRIMARY KEY, public_id TEXT NOT NULL UNIQUE, merchant_id BIGINT NOT NULL REFERENCES merchants (id),
              site_key TEXT NOT NULL UNIQUE, domain TEXT NOT NULL, time_zone TEXT NOT NULL DEFAULT 'UTC', created_at BIGINT NOT NULL);
            CREATE INDEX sites_merchant ON sites (merchant_id);
            CREATE TABLE site_allowed_origins (
              site_id BIGINT NOT NULL REFERENCES sites (id) ON DELETE CASCADE, origin TEXT NOT NULL,
              PRIMARY KEY (site_id, origin));
            CREATE TABLE api_clients (
              id BIGINT PRIMARY KEY, client_id TEXT NOT NULL UNIQUE, secret_hash TEXT NOT NULL, display_name TEXT NOT NULL,
              scopes TEXT NOT NULL, merchant_id BIGINT NOT NULL REFERENCES merchants (id), created_at BIGINT NOT NULL, revoked_at BIGINT);
            CREATE INDEX api_clients_merchant ON api_clients (merchant_id);
            CREATE TABLE api_keys (
              id BIGINT PRIMARY KEY, prefix TEXT NOT NULL UNIQUE, secret_hash BYTEA NOT NULL, name TEXT NOT NULL, scopes TEXT NOT NULL,
              merchant_id BIGINT NOT NULL REFERENCES merchants (id), user_id BIGINT NOT NULL REFERENCES users (id),
              created_at BIGINT NOT NULL, last_used_at BIGINT, revoked_at BIGINT);
            CREATE INDEX api_keys_merchant ON api_keys (merchant_id);
            CREATE TABLE goals (
              id BIGINT PRIMARY KEY, site_id BIGINT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
              name TEXT NOT NULL, kind TEXT NOT NULL, match_value TEXT NOT NULL, created_at BIGINT NOT NULL,
              UNIQUE (site_id, name));
            CREATE TABLE funnels (
              id BIGINT PRIMARY KEY, site_id BIGINT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
              name TEXT NOT NULL, created_at BIGINT NOT NULL, UNIQUE (site_id, name));
            CREATE TABLE funnel_steps (
              funnel_id BIGINT NOT NULL REFERENCES funnels (id) ON DELETE CASCADE, position INTEGER NOT NULL,
              goal_id BIGINT NOT NULL REFERENCES goals (id), PRIMARY KEY (funnel_id, position));
            CREATE TABLE visitor_salts (day TEXT PRIMARY KEY, salt BYTEA NOT NULL);
            """),
        // NULL property and currency: the goals created before keep meaning what they meant.
        // "order" is a keyword in both dialects, hence step_order.
        new(2, "goal properties and revenue, funnel window and order", """
            ALTER TABLE goals ADD COLUMN property_key TEXT;
            ALTER TABLE goals ADD COLUMN property_value TEXT;
            ALTER TABLE goals ADD COLUMN currency TEXT;
            ALTER TABLE funnels ADD COLUMN window_seconds BIGINT NOT NULL DEFAULT 1800;
            ALTER TABLE funnels ADD COLUMN step_order TEXT NOT NULL DEFAULT 'sequential';
            """),
        // A rotated site key keeps working until valid_until (the grace period), so pages still
        // carrying it keep sending while the merchant deploys the new one; a revoked key has no row.
        new(3, "retired site keys", """
            CREATE TABLE site_retired_keys (
              site_key TEXT PRIMARY KEY, site_id BIGINT NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
              retired_at BIGINT NOT NULL, valid_until BIGINT NOT NULL);
            CREATE INDEX site_retired_keys_site ON site_retired_keys (site_id);
            """),
    ];

    internal const string CreateVersionTable =
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

    /// <summary>Applies the migrations the database lacks; returns "version name" of each applied.</summary>
    internal static IReadOnlyList<string> Apply(DbConnection db, Action<DbTransaction> takeLock)
    {
        // The lock comes first, even before creating the version table: two PostgreSQL sessions
        // running CREATE TABLE IF NOT EXISTS at once can both try to create it.
        using var tx = db.BeginTransaction();
        takeLock(tx);
        Sql.Execute(db, tx, CreateVersionTable);
        var done = new HashSet<long>();
        using (var read = Sql.Command(db, tx, "SELECT version FROM schema_migrations"))
        using (var reader = read.ExecuteReader())
        {
            while (reader.Read()) done.Add(Convert.ToInt64(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture));
        }
        var applied = new List<string>();
        foreach (var migration in All.Where(m => !done.Contains(m.Version)).OrderBy(m => m.Version))
        {
            Sql.Execute(db, tx, migration.Sql);
            Sql.Execute(db, tx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (@v, @n, @t)",
                ("@v", migration.Version), ("@n", migration.Name), ("@t", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
            applied.Add($"{migration.Version} {migration.Name}");
        }
        tx.Commit();
        return applied;
    }
}
