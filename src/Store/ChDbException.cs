using System.Globalization;

namespace Analytics.Store;

/// <summary>A statement failed inside the embedded ClickHouse engine (or the engine could not start).
/// <see cref="Exception.Message"/> is the engine's own message, e.g.
/// "Code: 60. DB::Exception: Table db.t does not exist. (UNKNOWN_TABLE)".</summary>
public sealed class ChDbException : Exception
{
    public ChDbException(string message) : base(message) => ErrorCode = ParseErrorCode(message);

    /// <summary>Wraps another failure with context; keeps the engine's error code of a wrapped ChDbException.</summary>
    public ChDbException(string message, Exception innerException) : base(message, innerException) =>
        ErrorCode = ParseErrorCode(message) ?? (innerException as ChDbException)?.ErrorCode;

    public ChDbException() : base("chDB error") { }

    /// <summary>The ClickHouse error code ("Code: N." prefix of the message), e.g. 60 = UNKNOWN_TABLE;
    /// null when the message has none.</summary>
    public int? ErrorCode { get; }

    /// <summary>The start of the failing statement (at most 300 characters), for diagnostics.
    /// Kept out of <see cref="Exception.Message"/> because statements can carry tenant data.</summary>
    public string? Statement { get; init; }

    private static int? ParseErrorCode(string message)
    {
        const string Prefix = "Code: ";
        var span = message.AsSpan().TrimStart();
        if (!span.StartsWith(Prefix, StringComparison.Ordinal))
            return null;
        span = span[Prefix.Length..];
        var end = span.IndexOf('.');
        return end > 0 && int.TryParse(span[..end], NumberStyles.None, CultureInfo.InvariantCulture, out var code) ? code : null;
    }
}
