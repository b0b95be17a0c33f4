using YamlDotNet.Core;

namespace Analytics.Enrichment;

/// <summary>
/// A data file enrichment needs is missing or malformed. The message is one line naming the file
/// and the problem, fit to end a start-up with ("run scripts/fetch-enrichment-data.sh").
/// </summary>
public sealed class EnrichmentDataException : Exception
{
    public EnrichmentDataException(string message) : base(message) { }

    public EnrichmentDataException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Runs a loader, turning I/O and format errors into one clear message about <paramref name="path"/>.</summary>
    internal static T Guard<T>(string path, Func<T> load)
    {
        if (!File.Exists(path))
            throw new EnrichmentDataException($"{path}: file not found (scripts/fetch-enrichment-data.sh installs the enrichment data)");
        try
        {
            return load();
        }
        catch (EnrichmentDataException)
        {
            throw;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or YamlException or System.Text.Json.JsonException or FormatException)
        {
            throw new EnrichmentDataException($"{path}: cannot read ({e.Message})", e);
        }
    }
}
