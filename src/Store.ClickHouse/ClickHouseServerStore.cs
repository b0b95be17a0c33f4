// IColumnStore over a ClickHouse server or cluster, through the official ClickHouse.Driver (HTTP).
//
// Contract: the IColumnStore contract, with the same SQL and the same RowBinary bytes as the
// embedded store; callers never branch on the deployment. On the wire:
// - ExecuteAsync sends the statement unchanged with wait_end_of_query=1.
// - QueryRowsAsync sends the statement unchanged with default_format=JSONCompact,
//   output_format_json_quote_64bit_integers=0 (64-bit integers as JSON numbers, as the embedded
//   engine prints them) and wait_end_of_query=1, so an error half way through a result becomes an
//   HTTP error instead of a truncated body; the results are dashboard-sized, buffering costs nothing.
// - QueryRowBinaryAsync sends it with default_format=RowBinary and wait_end_of_query=1, and hands
//   the buffered body to the reader (reprocessing reads pages of at most a round's rows).
// - InsertRowBinaryAsync posts `INSERT INTO table (columns) FORMAT RowBinary` with the caller's
//   bytes as the body (no re-encoding), the token as insert_deduplication_token, and returns
//   written_rows from the server's X-ClickHouse-Summary header. One HTTP request per call: a
//   batch is one INSERT, and the server forms blocks of up to max_insert_block_size rows.
// - Retries: at most MaxAttempts per statement, exponential backoff with jitter, only for
//   transport failures (connection refused or reset, timeout) and server errors whose code says
//   "try again" (RetryableCodes). A retry repeats the statement exactly, so it is safe because
//   the platform's statements are idempotent: DDL is IF NOT EXISTS; inserts carry a deduplication
//   token, and without one the tables' deduplication window drops a repeated identical block by
//   its hash. Everything else (syntax, unknown table, type mismatch, access denied) fails at once
//   with ClickHouseStoreException carrying the server's code and message.
// - Cluster (options.Cluster set): tables are Distributed over ReplicatedMergeTree shards keyed by
//   merchant (ClusterSchema). Every statement then also carries
//     distributed_product_mode=local       the JOIN with `generations` reads each shard's local
//                                           table: one merchant's rows all live on one shard;
//     optimize_skip_unused_shards=1         a WHERE merchant_id = N query goes to one shard;
//     parallel_distributed_insert_select=2  rollup INSERT … SELECT runs shard-locally;
//     distributed_foreground_insert=1       an insert is acknowledged after the shard stored it,
//                                           so its deduplication token is checked on that shard.
//   These can only be exercised against a real cluster; docs/clickhouse-server.md says so.
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using ClickHouse.Driver;
using ClickHouse.Driver.ADO;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Analytics.Store.ClickHouse;

public sealed partial class ClickHouseServerStore : IColumnStore, IDisposable
{
    /// <summary>Where retried failures are logged (the host sets it; a view made by WithPriority logs
    /// where its store does); the final failure is the caller's to log.</summary>
    public ILogger Logger
    {
        get => _viewOf?.Logger ?? _logger;
        set => _logger = value;
    }

    private ILogger _logger = NullLogger.Instance;
    private readonly ClickHouseServerStore? _viewOf;

    /// <summary>ClickHouse error codes worth another attempt: the same statement may succeed later.</summary>
    public static readonly IReadOnlySet<int> RetryableCodes = new HashSet<int>
    {
        3,   // UNEXPECTED_END_OF_FILE: connection cut mid-request
        159, // TIMEOUT_EXCEEDED
        202, // TOO_MANY_SIMULTANEOUS_QUERIES
        209, // SOCKET_TIMEOUT
        210, // NETWORK_ERROR
        242, // TABLE_IS_READ_ONLY: a replica lost its Keeper session and is reconnecting
        252, // TOO_MANY_PARTS: merges are behind; back off
        285, // TOO_FEW_LIVE_REPLICAS
        319, // UNKNOWN_STATUS_OF_INSERT: the token makes the repeat safe
        999, // KEEPER_EXCEPTION
    };

    private const string SummaryHeader = "X-ClickHouse-Summary";

    /// <summary>The nice value background statements ask the server for (os_thread_priority);
    /// normal ones send nothing and run at the server's default 0. A server holds no ingest
    /// threads, so the background can sit far below the queries: a busy thread at 10 gets about
    /// a tenth of the CPU of one at 0. (The embedded engine uses other values: ChDbEngine.SessionNiceValue.)</summary>
    public const int BackgroundNiceValue = 10;

    // An error after the server started answering would otherwise hide in a 200 body.
    private static readonly KeyValuePair<string, object>[] StatementSettings = [new("wait_end_of_query", 1)];

    private static readonly KeyValuePair<string, object>[] QuerySettings =
    [
        new("default_format", "JSONCompact"),
        new("output_format_json_quote_64bit_integers", 0),
        new("wait_end_of_query", 1),
    ];

