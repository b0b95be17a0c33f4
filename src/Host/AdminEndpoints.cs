using Analytics.ControlPlane;
using Analytics.Rollup;
using Analytics.Rollup.Reprocessing;
using Analytics.Security;
using Analytics.Store;

namespace Analytics.Host;

/// <summary>
/// Admin API, for operators across merchants (access token or key with the `admin` scope; see
/// docs/security.md): create merchants and sites, list sites, reprocess, partitions, export.
/// The same operations exist as CLI commands (`analytics sites create|list`). Sites are named by
/// their public id (`site`), never by the internal id.
/// </summary>
public static class AdminEndpoints
{
    public sealed record CreateSiteRequest(string? Merchant, long? MerchantId, string? Domain, string? SiteKey, string? TimeZone);

    public sealed record AdminReprocessRequest(long MerchantId, string? Site, DateOnly From, DateOnly To, bool DryRun, ushort? LogicVersion);

    public sealed record ExportRequest(long MerchantId, string? Site, DateOnly From, DateOnly To, string? Kind, string? Format, string Out);

    /// <param name="roles">This process's roles: only a process with the Rollup role runs
    /// reprocessing jobs, so another one refuses them instead of queueing a job nobody runs.</param>
    public static void MapAdmin(this WebApplication app, Roles roles)
    {
        var admin = app.MapGroup("/admin").RequireAuthorization(Scopes.Admin);
        admin.MapPost("/sites", (CreateSiteRequest request, SiteRegistry registry) =>
        {
            if (request.MerchantId is null && string.IsNullOrWhiteSpace(request.Merchant))
                return Results.Problem(statusCode: 400, title: "Invalid site", detail: "Give merchant (a name, to create one) or merchantId.");
            try
            {
                // A new merchant comes with its site in one transaction: a refused site leaves none behind.
                var site = request.MerchantId is { } merchantId
                    ? registry.CreateSite(merchantId, request.Domain ?? "", request.SiteKey, request.TimeZone ?? "UTC")
                    : registry.CreateMerchantWithSite(request.Merchant!, request.Domain ?? "", request.SiteKey, request.TimeZone ?? "UTC");
                return Results.Json(site, statusCode: 201);
            }
            catch (ControlPlaneConflictException e)
            {
                return Results.Problem(statusCode: 409, title: "Conflict", detail: e.Message);
            }
            catch (ArgumentException e)
            {
                return SiteEndpoints.InvalidSite(e);
            }
        });
        admin.MapGet("/sites", (SiteRegistry registry) => Results.Json(registry.ListSites()));

        // Reprocessing: rebuild derived data from raw events with the current (or a given)
        // processing logic. Runs inside Rollup, one site-day at a time; poll the job for progress.
        admin.MapPost("/reprocess", (AdminReprocessRequest body, SiteRegistry registry, ReprocessQueue queue, RollupOptions options,
            RetentionPolicy retention, TimeProvider clock) =>
        {
            if (!roles.HasFlag(Roles.Rollup))
                return Results.Problem(statusCode: 503, title: "Reprocessing runs in the Rollup role",
                    detail: $"This process runs {roles.ToString().ToLowerInvariant()}; send reprocessing to a process with the rollup role (serve --roles rollup, or all), which runs the jobs.");
            if (!TryResolveSite(registry, body.MerchantId, body.Site, out long? siteId, out var unknown)) return unknown!;
            var request = new ReprocessRequest(body.MerchantId, siteId, body.From, body.To, body.DryRun, body.LogicVersion);
            if (RangeProblem(request.From, request.To) is { } invalid) return invalid;
            // Reprocessing rebuilds from raw events: a day whose raw events have expired (or may be
            // expiring: TTL merges delete a day's rows part by part) would be rebuilt from fewer
            // events than it had, and replace the right numbers with wrong ones.
            if (retention.KeptFrom(RetentionPolicy.EventsRaw, clock.GetUtcNow()) is { } horizon && request.From < DateOnly.FromDateTime(horizon.UtcDateTime))
            {
                string kept = DateOnly.FromDateTime(horizon.UtcDateTime).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
                return Results.Problem(statusCode: 400, title: "Older than the raw events' retention",
                    detail: $"from {request.From:yyyy-MM-dd} is before {kept}: raw events are kept {RetentionPeriod.Describe(retention.Raw)} (--retention-raw), " +
                    $"so days before {kept} cannot be rebuilt; their rollups stay as they are. Reprocess from {kept} on.",
                    extensions: new Dictionary<string, object?> { ["field"] = "from", ["keptFrom"] = kept });
            }
            ushort version = request.LogicVersion ?? options.LogicVersion;
            if (!ProcessingLogic.IsKnown(version))
                return Results.Problem(statusCode: 400, title: "Unknown logic version", detail: $"Known versions: {string.Join(", ", ProcessingLogic.Versions)}.");
            var job = queue.Enqueue(request, version);
            return Results.Text(queue.Describe(job), "application/json", statusCode: 202);
        });
        admin.MapGet("/reprocess/{id}", (string id, ReprocessQueue queue) =>
            queue.Get(id) is { } job ? Results.Text(queue.Describe(job), "application/json") : Results.Problem(statusCode: 404, title: "Unknown job", detail: $"No job {id}."));
        admin.MapGet("/partitions", async (long merchantId, string? site, SiteRegistry registry, PartitionAdmin partitions, RollupOptions options, CancellationToken ct) =>
        {
            if (!TryResolveSite(registry, merchantId, site, out long? siteId, out var unknown)) return unknown!;
            var status = await partitions.StatusAsync(merchantId, siteId, options.LogicVersion, ct);
            // Sites by public id here too: the store's rows carry the internal one.
            var publicIds = registry.ListSites(merchantId).ToDictionary(s => s.SiteId, s => s.PublicId);
            return Results.Json(status.Select(p => new { site = publicIds.GetValueOrDefault(p.SiteId), p.Day, p.Generation, p.MinLogicVersion, p.MaxLogicVersion, p.Events, p.Outdated }));
        });
        admin.MapPost("/export", async (ExportRequest request, SiteRegistry registry, PartitionAdmin partitions, CancellationToken ct) =>
        {
            if (!TryResolveSite(registry, request.MerchantId, request.Site, out long? siteId, out var unknown)) return unknown!;
            if ((request.Format ?? "parquet") != "parquet") return Results.Problem(statusCode: 400, title: "Unsupported format", detail: "format: parquet.");
            string kind = request.Kind ?? "raw";
            if (kind is not ("raw" or "enriched")) return Results.Problem(statusCode: 400, title: "Unsupported kind", detail: "kind: raw or enriched.");
            if (RangeProblem(request.From, request.To) is { } invalid) return invalid;
            if (string.IsNullOrWhiteSpace(request.Out) || !Path.IsPathFullyQualified(request.Out))
                return Results.Problem(statusCode: 400, title: "Invalid output", detail: "out must be an absolute directory path on the server.");
            var files = await partitions.ExportParquetAsync(request.MerchantId, siteId, request.From, request.To, kind, request.Out, ct);
            return Results.Json(new { files, rows = files.Sum(f => f.Rows) });
        });
    }

