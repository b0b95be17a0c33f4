namespace Analytics.Contracts;

/// <summary>
/// The shape of a site key, part of the wire contract (<c>EventBatch.site_key</c>): 1 to 64
/// characters of <c>[A-Za-z0-9_-]</c>. Ingest refuses any other key before looking it up, so the
/// control plane refuses to store one (a site with such a key could never send an event).
/// Generated keys are 20 characters of base64url and always fit.
/// </summary>
public static class SiteKeys
{
    public const int MaxLength = 64;

    public const string Rule = "1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'";

    /// <summary>The key as it arrives on the wire (UTF-8 bytes); <paramref name="maxLength"/> is
    /// ingest's limit, at most <see cref="MaxLength"/>.</summary>
    public static bool IsValid(ReadOnlySpan<byte> key, int maxLength = MaxLength)
    {
        if (key.IsEmpty || key.Length > maxLength) return false;
        foreach (byte b in key)
        {
            if (!IsKeyChar(b)) return false;
        }
        return true;
    }

    public static bool IsValid(ReadOnlySpan<char> key)
    {
        if (key.IsEmpty || key.Length > MaxLength) return false;
        foreach (char c in key)
        {
            if (c > 0x7F || !IsKeyChar((byte)c)) return false;
        }
        return true;
    }

    private static bool IsKeyChar(byte b) =>
        b is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or >= (byte)'0' and <= (byte)'9' or (byte)'_' or (byte)'-';
}
