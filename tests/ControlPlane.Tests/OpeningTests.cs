using Analytics.Tests.Shared;
using Microsoft.Data.Sqlite;

namespace Analytics.ControlPlane.Tests;

/// <summary>Choosing and opening a backend (--control-plane), concurrent migration, and the
/// import of data directories from before the control plane.</summary>
public sealed class OpeningTests(PostgresServer server) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cp-open-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void The_spec_names_the_backend()
    {
        using (var sqlite = ControlPlaneStore.Open("sqlite:" + Path.Combine(_dir, "a", "cp.db")))
            Assert.Equal("sqlite", sqlite.Backend);
        Assert.True(File.Exists(Path.Combine(_dir, "a", "cp.db")));
        using var postgres = ControlPlaneStore.Open("postgres:" + server.CreateDatabase("open"));
        Assert.Equal("postgres", postgres.Backend);
        Assert.Equal(Migrations.All.Count, postgres.AppliedMigrations.Count);
    }

    [Theory]
    [InlineData("mysql:whatever")]
    [InlineData("sqlite:")]
    [InlineData("registry.db")]
    public void A_malformed_spec_is_refused_with_one_clear_line(string spec)
    {
        var e = Assert.Throws<ControlPlaneUnavailableException>(() => ControlPlaneStore.Open(spec));
        Assert.Contains("sqlite:PATH or postgres:CONNECTION-STRING", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void An_unreachable_postgres_is_refused_with_its_address_and_no_password()
    {
        int closedPort = FreeClosedPort();
        var e = Assert.Throws<ControlPlaneUnavailableException>(() =>
            ControlPlaneStore.Open($"postgres:Host=127.0.0.1;Port={closedPort};Database=nope;Username=u;Password=hunter2;Timeout=3"));
        Assert.StartsWith($"control plane postgres (127.0.0.1:{closedPort}/nope): ", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Nodes_starting_together_on_one_postgres_database_apply_each_migration_once()
    {
        string cs = server.CreateDatabase("race");
        using var start = new Barrier(6);
        var stores = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(() =>
        {
            start.SignalAndWait(TestContext.Current.CancellationToken);
            return ControlPlaneStore.Open("postgres:" + cs);
        })));
        try
        {
            Assert.Equal(1, stores.Count(s => s.AppliedMigrations.Count == Migrations.All.Count));
            Assert.Equal(5, stores.Count(s => s.AppliedMigrations.Count == 0));
            Assert.Equal("works", stores[1].CreateMerchant("works").Name);
            Assert.Single(stores[0].ListMerchants());
        }
        finally
        {
            foreach (var s in stores) s.Dispose();
        }
    }

    [Fact]
    public void A_data_directory_with_the_old_registry_is_imported_with_its_ids_keys_and_salts()
    {
        string legacy = Path.Combine(_dir, "registry.db");
        using (var db = new SqliteConnection($"Data Source={legacy};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            // The schema and rows exactly as the old FastIngest SiteRegistry wrote them.
            cmd.CommandText = """
                CREATE TABLE merchants (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, created_at TEXT NOT NULL);
                CREATE TABLE sites (id INTEGER PRIMARY KEY AUTOINCREMENT, merchant_id INTEGER NOT NULL REFERENCES merchants(id),
                  site_key TEXT NOT NULL UNIQUE, domain TEXT NOT NULL, created_at TEXT NOT NULL);
                CREATE TABLE visitor_salts (day TEXT PRIMARY KEY, salt BLOB NOT NULL);
                INSERT INTO merchants (id, name, created_at) VALUES (1, 'Demo Merchant', '2026-01-01T00:00:00Z'), (4, 'Shop', '2026-01-02T00:00:00Z');
                INSERT INTO sites (id, merchant_id, site_key, domain, created_at) VALUES
                  (1, 1, 'demo-site-key', 'demo.localhost', '2026-01-01T00:00:00Z'), (7, 4, 'shop-key', 'shop.example', '2026-01-02T00:00:00Z');
                INSERT INTO visitor_salts (day, salt) VALUES ('2026-11-30', x'0102030405060708010203040506070801020304050607080102030405060708');
                """;
            cmd.ExecuteNonQuery();
        }

        using (var store = ControlPlaneStore.Open(ControlPlaneStore.DefaultSpec(_dir)))
        {
            var shop = store.FindSiteByKey("shop-key")!;
            Assert.Equal((7L, 4L, "shop.example", "Shop", "UTC"), (shop.SiteId, shop.MerchantId, shop.Domain, shop.MerchantName, shop.TimeZone));
            Assert.Matches("^[a-z2-7]{16}$", shop.PublicId);
            Assert.Equal(1, store.FindSiteByKey("demo-site-key")!.SiteId);
            var salt = store.GetOrCreateSalt(new DateOnly(2026, 11, 30), new byte[32], new DateOnly(2026, 11, 29));
            Assert.Equal(Convert.FromHexString("0102030405060708010203040506070801020304050607080102030405060708"), salt);
            // New rows continue after the imported ids.
            Assert.Equal(5, store.CreateMerchant("next").Id);
            Assert.Equal(8, store.CreateSite(4, "new.example").SiteId);
        }
        Assert.False(File.Exists(legacy));
        Assert.True(File.Exists(legacy + ".imported"));
        using var reopened = ControlPlaneStore.Open(ControlPlaneStore.DefaultSpec(_dir));
        Assert.Equal(3, reopened.ListSites().Count);
    }

    private static int FreeClosedPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
