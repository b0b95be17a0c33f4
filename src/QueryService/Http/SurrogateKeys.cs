using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Analytics.QueryService.Http;

/// <summary>
/// The names an edge cache files query answers under, so that whatever changes data can purge
/// exactly the answers it changed (docs/query-api.md, "Caching"). The contract:
/// <list type="bullet">
/// <item><c>m-{merchant}</c>: every answer about the merchant; {merchant} is an opaque token
/// (keyed hash of the internal id), never the sequential id itself.</item>
/// <item><c>s-{site}</c>: every answer about the site ({site}: its public id).</item>
/// <item><c>c-{credential}</c>: every answer fetched with a personal API key or an API client's
/// access token (<see cref="Analytics.Security.CredentialNames"/>), purged when it is revoked;
/// {credential} is a keyed hash of its name like the merchant's, so the header names no key
/// prefix or client id.</item>
/// <item>per UTC day the answer's range touches: <c>sd-{site}-2026-11-30</c> for ranges of up to
/// <see cref="MaxDayKeys"/> days; longer ranges name months (<c>sm-{site}-2026-11</c>) up to
/// <see cref="MaxMonthKeys"/> months, and years beyond (<c>sy-{site}-2026</c>), so the header stays
/// under about 3 KB for any range.</item>
/// </list>
/// Reprocessing rebuilds one UTC site-day at a time; purging <see cref="ForSiteDay"/>'s three keys
/// after a rebuild removes every cached answer whose range includes that day, whatever its length.
/// </summary>
public sealed class SurrogateKeys(byte[] merchantSecret)
{
    /// <summary>92 days: a quarter (any three months) still gets one key per day.</summary>
    public const int MaxDayKeys = 92;
    /// <summary>Three years of month keys; beyond that, year keys (a 20-year range: 21).</summary>
    public const int MaxMonthKeys = 36;

    private readonly byte[] _secret = merchantSecret.Length >= 16 ? merchantSecret
        : throw new ArgumentException("The surrogate-key secret needs at least 16 bytes.", nameof(merchantSecret));

    /// <summary>m-{80 bits of HMAC-SHA256(secret, merchant id), as 16 base32 characters}: stable for a
    /// deployment sharing the secret, tells nothing about how many merchants there are.</summary>
    public string Merchant(long merchantId) => "m-" + Mac("merchant:" + merchantId.ToString(CultureInfo.InvariantCulture));

    /// <summary>c-{HMAC of the credential's name (<see cref="Analytics.Security.CredentialNames"/>)}.</summary>
    public string Credential(string credential) => "c-" + Mac("credential:" + credential);

    private string Mac(string material)
    {
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(_secret, Encoding.UTF8.GetBytes(material), mac);
        return Base32(mac[..16]);
    }

    public static string Site(string sitePublicId) => "s-" + sitePublicId;

    /// <summary>The keys of an answer about <paramref name="sitePublicId"/> that read the given
    /// [from, to) ranges (the query's, and a comparison's), without repeats.</summary>
    public IReadOnlyList<string> ForAnswer(long merchantId, string sitePublicId, IReadOnlyList<(DateTimeOffset From, DateTimeOffset To)> ranges)
    {
        var keys = new List<string> { Merchant(merchantId), Site(sitePublicId) };
        // The tier follows the days of all ranges together, so two long ranges cannot double the header.
        int days = ranges.Sum(r => Days(r.From, r.To));
        int months = ranges.Sum(r => Months(r.From, r.To));
        foreach (var (from, to) in ranges)
        {
            foreach (string key in ForRange(sitePublicId, from, to, days, months))
            {
                if (!keys.Contains(key)) keys.Add(key);
            }
        }
        return keys;
    }

    /// <summary>Day, month or year keys of the UTC days [from, to) touches.</summary>
    public static IEnumerable<string> ForRange(string sitePublicId, DateTimeOffset from, DateTimeOffset to) =>
        ForRange(sitePublicId, from, to, Days(from, to), Months(from, to));

    private static IEnumerable<string> ForRange(string sitePublicId, DateTimeOffset from, DateTimeOffset to, int days, int months)
    {
        if (to <= from) yield break;
        var (first, last) = UtcDays(from, to);
        if (days <= MaxDayKeys)
        {
            for (var d = first; d <= last; d = d.AddDays(1)) yield return DayKey(sitePublicId, d);
        }
        else if (months <= MaxMonthKeys)
        {
            for (var m = new DateOnly(first.Year, first.Month, 1); m <= last; m = m.AddMonths(1)) yield return MonthKey(sitePublicId, m);
        }
        else
        {
            for (int y = first.Year; y <= last.Year; y++) yield return YearKey(sitePublicId, y);
        }
    }

    /// <summary>The first and last UTC day of [from, to): `to` is exclusive, so a range ending
    /// at midnight does not touch the next day.</summary>
    private static (DateOnly First, DateOnly Last) UtcDays(DateTimeOffset from, DateTimeOffset to) =>
        (DateOnly.FromDateTime(from.UtcDateTime), DateOnly.FromDateTime(to.UtcDateTime.AddTicks(-1)));

    private static int Days(DateTimeOffset from, DateTimeOffset to)
    {
        if (to <= from) return 0;
        var (first, last) = UtcDays(from, to);
        return last.DayNumber - first.DayNumber + 1;
    }

    private static int Months(DateTimeOffset from, DateTimeOffset to)
    {
        if (to <= from) return 0;
        var (first, last) = UtcDays(from, to);
        return (last.Year - first.Year) * 12 + last.Month - first.Month + 1;
    }

    /// <summary>What to purge after the UTC site-day <paramref name="day"/> changed (reprocessing).</summary>
    public static IReadOnlyList<string> ForSiteDay(string sitePublicId, DateOnly day) =>
        [DayKey(sitePublicId, day), MonthKey(sitePublicId, day), YearKey(sitePublicId, day.Year)];

    private static string DayKey(string site, DateOnly day) => string.Create(CultureInfo.InvariantCulture, $"sd-{site}-{day:yyyy-MM-dd}");
    private static string MonthKey(string site, DateOnly day) => string.Create(CultureInfo.InvariantCulture, $"sm-{site}-{day:yyyy-MM}");
    private static string YearKey(string site, int year) => string.Create(CultureInfo.InvariantCulture, $"sy-{site}-{year:D4}");

    /// <summary>Five bits of each of the first 16 bytes, in the alphabet of public ids.</summary>
    private static string Base32(ReadOnlySpan<byte> bytes)
    {
        const string Alphabet = "abcdefghijklmnopqrstuvwxyz234567";
        Span<char> text = stackalloc char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) text[i] = Alphabet[bytes[i] & 31];
        return new string(text);
    }
}
