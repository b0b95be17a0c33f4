// IColumnStore over the in-process chDB engine.
//
// Contract: see IColumnStore. Bulk inserts go through a spool file, not through the query text:
// chDB 26.5 accepts `INSERT … FORMAT RowBinary` with the rows appended to the statement
// (chdb_query_n) and reports success, but stored only 2,570 of 100,000 rows (docs/chdb.md).
// So InsertRowBinaryAsync writes the bytes to <data path>/rowbinary-spool/<guid>.bin and runs
//   INSERT INTO t (cols) SELECT * FROM file('<absolute path>', 'RowBinary', '<cols with types>')
// then deletes the file, success or not. Checked for chDB 26.5.3 (clickhouse-local rules):
// file() takes absolute paths anywhere (user_files_path, /var/lib/clickhouse/user_files/, is not
// enforced); relative paths resolve against the process's current directory, not the data path,
// so we always pass an absolute one; quotes in the path work once escaped as a SQL literal.
// file() treats * ? { } [ ] in the path as globs, so the spool directory must not contain them.
// The spool lives under the engine's data directory so a batch costs no space elsewhere and
// leftovers of a crash are found and removed next time.
using System.Text;
using System.Text.Json;

namespace Analytics.Store;

public sealed class EmbeddedColumnStore : IColumnStore
{
    private const string SpoolExtension = ".rowbinary";
    // An insert's spool file lives for milliseconds; anything this old was left by a crash.
    private static readonly TimeSpan StaleSpoolAge = TimeSpan.FromHours(1);

    private readonly ChDbEngine _engine;
    private readonly string _spoolDirectory;
    private readonly StatementPriority _priority;

    /// <param name="engine">The open engine; the store does not own it (the host disposes it).</param>
    /// <param name="spoolDirectory">Where insert batches are staged; defaults to
    /// &lt;engine data path&gt;/rowbinary-spool.</param>
    /// <param name="priority">The CPU priority of every statement of this store: Rollup's store runs
    /// in the background so that queries beside it keep the cores (ChDbEngine).</param>
    public EmbeddedColumnStore(ChDbEngine engine, string? spoolDirectory = null, StatementPriority priority = StatementPriority.Normal)
    {
        ArgumentNullException.ThrowIfNull(engine);
        _engine = engine;
        _priority = priority;
        _spoolDirectory = Path.GetFullPath(spoolDirectory ?? Path.Combine(engine.DataPath, "rowbinary-spool"));
        if (_spoolDirectory.AsSpan().IndexOfAny("*?{}[]") >= 0)
            throw new ArgumentException($"The spool directory '{_spoolDirectory}' contains a glob character (* ? {{ }} [ ]), which ClickHouse's file() would expand.", nameof(spoolDirectory));
        Directory.CreateDirectory(_spoolDirectory);
        DeleteStaleSpoolFiles();
    }

    /// <summary>This store's statements' priority, on the same engine and spool as this one.</summary>
    public EmbeddedColumnStore WithPriority(StatementPriority priority) =>
        priority == _priority ? this : new EmbeddedColumnStore(_engine, _spoolDirectory, priority);

    public Task ExecuteAsync(string sql, CancellationToken cancellationToken = default) =>
        _engine.QueryAsync(sql, ChDbEngine.DefaultFormat, static _ => true, cancellationToken, _priority);

    public Task<IReadOnlyList<JsonElement[]>> QueryRowsAsync(string sql, CancellationToken cancellationToken = default) =>
        _engine.QueryAsync(sql, "JSONCompact", output => ParseJsonCompact(output.Data, sql), cancellationToken, _priority);

    public Task<T> QueryRowBinaryAsync<T>(string sql, RowBinaryRead<T> read, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(read);
        return _engine.QueryAsync(sql, "RowBinary", output => read(output.Data), cancellationToken, _priority);
    }

