// The columnar store as the rest of the platform sees it: ClickHouse SQL in, rows out.
//
// Contract: implementations run ClickHouse SQL against one ClickHouse engine, embedded
// (EmbeddedColumnStore over chDB) or a server (ClickHouseServerStore in src/Store.ClickHouse, over
// ClickHouse.Driver); the SQL and the RowBinary encoding are the same for both, so callers never
// branch on the deployment.
// - QueryRowsAsync returns each row as an array of JSON values in column order (ClickHouse
//   JSONCompact). 64-bit integers are JSON numbers, not strings: read them with
//   GetUInt64()/GetInt64(), which are exact. A server implementation must pass
//   output_format_json_quote_64bit_integers=0 with each query to keep this. nan/inf come as null.
//   The SQL must not carry its own FORMAT clause. A query (ClickHouseSql.ReturnsResultSet) whose
//   output is empty or has no "data" is an error (InvalidDataException), never "no rows"; only a
//   statement that never has one (DDL, INSERT, SET, SYSTEM…) answers no rows with empty output.
// - InsertRowBinaryAsync stores rows encoded with RowBinaryWriter. columnsWithTypes names the
//   columns present in the data, in order, with their ClickHouse types ("id UInt64, url String");
//   the table may have more columns, which take their defaults. It returns the row count the
//   engine reports as written, so callers can compare it with what they sent (a partial insert
//   must never pass silently). Rows go in as one INSERT; ClickHouse makes each block of up to
//   max_insert_block_size (~1M) rows atomic, not the statement as a whole, so retries must be
//   idempotent (event ids, ReplacingMergeTree), which the platform requires anyway.
// - QueryRowsAsync(sql, keys) runs a query against a caller-supplied set of fixed-size rows
//   ({keys} in the SQL), for lookups of many keys at once (Rollup's duplicate check: 50,000 ids
//   per round). Keys in the SQL text cost ~2 µs each to parse (ClickHouse's lexer and
//   expression pipeline); as data they cost ~0.2 µs. The query must select per key (e.g.
//   "WHERE id IN (SELECT id FROM {keys})"): a server store may run it once per slice of keys
//   and concatenate the answers.
// - QueryRowBinaryAsync runs a query and hands its whole output, in RowBinary, to a reader
//   (RowBinaryReader decodes it): for reading many rows back (reprocessing reads every raw row
//   of the site-days it rebuilds), where JSON's formatting and parsing cost more than the query.
//   The SQL must not carry its own FORMAT clause; the bytes are valid only inside the reader.
using System.Text.Json;

namespace Analytics.Store;

public interface IColumnStore
{
    /// <summary>Runs a statement that returns no rows (DDL, INSERT … SELECT, ALTER).</summary>
    Task ExecuteAsync(string sql, CancellationToken cancellationToken = default);

    /// <summary>Runs a query and returns its rows; each row holds one JSON value per column.</summary>
    Task<IReadOnlyList<JsonElement[]>> QueryRowsAsync(string sql, CancellationToken cancellationToken = default);

    /// <summary>Runs a query that reads <paramref name="keys"/> as the table expression written
    /// <c>{keys}</c> in <paramref name="sql"/>; see the file header for the rules.</summary>
    Task<IReadOnlyList<JsonElement[]>> QueryRowsAsync(string sql, KeyRows keys, CancellationToken cancellationToken = default);

    /// <summary>Runs a query and passes its output, RowBinary-encoded, to <paramref name="read"/>
    /// (valid only during the call); see the file header.</summary>
    Task<T> QueryRowBinaryAsync<T>(string sql, RowBinaryRead<T> read, CancellationToken cancellationToken = default);

    /// <summary>Inserts RowBinary-encoded rows into <paramref name="table"/> (optionally "db.table").
    /// With <paramref name="deduplicationToken"/>, a repeat of an insert with the same token is
    /// skipped by the store (tables need non_replicated_deduplication_window or replication).</summary>
    /// <returns>Rows written, as reported by the engine. The embedded engine (chDB 26.5) reports a
    /// block skipped by its token as written too, so the count never reveals a replay; compare
    /// it with the rows sent to catch partial inserts.</returns>
    Task<long> InsertRowBinaryAsync(string table, string columnsWithTypes, ReadOnlyMemory<byte> rowBinary,
        string? deduplicationToken = null, CancellationToken cancellationToken = default);
}

/// <summary>Reads a query's RowBinary output (see <see cref="RowBinaryReader"/>).</summary>
public delegate T RowBinaryRead<out T>(ReadOnlySpan<byte> rows);

/// <summary>Rows of one fixed size, RowBinary-encoded (e.g. "event_id FixedString(16)", 16 bytes each).</summary>
public sealed record KeyRows(string Structure, int RowBytes, ReadOnlyMemory<byte> Rows)
{
    public const string Placeholder = "{keys}";

    public int Count => RowBytes == 0 ? 0 : Rows.Length / RowBytes;
}

/// <summary>How a statement shares the CPU with the others. Both stores pass it to the engine as
/// the setting os_thread_priority (newer engines call it os_threads_nice_value_query and still
/// take the old name, which older servers know), the nice value of the threads while they run the
/// statement; the engine applies it only with CAP_SYS_NICE (it must lower the value again
/// afterwards) and otherwise ignores it (ChDbEngine.CanPrioritize). The values are each store's:
/// ChDbEngine.SessionNiceValue, ClickHouseServerStore.BackgroundNiceValue.</summary>
public enum StatementPriority
{
    /// <summary>Queries someone is waiting for: dashboards and the API.</summary>
    Normal,

    /// <summary>Work that may wait: Rollup's rounds, reprocessing.</summary>
    Background,
}
