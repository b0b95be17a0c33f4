// A ClickHouse-HTTP-interface endpoint backed by the real ClickHouse engine (chDB), for testing
// ClickHouse.Driver when no modern ClickHouse server can run on the machine (docs/clickhouse-server.md).
//
// Contract: it frames, it does not interpret. The SQL goes to chDB as the driver sent it, and the
// response body is chDB's own output bytes in the format asked for (default_format, or the
// query's FORMAT clause), so every value the driver reads was parsed, computed and formatted by
// the engine. What it does itself, and why:
// - HTTP framing as a ClickHouse server does it: query from the `query` URL parameter and/or the
//   body; for INSERT … FORMAT X the body after the URL query is the data; gzip request bodies;
//   200 with X-ClickHouse-Summary (written and result rows from chDB's own counters),
//   X-ClickHouse-Format, X-ClickHouse-Query-Id; errors as 4xx/5xx with the engine's message as
//   body and X-ClickHouse-Exception-Code. Basic authentication against one configured user.
// - INSERT … FORMAT X with data: chDB stores only part of inline binary data (docs/chdb.md), so the
//   data goes to a temp file and runs as INSERT INTO t (cols) SETTINGS … SELECT * FROM
//   file(path, X, structure); the structure comes from the engine (DESCRIBE TABLE).
// - Settings in URL parameters: on such an INSERT they go into its SETTINGS clause (that is how
//   insert_deduplication_token reaches the engine). ChDbEngine rents its sessions to every user of
//   the engine, so a setting cannot be applied to one other statement alone, with one exception:
//   os_thread_priority 10 (ClickHouseServerStore.BackgroundNiceValue) is run as the engine's
//   StatementPriority.Background, which ChDbEngine sets on the session it runs the statement on
//   (at its own value), and 0 as Normal. For any other setting the endpoint accepts it only if the
//   engine already has that value and refuses the request otherwise (never silently ignores it).
// - Unsupported parts of the interface are refused with an error naming them: sessions, roles,
//   query parameters, a database other than default, native-compressed bodies.
// - FailNext injects faults (an HTTP error before or after running a statement) to test retries.
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Analytics.Store.Conformance.Tests;

public sealed partial class ChDbHttpEndpoint : IAsyncDisposable
{
    // HTTP-interface parameters that are not settings (https://clickhouse.com/docs/interfaces/http).
    private static readonly HashSet<string> InterfaceParameters = new(StringComparer.Ordinal)
    {
        "query", "query_id", "database", "default_format", "enable_http_compression", "wait_end_of_query",
        "user", "password",
    };

    private static readonly HashSet<string> RefusedParameters = new(StringComparer.Ordinal)
    {
        "session_id", "session_timeout", "session_check", "role", "compress", "decompress",
    };

    private readonly ChDbEngine _engine;
    private readonly string _user;
    private readonly string _password;
    private readonly string _spoolDirectory;
    private readonly WebApplication _app;
    private readonly Lock _faultLock = new();
    private readonly Dictionary<string, (int Count, bool AfterRunning)> _faults = new(StringComparer.Ordinal); // by marker
    private long _requests;

    private ChDbHttpEndpoint(ChDbEngine engine, string user, string password, WebApplication app)
    {
        _engine = engine;
        _user = user;
        _password = password;
        _app = app;
        _spoolDirectory = Path.Combine(engine.DataPath, "http-endpoint-spool");
        Directory.CreateDirectory(_spoolDirectory);
    }

    /// <summary>Base address, e.g. http://127.0.0.1:41234/.</summary>
    public Uri Address { get; private set; } = null!;

    /// <summary>Requests answered so far (pings included).</summary>
    public long Requests => Interlocked.Read(ref _requests);

