using System.Buffers;
using System.Text.Unicode;
using Analytics.Contracts.V1;
using Analytics.FastIngest.Protocol;

namespace Analytics.FastIngest.Validation;

/// <summary>
/// Checks one parsed event against <see cref="IngestLimits"/>. Returns the first broken rule
/// (REJECTION_REASON_UNSPECIFIED when the event is valid). Works on the UTF-8 spans: no strings.
/// </summary>
internal static class EventValidator
{
    public const int IdBytes = 16;

    private static readonly SearchValues<byte> ControlBytes = SearchValues.Create(
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 127]);

    private static ReadOnlySpan<byte> Pageview => "pageview"u8;

    public static RejectionReason Validate(in EventView e, IngestLimits limits)
    {
        if (e.Id.Length != IdBytes) return RejectionReason.InvalidId;

        if (e.Name.IsEmpty) return RejectionReason.NameMissing;
        if (e.Name.Length > limits.MaxNameBytes) return RejectionReason.NameTooLong;
        if (!IsCleanText(e.Name)) return RejectionReason.InvalidString;

        if (e.Url.IsEmpty)
        {
            if (e.Name.SequenceEqual(Pageview)) return RejectionReason.UrlMissing;
        }
        else
        {
            if (e.Url.Length > limits.MaxUrlBytes) return RejectionReason.UrlTooLong;
            if (!IsCleanText(e.Url)) return RejectionReason.InvalidString;
            if (!IsAbsoluteHttpUrl(e.Url)) return RejectionReason.UrlInvalid;
        }

        if (!e.Referrer.IsEmpty)
        {
            if (e.Referrer.Length > limits.MaxReferrerBytes) return RejectionReason.ReferrerTooLong;
            if (!IsCleanText(e.Referrer)) return RejectionReason.InvalidString;
            if (!IsAbsoluteHttpUrl(e.Referrer)) return RejectionReason.ReferrerInvalid;
        }

        if (e.ClientTimeMs < 0 || e.ClientTimeMs > limits.MaxClientTimeMs) return RejectionReason.ClientTimeInvalid;
        if (e.ScreenWidth > limits.MaxScreenWidth) return RejectionReason.ScreenWidthOutOfRange;
        if (e.EngagementMs > limits.MaxEngagementMs) return RejectionReason.EngagementOutOfRange;

        if (!e.Currency.IsEmpty || e.RevenueMicros != 0)
        {
            if (!IsCurrencyCode(e.Currency)) return RejectionReason.CurrencyInvalid;
            // Bounded so that rollups' Int64 sums cannot overflow.
            if (e.RevenueMicros < 0 || e.RevenueMicros > limits.MaxRevenueMicros) return RejectionReason.RevenueOutOfRange;
        }

        if (e.PropertyCount > limits.MaxProperties) return RejectionReason.TooManyProps;
        if (e.PropertyCount > 0) return ValidateProperties(e, limits);
        return RejectionReason.Unspecified;
    }

    private static RejectionReason ValidateProperties(in EventView e, IngestLimits limits)
    {
        // At most 30 properties: a quadratic duplicate check (<= 435 span compares) beats
        // allocating a set.
        int index = 0;
        foreach (var prop in e.GetProperties())
        {
            if (prop.Key.IsEmpty || prop.Key.Length > limits.MaxPropertyKeyBytes || !IsCleanText(prop.Key)) return RejectionReason.PropKeyInvalid;
            if (prop.Value.Length > limits.MaxPropertyValueBytes) return RejectionReason.PropValueTooLong;
            if (!IsCleanText(prop.Value)) return RejectionReason.InvalidString;
            int other = 0;
            foreach (var earlier in e.GetProperties())
            {
                if (other++ == index) break;
                if (earlier.Key.SequenceEqual(prop.Key)) return RejectionReason.PropKeyInvalid;
            }
            index++;
        }
        return RejectionReason.Unspecified;
    }

    /// <summary>Valid UTF-8 without C0 control characters or DEL.</summary>
    public static bool IsCleanText(ReadOnlySpan<byte> text) =>
        !text.ContainsAny(ControlBytes) && Utf8.IsValid(text);

    private static bool IsAbsoluteHttpUrl(ReadOnlySpan<byte> url)
    {
        int hostStart;
        if (StartsWithIgnoreCase(url, "https://"u8)) hostStart = 8;
        else if (StartsWithIgnoreCase(url, "http://"u8)) hostStart = 7;
        else return false;
        // A host must follow the scheme: "https:///path" and "https://" are not URLs.
        return url.Length > hostStart && url[hostStart] is not ((byte)'/' or (byte)'?' or (byte)'#' or (byte)' ');
    }

    private static bool StartsWithIgnoreCase(ReadOnlySpan<byte> text, ReadOnlySpan<byte> lowerPrefix)
    {
        if (text.Length < lowerPrefix.Length) return false;
        for (int i = 0; i < lowerPrefix.Length; i++)
        {
            if ((text[i] | 0x20) != lowerPrefix[i] && text[i] != lowerPrefix[i]) return false;
        }
        return true;
    }

    private static bool IsCurrencyCode(ReadOnlySpan<byte> code) =>
        code.Length == 3 && code[0] is >= (byte)'A' and <= (byte)'Z' && code[1] is >= (byte)'A' and <= (byte)'Z' && code[2] is >= (byte)'A' and <= (byte)'Z';

    /// <summary>Site keys are 1-64 characters of [A-Za-z0-9_-]: the rule the control plane also
    /// applies to keys it stores (<see cref="Analytics.Contracts.SiteKeys"/>).</summary>
    public static bool IsSiteKeyFormat(ReadOnlySpan<byte> key, IngestLimits limits) => Analytics.Contracts.SiteKeys.IsValid(key, limits.MaxSiteKeyBytes);
}
