using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Analytics.ControlPlane;

/// <summary>The embedded backend: one SQLite file (WAL, foreign keys on). Several processes on
/// one machine may share the file; several machines need <see cref="PostgresControlPlaneStore"/>.</summary>
public sealed class SqliteControlPlaneStore : SqlControlPlaneStore
{
    private readonly string _connectionString;

    public SqliteControlPlaneStore(string path)
    {
        string? directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (directory is not null) Directory.CreateDirectory(directory);
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, ForeignKeys = true }.ToString();
        FilePath = path;
        using (var db = OpenConnection()) Sql.Execute(db, null, "PRAGMA journal_mode = WAL");
        OwnerOnly(path);
        Migrate();
    }

    /// <summary>The file holds secret hashes and visitor salts: owner read and write only (0600),
    /// and the WAL and shared-memory files beside it too (SQLite creates them with the file's mode,
    /// so they follow from now on).</summary>
    private static void OwnerOnly(string path)
    {
        if (OperatingSystem.IsWindows()) return;
        foreach (string file in (string[])[path, path + "-wal", path + "-shm"])
        {
            if (File.Exists(file) && (File.GetUnixFileMode(file) & ~(UnixFileMode.UserRead | UnixFileMode.UserWrite)) != 0)
                File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    public string FilePath { get; }

    public override string Backend => "sqlite";

    protected override DbConnection OpenConnection()
    {
        var db = new SqliteConnection(_connectionString);
        db.Open();
        return db;
    }

    // Microsoft.Data.Sqlite begins transactions with BEGIN IMMEDIATE: the write lock is taken
    // at once, so a second process waits (busy timeout) instead of migrating concurrently.
    protected override void LockForMigrations(DbConnection db, DbTransaction tx) { }

    protected override Violation Classify(DbException e) => e is SqliteException { SqliteErrorCode: 19 } s
        ? s.SqliteExtendedErrorCode == 787 ? Violation.ForeignKey : Violation.Unique // 787 = SQLITE_CONSTRAINT_FOREIGNKEY
        : Violation.None;

    public override void Dispose() => SqliteConnection.ClearAllPools();
}
