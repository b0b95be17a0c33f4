using System.Security.Cryptography;
using System.Text;

namespace Analytics.ControlPlane;

/// <summary>
/// Personal API keys for scripts: <c>ak_{prefix}_{secret}</c>, shown once at creation. The
/// 8-character prefix (40 bits, unique) identifies a key in lists and logs and finds its row;
/// the secret is 32 base32 characters (160 random bits). Only SHA-256 of the whole key is
/// stored. A fast hash is right here, unlike for passwords: slow hashes (PBKDF2, bcrypt)
/// protect low-entropy secrets against guessing, but nobody can enumerate 2^160 secrets, so a
/// leaked database reveals nothing usable, and verification stays cheap on every API call.
/// Comparison is in fixed time.
/// </summary>
public static class ApiKeys
{
    public const string Scheme = "ak";
    private const int PrefixLength = 8;
    private const int SecretLength = 32;

    /// <summary>Creates a key; the returned secret is the only copy there will ever be.</summary>
    public static (ApiKey Key, string Secret) Create(IControlPlaneStore store, long merchantId, long userId, string name, string scopes)
    {
        for (int attempt = 0; ; attempt++)
        {
            string prefix = Identifiers.RandomBase32(PrefixLength);
            string secret = $"{Scheme}_{prefix}_{Identifiers.RandomBase32(SecretLength)}";
            try
            {
                return (store.CreateApiKey(merchantId, userId, prefix, Hash(secret), name, scopes), secret);
            }
            catch (ControlPlaneConflictException) when (attempt < 3)
            {
                // A prefix collision (40 bits: rare, not impossible): draw again.
            }
        }
    }

    /// <summary>The live key a presented secret belongs to, or null (malformed, unknown, wrong
    /// secret, revoked). Records the use.</summary>
    public static ApiKey? Verify(IControlPlaneStore store, string presented, DateTimeOffset now)
    {
        var parts = presented.Split('_');
        if (parts is not [Scheme, { Length: PrefixLength } prefix, { Length: SecretLength }]) return null;
        if (store.FindApiKey(prefix) is not var (key, stored)) return null;
        if (!CryptographicOperations.FixedTimeEquals(Hash(presented), stored) || key.RevokedAt is not null) return null;
        store.TouchApiKey(key.Id, now);
        return key with { LastUsedAt = now };
    }

    internal static byte[] Hash(string secret) => SHA256.HashData(Encoding.UTF8.GetBytes(secret));
}
