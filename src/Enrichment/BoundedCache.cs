using System.Collections.Concurrent;

namespace Analytics.Enrichment;

/// <summary>
/// A thread-safe cache of computed answers keyed by string, bounded by a number of entries.
/// Contract: a hit is one dictionary lookup and allocates nothing; a miss computes the value
/// (callers compute outside the cache, so two threads may compute the same key once each, which
/// is harmless for pure functions); when the capacity is reached the cache is cleared rather
/// than evicting by recency. Clearing keeps hits lock-free and free of bookkeeping writes, and
/// the working set (the prefixes or referrer hosts of the last minutes) refills in one pass.
/// </summary>
internal sealed class BoundedCache<TValue>
{
    private readonly ConcurrentDictionary<string, TValue> _entries = new(StringComparer.Ordinal);
    private readonly int _capacity;
    private int _count;

    public BoundedCache(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
    }

    public bool TryGet(string key, out TValue value) => _entries.TryGetValue(key, out value!);

    public void Add(string key, TValue value)
    {
        // Count adds ourselves: ConcurrentDictionary.Count takes every lock.
        if (Interlocked.Increment(ref _count) > _capacity)
        {
            _entries.Clear();
            Interlocked.Exchange(ref _count, 1);
        }
        _entries[key] = value;
    }

    public int Count => _entries.Count;
}
