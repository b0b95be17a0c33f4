using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Analytics.QueryService.Http;

public static class JsonRequestBody
{
    /// <summary>The most a JSON request body may hold (docs/query-api.md, "Limits").</summary>
    public const int MaxBytes = 64 * 1024;

    /// <summary>
    /// Declares the JSON body of an endpoint that reads it itself, so it is refused as an endpoint
    /// that binds a typed body is, before the handler looks at anything (its site included):
    /// routing answers 415 to any other content type, this filter to none at all (routing lets a
    /// request without one through), and a declared length over <see cref="MaxBytes"/> is 413 (a
    /// chunked body is cut at the limit as it is read). The OpenAPI document then names the body:
    /// any JSON, since the fields are documented in docs/query-api.md (a schema from the request
    /// records would show camelCase names, while these bodies are snake_case).
    /// </summary>
    public static RouteHandlerBuilder AcceptsJson(this RouteHandlerBuilder endpoint) => endpoint
        .Accepts<JsonElement>("application/json")
        .AddEndpointFilter(async (invocation, next) =>
        {
            var http = invocation.HttpContext;
            if (string.IsNullOrEmpty(http.Request.ContentType))
                return Results.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType, detail: "Send the body as application/json.");
            if (http.Request.ContentLength is not > MaxBytes) return await next(invocation);
            http.Response.Headers.Connection = "close";
            return Results.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "Body too large", detail: $"The request body is over {MaxBytes / 1024} KB.");
        });
}
