// The embedded ClickHouse engine (libchdb) behind a process-wide singleton.
//
// Contract:
// - One engine per process, on one data directory. chDB runs one embedded server per process
//   (a connection to another path is refused while one is open), so Open(path) returns the
//   shared instance (reference counted) and throws when a different path is asked for while it
//   is open. Each Open is paired with exactly one Dispose; the sessions close when the last one
//   is disposed. Reopening later works but boots the engine again
//   (~0.5 s), and chdb.h warns that repeated shutdown/boot cycles in one process are unsafe:
//   hosts open it once at start and dispose it at exit.
// - Statements run on up to MaxSessions engine sessions at once. chDB 26.5.3 gives every
//   chdb_connect on the already open path a connection of its own (a session of the one embedded
//   server, sharing its tables, parts and caches); one connection runs its statements one after
//   another. Measured on this machine: two `SELECT sleep(1)` on one connection took 2.0 s, on
//   two connections 1.0 s; two writers inserting 200 blocks each (every tenth repeated with the
//   same insert_deduplication_token) on two connections beside a reader counting on a third
//   stored every block exactly once, and every count the reader saw was a whole number of blocks
//   (docs/chdb.md). So the engine keeps a small pool of sessions: a dashboard query no longer
//   waits behind a Rollup insert, and Rollup can run the independent statements of a round side
//   by side. The SemaphoreSlim bounds the sessions, and waiting async callers hold no thread;
//   an async caller's statement runs on its session's own thread, not the pool's (see Session). One
//   statement also uses many cores itself (max_threads); the engine's thread pools are shared by
//   all sessions.
// - Every session is opened in Open, never later. Each chdb_connect installs the engine's signal
//   handlers until SignalStateGuard puts the runtime's back (below), and for that window a GC
//   suspension, a null dereference or a child's exit on any other thread is handled by the
//   engine: a session opened lazily, while queries, GCs and child processes run, made that a race
//   in the middle of a busy process (the likely cause of a CI run that hung in Store.Tests; not
//   reproduced here in 30 tries). At Open the window comes once, at start; a session costs
//   0.2-4 ms to open and the eight about 4 MB.
// - A statement runs at Normal or Background CPU priority (StatementPriority), so a dashboard query
//   beside a Rollup catch-up gets the cores first. The engine runs a statement on threads of its
//   own pools (an INSERT … SELECT with max_threads = 1 ran on a pool thread, not on the calling
//   one), so the priority goes to the engine as the session setting os_thread_priority (chDB 26.5
//   calls it os_threads_nice_value_query and still takes the old name), the nice value of the
//   threads while they work for the statement; the merges get theirs from the server setting
//   os_threads_nice_value_merge_mutate. SessionNiceValue says which values and why. A session
//   remembers the value it has, and switching costs one SET (0.16 ms measured). The engine
//   applies both only with CAP_SYS_NICE (it must lower the value again afterwards) and otherwise
//   ignores them: CanPrioritize says which.
// - Results are read outside the lock: a chdb_result is an independent buffer.
// - JSON output formats print 64-bit integers as bare numbers (the engine is started with
//   output_format_json_quote_64bit_integers=0); System.Text.Json reads them exactly with
//   GetUInt64/GetInt64. Denormal floats (nan, inf) come as null.
// - chdb_connect replaces the process's signal handlers; SignalStateGuard puts the .NET
//   runtime's back (see that file for why).
using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using Analytics.Store.Native;

namespace Analytics.Store;

/// <summary>The output of one statement. <see cref="Data"/> points into the engine's buffer and is
/// valid only during the callback it is passed to.</summary>
public readonly ref struct ChDbOutput
{
    internal ChDbOutput(ReadOnlySpan<byte> data, ulong resultRows, ulong rowsWritten)
    {
        Data = data;
        ResultRows = resultRows;
        RowsWritten = rowsWritten;
    }

    public ReadOnlySpan<byte> Data { get; }

    /// <summary>Rows in the output. (chdb_result_rows_read: despite the name, chDB 26.5 counts the
    /// result's rows, not the rows scanned; checked: sum() over 1,000 rows reports 1.)</summary>
    public ulong ResultRows { get; }

    /// <summary>Rows the statement wrote, as the engine counts them. Checked with chDB 26.5: an
    /// INSERT … SELECT reports the rows it inserted, and a block skipped by
    /// insert_deduplication_token still counts as written (the table does not get it twice).</summary>
    public ulong RowsWritten { get; }
}

