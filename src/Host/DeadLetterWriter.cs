using Analytics.FastIngest;
using Analytics.FastIngest.Abuse;
using Analytics.Store;

namespace Analytics.Host;

/// <summary>
/// Drains <see cref="DeadLetters"/> into the store's <c>ingest_rejections</c>: up to 1,000 rows
/// or one second per insert, off the ingest path. A failing store costs the rows of that insert
/// (counted as dropped), never an ingest ack: dead letters are diagnostics.
/// </summary>
public sealed partial class DeadLetterWriter(DeadLetters letters, IColumnStore store, IngestMetrics metrics, string database, ILogger<DeadLetterWriter> logger) : BackgroundService
{
    private const int MaxRows = 1000;
    private const string Columns = "merchant_id UInt64, site_id UInt64, received_at DateTime64(3, 'UTC'), reason String, origin String, events UInt32, detail String";
    private long _written, _failed;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        metrics.DeadLetterCounts = () => (letters.Suppressed, letters.Dropped + Interlocked.Read(ref _failed), Interlocked.Read(ref _written));
        using var rows = new RowBinaryWriter(16 * 1024);
        var reader = letters.Reader;
        try
        {
            while (await reader.WaitToReadAsync(stoppingToken))
            {
                // Let a burst gather for up to a second: one insert (one part) instead of many.
                await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
                rows.Reset();
                int count = 0;
                while (count < MaxRows && reader.TryRead(out var letter))
                {
                    rows.WriteUInt64((ulong)letter.MerchantId);
                    rows.WriteUInt64((ulong)letter.SiteId);
                    rows.WriteDateTime64Milliseconds(letter.At);
                    rows.WriteString(letter.Reason);
                    rows.WriteString(letter.Origin);
                    rows.WriteUInt32((uint)letter.Events);
                    rows.WriteString(letter.Detail);
                    count++;
                }
                try
                {
                    await store.InsertRowBinaryAsync($"{database}.ingest_rejections", Columns, rows.WrittenMemory, null, stoppingToken);
                    Interlocked.Add(ref _written, count);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Interlocked.Add(ref _failed, count);
                    NotStored(logger, count, e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Dead letters: {Count} rows not stored: {Error}")]
    private static partial void NotStored(ILogger logger, int count, string error);
}