    private static readonly KeyValuePair<string, object>[] RowBinarySettings =
    [
        new("default_format", "RowBinary"),
        new("wait_end_of_query", 1),
    ];

    private readonly ClickHouseClient _client;
    private readonly ClickHouseServerOptions _options;
    private readonly KeyValuePair<string, object>[] _clusterSettings;
    private readonly StatementPriority _priority;

    public ClickHouseServerStore(ClickHouseServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxAttempts, 1);
        if (options.Cluster is not null)
            ClickHouseSql.RequirePlainIdentifier(options.Cluster, nameof(options));
        _options = options;
        var endpoint = options.Endpoint;
        _client = new ClickHouseClient(new ClickHouseClientSettings
        {
            Protocol = endpoint.Scheme,
            Host = endpoint.Host,
            Port = (ushort)endpoint.Port,
            Path = endpoint.AbsolutePath,
            Username = options.User,
            Password = options.Password,
            UseCompression = options.Compression,
            Timeout = options.Timeout,
            // The driver's JSON-column settings concern its own binary reader, which we do not
            // use (results come as JSONCompact); not sending them keeps every request to the
            // settings this file names.
            JsonReadMode = JsonReadMode.None,
            JsonWriteMode = JsonWriteMode.None,
        });
        _clusterSettings = options.Cluster is null
            ? []
            :
            [
                new("distributed_product_mode", "local"),
                new("optimize_skip_unused_shards", 1),
                new("parallel_distributed_insert_select", 2),
                new("distributed_foreground_insert", 1),
            ];
    }

    // A view of another store at another priority: the same client and settings.
    private ClickHouseServerStore(ClickHouseServerStore source, StatementPriority priority)
    {
        _client = source._client;
        _options = source._options;
        _clusterSettings = source._clusterSettings;
        _priority = priority;
        _viewOf = source;
    }

    /// <summary>This store's statements at <paramref name="priority"/>, over the same connection
    /// pool; disposing the view leaves the pool to this store.</summary>
    public ClickHouseServerStore WithPriority(StatementPriority priority) =>
        priority == _priority ? this : new ClickHouseServerStore(this, priority);

    public Task ExecuteAsync(string sql, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sql);
        return WithRetriesAsync(sql, async ct =>
        {
            using var result = await _client.ExecuteRawResultAsync(sql, NewOptions(null, StatementSettings), ct).ConfigureAwait(false);
            // Drain the body so the connection goes back to the pool.
            await using var stream = await result.ReadAsStreamAsync().ConfigureAwait(false);
            await stream.CopyToAsync(Stream.Null, ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);
    }

    public Task<IReadOnlyList<JsonElement[]>> QueryRowsAsync(string sql, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sql);
        return WithRetriesAsync(sql, async ct =>
        {
            var options = NewOptions(null, QuerySettings);
            using var result = await _client.ExecuteRawResultAsync(sql, options, ct).ConfigureAwait(false);
            var bytes = await result.ReadAsByteArrayAsync().ConfigureAwait(false);
            return EmbeddedColumnStore.ParseJsonCompact(bytes, sql);
        }, cancellationToken);
    }

    public Task<T> QueryRowBinaryAsync<T>(string sql, RowBinaryRead<T> read, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sql);
        ArgumentNullException.ThrowIfNull(read);
        return WithRetriesAsync(sql, async ct =>
        {
            using var result = await _client.ExecuteRawResultAsync(sql, NewOptions(null, RowBinarySettings), ct).ConfigureAwait(false);
            var bytes = await result.ReadAsByteArrayAsync().ConfigureAwait(false);
            return read(bytes);
        }, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// The keys travel in the query text as format('RowBinary', …) with a byte-escaped literal,
    /// in slices that keep each statement under ClickHouse's default max_query_size (256 KiB),
    /// so no server setting has to change. (HTTP external data would avoid the text; the driver
    /// does not expose it.)
    /// </remarks>
    public async Task<IReadOnlyList<JsonElement[]>> QueryRowsAsync(string sql, KeyRows keys, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keys);
        const int MaxLiteralChars = 200 * 1024;
        int perSlice = Math.Max(1, MaxLiteralChars / (4 * Math.Max(1, keys.RowBytes)));
        var rows = new List<JsonElement[]>();
        for (int start = 0; start < keys.Count; start += perSlice)
        {
            var slice = keys.Rows.Slice(start * keys.RowBytes, Math.Min(perSlice, keys.Count - start) * keys.RowBytes);
            string table = $"format('RowBinary', {ClickHouseSql.StringLiteral(keys.Structure)}, {ClickHouseSql.BytesLiteral(slice.Span)})";
            rows.AddRange(await QueryRowsAsync(sql.Replace(KeyRows.Placeholder, table, StringComparison.Ordinal), cancellationToken).ConfigureAwait(false));
        }
        return rows;
    }

    public async Task<long> InsertRowBinaryAsync(string table, string columnsWithTypes, ReadOnlyMemory<byte> rowBinary,
        string? deduplicationToken = null, CancellationToken cancellationToken = default)
    {
        ClickHouseSql.RequireTableName(table);
        var columns = ClickHouseSql.ColumnNames(columnsWithTypes);
        if (rowBinary.IsEmpty)
            return 0;

        return await StoreTelemetry.TimeInsertAsync("clickhouse", table, WithRetriesAsync($"INSERT INTO {table}", async ct =>
        {
            var options = NewOptions(deduplicationToken);
            // A fresh stream per attempt over the caller's bytes: nothing is copied.
            using var body = AsStream(rowBinary);
            using var response = await _client.InsertRawStreamAsync(table, body, "RowBinary", columns,
                _options.Compression, options, ct).ConfigureAwait(false);
            return WrittenRows(response, table);
        }, cancellationToken)).ConfigureAwait(false);
    }

    public void Dispose()
    {
        if (_viewOf is null)
            _client.Dispose();
    }

    private QueryOptions NewOptions(string? deduplicationToken, KeyValuePair<string, object>[]? extra = null)
    {
        var settings = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var (name, value) in _clusterSettings)
            settings[name] = value;
        foreach (var (name, value) in extra ?? [])
            settings[name] = value;
        if (deduplicationToken is not null)
            settings["insert_deduplication_token"] = deduplicationToken;
        if (_priority != StatementPriority.Normal)
            settings["os_thread_priority"] = BackgroundNiceValue;
        return new QueryOptions { CustomSettings = settings };
    }

    private static MemoryStream AsStream(ReadOnlyMemory<byte> bytes) =>
        MemoryMarshal.TryGetArray(bytes, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(bytes.ToArray(), writable: false);

    // X-ClickHouse-Summary: {"read_rows":"0","read_bytes":"0","written_rows":"3",…}; the values are
    // strings (64-bit safe). A missing header means we cannot tell what was stored: refuse to guess.
    private static long WrittenRows(HttpResponseMessage response, string table)
    {
        if (!response.Headers.TryGetValues(SummaryHeader, out var values))
            throw new ClickHouseStoreException($"The insert into {table} succeeded but the server sent no {SummaryHeader} header, so the rows written are unknown.");
        using var summary = JsonDocument.Parse(values.First());
        if (!summary.RootElement.TryGetProperty("written_rows"u8, out var written))
            throw new ClickHouseStoreException($"The insert into {table} succeeded but {SummaryHeader} has no written_rows.");
        return written.ValueKind == JsonValueKind.String
            ? long.Parse(written.GetString()!, NumberStyles.None, CultureInfo.InvariantCulture)
            : written.GetInt64();
    }

    private async Task<T> WithRetriesAsync<T>(string statement, Func<CancellationToken, Task<T>> attempt,
        CancellationToken cancellationToken)
    {
        var backoff = _options.InitialBackoff;
        for (var attemptNumber = 1; ; attemptNumber++)
        {
            try
            {
                return await attempt(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && IsStoreFailure(e))
            {
                var code = (e as ClickHouseServerException)?.ErrorCode;
                var retryable = IsRetryable(e);
                if (!retryable || attemptNumber >= _options.MaxAttempts)
                {
                    var what = code is null ? "could not be reached" : "refused the statement";
                    throw new ClickHouseStoreException(
                        $"ClickHouse at {_options.Endpoint.GetLeftPart(UriPartial.Authority)} {what} " +
                        $"(attempt {attemptNumber} of {_options.MaxAttempts}{(retryable ? "" : ", not retryable")}): {e.Message.Trim()}",
                        code, attemptNumber, e)
                    {
                        Statement = statement.Length <= 300 ? statement : statement[..300],
                    };
                }
                var jitter = 0.75 + Random.Shared.NextDouble() / 2;
                LogRetrying(Logger, e, _options.Endpoint.GetLeftPart(UriPartial.Authority), attemptNumber, _options.MaxAttempts, code, (long)(backoff * jitter).TotalMilliseconds);
                await Task.Delay(backoff * jitter, cancellationToken).ConfigureAwait(false);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _options.MaxBackoff.Ticks));
            }
        }
    }

    [LoggerMessage(EventId = 3201, Level = LogLevel.Warning, Message = "ClickHouse at {Endpoint}: attempt {Attempt} of {MaxAttempts} failed (error code {Code}); retrying in {DelayMs} ms")]
    private static partial void LogRetrying(ILogger logger, Exception error, string endpoint, int attempt, int maxAttempts, int? code, long delayMs);

    private static bool IsStoreFailure(Exception e) =>
        e is ClickHouseServerException or HttpRequestException or TaskCanceledException or IOException;

    private static bool IsRetryable(Exception e) => e switch
    {
        ClickHouseServerException server => RetryableCodes.Contains(server.ErrorCode),
        // Proxies in front of a cluster answer 502/503/504 without a ClickHouse code.
        HttpRequestException { StatusCode: HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout } => true,
        HttpRequestException { StatusCode: null } => true, // connection refused, reset, DNS
        TaskCanceledException or IOException => true,      // the HTTP timeout of one attempt
        _ => false,
    };
}
