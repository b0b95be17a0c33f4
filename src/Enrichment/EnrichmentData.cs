namespace Analytics.Enrichment;

/// <summary>Placeholder so the project builds; replaced by the enrichment rules.</summary>
internal static class EnrichmentData
{
}
