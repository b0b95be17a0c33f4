namespace Analytics.Store;

/// <summary>
/// Counts the activations of generations (inserts into a database's <c>generations</c> table,
/// schemas/clickhouse/003_generations.sql) this process makes: each is counted when it starts,
/// before its insert can be seen, and again when it ends, after its insert returned. A reader that
/// keeps what it read from <c>generations</c> may use it only if an activation neither ran when it
/// looked (<see cref="TryQuiet"/>) nor started before its statement finished
/// (<see cref="Started"/> unchanged): then <c>generations</c> did not change, and neither did the
/// rows of its active generations (reprocessing deletes superseded rows only after an activation).
/// <para>
/// Sound only where every activation goes through this process: the embedded engine, which one
/// process holds per data directory. Behind a ClickHouse server other processes activate too, so
/// the host hands this to readers only with the embedded store (docs/query-performance.md,
/// "Active generations, kept between questions").
/// </para>
/// </summary>
public sealed class GenerationActivations
{
    private long _started, _finished;

    /// <summary>Activations started so far.</summary>
    public long Started => Interlocked.Read(ref _started);

    /// <summary>Called before an activation's insert is sent.</summary>
    public void Starting() => Interlocked.Increment(ref _started);

    /// <summary>Called once the insert has returned, failed or been cancelled (a failed insert may
    /// still have stored its rows).</summary>
    public void Finished() => Interlocked.Increment(ref _finished);

    /// <summary>The activations started so far, when none is running; false while one is.</summary>
    public bool TryQuiet(out long started)
    {
        // Finished first: a start in between makes the two differ, never look equal.
        long finished = Interlocked.Read(ref _finished);
        started = Interlocked.Read(ref _started);
        return started == finished;
    }
}
