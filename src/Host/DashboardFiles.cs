using System.Net;
using System.Text.RegularExpressions;

namespace Analytics.Host;

/// <summary>
/// The merchant dashboard: an npm package (dashboard/) built by esbuild into dashboard/dist, which
/// this host serves: <c>/</c> is dist/index.html (never cached: it names the current build), and
/// <c>/dashboard/app-HASH.js|css</c> the hashed assets (cached for a year: a new build has new
/// names). The build is not committed: `cd dashboard && npm ci && npm run build` (./run.sh and
/// ./test.sh do it). Without it <c>/</c> says so in a page instead of answering 404.
/// `serve --dashboard DIR` (or ANALYTICS_DASHBOARD) serves another build.
/// </summary>
public static partial class DashboardFiles
{
    public const string BuildCommand = "cd dashboard && npm ci && npm run build";

    public static string? Find(string? configured = null)
    {
        if (!string.IsNullOrEmpty(configured)) return File.Exists(Path.Combine(configured, "index.html")) ? configured : null;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "dashboard", "dist");
            if (File.Exists(Path.Combine(candidate, "index.html"))) return candidate;
        }
        return null;
    }

    public static void MapDashboard(this WebApplication app, string? configured = null)
    {
        app.MapGet("/", (HttpContext context) =>
        {
            string? dist = Find(configured);
            if (dist is null)
            {
                return Results.Content($"""
                    <!doctype html><html lang="en"><meta charset="utf-8"><title>Dashboard not built</title>
                    <link rel="icon" href="/favicon.svg" type="image/svg+xml">
                    <body style="font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;line-height:1.5">
                    <h1>The dashboard is not built</h1>
                    <p>Build it once with <code>{WebUtility.HtmlEncode(BuildCommand)}</code> (<code>./run.sh</code> does this), then reload.</p>
                    <p>The API answers without it: see <a href="/docs/api">/docs/api</a>.</p></body></html>
                    """, "text/html; charset=utf-8", statusCode: StatusCodes.Status503ServiceUnavailable);
            }
            context.Response.Headers.CacheControl = "no-cache";
            return Results.File(Path.Combine(dist, "index.html"), "text/html; charset=utf-8");
        }).ExcludeFromDescription();

        app.MapGet("/dashboard/{file}", (HttpContext context, string file) =>
        {
            // Only the build's own flat file names: nothing outside dist can be named.
            string? dist = Find(configured);
            if (dist is null || !AssetName().IsMatch(file)) return Results.NotFound();
            string path = Path.Combine(dist, file);
            if (!File.Exists(path)) return Results.NotFound();
            context.Response.Headers.CacheControl = "public, max-age=31536000, immutable";
            string type = file.EndsWith(".css", StringComparison.Ordinal) ? "text/css; charset=utf-8"
                : file.EndsWith(".js", StringComparison.Ordinal) ? "text/javascript; charset=utf-8" : "text/plain; charset=utf-8";
            return Results.File(path, type, lastModified: File.GetLastWriteTimeUtc(path));
        }).ExcludeFromDescription();

        // Browsers ask for /favicon.ico on every page (the sign-in page too): the same icon, not a 404.
        app.MapGet("/favicon.ico", (IWebHostEnvironment env) =>
        {
            var icon = env.WebRootFileProvider.GetFileInfo("favicon.svg");
            return icon.Exists && icon.PhysicalPath is not null
                ? Results.File(icon.PhysicalPath, "image/svg+xml", lastModified: icon.LastModified)
                : Results.NotFound();
        }).ExcludeFromDescription();
    }

    [GeneratedRegex(@"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.(js|css|txt)$")]
    private static partial Regex AssetName();
}
