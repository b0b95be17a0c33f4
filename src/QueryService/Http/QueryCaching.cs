using System.Globalization;
using System.Security.Claims;
using System.Security.Cryptography;
using Analytics.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace Analytics.QueryService.Http;

/// <summary>What a query answer is about: the handler states it, <see cref="QueryCaching"/> turns
/// it into cache headers. From/To are the instants the answer really covers ([From, To));
/// <see cref="Comparison"/> the earlier range a comparison also read, whose days the answer
/// depends on as well; <see cref="ValidUntil"/> when the request's words (a named range such as
/// <c>yesterday</c>) start to mean another range, past which no cache may keep the answer.</summary>
public sealed record QueryCacheScope(long MerchantId, string SitePublicId, DateTimeOffset From, DateTimeOffset To)
{
    public (DateTimeOffset From, DateTimeOffset To)? Comparison { get; init; }

    public DateTimeOffset? ValidUntil { get; init; }

    public IReadOnlyList<(DateTimeOffset From, DateTimeOffset To)> Ranges => Comparison is { } c ? [(From, To), c] : [(From, To)];
}

/// <summary>
/// HTTP caching of query answers (docs/query-api.md, "Caching"), as an endpoint filter:
/// <c>.WithQueryCaching()</c>. The contract, for a 200 answer:
/// <list type="bullet">
/// <item>a strong <c>ETag</c> over the exact body bytes (so JSON and CSV of one query differ), and
/// <c>304 Not Modified</c> without a body when <c>If-None-Match</c> names it (GET and POST);</item>
/// <item>GET only, when the handler stated a <see cref="QueryCacheScope"/>: <c>Cache-Control:
/// private, max-age=3600</c> once the range ended more than an hour ago (it changes only by
/// reprocessing, which purges by key), <c>max-age=5</c> while live (dashboards refreshing together
/// share one answer while numbers stay seconds fresh); the same in <c>Surrogate-Control</c> for an
/// edge cache, never longer than the caller's access token has left (its <c>exp</c>) nor past
/// the scope's <see cref="QueryCacheScope.ValidUntil"/>;
/// <c>Surrogate-Key</c> from <see cref="SurrogateKeys"/>, with the caller's credential key when it
/// was a personal API key (revoking it purges that key);</item>
/// <item><c>Vary: Authorization</c> always: the answer depends on who asks.</item>
/// </list>
/// Errors pass through untouched. Add this filter before any filter that changes the body
/// (<see cref="CsvResponses.WithCsv"/>), so the ETag is taken over what the client receives.
/// </summary>
public static class QueryCaching
{
    public const int SettledMaxAgeSeconds = 3600;
    public const int LiveMaxAgeSeconds = 5;
    /// <summary>A range is settled when it ended this long ago: late events and Rollup's lag
    /// (seconds) are well inside it.</summary>
    public static readonly TimeSpan SettledAfter = TimeSpan.FromHours(1);

    private static readonly object ScopeKey = new();
    private const string JwtExpiry = "exp";

    public static void SetQueryCacheScope(this HttpContext context, QueryCacheScope scope) => context.Items[ScopeKey] = scope;

    public static TBuilder WithQueryCaching<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter(async (context, next) =>
        {
            object? result = await next(context);
            return result is IResult inner ? new CachedResult(inner) : result;
        });

    private sealed class CachedResult(IResult inner) : IResult
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            using var body = await BufferedResult.RunAsync(inner, http);
            var response = http.Response;
            response.Headers.Append(HeaderNames.Vary, "Authorization");
            if (response.StatusCode != StatusCodes.Status200OK)
            {
                await BufferedResult.WriteAsync(http, body.GetBuffer().AsMemory(0, (int)body.Length));
                return;
            }
            string etag = ETagOf(body.GetBuffer().AsSpan(0, (int)body.Length));
            response.Headers.ETag = etag;
            if (HttpMethods.IsGet(http.Request.Method) && http.Items[ScopeKey] is QueryCacheScope scope)
            {
                var now = (http.RequestServices.GetService<TimeProvider>() ?? TimeProvider.System).GetUtcNow();
                int maxAge = Math.Min(scope.Ranges.All(r => r.To <= now - SettledAfter) ? SettledMaxAgeSeconds : LiveMaxAgeSeconds, TokenSecondsLeft(http.User));
                // "yesterday" asked at 23:30 is settled, but at midnight the same URL means another day.
                if (scope.ValidUntil is { } until) maxAge = (int)Math.Clamp(Math.Floor((until - now).TotalSeconds), 0, maxAge);
                response.Headers.CacheControl = $"private, max-age={maxAge}";
                response.Headers["Surrogate-Control"] = $"max-age={maxAge}";
                var keys = http.RequestServices.GetRequiredService<SurrogateKeys>();
                response.Headers["Surrogate-Key"] = string.Join(' ', keys.ForAnswer(scope.MerchantId, scope.SitePublicId, scope.Ranges)
                    .Concat(CredentialNames.Of(http.User).Select(keys.Credential)));
            }
            if (Matches(http.Request.Headers.IfNoneMatch, etag))
            {
                response.StatusCode = StatusCodes.Status304NotModified;
                response.ContentType = null;
                response.ContentLength = null;
                return;
            }
            await BufferedResult.WriteAsync(http, body.GetBuffer().AsMemory(0, (int)body.Length));
        }
    }

    /// <summary>
    /// Seconds until the caller's access token expires (its <c>exp</c>), or no limit for a
    /// credential without one (an API key). An edge cache serves a stored answer to whoever
    /// presents the same Authorization header without asking this server, so an answer must not
    /// outlive the token that fetched it: an expired token would go on getting numbers. Measured on
    /// the wall clock, as the token's lifetime is checked (ApiAuthentication), not on the host's
    /// clock, which tests move by days.
    /// </summary>
    private static int TokenSecondsLeft(ClaimsPrincipal user)
    {
        if (!long.TryParse(user.FindFirst(JwtExpiry)?.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long exp)) return int.MaxValue;
        long left = exp - TimeProvider.System.GetUtcNow().ToUnixTimeSeconds();
        return (int)Math.Clamp(left, 0, int.MaxValue);
    }

    /// <summary>128 bits of SHA-256 of the body, base64url: collisions are out of reach, the header stays short.</summary>
    public static string ETagOf(ReadOnlySpan<byte> body)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(body, hash);
        return "\"" + Convert.ToBase64String(hash[..16]).TrimEnd('=').Replace('+', '-').Replace('/', '_') + "\"";
    }

    /// <summary>If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/"x" matches "x"; "*" matches any.</summary>
    private static bool Matches(StringValues ifNoneMatch, string etag)
    {
        if (ifNoneMatch.Count == 0) return false;
        if (!EntityTagHeaderValue.TryParseList(ifNoneMatch, out var tags)) return false;
        var ours = new EntityTagHeaderValue(etag);
        return tags.Any(t => t.Equals(EntityTagHeaderValue.Any) || t.Compare(ours, useStrongComparison: false));
    }
}
