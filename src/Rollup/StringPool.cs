using System.Collections.Concurrent;

namespace Analytics.Rollup;

/// <summary>
/// One string per distinct value for values that repeat from event to event (hostnames, paths,
/// user agents, names), looked up by their characters, so a round of 100,000 events does not
/// allocate 100,000 copies of a few hundred values. Thread-safe; bounded by a number of entries:
/// when full it is cleared rather than evicting by recency (as Enrichment's BoundedCache, and for
/// the same reason: a hit is one lookup and no write), and the working set refills in one pass.
/// Which string instance a caller gets never changes what it means.
/// </summary>
internal sealed class StringPool
{
    private readonly ConcurrentDictionary<string, string> _strings = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _byChars;
    private readonly int _capacity;
    private int _count;

    public StringPool(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
        _byChars = _strings.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public string Get(ReadOnlySpan<char> chars)
    {
        if (chars.IsEmpty) return "";
        if (_byChars.TryGetValue(chars, out var pooled)) return pooled;
        var added = chars.ToString();
        if (Interlocked.Increment(ref _count) > _capacity)
        {
            _strings.Clear();
            Interlocked.Exchange(ref _count, 1);
        }
        return _strings.GetOrAdd(added, added);
    }
}
