using Microsoft.AspNetCore.Identity;

namespace Analytics.ControlPlane;

/// <summary>
/// Dashboard passwords, hashed with ASP.NET Core Identity's <see cref="PasswordHasher{TUser}"/>
/// (PBKDF2-HMAC-SHA512, 100,000 iterations, per-hash salt, versioned format): passwords are
/// low-entropy, so the hash must be slow. The hasher does not use the user object.
/// </summary>
public static class UserPasswords
{
    private static readonly PasswordHasher<User> Hasher = new();

    public const int MinLength = 10;

    public static string Hash(string password)
    {
        if (password.Length < MinLength) throw new ArgumentException($"A password needs at least {MinLength} characters.", nameof(password));
        return Hasher.HashPassword(null!, password);
    }

    /// <summary>True when the password matches; also true (with <paramref name="needsRehash"/>)
    /// for hashes in an older format that should be replaced on this sign-in.</summary>
    public static bool Verify(string hash, string password, out bool needsRehash)
    {
        var result = Hasher.VerifyHashedPassword(null!, hash, password);
        needsRehash = result == PasswordVerificationResult.SuccessRehashNeeded;
        return result != PasswordVerificationResult.Failed;
    }
}
