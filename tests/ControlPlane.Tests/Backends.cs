using System.Text;
using Analytics.Tests.Shared;
using Microsoft.Data.Sqlite;
using Npgsql;

[assembly: AssemblyFixture(typeof(PostgresServer))]

namespace Analytics.ControlPlane.Tests;

/// <summary>One backend under test. Each test (a new instance) gets its own SQLite file or its
/// own PostgreSQL database; <see cref="Open"/> opens another store on the same data, as a
/// second node would.</summary>
public interface IBackend : IDisposable
{
    IControlPlaneStore Open();

    /// <summary>Everything stored, as text a secret could hide in (file bytes, or rows as text).</summary>
    string RawContents();
}

public sealed class SqliteBackend : IBackend
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cp-tests-" + Guid.NewGuid().ToString("N"));

    public string FilePath => Path.Combine(_dir, "control-plane.db");

    public IControlPlaneStore Open() => new SqliteControlPlaneStore(FilePath);

    public string RawContents()
    {
        var text = new StringBuilder();
        foreach (var file in Directory.GetFiles(_dir))
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream, Encoding.Latin1);
            text.Append(reader.ReadToEnd());
        }
        return text.ToString();
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}

public sealed class PostgresBackend(PostgresServer server) : IBackend
{
    public string ConnectionString { get; } = server.CreateDatabase("cp");

    public IControlPlaneStore Open() => new PostgresControlPlaneStore(ConnectionString);

    public string RawContents()
    {
        using var db = new NpgsqlConnection(ConnectionString);
        db.Open();
        var text = new StringBuilder();
        var tables = new List<string>();
        using (var list = new NpgsqlCommand("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", db))
        using (var reader = list.ExecuteReader())
        {
            while (reader.Read()) tables.Add(reader.GetString(0));
        }
        foreach (var table in tables)
        {
            // Row text (bytea as hex).
            using var cmd = new NpgsqlCommand($"SELECT t::text FROM \"{table}\" t", db);
            using var reader = cmd.ExecuteReader();
            while (reader.Read()) text.AppendLine(reader.GetString(0));
        }
        return text.ToString();
    }

    public void Dispose() => NpgsqlConnection.ClearAllPools();
}
