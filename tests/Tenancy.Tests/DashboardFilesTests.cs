using System.Net;

namespace Analytics.Tenancy.Tests;

/// <summary>
/// How the host serves the dashboard's build (src/Host/DashboardFiles.cs): `/` is the build's
/// index.html, never cached; `/dashboard/NAME` only the build's own flat, hashed files, cached for a
/// year; without a build, `/` says how to make one instead of answering 404 or a blank page.
/// Each test serves a build directory of its own (`--dashboard`), written here.
/// </summary>
public class DashboardFilesTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_build_is_served_at_the_root_and_its_hashed_assets_are_cached_for_a_year()
    {
        string dist = Directory.CreateTempSubdirectory("dashboard-dist-").FullName;
        string outside = Path.Combine(Path.GetDirectoryName(dist)!, Path.GetFileName(dist) + "-secret.js");
        try
        {
            const string Html = "<!doctype html><title>dash</title><script type=module src=/dashboard/app-ABC123.js></script>";
            await File.WriteAllTextAsync(Path.Combine(dist, "index.html"), Html, Ct);
            await File.WriteAllTextAsync(Path.Combine(dist, "app-ABC123.js"), "console.log(1)", Ct);
            await File.WriteAllTextAsync(outside, "secret", Ct);
            await using var host = await AuthHost.StartAsync(engine, dashboard: dist);

            using var root = await host.Http.GetAsync("/?site=abc&period=30d", Ct);
            Assert.Equal(HttpStatusCode.OK, root.StatusCode);
            Assert.Equal("text/html", root.Content.Headers.ContentType!.MediaType);
            Assert.Equal("no-cache", root.Headers.CacheControl!.ToString());
            Assert.Equal(Html, await root.Content.ReadAsStringAsync(Ct));

            using var script = await host.Http.GetAsync("/dashboard/app-ABC123.js", Ct);
            Assert.Equal(HttpStatusCode.OK, script.StatusCode);
            Assert.Equal("text/javascript", script.Content.Headers.ContentType!.MediaType);
            Assert.Equal("public, max-age=31536000, immutable", script.Headers.CacheControl!.ToString());

            // Nothing but the build's own files: not a missing one, not one outside the directory.
            foreach (string path in new[] { "/dashboard/app-MISSING.js", "/dashboard/index.html", $"/dashboard/..%2F{Path.GetFileName(outside)}", "/dashboard/.hidden.js" })
            {
                using var refused = await host.Http.GetAsync(path, Ct);
                Assert.True(refused.StatusCode == HttpStatusCode.NotFound, $"{path}: {refused.StatusCode}");
            }

            using var icon = await host.Http.GetAsync("/favicon.ico", Ct);
            Assert.Equal(HttpStatusCode.OK, icon.StatusCode);
            Assert.Equal("image/svg+xml", icon.Content.Headers.ContentType!.MediaType);
        }
        finally
        {
            Directory.Delete(dist, recursive: true);
            File.Delete(outside);
        }
    }

    [Fact]
    public async Task Without_a_build_the_root_names_the_command_that_builds_it()
    {
        string empty = Directory.CreateTempSubdirectory("dashboard-empty-").FullName;
        try
        {
            await using var host = await AuthHost.StartAsync(engine, dashboard: empty);
            using var root = await host.Http.GetAsync("/", Ct);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, root.StatusCode);
            Assert.Equal("text/html", root.Content.Headers.ContentType!.MediaType);
            Assert.Contains("cd dashboard &amp;&amp; npm ci &amp;&amp; npm run build", await root.Content.ReadAsStringAsync(Ct));
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }
}
