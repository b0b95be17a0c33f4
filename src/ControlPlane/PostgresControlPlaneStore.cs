using System.Data.Common;
using Npgsql;

namespace Analytics.ControlPlane;

/// <summary>The shared backend: PostgreSQL through Npgsql (pooled data source). Every node of a
/// deployment points at the same database, so sites, keys and daily salts agree across nodes.</summary>
public sealed class PostgresControlPlaneStore : SqlControlPlaneStore
{
    /// <summary>Advisory lock key held while migrating ("anlytcs" in ASCII, any constant works).</summary>
    private const long MigrationLockKey = 0x616E6C79746373;

    private readonly NpgsqlDataSource _source;

    public PostgresControlPlaneStore(string connectionString)
    {
        _source = NpgsqlDataSource.Create(connectionString);
        try
        {
            Migrate();
        }
        catch
        {
            _source.Dispose();
            throw;
        }
    }

    public override string Backend => "postgres";

    protected override DbConnection OpenConnection() => _source.OpenConnection();

    protected override void LockForMigrations(DbConnection db, DbTransaction tx) =>
        Sql.Scalar(db, tx, "SELECT pg_advisory_xact_lock(@k)", ("@k", MigrationLockKey));

    protected override Violation Classify(DbException e) => e is PostgresException p
        ? p.SqlState switch { PostgresErrorCodes.UniqueViolation => Violation.Unique, PostgresErrorCodes.ForeignKeyViolation => Violation.ForeignKey, _ => Violation.None }
        : Violation.None;

    public override void Dispose() => _source.Dispose();
}