public sealed class ChDbEngine : IDisposable
{
    public const string DefaultFormat = "TabSeparated";

    // Settings passed as command-line arguments apply to the engine's session, exactly like SET.
    private static readonly string[] EngineSettings =
    [
        "--output_format_json_quote_64bit_integers=0",
        "--os_threads_nice_value_merge_mutate=" + SessionNiceValue(StatementPriority.Background).ToString(System.Globalization.CultureInfo.InvariantCulture),
    ];

    private static readonly Lock s_openLock = new();
    private static ChDbEngine? s_current;

    // Statements above this size are encoded into a pooled array instead of the stack.
    private const int StackallocLimit = 1024;
    // The engine quotes the whole statement in some errors; a multi-megabyte statement must not
    // become a multi-megabyte exception message in the logs.
    private const int MaxErrorMessageChars = 4096;
    private const int MaxFormatLength = 64; // format names are short ("JSONCompact"); bounds the stackalloc

    /// <summary>Sessions (chDB connections) at most: statements running at once. Rollup runs up
    /// to four side by side (a round's rollups); the rest are for queries and the other roles.</summary>
    public const int MaxSessions = 8;

    private readonly SemaphoreSlim _gate = new(MaxSessions, MaxSessions);
    private readonly Lock _sessionsLock = new();
    private readonly List<Session> _sessions = [];   // every session opened, guarded by _sessionsLock
    private readonly List<Session> _idle = [];       // sessions not running a statement, guarded by _sessionsLock
    private int _references;                  // guarded by s_openLock
    private volatile bool _closed;

    /// <summary>One chDB connection, and the thread that runs the async callers' statements on it.
    /// Why a thread of its own: a statement blocks its thread in native code for its whole run,
    /// and on the thread pool eight of them starved it: with 2 cores (2 pool threads to start)
    /// eight `SELECT sleep(0.3)` on eight sessions took 0.9-1.2 s instead of 0.3 s while the pool
    /// added threads, so statements ran side by side only two at a time. The gate lets one
    /// statement at a time into a session, so its queue holds at most one.</summary>
    private sealed class Session
    {
        private readonly BlockingCollection<Action> _work = new();
        private readonly Thread _thread;

        public Session(nint connectionPointer, int index)
        {
            ConnectionPointer = connectionPointer;
            Connection = Marshal.ReadIntPtr(connectionPointer);
            // Deep statements recurse in the engine's parser and analyzer on the calling thread:
            // the main thread's 8 MB rather than the 1.5 MB of a .NET thread (reserved, not used).
            _thread = new Thread(Run, maxStackSize: 8 * 1024 * 1024) { IsBackground = true, Name = $"chdb-session-{index}" };
            _thread.Start();
        }

        /// <summary>chdb_connection*, what chdb_close_conn wants.</summary>
        public nint ConnectionPointer { get; }

        /// <summary>chdb_connection, what chdb_query_n wants.</summary>
        public nint Connection { get; }

        /// <summary>The priority the session's statements run at now (its os_thread_priority), null
        /// until its first statement; read and written only by the holder of the session.</summary>
        public StatementPriority? Priority { get; set; }

        public Task<nint> RunAsync(Func<nint> statement)
        {
            var done = new TaskCompletionSource<nint>(TaskCreationOptions.RunContinuationsAsynchronously);
            _work.Add(() =>
            {
                try
                {
                    done.SetResult(statement());
                }
                catch (Exception e)
                {
                    done.SetException(e);
                }
            });
            return done.Task;
        }

        private void Run()
        {
            foreach (var work in _work.GetConsumingEnumerable())
                work();
        }

        /// <summary>Ends the thread once its queue is empty (no statement can be in it: the engine
        /// holds every permit of the gate when it closes).</summary>
        public void Stop()
        {
            _work.CompleteAdding();
            _thread.Join();
            _work.Dispose();
        }
    }

    private ChDbEngine(string path, IReadOnlyList<nint> connectionPointers)
    {
        DataPath = path;
        foreach (var pointer in connectionPointers)
        {
            var session = new Session(pointer, _sessions.Count);
            _sessions.Add(session);
            _idle.Add(session);
        }
    }

