// Circuit breakers (Polly) around the event log and the column store.
//
// Contract: when most recent calls to a dependency fail (at least half of at least
// MinimumThroughput calls within SamplingDuration), its breaker opens for BreakDuration. While
// open, callers fail at once without touching the dependency: ingest answers RETRY (HTTP 503 +
// Retry-After) through EventLogUnavailableException, the query APIs answer 503 + Retry-After
// through StoreUnavailableException. After BreakDuration one call goes through as a probe
// (half-open); its success closes the breaker, its failure opens it again. No restart is needed.
// /healthz reports every open breaker with the failure that opened it. /readyz is false while a
// breaker refuses (open, its break not yet over): a balancer then sends the traffic to nodes
// that can take it. Once the break is over readiness is true again even though the breaker has
// not yet closed: the half-open probe is a real call, which only traffic makes; a node kept out
// of the balancer until its breaker closed would never be probed.
//
// Only failures of the dependency count: a cancelled call, or a statement the engine refused
// for itself (a bad regular expression, a query over its time limit: the store is fine), does
// not; see IsStatementError.
using Analytics.EventLog;
using Analytics.Store;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using Polly;
using Polly.CircuitBreaker;

namespace Analytics.Host;

/// <summary>Settings of both breakers (tests shorten the break).</summary>
public sealed record CircuitBreakerSettings
{
    public double FailureRatio { get; init; } = 0.5;
    public int MinimumThroughput { get; init; } = 5;
    public TimeSpan SamplingDuration { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan BreakDuration { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>What the host reads for /healthz (and readiness): one entry per dependency.</summary>
public interface IDependencyHealth
{
    /// <summary>Open (or half-open) breakers with the reason; empty when everything is closed.</summary>
    IReadOnlyList<(string Dependency, string Reason)> Unavailable { get; }
}

/// <summary>One breaker over one dependency.</summary>
public sealed class DependencyBreaker
{
    private readonly CircuitBreakerStateProvider _state = new();
    private readonly TimeProvider _clock;
    private volatile string _reason = "";
    private long _refusingUntil; // the clock's timestamp at which the current break ends

    public DependencyBreaker(string name, CircuitBreakerSettings settings, Func<Exception, bool> isFailure, TimeProvider clock)
    {
        Name = name;
        _clock = clock;
        BreakDuration = settings.BreakDuration;
        Pipeline = new ResiliencePipelineBuilder { TimeProvider = clock }.AddCircuitBreaker(new CircuitBreakerStrategyOptions
        {
            FailureRatio = settings.FailureRatio,
            MinimumThroughput = settings.MinimumThroughput,
            SamplingDuration = settings.SamplingDuration,
            BreakDuration = settings.BreakDuration,
            StateProvider = _state,
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e && isFailure(e)),
            OnOpened = args =>
            {
                _reason = Describe(args.Outcome.Exception);
                Interlocked.Exchange(ref _refusingUntil, clock.GetTimestamp() + (long)(args.BreakDuration.TotalSeconds * clock.TimestampFrequency));
                return ValueTask.CompletedTask;
            },
        }).Build();
    }

    /// <summary>The reason /healthz (unauthenticated) shows: engine messages quote the failing
    /// statement, which carries tenant ids and filters, so a store failure is named by its
    /// ClickHouse error code and name only; the log's own messages name no tenant.</summary>
    private static string Describe(Exception? e) => e switch
    {
        null => "failing",
        EventLogUnavailableException => e.Message,
        ChDbException { ErrorCode: { } code } => $"ClickHouse error {code}{ErrorName(e.Message)}",
        _ => e.GetType().Name,
    };

    private static string ErrorName(string message)
    {
        var match = System.Text.RegularExpressions.Regex.Match(message, @"\(([A-Z_]+)\)\s*$");
        return match.Success ? $" ({match.Groups[1].Value})" : "";
    }

    public string Name { get; }
    public TimeSpan BreakDuration { get; }
    public ResiliencePipeline Pipeline { get; }
    public CircuitState State => _state.CircuitState;
    public string Reason => _reason;

    /// <summary>Tells the breaker a call made outside <see cref="Pipeline"/> succeeded.</summary>
    public void ReportSuccess()
    {
        try { Pipeline.Execute(static () => { }); }
        catch (BrokenCircuitException) { } // opened meanwhile by another call's failure
    }

    /// <summary>Tells the breaker a call made outside <see cref="Pipeline"/> failed with
    /// <paramref name="failure"/> (counted if the breaker's failure filter says so).</summary>
    public void ReportFailure(Exception failure)
    {
        try { Pipeline.Execute(static e => System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e), failure); }
        catch (BrokenCircuitException) { }
        catch (Exception e) when (ReferenceEquals(e, failure)) { }
    }

    /// <summary>Open with the break not over (or isolated): every call is refused now.</summary>
    public bool IsRefusing => State switch
    {
        CircuitState.Isolated => true,
        CircuitState.Open => _clock.GetTimestamp() < Interlocked.Read(ref _refusingUntil),
        _ => false,
    };
}

public sealed class CircuitBreakers : IDependencyHealth
{
    public CircuitBreakers(CircuitBreakerSettings settings, TimeProvider clock)
    {
        // The log reports every refusal as EventLogUnavailableException (disk full, broker down).
        EventLog = new DependencyBreaker("event log", settings, static e => e is EventLogUnavailableException, clock);
        // Any store failure but cancellation and the statement's own fault: a caller must not be
        // able to open the breaker for everyone with statements the engine refuses (a bad regular
        // expression in a filter, a query over its time or row limits).
        Store = new DependencyBreaker("store", settings, static e => e is not OperationCanceledException && !IsStatementError(e), clock);
    }

