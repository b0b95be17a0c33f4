namespace Analytics.Store.ClickHouse;

/// <summary>The ClickHouse server refused a statement, or could not be reached within the retry
/// budget. <see cref="Exception.Message"/> names the endpoint, the attempts made and the server's
/// own message ("Code: 60. DB::Exception: Table db.t does not exist. (UNKNOWN_TABLE)").</summary>
public sealed class ClickHouseStoreException : Exception
{
    public ClickHouseStoreException(string message, int? errorCode, int attempts, Exception innerException)
        : base(message, innerException)
    {
        ErrorCode = errorCode;
        Attempts = attempts;
    }

    public ClickHouseStoreException() : base("ClickHouse error") { }

    public ClickHouseStoreException(string message) : base(message) { }

    public ClickHouseStoreException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>The server's error code (60 = UNKNOWN_TABLE, 62 = SYNTAX_ERROR, …); null for
    /// transport failures (connection refused, timeout).</summary>
    public int? ErrorCode { get; }

    /// <summary>Attempts made before giving up (1 when the error was not worth retrying).</summary>
    public int Attempts { get; }

    /// <summary>The start of the failing statement (at most 300 characters), for diagnostics; kept
    /// out of the message because statements can carry tenant data.</summary>
    public string? Statement { get; init; }
}
