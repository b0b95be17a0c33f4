using System.Net;
using System.Net.Sockets;
using System.Text;
using Analytics.Host;

namespace Analytics.QueryApi.Tests;

/// <summary>
/// Every request limit of the v1 API has its own status (docs/query-api.md, "Errors and limits"):
/// the URL (414) and headers (431) answered by Kestrel, bodies (413 problem+json) by the app. The
/// oversized requests go over a raw socket: HttpClient would refuse to send some of them.
/// </summary>
public class LimitsTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<(int Status, string Head, string Body)> RawAsync(TestHost host, string requestLine, IEnumerable<string> headers, string body = "")
    {
        var uri = new Uri(host.BaseAddress);
        using var client = new TcpClient();
        await client.ConnectAsync(uri.Host, uri.Port, Ct);
        var text = new StringBuilder(requestLine + "\r\nHost: " + uri.Authority + "\r\nAuthorization: Bearer " + host.Token + "\r\nConnection: close\r\n");
        foreach (string header in headers) text.Append(header).Append("\r\n");
        if (body.Length > 0) text.Append("Content-Type: application/json\r\nContent-Length: ").Append(Encoding.UTF8.GetByteCount(body)).Append("\r\n");
        text.Append("\r\n").Append(body);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.UTF8.GetBytes(text.ToString()), Ct);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        string response = await reader.ReadToEndAsync(Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        int split = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        return (int.Parse(response.AsSpan(9, 3)), response[..split], response[(split + 4)..]);
    }

    [Fact]
    public async Task A_url_over_8_KiB_gets_414_and_one_just_under_is_answered()
    {
        await using var host = await TestHost.StartAsync(engine);
        string path = $"/v1/sites/{host.Site.PublicId}/aggregate?metrics=pageviews&event=";
        // "GET " + path + " HTTP/1.1" is the request line Kestrel measures (with its CRLF).
        int room = ApiConventions.MaxRequestLineBytes - "GET  HTTP/1.1\r\n".Length - path.Length;
        var (over, _, _) = await RawAsync(host, $"GET {path}{new string('x', room + 1)} HTTP/1.1", []);
        Assert.Equal(414, over);
        // Under the limit the request reaches the API, which refuses an event name over 128 characters by name.
        var (under, _, body) = await RawAsync(host, $"GET {path}{new string('x', room - 10)} HTTP/1.1", []);
        Assert.Equal(400, under);
        Assert.Contains("event", body);
    }

    [Fact]
    public async Task Headers_over_32_KiB_or_over_100_fields_get_431()
    {
        await using var host = await TestHost.StartAsync(engine);
        string line = $"GET /v1/sites/{host.Site.PublicId}/aggregate?metrics=pageviews HTTP/1.1";
        var (big, _, _) = await RawAsync(host, line, [$"X-Padding: {new string('p', ApiConventions.MaxHeaderBytes)}"]);
        Assert.Equal(431, big);
        var (many, _, _) = await RawAsync(host, line, Enumerable.Range(0, ApiConventions.MaxHeaderCount + 1).Select(i => $"X-H{i}: 1"));
        Assert.Equal(431, many);
        var (normal, _, _) = await RawAsync(host, line, Enumerable.Range(0, 50).Select(i => $"X-H{i}: 1"));
        Assert.Equal(200, normal);
    }

    [Fact]
    public async Task A_json_body_over_64_KiB_gets_413_problem_json_even_without_a_content_length()
    {
        await using var host = await TestHost.StartAsync(engine);
        string big = "{\"domain\": \"" + new string('d', (int)ApiConventions.MaxBodyBytes) + ".example\"}";
        var (declared, head, body) = await RawAsync(host, "POST /v1/sites HTTP/1.1", [], big);
        Assert.Equal(413, declared);
        Assert.Contains("application/problem+json", head);
        Assert.Contains("64 KiB", body);

        // Chunked: the limit applies while reading, not only to a declared length.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/sites") { Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big))) };
        request.Content.Headers.ContentType = new("application/json");
        request.Headers.TransferEncodingChunked = true;
        using var chunked = await host.Http.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, chunked.StatusCode);
        Assert.Equal("application/problem+json", chunked.Content.Headers.ContentType!.MediaType);
    }
}
