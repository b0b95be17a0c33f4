// `--edge-purge-url` (ANALYTICS_EDGE_PURGE_URL): the edge caches to purge, for `serve` (EdgePurger)
// and for the offline `keys revoke`, one parser and one message for both.
using System.CommandLine;

namespace Analytics.Host.Cli;

public static class EdgePurgeOption
{
    public static Option<string> Create(string description) => new("--edge-purge-url") { Description = description, HelpName = "URL,..." };

    /// <summary>The comma-separated URLs of <paramref name="value"/>; false with the message naming the
    /// first that is not an absolute http(s) URL.</summary>
    public static bool TryParse(string value, out Uri[] urls, out string? error)
    {
        var parsed = new List<Uri>();
        foreach (string edge in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!Uri.TryCreate(edge, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                (urls, error) = ([], $"--edge-purge-url '{edge}': use the edge cache's http(s):// URL, e.g. http://127.0.0.1:6081/");
                return false;
            }
            parsed.Add(uri);
        }
        (urls, error) = (parsed.ToArray(), null);
        return true;
    }
}