    public DependencyBreaker EventLog { get; }
    public DependencyBreaker Store { get; }

    /// <summary>ClickHouse errors about the statement, not the engine: syntax, arguments, a regular
    /// expression that does not compile, time/row/byte limits, a cancelled query. Matched by name
    /// (both stores' messages end with it) and by the embedded engine's code.</summary>
    private static readonly string[] StatementErrors =
        ["(SYNTAX_ERROR)", "(BAD_ARGUMENTS)", "(ILLEGAL_TYPE_OF_ARGUMENT)", "(CANNOT_COMPILE_REGEXP)", "(TIMEOUT_EXCEEDED)",
         "(TOO_MANY_ROWS)", "(TOO_MANY_BYTES)", "(TOO_MANY_ROWS_OR_BYTES)", "(QUERY_WAS_CANCELLED)"];
    private static readonly int[] StatementErrorCodes = [62, 36, 43, 427, 159, 158, 307, 396, 394];

    private static bool IsStatementError(Exception e) =>
        e is ChDbException { ErrorCode: { } code } && StatementErrorCodes.Contains(code)
        || StatementErrors.Any(name => e.Message.Contains(name, StringComparison.Ordinal));

    public IReadOnlyList<(string Dependency, string Reason)> Unavailable
    {
        get
        {
            var open = new List<(string, string)>(2);
            foreach (var b in (ReadOnlySpan<DependencyBreaker>)[EventLog, Store])
                if (b.State is CircuitState.Open or CircuitState.HalfOpen or CircuitState.Isolated)
                    open.Add((b.Name, $"circuit {b.State.ToString().ToLowerInvariant()}: {b.Reason}"));
            return open;
        }
    }
}

/// <summary>The event log behind its breaker. An open breaker refuses like the log does
/// (EventLogUnavailableException), so ingest's RETRY path needs nothing new.</summary>
public sealed class BreakerEventLog(IEventLog inner, DependencyBreaker breaker) : IEventLog
{
    public IEventLog Inner => inner;

    // Outcome observers of appends still running, reused (see ObservedAppend).
    private readonly Stack<ObservedAppend> _idle = new();
    private readonly Lock _idleLock = new();
    private const int MaxIdle = 1024;

    /// <remarks>
    /// The append runs beside the pipeline, not inside it: the log's appends complete
    /// asynchronously (a group commit), and Polly's asynchronous path allocates about 1.3 KB per
    /// call (26 B per event of a 50-event batch, measured with the load tool: 6.8 → 33 B/event).
    /// Its outcome is reported to the breaker afterwards through a synchronous call, which
    /// allocates nothing; while the break lasts, batches are refused without touching the log.
    /// In half-open state every batch may probe (the first outcome closes or reopens it).
    /// Not an async method either: its frame, allocated for every append that suspends (nearly
    /// all: the group commit), cost ~240 B per batch; an append already complete is reported
    /// at once, one still running is observed by a reused <see cref="ObservedAppend"/>.
    /// </remarks>
    public ValueTask AppendAsync(ulong partitionKey, ReadOnlyMemory<byte> records, int recordCount, CancellationToken cancellationToken = default)
    {
        if (breaker.IsRefusing) return ValueTask.FromException(Refused());
        ValueTask append;
        try
        {
            append = inner.AppendAsync(partitionKey, records, recordCount, cancellationToken);
        }
        catch (Exception e)
        {
            append = ValueTask.FromException(e);
        }
        if (!append.IsCompleted)
        {
            ObservedAppend? observer;
            lock (_idleLock) _idle.TryPop(out observer);
            return (observer ?? new ObservedAppend(this)).Observe(append);
        }
        try
        {
            append.GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            Report(e);
            return ValueTask.FromException(e);
        }
        breaker.ReportSuccess();
        return ValueTask.CompletedTask;
    }

    private void ReportSuccess() => breaker.ReportSuccess();

    private void Report(Exception failure)
    {
        if (failure is not OperationCanceledException) breaker.ReportFailure(failure);
    }

    private void Return(ObservedAppend observer)
    {
        lock (_idleLock)
        {
            if (_idle.Count < MaxIdle) _idle.Push(observer);
        }
    }

