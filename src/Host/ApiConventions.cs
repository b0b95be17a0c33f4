using System.Security.Cryptography;
using Analytics.QueryService.Http;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.OpenApi;
using Scalar.AspNetCore;

namespace Analytics.Host;

/// <summary>
/// What every API endpoint gets without asking (docs/query-api.md, "Errors and limits";
/// docs/security.md): every error under <c>/v1</c> and <c>/admin</c> is
/// <c>application/problem+json</c> (including those the framework answers without our code: 401,
/// 403, 404, 405, 413, 415 and unhandled 500s); request bodies of authenticated endpoints are
/// limited to <see cref="MaxBodyBytes"/> (413); the OpenAPI document at <c>/openapi/v1.json</c>,
/// generated from the endpoints themselves, and its interactive reference at <c>/docs/api</c>,
/// whose script the app serves itself (no CDN, no fonts or telemetry from elsewhere).
/// </summary>
public static class ApiConventions
{
    /// <summary>64 KiB: the largest query the contract allows; every other JSON body is far smaller.</summary>
    public const long MaxBodyBytes = 64 * 1024;
    public const string OpenApiPath = "/openapi/v1.json";
    public const string DocsPath = "/docs/api";
    public const string SurrogateSecretFile = "surrogate-key.secret";

    /// <summary>8 KiB request line (URL), 32 KiB and 100 header fields: Kestrel's defaults, stated
    /// here so they are a decision with a test, not an accident. Kestrel answers 414 and 431
    /// itself, before any middleware runs, with an empty body.</summary>
    public const int MaxRequestLineBytes = 8 * 1024;
    public const int MaxHeaderBytes = 32 * 1024;
    public const int MaxHeaderCount = 100;

    public static void ConfigureRequestLimits(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions kestrel)
    {
        kestrel.Limits.MaxRequestLineSize = MaxRequestLineBytes;
        kestrel.Limits.MaxRequestHeadersTotalSize = MaxHeaderBytes;
        kestrel.Limits.MaxRequestHeaderCount = MaxHeaderCount;
    }

