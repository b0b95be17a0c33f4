using Microsoft.AspNetCore.Http;

namespace Analytics.FastIngest.Transport;

/// <summary>RFC 9457 problem+json answers, shared by every HTTP endpoint of the product.</summary>
public static class Problems
{
    public static Task Write(HttpContext context, int status, string title, string detail)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(
            new { type = "about:blank", title, status, detail },
            options: null,
            contentType: "application/problem+json",
            cancellationToken: context.RequestAborted);
    }
}
