using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Analytics.QueryService.Http;

/// <summary>Which JSON contract an endpoint answers in, so <see cref="QueryCsv"/> knows where the rows are.</summary>
public enum CsvShape
{
    /// <summary><c>POST/GET /v1/query</c>: query.dimensions, query.metrics, results[].dimensions/metrics.</summary>
    QueryResponse,
    /// <summary><c>GET /v1/sites/{site}/timeseries</c>: metrics, results[] of {time, metric: value}.</summary>
    Timeseries,
}

/// <summary>
/// Content negotiation for CSV, as an endpoint filter: <c>.WithCsv(shape)</c>. The endpoint keeps
/// answering JSON; when the request's <c>Accept</c> prefers <c>text/csv</c>, its 200 answer is
/// rewritten as CSV (<c>text/csv; charset=utf-8; header=present</c>). Errors stay problem+json.
/// Every answer carries <c>Vary: Accept</c>, since the same URL has two representations.
/// </summary>
/// <summary>Marks an endpoint that answers CSV on request (the OpenAPI document lists text/csv for it).</summary>
public sealed record CsvMetadata(CsvShape Shape);

public static class CsvResponses
{
    public const string ContentType = "text/csv; charset=utf-8; header=present";

    public static RouteHandlerBuilder WithCsv(this RouteHandlerBuilder builder, CsvShape shape) => builder
        .WithMetadata(new CsvMetadata(shape))
        .AddEndpointFilter(async (context, next) =>
        {
            context.HttpContext.Response.Headers.Append(HeaderNames.Vary, "Accept");
            object? result = await next(context);
            return result is IResult inner && PrefersCsv(context.HttpContext.Request) ? new CsvResult(inner, shape) : result;
        });

    /// <summary>
    /// CSV when <c>text/csv</c> is named with a quality above zero and at least that of
    /// <c>application/json</c> when that is named too; wildcards alone (a browser's <c>*/*</c>) keep JSON.
    /// </summary>
    public static bool PrefersCsv(HttpRequest request)
    {
        if (!MediaTypeHeaderValue.TryParseList(request.Headers.Accept, out var accepted)) return false;
        double csv = 0, json = 0;
        foreach (var type in accepted)
        {
            double quality = type.Quality ?? 1;
            if (type.MediaType.Equals("text/csv", StringComparison.OrdinalIgnoreCase)) csv = Math.Max(csv, quality);
            else if (type.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)) json = Math.Max(json, quality);
        }
        return csv > 0 && csv >= json;
    }

    private sealed class CsvResult(IResult inner, CsvShape shape) : IResult
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            using var body = await BufferedResult.RunAsync(inner, http);
            var response = http.Response;
            if (response.StatusCode != StatusCodes.Status200OK || response.ContentType?.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) != true)
            {
                await BufferedResult.WriteAsync(http, body.GetBuffer().AsMemory(0, (int)body.Length));
                return;
            }
            using var json = JsonDocument.Parse(body.GetBuffer().AsMemory(0, (int)body.Length));
            string csv = shape == CsvShape.QueryResponse ? QueryCsv.FromQueryResponse(json.RootElement) : QueryCsv.FromTimeseriesResponse(json.RootElement);
            response.ContentType = ContentType;
            await BufferedResult.WriteAsync(http, Encoding.UTF8.GetBytes(csv));
        }
    }
}