    public static void AddApiConventions(this IServiceCollection services, string dataDirectory)
    {
        services.AddProblemDetails(options => options.CustomizeProblemDetails = context =>
        {
            if (context.ProblemDetails.Status == StatusCodes.Status413PayloadTooLarge && context.ProblemDetails.Detail is null)
                context.ProblemDetails.Detail = $"Request bodies are limited to {MaxBodyBytes / 1024} KiB.";
        });
        // A handler reading its body itself meets the size limit as Kestrel's BadHttpRequestException
        // (413, or 400 for a malformed body): answer its status, not 500.
        services.Configure<ExceptionHandlerOptions>(options =>
            options.StatusCodeSelector = e => e is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status500InternalServerError);
        services.AddSingleton(new SurrogateKeys(LoadOrCreateSecret(Path.Combine(dataDirectory, SurrogateSecretFile))));
        services.AddOpenApi("v1", options =>
        {
            // The APIs; not the sign-in form, the ingest WebSocket, health or metrics.
            options.ShouldInclude = d => d.RelativePath is { } path && (path.StartsWith("v1/", StringComparison.Ordinal) || path.StartsWith("admin/", StringComparison.Ordinal) || path == "v1");
            options.AddDocumentTransformer((document, _, _) =>
            {
                document.Info = new OpenApiInfo
                {
                    Title = "Analytics API",
                    Version = "v1",
                    Description = "Query, site, key and admin endpoints. Errors are application/problem+json. See docs/query-api.md and docs/security.md.",
                };
                document.Components ??= new OpenApiComponents();
                document.Components.SecuritySchemes = new Dictionary<string, IOpenApiSecurityScheme>
                {
                    [BearerScheme] = new OpenApiSecurityScheme
                    {
                        Type = SecuritySchemeType.Http,
                        Scheme = "bearer",
                        BearerFormat = "JWT",
                        Description = "An access token (RS256 JWT, 15 minutes) from POST /connect/token (client credentials) or the dashboard's sign-in (authorization code + PKCE), or from the configured external issuer.",
                    },
                    [ApiKeyScheme] = new OpenApiSecurityScheme
                    {
                        Type = SecuritySchemeType.Http,
                        Scheme = "bearer",
                        BearerFormat = "ak_{prefix}_{secret}",
                        Description = "A personal API key, sent as Authorization: Bearer ak_…; created with `analytics keys create` or POST /v1/keys.",
                    },
                };
                return Task.CompletedTask;
            });
            options.AddOperationTransformer((operation, context, _) =>
            {
                if (context.Description.ActionDescriptor.EndpointMetadata.OfType<CsvMetadata>().Any() && operation.Responses?.TryGetValue("200", out var ok) == true && ok is OpenApiResponse answer)
                {
                    answer.Content ??= new Dictionary<string, OpenApiMediaType>();
                    answer.Content.TryAdd("application/json", new OpenApiMediaType());
                    answer.Content["text/csv"] = new OpenApiMediaType { Schema = new OpenApiSchema { Type = JsonSchemaType.String, Description = "RFC 4180, header line first; with Accept: text/csv (docs/query-api.md, CSV)." } };
                }
                var policies = context.Description.ActionDescriptor.EndpointMetadata.OfType<IAuthorizeData>()
                    .Select(a => a.Policy).OfType<string>().Distinct().ToList();
                if (policies.Count == 0) return Task.CompletedTask;
                // Either credential works: two alternatives, each a requirement of its own.
                operation.Security =
                [
                    new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(BearerScheme, context.Document)] = [] },
                    new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(ApiKeyScheme, context.Document)] = [] },
                ];
                string scopes = "Requires the scope " + string.Join(" and ", policies.Select(p => $"`{p}`")) + ".";
                operation.Description = string.IsNullOrEmpty(operation.Description) ? scopes : operation.Description + "\n\n" + scopes;
                return Task.CompletedTask;
            });
        });
    }

    private const string BearerScheme = "bearer";
    private const string ApiKeyScheme = "apiKey";

    /// <summary>Problem details for errors and the body limit; call before authentication, so the
    /// challenge's empty 401 and the forbid's 403 pass through here on their way out.</summary>
    public static void UseApiConventions(this IApplicationBuilder app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages(async context =>
        {
            var http = context.HttpContext;
            if (!IsApi(http.Request.Path)) return;
            int status = http.Response.StatusCode;
            await http.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
            {
                HttpContext = http,
                ProblemDetails = { Status = status, Title = TitleOf(status), Detail = DetailOf(http, status) },
            });
        });
        app.Use((http, next) =>
        {
            // Authenticated endpoints take small JSON bodies; ingest (anonymous) applies its own
            // 256 KiB limit to protobuf batches. An endpoint's own size-limit metadata wins.
            var endpoint = http.GetEndpoint();
            if (endpoint?.Metadata.GetMetadata<IAuthorizeData>() is not null && endpoint.Metadata.GetMetadata<IRequestSizeLimitMetadata>() is null &&
                http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
                limit.MaxRequestBodySize = MaxBodyBytes;
            return next(http);
        });
    }

    public static void MapApiDocs(this WebApplication app)
    {
        app.MapOpenApi("/openapi/{documentName}.json");
        app.MapScalarApiReference(DocsPath, options => options
            .WithTitle("Analytics API")
            .WithOpenApiRoutePattern("/openapi/{documentName}.json")
            .DisableDefaultFonts()
            .DisableTelemetry()
            .DisableAgent()
            .DisableMcp());
    }

    private static bool IsApi(PathString path) => path.StartsWithSegments("/v1") || path.StartsWithSegments("/admin");

    private static string TitleOf(int status) => status switch
    {
        StatusCodes.Status401Unauthorized => "Unauthorized",
        StatusCodes.Status403Forbidden => "Forbidden",
        StatusCodes.Status404NotFound => "Not found",
        StatusCodes.Status405MethodNotAllowed => "Method not allowed",
        StatusCodes.Status413PayloadTooLarge => "Request body too large",
        StatusCodes.Status415UnsupportedMediaType => "Unsupported media type",
        _ => ReasonPhrases.GetReasonPhrase(status),
    };

    private static string? DetailOf(HttpContext http, int status) => status switch
    {
        StatusCodes.Status401Unauthorized => "Send a valid access token or API key: Authorization: Bearer … (docs/security.md).",
        StatusCodes.Status403Forbidden => "The credential does not carry the scope this endpoint needs.",
        StatusCodes.Status404NotFound => $"There is no endpoint {http.Request.Path}; see {OpenApiPath}.",
        StatusCodes.Status405MethodNotAllowed => $"{http.Request.Method} is not allowed here; allowed: {http.Response.Headers.Allow}.",
        StatusCodes.Status413PayloadTooLarge => $"Request bodies are limited to {MaxBodyBytes / 1024} KiB.",
        StatusCodes.Status415UnsupportedMediaType => "Send the body as application/json.",
        _ => null,
    };

    /// <summary>The surrogate keys of the nodes serving <paramref name="dataDirectory"/> (its
    /// <see cref="SurrogateSecretFile"/>, written by the first `serve`), for commands that purge
    /// edges without a server; null when the file does not exist.</summary>
    public static SurrogateKeys? ExistingSurrogateKeys(string dataDirectory)
    {
        string path = Path.Combine(dataDirectory, SurrogateSecretFile);
        return File.Exists(path) ? new SurrogateKeys(File.ReadAllBytes(path)) : null;
    }

    /// <summary>
    /// The key of the merchant surrogate keys' hash: 32 random bytes made once, owner-only. Every
    /// node behind one edge cache must share this file (as they share DATA/identity), or their
    /// merchant keys differ.
    /// </summary>
    private static byte[] LoadOrCreateSecret(string path)
    {
        if (File.Exists(path)) return File.ReadAllBytes(path);
        byte[] secret = RandomNumberGenerator.GetBytes(32);
        string temporary = path + ".tmp";
        var create = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var file = new FileStream(temporary, create))
        {
            file.Write(secret);
            file.Flush(flushToDisk: true);
        }
        // Two nodes starting at once on one directory cannot happen (the data-directory lock),
        // so rename is only about a crash leaving half a file.
        File.Move(temporary, path, overwrite: false);
        return secret;
    }
}