    /// <summary>Sessions open: all <see cref="MaxSessions"/> from Open until Dispose.</summary>
    public int SessionsOpen
    {
        get { lock (_sessionsLock) return _sessions.Count; }
    }

    /// <summary>Whether the engine can apply <see cref="StatementPriority.Background"/>: it sets
    /// nice values only with CAP_SYS_NICE (a container needs it added, e.g. Docker's
    /// --cap-add=SYS_NICE), and without it background statements run at the normal priority.</summary>
    public static bool CanPrioritize { get; } = HasCapability(CapSysNice);

    private const int CapSysNice = 23; // linux/capability.h

    // The effective capabilities from /proc/self/status ("CapEff:\t<hex mask>").
    private static bool HasCapability(int capability)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("CapEff:", StringComparison.Ordinal))
                    return (ulong.Parse(line.AsSpan(7).Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture) >> capability & 1) == 1;
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return false;
    }

    /// <summary>Absolute data directory of the engine (MergeTree parts, metadata).</summary>
    public string DataPath { get; }

    /// <summary>Opens the process's engine on <paramref name="path"/>, creating the directory, or
    /// returns the already open engine when it uses the same directory.</summary>
    /// <exception cref="InvalidOperationException">The engine is open on a different directory.</exception>
    /// <exception cref="ChDbException">The engine failed to start.</exception>
    /// <exception cref="DllNotFoundException">libchdb.so was not found (run scripts/fetch-chdb.sh).</exception>
    public static ChDbEngine Open(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var fullPath = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));

        lock (s_openLock)
        {
            if (s_current is { } current)
            {
                if (!string.Equals(current.DataPath, fullPath, StringComparison.Ordinal))
                {
                    throw new InvalidOperationException(
                        $"The chDB engine is already open on '{current.DataPath}'; it cannot also open '{fullPath}'. " +
                        "chDB allows one engine per process: share the open engine (give each tenant its own database), " +
                        "or dispose every handle of it before opening another directory.");
                }
                current._references++;
                return current;
            }

            Directory.CreateDirectory(fullPath);
            var engine = new ChDbEngine(fullPath, ConnectSessions(fullPath)) { _references = 1 };
            s_current = engine;
            return engine;
        }
    }

    // The first connection boots the engine; the others are sessions of it (see the header).
    private static List<nint> ConnectSessions(string fullPath)
    {
        var pointers = new List<nint>(MaxSessions);
        try
        {
            while (pointers.Count < MaxSessions)
                pointers.Add(Connect(fullPath));
            return pointers;
        }
        catch
        {
            CloseSessions(pointers);
            throw;
        }
    }

    // The first session last: it is the one that started the engine.
    private static void CloseSessions(List<nint> connectionPointers)
    {
        using var signals = SignalStateGuard.Capture();
        try
        {
            for (var i = connectionPointers.Count - 1; i >= 0; i--)
                ChDbNative.CloseConnection(connectionPointers[i]);
        }
        finally
        {
            signals.Restore();
        }
    }

    private static unsafe nint Connect(string fullPath)
    {
        string[] args = ["clickhouse", "--path=" + fullPath, .. EngineSettings];
        var argv = stackalloc byte*[args.Length];
        try
        {
            for (var i = 0; i < args.Length; i++)
                argv[i] = (byte*)Marshal.StringToCoTaskMemUTF8(args[i]);

            nint connectionPointer;
            using (var signals = SignalStateGuard.Capture())
            {
                try
                {
                    connectionPointer = ChDbNative.Connect(args.Length, argv);
                }
                finally
                {
                    signals.Restore();
                }
            }

            if (connectionPointer == 0 || Marshal.ReadIntPtr(connectionPointer) == 0)
            {
                throw new ChDbException(
                    $"chdb_connect failed for data directory '{fullPath}' (the engine logs the reason to stderr). " +
                    "Check that the directory is writable and not used by another process.");
            }
            return connectionPointer;
        }
        finally
        {
            // chdb copies its arguments while parsing them (boost::program_options).
            for (var i = 0; i < args.Length; i++)
                Marshal.FreeCoTaskMem((nint)argv[i]);
        }
    }

    /// <summary>Runs <paramref name="sql"/> and returns its output decoded as UTF-8.</summary>
    public string Query(string sql, string format = DefaultFormat) =>
        Query(sql, format, static output => Encoding.UTF8.GetString(output.Data));

    /// <summary>Runs <paramref name="sql"/> and returns a copy of its raw output.</summary>
    public byte[] QueryBytes(string sql, string format = DefaultFormat) =>
        Query(sql, format, static output => output.Data.ToArray());

    /// <summary>Runs a statement whose output is not needed (DDL, INSERT).</summary>
    public void Execute(string sql) => Query(sql, DefaultFormat, static _ => true);

    /// <summary>Runs <paramref name="sql"/> and hands its output to <paramref name="read"/> without
    /// copying it; the span is valid only inside <paramref name="read"/>.</summary>
    public TResult Query<TResult>(string sql, string format, Func<ChDbOutput, TResult> read,
        StatementPriority priority = StatementPriority.Normal)
    {
        ArgumentNullException.ThrowIfNull(sql);
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(read);
        ObjectDisposedException.ThrowIf(_closed, this);

        nint result;
        _gate.Wait();
        try
        {
            var session = Rent(priority);
            try
            {
                result = Invoke(session, sql, format, priority);
            }
            finally
            {
                Return(session);
            }
        }
        finally
        {
            _gate.Release();
        }
        return ReadAndDestroy(result, sql, read);
    }

    /// <summary>Async form of <see cref="Query{TResult}(string, string, Func{ChDbOutput, TResult})"/>:
    /// waits for the engine without holding a thread and runs the blocking native call on the
    /// session's own thread. <paramref name="cancellationToken"/> is honoured until the statement starts;
    /// a started statement runs to completion (chDB cannot cancel a non-streaming query).</summary>
    public async Task<TResult> QueryAsync<TResult>(string sql, string format, Func<ChDbOutput, TResult> read,
        CancellationToken cancellationToken = default, StatementPriority priority = StatementPriority.Normal)
    {
        ArgumentNullException.ThrowIfNull(sql);
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(read);
        ObjectDisposedException.ThrowIf(_closed, this);

        nint result;
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var session = Rent(priority);
            try
            {
                cancellationToken.ThrowIfCancellationRequested();
                result = await session.RunAsync(() => Invoke(session, sql, format, priority)).ConfigureAwait(false);
            }
            finally
            {
                Return(session);
            }
        }
        finally
        {
            _gate.Release();
        }
        return ReadAndDestroy(result, sql, read);
    }

    // Caller holds a permit of _gate, so an idle session exists. One already at the priority asked
    // for if there is one (no SET), the most recently used first (its thread and caches are warm).
    private Session Rent(StatementPriority priority)
    {
        lock (_sessionsLock)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            var index = _idle.FindLastIndex(session => session.Priority == priority);
            if (index < 0)
                index = _idle.Count - 1;
            var rented = _idle[index];
            _idle.RemoveAt(index);
            return rented;
        }
    }

    private void Return(Session session)
    {
        lock (_sessionsLock)
            _idle.Add(session);
    }

    public Task<string> QueryAsync(string sql, string format = DefaultFormat, CancellationToken cancellationToken = default) =>
        QueryAsync(sql, format, static output => Encoding.UTF8.GetString(output.Data), cancellationToken);

    public Task ExecuteAsync(string sql, CancellationToken cancellationToken = default) =>
        QueryAsync(sql, DefaultFormat, static _ => true, cancellationToken);

    // Caller holds a permit of _gate and the session. Returns a non-null chdb_result* that the caller must destroy.
    private nint Invoke(Session session, string sql, string format, StatementPriority priority)
    {
        // Checked again under the gate: Dispose closes the connection while holding it.
        ObjectDisposedException.ThrowIf(_closed, this);
        if (session.Priority != priority)
        {
            var set = "SET os_thread_priority = " + SessionNiceValue(priority).ToString(System.Globalization.CultureInfo.InvariantCulture);
            ReadAndDestroy(Invoke(session, set, DefaultFormat), set, static _ => true);
            session.Priority = priority;
        }
        return Invoke(session, sql, format);
    }

    /// <summary>The nice value of a statement's threads in this process: queries at -1, Rollup
    /// (and the merges) at 10, around the process's own threads at 0 (ingest, Rollup's C# work).
    /// A busy thread at 10 gets about a tenth of the CPU of one at 0 (CFS weights 110 and 1024).
    /// Neither is 0 because the engine sets a thread's value only for a non-zero setting and a
    /// pool thread keeps what its last statement set into the next one (in a check, 1 of 12
    /// statements at 0 after one at 10 ran at 10); -1 puts queries a notch above ingest (1.25
    /// to 1). Measured against -5 and +1: the largest merchant's questions under catch-up at
    /// 0.48-1.87x idle with these values, 0.40-2.29x with those (perf/QueryBench, docs/chdb.md).</summary>
    internal static int SessionNiceValue(StatementPriority priority) =>
        priority == StatementPriority.Background ? 10 : -1;

    private unsafe nint Invoke(Session session, string sql, string format)
    {
        if (format.Length > MaxFormatLength)
            throw new ArgumentException($"Format name longer than {MaxFormatLength} characters.", nameof(format));

        byte[]? rented = null;
        // UTF-8 needs at most 3 bytes per UTF-16 char (+3 for a trailing lone surrogate).
        Span<byte> sqlBytes = sql.Length <= StackallocLimit / 3 - 1
            ? stackalloc byte[StackallocLimit]
            : (rented = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetByteCount(sql)));
        Span<byte> formatBytes = stackalloc byte[3 * MaxFormatLength + 3];
        try
        {
            var sqlWritten = Encoding.UTF8.GetBytes(sql, sqlBytes);
            var formatWritten = Encoding.UTF8.GetBytes(format, formatBytes);
            nint result;
            fixed (byte* sqlPtr = sqlBytes)
            fixed (byte* formatPtr = formatBytes)
            {
                result = ChDbNative.QueryN(session.Connection, sqlPtr, (nuint)sqlWritten, formatPtr, (nuint)formatWritten);
            }
            if (result == 0)
                throw new ChDbException("chdb_query_n returned no result (is the connection closed?)") { Statement = Abbreviate(sql) };
            return result;
        }
        finally
        {
            if (rented is not null)
                ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static unsafe TResult ReadAndDestroy<TResult>(nint result, string sql, Func<ChDbOutput, TResult> read)
    {
        try
        {
            var error = ChDbNative.ResultError(result);
            if (error is not null)
            {
                // rows_read/rows_written hold garbage on error results (observed), so they are not read.
                var message = Marshal.PtrToStringUTF8((nint)error)?.Trim();
                if (string.IsNullOrEmpty(message))
                    message = "chDB reported an empty error";
                else if (message.Length > MaxErrorMessageChars)
                    message = string.Concat(message.AsSpan(0, MaxErrorMessageChars), " … (engine message truncated)");
                throw new ChDbException(message)
                {
                    Statement = Abbreviate(sql),
                };
            }

            var length = ChDbNative.ResultLength(result);
            if (length > int.MaxValue)
                throw new ChDbException($"Statement output is {length} bytes; results over 2 GiB are not supported, page the query.");
            var buffer = ChDbNative.ResultBuffer(result);
            var data = buffer is null ? ReadOnlySpan<byte>.Empty : new ReadOnlySpan<byte>(buffer, (int)length);
            return read(new ChDbOutput(data, ChDbNative.ResultRowsRead(result), ChDbNative.ResultRowsWritten(result)));
        }
        finally
        {
            ChDbNative.DestroyQueryResult(result);
        }
    }

    private static string Abbreviate(string sql) => sql.Length <= 300 ? sql : sql[..300];

    /// <summary>Releases this handle; the last release waits for the running statement and closes
    /// the engine. See the file header: hosts do this once, at exit.</summary>
    public void Dispose()
    {
        lock (s_openLock)
        {
            if (_closed || --_references > 0)
                return;

            // Every permit: no statement runs while the sessions close.
            for (var i = 0; i < MaxSessions; i++)
                _gate.Wait();
            try
            {
                lock (_sessionsLock)
                {
                    _closed = true;
                    CloseSessions(_sessions.ConvertAll(session => session.ConnectionPointer));
                    foreach (var session in _sessions)
                        session.Stop();
                    _sessions.Clear();
                    _idle.Clear();
                }
            }
            finally
            {
                _gate.Release(MaxSessions);
            }
            s_current = null;
        }
    }
}
