using System.Globalization;

namespace Analytics.Rollup;

/// <summary>
/// Remembers, durably, which log range Rollup is working on before it writes anything for it.
/// After a crash the same range is replayed with the same insert-deduplication tokens, so every
/// block that was already stored is skipped by the store and every missing block is written:
/// the range ends up stored exactly once. Without this, a restart could cut the log into
/// different ranges and the tokens would not match.
/// </summary>
public sealed class RollupCheckpoint(string directory, string consumerGroup)
{
    private readonly string _path = Path.Combine(directory, $"inflight-{consumerGroup}.txt");

    public readonly record struct Range(string Source, long From, long Next);

    public Range? ReadInflight()
    {
        if (!File.Exists(_path)) return null;
        var parts = File.ReadAllText(_path).Split(',');
        return new Range(parts[0], long.Parse(parts[1], CultureInfo.InvariantCulture), long.Parse(parts[2], CultureInfo.InvariantCulture));
    }

    public void WriteInflight(string source, long from, long next)
    {
        Directory.CreateDirectory(directory);
        string temp = _path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(System.Text.Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{source},{from},{next}")));
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, _path, overwrite: true);
    }

    public void Clear() => File.Delete(_path);
}
