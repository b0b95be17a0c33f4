namespace Analytics.Enrichment.UserAgents;

/// <summary>
/// uap-core's regexes are written for Python's <c>re</c> and JavaScript. The constructs the pinned
/// release uses mean the same in .NET, so the translation is the identity today; the loader fails
/// loudly (rule index and pattern) if a newer release brings one that does not compile.
/// </summary>
internal static class UapRegexTranslation
{
    public static string ToDotNet(string pattern) => pattern;
}
