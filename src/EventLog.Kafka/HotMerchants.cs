using System.Collections.Concurrent;

namespace Analytics.EventLog.Kafka;

/// <summary>
/// Which merchants send more than a threshold of events per second through this node. Counts
/// per whole second; a merchant is hot while the current or the previous second is over the
/// threshold, so it stays spread for at least a second after a burst instead of flapping.
/// Called once per batch, not per event.
/// </summary>
internal sealed class HotMerchants(int eventsPerSecond, TimeProvider clock)
{
    private readonly ConcurrentDictionary<ulong, Counter> _counters = new();

    public bool IsHot(ulong merchantId, int events)
    {
        long second = clock.GetUtcNow().ToUnixTimeSeconds();
        var counter = _counters.GetOrAdd(merchantId, static _ => new Counter());
        lock (counter)
        {
            if (counter.Second != second)
            {
                counter.Previous = counter.Second == second - 1 ? counter.Current : 0;
                counter.Second = second;
                counter.Current = 0;
            }
            counter.Current += events;
            return counter.Current > eventsPerSecond || counter.Previous > eventsPerSecond;
        }
    }

    private sealed class Counter
    {
        public long Second;
        public long Current;
        public long Previous;
    }
}
