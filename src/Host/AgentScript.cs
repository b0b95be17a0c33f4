namespace Analytics.Host;

/// <summary>
/// GET /agent.js: the script-tag build of the browser agent (agents/packages/agent/dist), so a
/// site can load it from the analytics server itself (the agent then sends to the same origin).
/// The file is built by npm (`cd agents && npm ci && npm run build`; ./run.sh does it);
/// `serve --agent-js FILE` (or ANALYTICS_AGENT_JS) serves another build.
/// </summary>
public static class AgentScript
{
    public static string? Find(string? configured = null)
    {
        if (!string.IsNullOrEmpty(configured)) return File.Exists(configured) ? configured : null;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "agents", "packages", "agent", "dist", "agent.min.js");
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    public static void MapAgentScript(this WebApplication app, string? configured = null)
    {
        app.MapGet("/agent.js", (HttpContext context) =>
        {
            string? path = Find(configured);
            if (path is null)
            {
                return Results.Problem(statusCode: 404, title: "Agent not built",
                    detail: "Build the browser agent: cd agents && npm ci && npm run build (./run.sh does this).");
            }
            var headers = context.Response.Headers;
            headers.AccessControlAllowOrigin = "*";
            // Sites embed a stable URL: an hour in caches, then revalidated.
            headers.CacheControl = "public, max-age=3600";
            return Results.File(path, "text/javascript; charset=utf-8", enableRangeProcessing: false,
                lastModified: File.GetLastWriteTimeUtc(path));
        });
    }
}
