// Probes and graceful drain of one node (any roles).
//
// Contract:
// - `GET /livez` answers 200 while the process runs, draining included: a liveness failure
//   restarts the process, which a drain must not provoke.
// - `GET /readyz` answers 200 only when the node is ready for traffic: started (log opened, store
//   migrated, server listening), not draining, and, for roles that use a ClickHouse server
//   (Rollup, query), that server answering `SELECT 1` within 2 s (checked at most once a second,
//   so a probe every second costs one query). The in-process engine is not checked: it cannot be
//   unreachable, and a probe queued behind a long insert must not take the node out. Nor may a
//   circuit breaker (CircuitBreakers.cs) refuse calls now: while the event log's or the store's
//   breaker is open (its break not over), the node answers 503 to what needs that dependency,
//   so it is not ready; once the break is over it is ready again, so that traffic can make the
//   half-open probe that closes the breaker. Otherwise 503 with the reason as text (`store:
//   circuit open: ClickHouse error 60 (UNKNOWN_TABLE)`). A breaker opened by a fault every node
//   shares (Kafka down) takes every node out for the break (seconds) at a time; clients keep what
//   was not acknowledged and resend, which they would do on the 503s anyway.
// - On SIGTERM (the host's stop) readiness turns false at once, ingest refuses new WebSockets and
//   batches with 503 + Retry-After, open WebSockets are closed with 1001 after answering the batch
//   in hand (IngestDrain), and only then does the server stop listening. The wait for open
//   WebSockets is bounded by the drain timeout less a reserve for the rest of the stop (Kestrel's
//   own stop, Rollup finishing its round); the services' stop is bounded by the drain timeout
//   (`--drain-timeout`), after which what is left is aborted. Then the log closes (the Kafka
//   producer flushed) and the engine. `serve` exits with code 1 if it is still running
//   <see cref="NodeDrain.CloseGrace"/> after the drain timeout: a bound that holds even if closing
//   hangs.
using Analytics.FastIngest.Transport;
using Analytics.Store;

namespace Analytics.Host;

/// <summary>What `/readyz` reports.</summary>
/// <param name="roles">The node's roles: whose needs (and breakers) count.</param>
/// <param name="checkStore">Whether to check the store with `SELECT 1` (a ClickHouse server).</param>
public sealed class NodeReadiness(IColumnStore store, Roles roles, bool checkStore, CircuitBreakers breakers)
{
    private static readonly TimeSpan StoreCheckTimeout = TimeSpan.FromSeconds(2);
    private const long StoreCheckIntervalMs = 1000;

    private volatile bool _started;
    private volatile bool _draining;
    private Task<string?>? _storeCheck;
    private long _storeCheckedAt;

    public bool IsDraining => _draining;

    internal void Started() => _started = true;
    internal void Draining() => _draining = true;

    /// <summary>Null when ready; otherwise why not.</summary>
    public async Task<string?> ProblemAsync()
    {
        if (_draining) return "draining";
        if (!_started) return "starting";
        bool usesStore = (roles & (Roles.Rollup | Roles.Query)) != 0;
        // Ingest-only nodes write dead letters to the store too, but ingest goes on without it.
        if (roles.HasFlag(Roles.Ingest) && breakers.EventLog.IsRefusing) return Refusing(breakers.EventLog);
        if (usesStore && breakers.Store.IsRefusing) return Refusing(breakers.Store);
        if (!usesStore || !checkStore) return null;
        long now = Environment.TickCount64;
        var check = Volatile.Read(ref _storeCheck);
        if (check is null || (check.IsCompleted && now - Interlocked.Read(ref _storeCheckedAt) > StoreCheckIntervalMs))
        {
            // Two probes at once may both start a check; the later one wins, which is harmless.
            Interlocked.Exchange(ref _storeCheckedAt, now);
            check = CheckStoreAsync();
            Volatile.Write(ref _storeCheck, check);
        }
        return await check;
    }

    private static string Refusing(DependencyBreaker breaker) => $"{breaker.Name}: circuit open: {breaker.Reason}";

    private async Task<string?> CheckStoreAsync()
    {
        using var timeout = new CancellationTokenSource(StoreCheckTimeout);
        try
        {
            await store.QueryRowsAsync("SELECT 1", timeout.Token);
            return null;
        }
        catch (Exception e)
        {
            return "store unreachable: " + (timeout.IsCancellationRequested ? $"no answer within {StoreCheckTimeout.TotalSeconds:0} s" : e.Message);
        }
    }
}