    /// <inheritdoc />
    /// <remarks>The keys go through a spool file read by file(), like inserts: one query, no literal.</remarks>
    public Task<IReadOnlyList<JsonElement[]>> QueryRowsAsync(string sql, KeyRows keys, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keys);
        return WithSpoolFileAsync(keys.Rows, keys.Structure, table =>
            QueryRowsAsync(sql.Replace(KeyRows.Placeholder, table, StringComparison.Ordinal), cancellationToken), cancellationToken);
    }

    public async Task<long> InsertRowBinaryAsync(string table, string columnsWithTypes, ReadOnlyMemory<byte> rowBinary,
        string? deduplicationToken = null, CancellationToken cancellationToken = default)
    {
        ClickHouseSql.RequireTableName(table);
        var columns = ClickHouseSql.ColumnNames(columnsWithTypes);
        if (rowBinary.IsEmpty)
            return 0;

        return await StoreTelemetry.TimeInsertAsync("embedded", table, WithSpoolFileAsync(rowBinary, columnsWithTypes, source =>
        {
            var sql = new StringBuilder(128 + columnsWithTypes.Length + source.Length)
                .Append("INSERT INTO ").Append(table).Append(" (").AppendJoin(", ", columns)
                .Append(") ")
                .Append(deduplicationToken is null ? "" : "SETTINGS insert_deduplication_token = " + ClickHouseSql.StringLiteral(deduplicationToken) + ", max_threads = 1 ")
                .Append("SELECT * FROM ").Append(source)
                .ToString();
            return _engine.QueryAsync(sql, ChDbEngine.DefaultFormat, static output => (long)output.RowsWritten, cancellationToken, _priority);
        }, cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes RowBinary rows to a spool file, runs <paramref name="run"/> with the table
    /// expression that reads them (file('…', 'RowBinary', structure)), then deletes the file.
    /// No fsync: the engine reads the file back through the page cache right away, and the file
    /// is worthless after a crash (the caller retries).
    /// </summary>
    private async Task<T> WithSpoolFileAsync<T>(ReadOnlyMemory<byte> rows, string structure, Func<string, Task<T>> run, CancellationToken cancellationToken)
    {
        var path = Path.Combine(_spoolDirectory, Guid.NewGuid().ToString("N") + SpoolExtension);
        try
        {
            using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.None,
                       FileOptions.Asynchronous, preallocationSize: rows.Length))
            {
                await RandomAccess.WriteAsync(handle, rows, 0, cancellationToken).ConfigureAwait(false);
            }
            return await run($"file({ClickHouseSql.StringLiteral(path)}, 'RowBinary', {ClickHouseSql.StringLiteral(structure)})").ConfigureAwait(false);
        }
        finally
        {
            File.Delete(path);
        }
    }

    // JSONCompact: {"meta":[…],"data":[[v, v, …], …],"rows":N,…}. ParseValue copies the bytes
    // into a document of its own (no pooled memory, nothing to dispose), so the elements stay
    // valid after the engine's buffer is freed; one document per result, not one per row.
    // Empty output is no rows only for a statement without a result set (DDL, INSERT): a query's
    // output always carries "data", even with no rows. Reading a query's empty output as no rows
    // would be silently wrong (an empty duplicate lookup stores events twice, an empty answer
    // shows zeros), and once, right after the engine refused a 24 GiB allocation, chDB handed
    // back neither an error nor output for a SELECT.
    internal static IReadOnlyList<JsonElement[]> ParseJsonCompact(ReadOnlySpan<byte> json, string sql)
    {
        if (json.IsEmpty)
            return ClickHouseSql.ReturnsResultSet(sql)
                ? throw new InvalidDataException($"The store answered a {ClickHouseSql.FirstKeyword(sql).ToUpperInvariant()} statement of {sql.Length} characters " +
                    "with no output at all (not even its columns); refusing to read that as no rows.")
                : [];
        var reader = new Utf8JsonReader(json);
        var root = JsonElement.ParseValue(ref reader);
        if (!root.TryGetProperty("data"u8, out var data))
            throw new InvalidDataException("The store's JSONCompact output has no \"data\".");

        var rows = new JsonElement[data.GetArrayLength()][];
        var r = 0;
        foreach (var row in data.EnumerateArray())
        {
            var cells = new JsonElement[row.GetArrayLength()];
            var c = 0;
            foreach (var cell in row.EnumerateArray())
                cells[c++] = cell;
            rows[r++] = cells;
        }
        return rows;
    }

    private void DeleteStaleSpoolFiles()
    {
        var cutoff = DateTime.UtcNow - StaleSpoolAge;
        foreach (var file in Directory.EnumerateFiles(_spoolDirectory, "*" + SpoolExtension))
        {
            try
            {
                if (File.GetLastWriteTimeUtc(file) < cutoff)
                    File.Delete(file);
            }
            catch (IOException)
            {
                // Another store instance may be removing it at the same moment; either way it goes.
            }
        }
    }
}
