// Applies versioned ClickHouse DDL files (schemas/clickhouse/NNN_name.sql) to one database.
//
// Contract:
// - Files are named <version>_<name>.sql (version: decimal digits, e.g. 001_events.sql) and run
//   in version order. Any other *.sql name is an error rather than silently skipped, and so are
//   two files with the same version.
// - "{db}" in a file is replaced by the database name (validated as a plain identifier, since
//   it is pasted into SQL). A file may hold several statements: a statement ends at a line whose
//   last non-blank character is ';'. Lines starting with "--" are comments and never end one,
//   so do not end a line inside a string literal with ';'.
// - Each applied file is recorded in {db}.schema_migrations (version, name, applied_at) after
//   all of its statements succeed; recorded versions are skipped, so re-running is a no-op.
//   A recorded version whose file name changed is an error (two branches picked one number).
// - ClickHouse DDL is not transactional: if statement 2 of a file fails, statement 1 stays
//   applied and the file is not recorded, so the next run executes statement 1 again. Write
//   statements so they can run twice (CREATE … IF NOT EXISTS, ADD COLUMN IF NOT EXISTS).
// - Run one migrator per database at a time (the host does it at start-up); there is no lock.
using System.Globalization;
using System.Text;

namespace Analytics.Store;

/// <summary>One migration file.</summary>
public sealed record SchemaMigration(uint Version, string Name, string FilePath);

public sealed class SchemaMigrator(IColumnStore store, SchemaTarget? target = null)
{
    public const string DatabasePlaceholder = "{db}";
    public const string HistoryTable = "schema_migrations";

    private readonly IColumnStore _store = store ?? throw new ArgumentNullException(nameof(store));
    private readonly SchemaTarget _target = target ?? SchemaTarget.SingleServer;

    /// <summary>The statements a migration file becomes on this target, in order.</summary>
    public static IReadOnlyList<string> Statements(SchemaMigration migration, string database, SchemaTarget target)
    {
        ArgumentNullException.ThrowIfNull(migration);
        ClickHouseSql.RequirePlainIdentifier(database, nameof(database));
        var script = File.ReadAllText(migration.FilePath).Replace(DatabasePlaceholder, database, StringComparison.Ordinal);
        return [.. SplitStatements(script).SelectMany(target.Translate)];
    }

    /// <summary>Creates the database if needed and applies every migration in
    /// <paramref name="directory"/> not yet recorded there.</summary>
    /// <returns>The migrations applied by this call, in order (empty when up to date).</returns>
    public async Task<IReadOnlyList<SchemaMigration>> MigrateAsync(string directory, string database,
        CancellationToken cancellationToken = default)
    {
        ClickHouseSql.RequirePlainIdentifier(database, nameof(database));
        // Translate everything first: a statement the target cannot take fails before any DDL runs.
        var plans = Discover(directory).Select(m => (Migration: m, Statements: Statements(m, database, _target))).ToList();

        await _store.ExecuteAsync(_target.CreateDatabase(database), cancellationToken).ConfigureAwait(false);
        await _store.ExecuteAsync(_target.CreateHistoryTable(database), cancellationToken).ConfigureAwait(false);

        var applied = new Dictionary<uint, string>();
        foreach (var row in await _store.QueryRowsAsync($"SELECT version, name FROM {database}.{HistoryTable}", cancellationToken).ConfigureAwait(false))
            applied[row[0].GetUInt32()] = row[1].GetString() ?? "";

        var done = new List<SchemaMigration>();
        foreach (var (migration, statements) in plans)
        {
            if (applied.TryGetValue(migration.Version, out var appliedName))
            {
                if (!string.Equals(appliedName, migration.Name, StringComparison.Ordinal))
                {
                    throw new InvalidOperationException(
                        $"Database {database} has migration {migration.Version} applied as '{appliedName}', but {directory} holds " +
                        $"'{migration.Name}' for that version. Give the new file an unused version number.");
                }
                continue;
            }

            foreach (var statement in statements)
            {
                try
                {
                    await _store.ExecuteAsync(statement, cancellationToken).ConfigureAwait(false);
                }
                catch (ChDbException e)
                {
                    throw new ChDbException($"Migration {migration.Name} failed: {e.Message}", e) { Statement = e.Statement };
                }
            }

            await _store.ExecuteAsync(
                $"INSERT INTO {database}.{HistoryTable} (version, name, applied_at) VALUES " +
                $"({migration.Version.ToString(CultureInfo.InvariantCulture)}, {ClickHouseSql.StringLiteral(migration.Name)}, now())",
                cancellationToken).ConfigureAwait(false);
            done.Add(migration);
        }
        return done;
    }

    /// <summary>The migration files of <paramref name="directory"/> in version order.</summary>
    /// <exception cref="InvalidDataException">A *.sql file is misnamed or two share a version.</exception>
    public static IReadOnlyList<SchemaMigration> Discover(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Migration directory '{directory}' does not exist.");

        var byVersion = new SortedDictionary<uint, SchemaMigration>();
        foreach (var path in Directory.EnumerateFiles(directory, "*.sql"))
        {
            var name = Path.GetFileName(path);
            var underscore = name.IndexOf('_', StringComparison.Ordinal);
            if (underscore <= 0
                || !uint.TryParse(name.AsSpan(0, underscore), NumberStyles.None, CultureInfo.InvariantCulture, out var version))
            {
                throw new InvalidDataException($"Migration file '{path}' is not named <version>_<name>.sql (for example 001_events.sql).");
            }
            if (!byVersion.TryAdd(version, new SchemaMigration(version, name, path)))
                throw new InvalidDataException($"Migration files '{byVersion[version].Name}' and '{name}' in {directory} share version {version}.");
        }
        return [.. byVersion.Values];
    }

    /// <summary>Splits a script at lines ending with ';' (see the file header); drops the ';',
    /// comment-only lines and empty statements.</summary>
    public static IReadOnlyList<string> SplitStatements(string script)
    {
        ArgumentNullException.ThrowIfNull(script);
        var statements = new List<string>();
        var current = new StringBuilder();
        foreach (var rawLine in script.AsSpan().EnumerateLines())
        {
            var line = rawLine.TrimEnd();
            var trimmedStart = line.TrimStart();
            if (trimmedStart.IsEmpty || trimmedStart.StartsWith("--", StringComparison.Ordinal))
                continue;
            if (line.EndsWith(';'))
            {
                current.Append(line[..^1]);
                Flush();
            }
            else
            {
                current.Append(line).Append('\n');
            }
        }
        Flush();
        return statements;

        void Flush()
        {
            var statement = current.ToString().Trim();
            if (statement.Length > 0)
                statements.Add(statement);
            current.Clear();
        }
    }
}

/// <summary>
/// Where migrations run: one server (the files as they are) or a cluster (each statement
/// translated, ON CLUSTER, history in a replicated table). The version bookkeeping is the same.
/// </summary>
public sealed record SchemaTarget(
    Func<string, string> CreateDatabase,
    Func<string, string> CreateHistoryTable,
    Func<string, IEnumerable<string>> Translate)
{
    public static SchemaTarget SingleServer { get; } = new(
        db => $"CREATE DATABASE IF NOT EXISTS {db}",
        db => $"CREATE TABLE IF NOT EXISTS {db}.{SchemaMigrator.HistoryTable} (version UInt32, name String, applied_at DateTime) ENGINE = MergeTree ORDER BY version",
        statement => [statement]);
}
