using System.Security.Cryptography;

namespace Analytics.ControlPlane;

/// <summary>
/// Random identifiers and secrets. Public site ids are 16 characters of lower-case base32:
/// 80 random bits, so ids cannot be enumerated or guessed (sequential ids stay internal), and
/// they survive case-folding URLs and copy-paste. Site keys keep their 20-character base64url
/// form (120 bits): they appear in merchants' HTML and are not secrets, but must not be guessable
/// either.
/// </summary>
public static class Identifiers
{
    private const string Base32 = "abcdefghijklmnopqrstuvwxyz234567";

    public const int PublicIdLength = 16;

    public static string NewPublicId() => RandomBase32(PublicIdLength);

    public static string NewSiteKey() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(15)).Replace('+', '-').Replace('/', '_');

    /// <summary>Each character carries 5 random bits (GetItems draws uniformly from the alphabet).</summary>
    public static string RandomBase32(int length) => new(RandomNumberGenerator.GetItems<char>(Base32, length));

    /// <summary>True when the text has the shape of a public id (checked before any lookup).</summary>
    public static bool IsPublicIdFormat(ReadOnlySpan<char> text)
    {
        if (text.Length != PublicIdLength) return false;
        foreach (char c in text)
        {
            if (!(c is >= 'a' and <= 'z' or >= '2' and <= '7')) return false;
        }
        return true;
    }
}