    /// <summary>Reprocess and export jobs: an ordered range of at most ten years (one job must not
    /// hold the store for days).</summary>
    private static IResult? RangeProblem(DateOnly from, DateOnly to) =>
        from > to ? Results.Problem(statusCode: 400, title: "Invalid range", detail: "from must not be after to.")
        : to.DayNumber - from.DayNumber > 3660 ? Results.Problem(statusCode: 400, title: "Invalid range", detail: "At most ten years per job.")
        : null;

    /// <summary>A public site id of the given merchant, as the internal id the store uses; no site
    /// given is no filter. A merchant the control plane does not know is 404: a typo must not run a
    /// job over nothing and report it done.</summary>
    private static bool TryResolveSite(SiteRegistry registry, long merchantId, string? publicId, out long? siteId, out IResult? error)
    {
        siteId = null;
        error = null;
        if (registry.Store.GetMerchant(merchantId) is null)
        {
            error = Results.Problem(statusCode: 404, title: "Unknown merchant", detail: $"There is no merchant {merchantId}.");
            return false;
        }
        if (string.IsNullOrEmpty(publicId)) return true;
        if (registry.FindByPublicId(publicId) is { } site && site.MerchantId == merchantId)
        {
            siteId = site.SiteId;
            return true;
        }
        error = Results.Problem(statusCode: 404, title: "Unknown site", detail: $"Merchant {merchantId} has no site '{publicId}'.");
        return false;
    }
}