    /// <summary>
    /// Reports one running append's outcome to the breaker when it completes and passes it on to
    /// the caller: what the async method did, without a frame per append (returned to the owner's
    /// stack once the caller has read the outcome). The breaker's report needs no
    /// ExecutionContext, so the log's completion is observed with UnsafeOnCompleted; the
    /// caller's own continuation keeps its context (ManualResetValueTaskSourceCore flows it).
    /// </summary>
    private sealed class ObservedAppend : IValueTaskSource
    {
        private readonly BreakerEventLog _owner;
        private readonly Action _completed;
        private ManualResetValueTaskSourceCore<bool> _core;
        private ConfiguredValueTaskAwaitable.ConfiguredValueTaskAwaiter _append;

        public ObservedAppend(BreakerEventLog owner)
        {
            _owner = owner;
            _completed = Completed;
        }

        public ValueTask Observe(ValueTask append)
        {
            // ConfigureAwait(false), as the async method awaited: no scheduling context is captured.
            _append = append.ConfigureAwait(false).GetAwaiter();
            var pending = new ValueTask(this, _core.Version);
            _append.UnsafeOnCompleted(_completed);
            return pending;
        }

        private void Completed()
        {
            var append = _append;
            _append = default;
            try
            {
                append.GetResult();
            }
            catch (Exception e)
            {
                _owner.Report(e);
                _core.SetException(e);
                return;
            }
            _owner.ReportSuccess();
            _core.SetResult(true);
        }

        public void GetResult(short token)
        {
            try
            {
                _core.GetResult(token);
            }
            finally
            {
                _core.Reset();
                _owner.Return(this);
            }
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    private EventLogUnavailableException Refused() =>
        new($"The event log is failing ({breaker.Reason}); writes are refused for up to {breaker.BreakDuration.TotalSeconds:0} s.");

    public IEventLogConsumer OpenConsumer(string group) => inner.OpenConsumer(group);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}

/// <summary>The column store behind its breaker; an open breaker throws StoreUnavailableException.</summary>
public sealed class BreakerColumnStore(IColumnStore inner, DependencyBreaker breaker) : IColumnStore
{
    public IColumnStore Inner => inner;

    public Task ExecuteAsync(string sql, CancellationToken cancellationToken = default) =>
        Run(static async (s, ct) =>
        {
            await s.inner.ExecuteAsync(s.sql, ct).ConfigureAwait(false);
            return true;
        }, (inner, sql), cancellationToken);

    public Task<IReadOnlyList<System.Text.Json.JsonElement[]>> QueryRowsAsync(string sql, CancellationToken cancellationToken = default) =>
        Run(static (s, ct) => new ValueTask<IReadOnlyList<System.Text.Json.JsonElement[]>>(s.inner.QueryRowsAsync(s.sql, ct)), (inner, sql), cancellationToken);

    public Task<IReadOnlyList<System.Text.Json.JsonElement[]>> QueryRowsAsync(string sql, KeyRows keys, CancellationToken cancellationToken = default) =>
        Run(static (s, ct) => new ValueTask<IReadOnlyList<System.Text.Json.JsonElement[]>>(s.inner.QueryRowsAsync(s.sql, s.keys, ct)), (inner, sql, keys), cancellationToken);

    public Task<T> QueryRowBinaryAsync<T>(string sql, RowBinaryRead<T> read, CancellationToken cancellationToken = default) =>
        Run(static (s, ct) => new ValueTask<T>(s.inner.QueryRowBinaryAsync(s.sql, s.read, ct)), (inner, sql, read), cancellationToken);

    public Task<long> InsertRowBinaryAsync(string table, string columnsWithTypes, ReadOnlyMemory<byte> rowBinary,
        string? deduplicationToken = null, CancellationToken cancellationToken = default) =>
        Run(static (s, ct) => new ValueTask<long>(s.inner.InsertRowBinaryAsync(s.table, s.columnsWithTypes, s.rowBinary, s.deduplicationToken, ct)),
            (inner, table, columnsWithTypes, rowBinary, deduplicationToken), cancellationToken);

    private async Task<T> Run<T, TState>(Func<TState, CancellationToken, ValueTask<T>> call, TState state, CancellationToken cancellationToken)
    {
        try
        {
            return await breaker.Pipeline.ExecuteAsync(call, state, cancellationToken).ConfigureAwait(false);
        }
        catch (BrokenCircuitException)
        {
            throw new StoreUnavailableException(breaker.Reason, breaker.BreakDuration);
        }
    }
}

/// <summary>The store's breaker is open: answered 503 + Retry-After by the host.</summary>
public sealed class StoreUnavailableException(string reason, TimeSpan retryAfter)
    : Exception($"The store is failing ({reason}); statements are refused for up to {retryAfter.TotalSeconds:0} s.")
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}

public static class StoreUnavailableAnswer
{
    /// <summary>Answers any request whose endpoint hit the store's open breaker with 503 and
    /// Retry-After (the remaining break, rounded up to whole seconds).</summary>
    public static IApplicationBuilder UseStoreUnavailableAnswer(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        try
        {
            await next(context);
        }
        catch (StoreUnavailableException e) when (!context.Response.HasStarted)
        {
            context.Response.Clear();
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(e.RetryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            await Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Store unavailable", detail: e.Message).ExecuteAsync(context);
        }
    });
}