    public static async Task<ChDbHttpEndpoint> StartAsync(ChDbEngine engine, string user, string password)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = null);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var app = builder.Build();
        var endpoint = new ChDbHttpEndpoint(engine, user, password, app);
        app.MapGet("/ping", () => Results.Text("Ok.\n"));
        app.Map("/", endpoint.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        endpoint.Address = new Uri(address.TrimEnd('/') + "/");
        return endpoint;
    }

    /// <summary>The next <paramref name="count"/> statements whose text contains
    /// <paramref name="marker"/> (tests run in parallel: each names its own database) fail with
    /// UNKNOWN_STATUS_OF_INSERT as an HTTP 500; with <paramref name="afterRunning"/> the statement
    /// runs first and only its answer is lost, like a connection cut after the server committed.</summary>
    public void FailNext(int count, bool afterRunning, string marker)
    {
        ArgumentException.ThrowIfNullOrEmpty(marker);
        lock (_faultLock)
            _faults[marker] = (count, afterRunning);
    }

    /// <summary>Faults of <paramref name="marker"/> not yet injected (0 once all have fired).</summary>
    public int FaultsLeft(string marker)
    {
        lock (_faultLock)
            return _faults.TryGetValue(marker, out var fault) ? fault.Count : 0;
    }

    private async Task HandleAsync(HttpContext context)
    {
        Interlocked.Increment(ref _requests);
        var request = context.Request;
        var queryId = request.Query["query_id"].FirstOrDefault() ?? Guid.NewGuid().ToString();
        context.Response.Headers["X-ClickHouse-Query-Id"] = queryId;
        try
        {
            if (!Authenticated(request))
            {
                await ErrorAsync(context, 516, $"Code: 516. DB::Exception: {_user}: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)");
                return;
            }
            foreach (var name in request.Query.Keys)
            {
                if (RefusedParameters.Contains(name) || name.StartsWith("param_", StringComparison.Ordinal))
                    throw new EndpointRefusalException($"the test endpoint does not support the '{name}' parameter");
            }
            var database = request.Query["database"].FirstOrDefault();
            if (database is not null && database != "default")
                throw new EndpointRefusalException("the test endpoint supports only the default database; qualify table names");

            var body = await ReadBodyAsync(request, context.RequestAborted);
            var urlQuery = request.Query["query"].FirstOrDefault();
            var settings = request.Query
                .Where(p => !InterfaceParameters.Contains(p.Key))
                .Select(p => KeyValuePair.Create(p.Key, p.Value.ToString()))
                .ToList();

            var fault = TakeFault(urlQuery ?? Encoding.UTF8.GetString(body));
            if (fault is { AfterRunning: false })
            {
                await ErrorAsync(context, 319, "Code: 319. DB::Exception: Injected by the test endpoint before running the statement. (UNKNOWN_STATUS_OF_INSERT)");
                return;
            }

            Answer answer;
            if (urlQuery is not null && body.Length > 0)
            {
                answer = await InsertWithDataAsync(urlQuery, body, settings, context.RequestAborted);
            }
            else
            {
                var sql = urlQuery ?? Encoding.UTF8.GetString(body);
                var priority = TakePriority(settings);
                await RequireEngineSettingsAsync(settings, context.RequestAborted);
                var format = request.Query["default_format"].FirstOrDefault() ?? "TabSeparated";
                answer = await _engine.QueryAsync(sql, format,
                    output => new Answer(output.Data.ToArray(), format, output.ResultRows, output.RowsWritten), context.RequestAborted, priority);
            }

            if (fault is { AfterRunning: true })
            {
                await ErrorAsync(context, 319, "Code: 319. DB::Exception: Injected by the test endpoint after running the statement. (UNKNOWN_STATUS_OF_INSERT)");
                return;
            }

            var response = context.Response;
            response.StatusCode = 200;
            response.Headers["X-ClickHouse-Format"] = answer.Format;
            response.Headers["X-ClickHouse-Timezone"] = "UTC";
            // chDB reports rows written and rows in the result; it does not report rows read (0 here).
            response.Headers["X-ClickHouse-Summary"] = string.Create(CultureInfo.InvariantCulture,
                $"{{\"read_rows\":\"0\",\"read_bytes\":\"0\",\"written_rows\":\"{answer.WrittenRows}\",\"written_bytes\":\"0\",\"total_rows_to_read\":\"0\",\"result_rows\":\"{answer.ResultRows}\",\"result_bytes\":\"{answer.Body.Length}\",\"elapsed_ns\":\"0\"}}");
            response.ContentType = answer.Format.StartsWith("JSON", StringComparison.Ordinal) ? "application/json; charset=UTF-8"
                : answer.Format.StartsWith("RowBinary", StringComparison.Ordinal) || answer.Format == "Native" ? "application/octet-stream"
                : "text/plain; charset=UTF-8";
            response.ContentLength = answer.Body.Length;
            await response.Body.WriteAsync(answer.Body, context.RequestAborted);
        }
        catch (ChDbException e)
        {
            await ErrorAsync(context, e.ErrorCode ?? 1001, e.Message);
        }
        catch (EndpointRefusalException e)
        {
            await ErrorAsync(context, 48, $"Code: 48. DB::Exception: {e.Message}. (NOT_IMPLEMENTED)");
        }
    }

    private async Task<Answer> InsertWithDataAsync(string sql, byte[] data, List<KeyValuePair<string, string>> settings, CancellationToken ct)
    {
        var match = InsertWithFormat().Match(sql);
        if (!match.Success)
            throw new EndpointRefusalException("with data in the body the query must be INSERT INTO table [(columns)] FORMAT name");
        var table = ClickHouseSql.RequireTableName(match.Groups["table"].Value);
        var format = ClickHouseSql.RequirePlainIdentifier(match.Groups["format"].Value);
        var listed = match.Groups["columns"].Success
            ? match.Groups["columns"].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            : null;

        // The structure of the data, from the engine: DESCRIBE gives name, type, default kind.
        var describe = await _engine.QueryAsync($"DESCRIBE TABLE {table}", "TabSeparatedRaw", ct);
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        var insertable = new List<string>();
        foreach (var line in describe.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split('\t');
            types[fields[0]] = fields[1];
            if (fields.Length < 3 || fields[2] is "" or "DEFAULT")
                insertable.Add(fields[0]);
        }
        var columns = listed ?? [.. insertable];
        var structure = string.Join(", ", columns.Select(c => types.TryGetValue(c.Trim('`'), out var type)
            ? $"{c} {type}"
            : throw new ChDbException($"Code: 16. DB::Exception: No such column {c} in table {table}. (NO_SUCH_COLUMN_IN_TABLE)")));

        var path = Path.Combine(_spoolDirectory, Guid.NewGuid().ToString("N") + ".data");
        try
        {
            await File.WriteAllBytesAsync(path, data, ct);
            var statement = new StringBuilder()
                .Append("INSERT INTO ").Append(table).Append(" (").AppendJoin(", ", columns).Append(") ");
            if (settings.Count > 0)
                statement.Append("SETTINGS ").AppendJoin(", ", settings.Select(s => $"{ClickHouseSql.RequirePlainIdentifier(s.Key)} = {SettingValue(s.Value)}")).Append(' ');
            statement.Append("SELECT * FROM file(").Append(ClickHouseSql.StringLiteral(path)).Append(", ")
                .Append(ClickHouseSql.StringLiteral(format)).Append(", ").Append(ClickHouseSql.StringLiteral(structure)).Append(')');
            return await _engine.QueryAsync(statement.ToString(), "TabSeparated",
                output => new Answer([], "TabSeparated", output.ResultRows, output.RowsWritten), ct);
        }
        finally
        {
            File.Delete(path);
        }
    }

    // os_thread_priority as the engine's StatementPriority (see the file header), taken out of the settings.
    private static StatementPriority TakePriority(List<KeyValuePair<string, string>> settings)
    {
        var index = settings.FindIndex(s => s.Key == "os_thread_priority");
        if (index < 0)
            return StatementPriority.Normal;
        var value = settings[index].Value;
        settings.RemoveAt(index);
        return value == ClickHouse.ClickHouseServerStore.BackgroundNiceValue.ToString(CultureInfo.InvariantCulture) ? StatementPriority.Background
            : value == "0" ? StatementPriority.Normal
            : throw new EndpointRefusalException($"the test endpoint runs statements at os_thread_priority 0 or {ClickHouse.ClickHouseServerStore.BackgroundNiceValue}, not {value}");
    }

    // The engine session's value must already be the one asked for (see the file header).
    private async Task RequireEngineSettingsAsync(List<KeyValuePair<string, string>> settings, CancellationToken ct)
    {
        foreach (var (name, value) in settings)
        {
            var current = (await _engine.QueryAsync(
                $"SELECT value FROM system.settings WHERE name = {ClickHouseSql.StringLiteral(name)}", "TabSeparatedRaw", ct)).TrimEnd('\n');
            if (current.Length == 0)
                throw new ChDbException($"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)");
            if (current != value)
                throw new EndpointRefusalException($"the test endpoint cannot apply setting {name}={value} to one statement (the engine has {current})");
        }
    }

    private static string SettingValue(string value) =>
        long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _) ? value : ClickHouseSql.StringLiteral(value);

    private bool Authenticated(HttpRequest request)
    {
        string? user = request.Query["user"].FirstOrDefault() ?? request.Headers["X-ClickHouse-User"].FirstOrDefault();
        string? password = request.Query["password"].FirstOrDefault() ?? request.Headers["X-ClickHouse-Key"].FirstOrDefault();
        var authorization = request.Headers.Authorization.FirstOrDefault();
        if (authorization is not null && authorization.StartsWith("Basic ", StringComparison.Ordinal))
        {
            var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(authorization["Basic ".Length..]));
            var colon = decoded.IndexOf(':', StringComparison.Ordinal);
            user = decoded[..colon];
            password = decoded[(colon + 1)..];
        }
        return (user ?? "default") == _user && (password ?? "") == _password;
    }

    private static async Task<byte[]> ReadBodyAsync(HttpRequest request, CancellationToken ct)
    {
        var encoding = request.Headers.ContentEncoding.FirstOrDefault();
        Stream source = encoding switch
        {
            null or "" => request.Body,
            "gzip" => new GZipStream(request.Body, CompressionMode.Decompress, leaveOpen: true),
            "deflate" => new ZLibStream(request.Body, CompressionMode.Decompress, leaveOpen: true),
            _ => throw new EndpointRefusalException($"the test endpoint does not decode Content-Encoding {encoding}"),
        };
        await using (source)
        {
            using var buffer = new MemoryStream();
            await source.CopyToAsync(buffer, ct);
            return buffer.ToArray();
        }
    }

    private (bool AfterRunning, int Left)? TakeFault(string sql)
    {
        lock (_faultLock)
        {
            foreach (var (marker, fault) in _faults)
            {
                if (fault.Count <= 0 || !sql.Contains(marker, StringComparison.Ordinal))
                    continue;
                _faults[marker] = (fault.Count - 1, fault.AfterRunning);
                return (fault.AfterRunning, fault.Count - 1);
            }
            return null;
        }
    }

    // ClickHouse answers client mistakes with 4xx and everything else with 500; the driver treats
    // every non-2xx alike and reads the code from the body.
    private static async Task ErrorAsync(HttpContext context, int code, string message)
    {
        var response = context.Response;
        response.StatusCode = code switch
        {
            62 or 47 or 46 or 16 or 115 => 400,
            516 => 403,
            60 or 81 => 404,
            48 => 501,
            _ => 500,
        };
        response.ContentType = "text/plain; charset=UTF-8";
        response.Headers["X-ClickHouse-Exception-Code"] = code.ToString(CultureInfo.InvariantCulture);
        await response.WriteAsync(message.TrimEnd() + "\n");
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    [GeneratedRegex(@"^\s*INSERT\s+INTO\s+(?<table>[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?)\s*(\((?<columns>[^)]*)\))?\s*FORMAT\s+(?<format>[A-Za-z0-9_]+)\s*$", RegexOptions.IgnoreCase)]
    private static partial Regex InsertWithFormat();

    private sealed record Answer(byte[] Body, string Format, ulong ResultRows, ulong WrittenRows);

    private sealed class EndpointRefusalException(string message) : Exception(message);
}
