using System.Globalization;
using Analytics.Contracts;

namespace Analytics.ControlPlane;

/// <summary>
/// What a site's domain, key and time zone may be. The store applies these on every create and
/// update; the API and CLI call them first so a refusal names its field and nothing is written.
/// A domain is a bare host name stored lower-case, because the default origin rule
/// (<see cref="OriginPolicy"/>) compares it with the host of a browser's Origin header: a domain
/// stored with a scheme, port or path would match no page and refuse every batch.
/// </summary>
public static class SiteRules
{
    public const string DomainHint = "a host name such as shop.example, without scheme, port or path";

    private static readonly IdnMapping Idn = new() { UseStd3AsciiRules = true };

    /// <summary>The host name, lower-case (an internationalised one as punycode, as browsers send
    /// it in Origin); throws <see cref="ControlPlaneValidationException"/> naming what is wrong.</summary>
    public static string NormalizeDomain(string? domain)
    {
        // A fully qualified name's trailing dot ("shop.example.") names the same host.
        string value = domain?.Trim() ?? "";
        if (value.EndsWith('.') && value.Length > 1 && !value.EndsWith("..", StringComparison.Ordinal)) value = value[..^1];
        if (value.Length == 0) throw new ControlPlaneValidationException("domain", "domain is required.");
        if (ShapeProblem(value) is { } shape) throw Invalid(value, shape);
        string host = value;
        if (!System.Text.Ascii.IsValid(host))
        {
            try
            {
                host = Idn.GetAscii(host);
            }
            catch (ArgumentException)
            {
                throw Invalid(value, "it is not a valid internationalised name");
            }
        }
        if (LabelProblem(host) is { } problem) throw Invalid(value, problem);
        return host.ToLowerInvariant();
    }

    private static ControlPlaneValidationException Invalid(string value, string problem) =>
        new("domain", $"domain: '{value}' is not a host name ({problem}); give {DomainHint}.");

    // By hand rather than Uri.CheckHostName: that answers only a kind (Dns, IPv4, IPv6, Unknown),
    // takes IPv6 literals that no Origin host compares equal to, and cannot say what is wrong;
    // the rule (RFC 1123 host names) is short enough to state here in full.
    private static string? ShapeProblem(string value) =>
        value.Contains("://", StringComparison.Ordinal) ? "it has a scheme"
        : value.IndexOfAny(['/', '?', '#']) >= 0 ? "it has a path"
        : value.Contains(':', StringComparison.Ordinal) ? "it has a port"
        : null;

    private static string? LabelProblem(string host)
    {
        if (host.Length > 253) return "it is longer than 253 characters";
        foreach (var label in host.Split('.'))
        {
            if (label.Length == 0) return "it has an empty label: a dot at the start or end, or two in a row";
            if (label.Length > 63) return $"the label '{label[..10]}…' is longer than 63 characters";
            if (label[0] == '-' || label[^1] == '-') return $"the label '{label}' starts or ends with a hyphen";
            foreach (char c in label)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c == '-')) return $"'{c}' is not a letter, digit, hyphen or dot";
            }
        }
        return null;
    }

    /// <summary>A key an operator chose: ingest's own rule (<see cref="SiteKeys"/>), or a refusal.</summary>
    public static string ValidSiteKey(string siteKey) =>
        SiteKeys.IsValid(siteKey) ? siteKey
            : throw new ControlPlaneValidationException("siteKey", $"site key: '{siteKey}' is not {SiteKeys.Rule} (the only keys ingest accepts).");

    public static string ValidTimeZone(string? timeZone) =>
        timeZone is not null && (TimeZoneInfo.TryFindSystemTimeZoneById(timeZone, out _) && timeZone.Contains('/', StringComparison.Ordinal) || timeZone == "UTC")
            ? timeZone : throw new ControlPlaneValidationException("timeZone", $"time zone: '{timeZone}' is not an IANA time zone (e.g. Europe/Berlin, UTC).");
}
