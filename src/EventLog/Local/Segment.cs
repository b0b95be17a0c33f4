using System.Globalization;

namespace Analytics.EventLog.Local;

/// <summary>One segment file: records [BaseOffset, next segment's BaseOffset).</summary>
internal sealed class Segment(long baseOffset, string path)
{
    public const string Extension = ".log";

    // -1 while this is the active (appended-to) segment. Set once, before the log publishes a
    // durable mark that names a later segment, so a reader that sees such a mark sees this.
    private long _sealedLength = -1;

    public long BaseOffset { get; } = baseOffset;

    public string Path { get; } = path;

    public long SealedLength
    {
        get => Volatile.Read(ref _sealedLength);
        set => Volatile.Write(ref _sealedLength, value);
    }

    /// <summary>20 digits: the largest long fits, and names sort in offset order.</summary>
    public static string FileName(long baseOffset) =>
        baseOffset.ToString("D20", CultureInfo.InvariantCulture) + Extension;

    public static bool TryParseFileName(string fileName, out long baseOffset)
    {
        baseOffset = 0;
        return fileName.Length == 20 + Extension.Length
            && fileName.EndsWith(Extension, StringComparison.Ordinal)
            && long.TryParse(fileName.AsSpan(0, 20), NumberStyles.None, CultureInfo.InvariantCulture, out baseOffset);
    }
}

/// <summary>
/// What readers may see: every record below <see cref="NextOffset"/> is durable, and the active
/// segment holds durable records up to <see cref="ActiveLength"/> bytes. Immutable; the writer
/// publishes a new one after each fsync (one small allocation per group commit).
/// </summary>
internal sealed class DurableMark(Segment active, long activeLength, long nextOffset)
{
    public Segment Active { get; } = active;

    public long ActiveLength { get; } = activeLength;

    public long NextOffset { get; } = nextOffset;
}