/// <summary>Runs the drain when the host stops (before any service stops, the server included).</summary>
public sealed partial class NodeDrain(NodeReadiness readiness, IngestDrain ingest, TimeSpan timeout, ILogger<NodeDrain> logger) : IHostedLifecycleService
{
    /// <summary>The part of the drain timeout kept for the rest of the stop after the sockets.</summary>
    public static TimeSpan Reserve(TimeSpan timeout) => TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(3).Ticks, timeout.Ticks / 3));

    /// <summary>What closing the log and the engine may take after the drain timeout.</summary>
    public static readonly TimeSpan CloseGrace = TimeSpan.FromSeconds(5);

    /// <summary>From the stop on, a watchdog ends the process (code 1, one line) should it still
    /// run <see cref="CloseGrace"/> after <paramref name="timeout"/>. A thread, not a timer task:
    /// it must fire even if the thread pool is what hangs.</summary>
    public static void ExitIfStopHangs(IHostApplicationLifetime lifetime, TimeSpan timeout) =>
        lifetime.ApplicationStopping.Register(() => new Thread(() =>
        {
            Thread.Sleep(timeout + CloseGrace);
            Console.Error.WriteLine($"analytics serve: still stopping {(timeout + CloseGrace).TotalSeconds:0} s after the stop began (--drain-timeout {timeout.TotalSeconds:0} s + {CloseGrace.TotalSeconds:0} s to close); exiting");
            Environment.Exit(1);
        }) { IsBackground = true, Name = "stop watchdog" }.Start());

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        readiness.Started();
        return Task.CompletedTask;
    }

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        readiness.Draining();
        ingest.Begin();
        LogDrainBegins(logger, ingest.OpenConnections);
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        budget.CancelAfter(timeout - Reserve(timeout));
        try
        {
            await ingest.WhenConnectionsClosedAsync(budget.Token);
            LogDrained(logger, clock.ElapsedMilliseconds);
        }
        catch (OperationCanceledException)
        {
            // Kestrel's stop aborts what is left; those clients resend what was not acknowledged.
            LogDrainTimedOut(logger, clock.ElapsedMilliseconds, ingest.OpenConnections);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Draining: readiness false, new connections refused, closing {Open} WebSocket(s) with 1001")]
    private static partial void LogDrainBegins(ILogger logger, int open);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Drained in {Milliseconds} ms: no WebSocket left")]
    private static partial void LogDrained(ILogger logger, long milliseconds);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Drain timed out after {Milliseconds} ms with {Open} WebSocket(s) open; aborting them")]
    private static partial void LogDrainTimedOut(ILogger logger, long milliseconds, int open);
}

public static class NodeProbes
{
    /// <summary>Registers readiness and the drain (bounded by <paramref name="drainTimeout"/>).</summary>
    public static IServiceCollection AddNodeLifecycle(this IServiceCollection services, Roles roles, TimeSpan drainTimeout)
    {
        services.AddSingleton<IngestDrain>();
        services.AddSingleton(sp =>
        {
            var store = sp.GetRequiredService<IColumnStore>();
            // The breaker wraps the store: what is inside decides whether there is a server to check.
            bool embedded = (store is BreakerColumnStore b ? b.Inner : store) is EmbeddedColumnStore;
            return new NodeReadiness(store, roles, !embedded, sp.GetRequiredService<CircuitBreakers>());
        });
        services.AddHostedService(sp => new NodeDrain(sp.GetRequiredService<NodeReadiness>(), sp.GetRequiredService<IngestDrain>(), drainTimeout, sp.GetRequiredService<ILogger<NodeDrain>>()));
        services.Configure<HostOptions>(o => o.ShutdownTimeout = drainTimeout);
        return services;
    }

    /// <summary>`/livez` and `/readyz` (see the file header).</summary>
    public static void MapProbes(this IEndpointRouteBuilder app)
    {
        app.MapGet("/livez", () => Results.Text("ok"));
        app.MapGet("/readyz", async (NodeReadiness readiness) => await readiness.ProblemAsync() is { } problem
            ? Results.Text(problem, statusCode: StatusCodes.Status503ServiceUnavailable)
            : Results.Text("ready"));
    }
}
