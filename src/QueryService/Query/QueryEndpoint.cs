using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.QueryService.Http;
using Analytics.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Analytics.QueryService.Query;

/// <summary>
/// <c>POST /v1/query</c> (JSON body) and <c>GET /v1/query?query=JSON</c>: one handler
/// (docs/query-api.md). Needs the <c>stats:read</c> scope; the merchant comes from the token and
/// a site of another merchant answers 404 like an unknown one. Bodies over 64 KB are refused
/// with 413 before parsing; every refusal is problem+json with a <c>field</c> naming the JSON
/// path; a statement past ClickHouse's time limit answers 503 with Retry-After.
/// </summary>
public static class QueryEndpoint
{
    public const int MaxBodyBytes = JsonRequestBody.MaxBytes;
    public const int RetryAfterSeconds = 30;

    /// <summary>Offsets ("+01:00") and page paths stay readable; the answer is JSON, never HTML.</summary>
    private static readonly JsonSerializerOptions Output = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static IEndpointRouteBuilder MapQueryV2(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("").RequireAuthorization(Scopes.StatsRead);
        group.MapPost("/v1/query", async (HttpContext context, SiteRegistry sites, QueryEngine engine, TimeProvider clock) =>
        {
            // A declared length over the limit was refused already (AcceptsJson); a chunked body is cut here.
            var body = new MemoryStream();
            var buffer = new byte[16 * 1024];
            int read;
            while ((read = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
            {
                if (body.Length + read > MaxBodyBytes) return TooLargeBody(context);
                body.Write(buffer, 0, read);
            }
            return await AnswerAsync(context, body.GetBuffer().AsMemory(0, (int)body.Length), sites, engine, clock);
        }).AcceptsJson().WithQueryCaching().WithCsv(CsvShape.QueryResponse);
        group.MapGet("/v1/query", async (HttpContext context, SiteRegistry sites, QueryEngine engine, TimeProvider clock) =>
        {
            foreach (var key in context.Request.Query.Keys)
            {
                if (key != "query") return Refuse(key, $"Unknown parameter '{key}'; GET /v1/query takes only query=<the JSON query>.");
            }
            string? text = context.Request.Query["query"];
            if (string.IsNullOrEmpty(text)) return Refuse("query", "The parameter query=<the JSON query> is required.");
            if (System.Text.Encoding.UTF8.GetByteCount(text) > MaxBodyBytes) return TooLarge();
            return await AnswerAsync(context, System.Text.Encoding.UTF8.GetBytes(text), sites, engine, clock);
        }).WithQueryCaching().WithCsv(CsvShape.QueryResponse);
        return routes;
    }

    /// <summary>503 + Retry-After: a statement ran past the engine's time limit (also POST /v1/funnel's).</summary>
    public static IResult TooSlow(HttpContext context, double maxExecutionSeconds)
    {
        context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Query too slow",
            detail: $"The query ran longer than {maxExecutionSeconds} s and was stopped; retry later, or ask for a shorter range or fewer dimensions.");
    }

    private static async Task<IResult> AnswerAsync(HttpContext context, ReadOnlyMemory<byte> json, SiteRegistry sites, QueryEngine engine, TimeProvider clock)
    {
        long merchant = context.User.RequireMerchantId();
        var ct = context.RequestAborted;
        JsonDocument document;
        try
        {
            document = QueryParser.ParseBody(json);
        }
        catch (QueryException e)
        {
            return Refuse(e.Field, e.Message);
        }
        using (document)
        {
            try
            {
                var parserContext = new QueryParser.Context(
                    FindSite: id => sites.FindByPublicId(id) is { } s && s.MerchantId == merchant ? s : null,
                    ListGoals: sites.Store.ListGoals,
                    FirstEventAsync: s => engine.FirstEventAsync(s.MerchantId, s.SiteId, ct),
                    RegexErrorAsync: p => engine.RegexErrorAsync(p, ct),
                    Now: clock.GetUtcNow())
                {
                    EngineKnowsZoneAsync = zone => engine.EngineKnowsZoneAsync(zone, ct),
                    EnrichedKeptFrom = engine.EnrichedKeptFrom,
                };
                var query = await QueryParser.ParseAsync(document.RootElement, parserContext);
                var answer = await engine.AnswerAsync(query, ct);
                // Caching (ETag; on GET also Cache-Control and surrogate keys): the answer read the
                // query's range and, with a comparison, the earlier one.
                context.SetQueryCacheScope(new QueryCacheScope(query.MerchantId, query.PublicSiteId, query.From, query.To)
                {
                    Comparison = query.Comparison is { } c ? (c.From, c.To) : null,
                    ValidUntil = QueryParser.ValidUntil(query.DateRangeInput, query.TimeZone, parserContext.Now),
                });
                return Results.Text(answer.ToJsonString(Output), "application/json", System.Text.Encoding.UTF8);
            }
            catch (QueryException e)
            {
                return Refuse(e.Field, e.Message);
            }
            catch (QueryParser.UnknownSiteException e)
            {
                return Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown site", detail: e.Message);
            }
            catch (QueryEngine.QueryTimeoutException)
            {
                return TooSlow(context, engine.MaxExecutionSeconds);
            }
        }
    }

    private static IResult Refuse(string field, string detail) => Results.Problem(statusCode: StatusCodes.Status400BadRequest,
        title: "Invalid query", detail: detail, extensions: new Dictionary<string, object?> { ["field"] = field });

    /// <summary>413 for a body not read to its end. Kestrel will not drain the unread rest, so it
    /// closes the connection after the answer: "Connection: close" says so, or a client that
    /// reuses the connection for its next request finds it closed under it.</summary>
    private static IResult TooLargeBody(HttpContext context)
    {
        context.Response.Headers.Connection = "close";
        return TooLarge();
    }

    private static IResult TooLarge() => Results.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "Query too large",
        detail: $"The query is over {MaxBodyBytes / 1024} KB.", extensions: new Dictionary<string, object?> { ["field"] = "$" });
}
