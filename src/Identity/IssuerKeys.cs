using System.Security.Cryptography;
using Microsoft.IdentityModel.Tokens;

namespace Analytics.Identity;

/// <summary>
/// The authorization server's RSA keys: one signs tokens (access tokens are JWTs any validator
/// can check against the public half), one encrypts what only this server reads (authorization
/// codes, refresh tokens). Generated once (RSA 3072) into the key directory as PKCS#8 PEM files
/// created with mode 0600 in a 0700 directory, and loaded on every start, so tokens issued before
/// a restart stay valid after it. A key file readable by group or others is refused: whoever
/// reads the signing key can mint tokens for any merchant. Several nodes of one issuer share the
/// directory's files (copy them, or mount the same secret).
/// </summary>
public sealed class IssuerKeys
{
    public const string SigningFile = "signing-key.pem";
    public const string EncryptionFile = "encryption-key.pem";

    private IssuerKeys(RsaSecurityKey signing, RsaSecurityKey encryption)
    {
        Signing = signing;
        Encryption = encryption;
    }

    public RsaSecurityKey Signing { get; }
    public RsaSecurityKey Encryption { get; }

    public static IssuerKeys LoadOrCreate(string directory)
    {
        if (!Directory.Exists(directory))
        {
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(directory);
            else Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        // Others able to list or add files here could swap a key in; refuse like a wide key file.
        const UnixFileMode groupOrOthers = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
                                           UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(directory) & groupOrOthers) != 0)
            throw new IssuerKeysException($"{directory} is accessible by group or others; run: chmod 700 {directory}");
        return new IssuerKeys(Load(Path.Combine(directory, SigningFile)), Load(Path.Combine(directory, EncryptionFile)));
    }

    private static RsaSecurityKey Load(string path)
    {
        var rsa = RSA.Create();
        if (!File.Exists(path))
        {
            rsa.KeySize = 3072;
            try
            {
                // CreateNew with the mode set at creation: the key is never readable by others,
                // not even between create and chmod; two processes racing both end up reading one key.
                var create = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
                if (!OperatingSystem.IsWindows()) create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                using var file = new FileStream(path, create);
                using var writer = new StreamWriter(file);
                writer.Write(rsa.ExportPkcs8PrivateKeyPem());
                writer.Flush();
                file.Flush(flushToDisk: true);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another process created it first: use theirs.
            }
        }
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
            throw new IssuerKeysException($"{path} is readable or writable by group or others; run: chmod 600 {path}");
        try
        {
            rsa.ImportFromPem(File.ReadAllText(path));
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException or UnauthorizedAccessException)
        {
            throw new IssuerKeysException($"{path} is not a usable RSA private key (PEM): {e.Message}", e);
        }
        // The key id is the public key's thumbprint: stable across restarts and nodes, so a
        // validator that cached our keys by id keeps matching.
        var key = new RsaSecurityKey(rsa);
        key.KeyId = Base64UrlEncoder.Encode(key.ComputeJwkThumbprint());
        return key;
    }
}

/// <summary>The issuer's key files are unsafe or unreadable: the server refuses to start.</summary>
public sealed class IssuerKeysException(string message, Exception? inner = null) : Exception(message, inner);
