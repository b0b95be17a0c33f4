using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Analytics.QueryService.Http;

/// <summary>
/// Runs an endpoint's result into memory so a filter can look at the finished body before a
/// byte reaches the client (an ETag over the body, JSON turned into CSV). Query answers are
/// bounded (10,000 buckets or rows), so holding one in memory is fine; streaming answers must not
/// use this.
/// </summary>
internal static class BufferedResult
{
    public static async Task<MemoryStream> RunAsync(IResult inner, HttpContext http)
    {
        var original = http.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        var buffer = new MemoryStream();
        var capture = new StreamResponseBodyFeature(buffer, original);
        http.Features.Set<IHttpResponseBodyFeature>(capture);
        try
        {
            await inner.ExecuteAsync(http);
            await capture.CompleteAsync();
        }
        finally
        {
            http.Features.Set(original);
        }
        buffer.Position = 0;
        return buffer;
    }

    /// <summary>Writes what was buffered (or a replacement) as the response body.</summary>
    public static async Task WriteAsync(HttpContext http, ReadOnlyMemory<byte> body)
    {
        http.Response.ContentLength = body.Length;
        await http.Response.Body.WriteAsync(body, http.RequestAborted);
    }
}
