namespace Analytics.Store;

/// <summary>
/// Counts the activations of generations (inserts into a database's <c>generations</c> table,
/// schemas/clickhouse/003_generations.sql) this process has made. A reader that keeps what it read
/// from <c>generations</c> may reuse it for as long as the count has not moved since it read.
/// <para>
/// Sound only where every activation goes through this process: the embedded engine, which one
/// process holds per data directory. Behind a ClickHouse server other processes activate too, so
/// the host hands this to readers only with the embedded store (docs/query-performance.md,
/// "Active generations, kept between questions").
/// </para>
/// </summary>
public sealed class GenerationActivations
{
    private long _count;

    /// <summary>Activations so far.</summary>
    public long Count => Interlocked.Read(ref _count);

    /// <summary>Called once an activation's insert has returned, failed or been cancelled: an
    /// insert that failed may still have stored its rows, so a reader must read again either way.</summary>
    public void Activated() => Interlocked.Increment(ref _count);
}
