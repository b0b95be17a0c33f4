using System.Net;
using System.Text.Json;
using Analytics.Host;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// The API conventions on an endpoint that fails: no endpoint of the product fails on purpose, so
/// a real Kestrel app with the same conventions maps one that throws.
/// </summary>
public class ConventionsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_unhandled_exception_in_an_api_endpoint_is_a_500_problem_without_its_message_and_the_key_file_is_owner_only()
    {
        string data = Directory.CreateTempSubdirectory("analytics-conventions-").FullName;
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddApiConventions(data);
        var app = builder.Build();
        app.UseApiConventions();
        app.MapGet("/v1/fails", string () => throw new InvalidOperationException("internal detail 7f3a"));
        await app.StartAsync(Ct);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(app.BoundAddress()) };
            using var response = await http.GetAsync("/v1/fails", Ct);
            string body = await response.Content.ReadAsStringAsync(Ct);
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
            Assert.Equal(500, JsonDocument.Parse(body).RootElement.GetProperty("status").GetInt32());
            Assert.DoesNotContain("7f3a", body);
            Assert.DoesNotContain("InvalidOperationException", body);

            string secret = Path.Combine(data, "surrogate-key.secret");
            Assert.Equal(32, new FileInfo(secret).Length);
            if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(secret));
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            Directory.Delete(data, recursive: true);
        }
    }
}
