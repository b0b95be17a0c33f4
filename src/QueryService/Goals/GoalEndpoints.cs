using Analytics.ControlPlane;
using Analytics.QueryService.Http;
using Analytics.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.QueryService.Goals;

/// <summary>
/// A merchant's goals and funnels (docs/query-api.md, Goals and Funnels):
/// GET/POST /v1/sites/{site}/goals, PUT/DELETE /v1/sites/{site}/goals/{goal_id}, the same for
/// funnels, and POST /v1/funnel (<see cref="FunnelEndpoint"/>). Reading needs <c>stats:read</c>,
/// writing <c>sites:write</c>. The merchant comes from the token: another merchant's site, or a
/// goal or funnel of another site, answers 404 exactly like one that does not exist. Every
/// mistake is a 400 problem+json naming the field; a taken name is 409. Every successful write
/// tells edge caches to drop the site's answers (<see cref="IAnswerInvalidation.SiteChanged"/>).
/// </summary>
public static class GoalEndpoints
{
    public const int MaxNameLength = 120;

    public sealed record PropertyBody(string? Key, string? Value);

    public sealed record GoalBody(string? Name, string? Kind, string? Match, PropertyBody? Property, string? Currency);

    public sealed record FunnelBody(string? Name, List<string?>? Steps, int? WindowSeconds, string? Order);

    public static IEndpointRouteBuilder MapGoalsAndFunnels(this IEndpointRouteBuilder routes)
    {
        var read = routes.MapGroup("/v1/sites/{site}").RequireAuthorization(Scopes.StatsRead);
        var write = routes.MapGroup("/v1/sites/{site}").RequireAuthorization(Scopes.SitesWrite);
        // Goal and funnel definitions go into the queries' SQL: a change alters cached answers
        // about the site without any new event, so edge caches must drop them (s-{site}).
        write.AddEndpointFilter(async (context, next) =>
        {
            object? result = await next(context);
            if (result is IStatusCodeHttpResult { StatusCode: null or (>= 200 and < 300) } && context.HttpContext.GetRouteValue("site") is string site)
                context.HttpContext.RequestServices.GetService<IAnswerInvalidation>()?.SiteChanged(site);
            return result;
        });

        read.MapGet("/goals", (HttpContext context, string site, SiteRegistry sites) => Answer(() =>
        {
            var found = OwnSite(context, site, sites);
            return Results.Json(sites.Store.ListGoals(found.SiteId).Select(GoalJson));
        }));
        write.MapPost("/goals", async (HttpContext context, string site, SiteRegistry sites) => await AnswerAsync(async () =>
        {
            var found = OwnSite(context, site, sites);
            var g = ValidGoal(await JsonBodies.ReadAsync<GoalBody>(context));
            var goal = sites.Store.CreateGoal(found.SiteId, g.Name, g.Kind, g.Match, g.Property, g.Currency);
            return Results.Json(GoalJson(goal), statusCode: StatusCodes.Status201Created);
        })).AcceptsJson();
        write.MapPut("/goals/{goal_id}", async (HttpContext context, string site, [FromRoute(Name = "goal_id")] string goalId, SiteRegistry sites) => await AnswerAsync(async () =>
        {
            var goal = OwnGoal(OwnSite(context, site, sites), goalId, sites.Store);
            var g = ValidGoal(await JsonBodies.ReadAsync<GoalBody>(context));
            sites.Store.UpdateGoal(goal.Id, g.Name, g.Kind, g.Match, g.Property, g.Currency);
            return Results.Json(GoalJson(sites.Store.GetGoal(goal.Id)!));
        })).AcceptsJson();
        write.MapDelete("/goals/{goal_id}", (HttpContext context, string site, [FromRoute(Name = "goal_id")] string goalId, SiteRegistry sites) => Answer(() =>
        {
            var found = OwnSite(context, site, sites);
            var goal = OwnGoal(found, goalId, sites.Store);
            var users = sites.Store.ListFunnels(found.SiteId).Where(f => f.GoalIds.Contains(goal.Id)).Select(f => $"'{f.Name}'").ToList();
            if (users.Count > 0)
                throw new ApiProblemException(StatusCodes.Status409Conflict, "Goal in use", $"Goal '{goal.Name}' is a step of the funnel(s) {string.Join(", ", users)}; change or delete them first.");
            sites.Store.DeleteGoal(goal.Id);
            return Results.NoContent();
        }));

        read.MapGet("/funnels", (HttpContext context, string site, SiteRegistry sites) => Answer(() =>
        {
            var found = OwnSite(context, site, sites);
            var names = sites.Store.ListGoals(found.SiteId).ToDictionary(g => g.Id, g => g.Name);
            return Results.Json(sites.Store.ListFunnels(found.SiteId).Select(f => FunnelJson(f, names)));
        }));
        write.MapPost("/funnels", async (HttpContext context, string site, SiteRegistry sites) => await AnswerAsync(async () =>
        {
            var found = OwnSite(context, site, sites);
            var goals = sites.Store.ListGoals(found.SiteId);
            var f = ValidFunnel(await JsonBodies.ReadAsync<FunnelBody>(context), goals);
            var funnel = sites.Store.CreateFunnel(found.SiteId, f.Name, f.GoalIds, f.WindowSeconds, f.Order);
            return Results.Json(FunnelJson(funnel, goals.ToDictionary(g => g.Id, g => g.Name)), statusCode: StatusCodes.Status201Created);
        })).AcceptsJson();
        write.MapPut("/funnels/{funnel_id}", async (HttpContext context, string site, [FromRoute(Name = "funnel_id")] string funnelId, SiteRegistry sites) => await AnswerAsync(async () =>
        {
            var found = OwnSite(context, site, sites);
            var funnel = OwnFunnel(found, funnelId, sites.Store);
            var goals = sites.Store.ListGoals(found.SiteId);
            var f = ValidFunnel(await JsonBodies.ReadAsync<FunnelBody>(context), goals);
            sites.Store.UpdateFunnel(funnel.Id, f.Name, f.GoalIds, f.WindowSeconds, f.Order);
            return Results.Json(FunnelJson(sites.Store.GetFunnel(funnel.Id)!, goals.ToDictionary(g => g.Id, g => g.Name)));
        })).AcceptsJson();
        write.MapDelete("/funnels/{funnel_id}", (HttpContext context, string site, [FromRoute(Name = "funnel_id")] string funnelId, SiteRegistry sites) => Answer(() =>
        {
            var funnel = OwnFunnel(OwnSite(context, site, sites), funnelId, sites.Store);
            sites.Store.DeleteFunnel(funnel.Id);
            return Results.NoContent();
        }));

        routes.MapFunnelQuery();
        return routes;
    }

    /// <summary>The caller's own site, or 404 (unknown, malformed and other merchants' ids alike).</summary>
    public static Site OwnSite(HttpContext context, string publicId, SiteRegistry sites)
    {
        var found = sites.FindByPublicId(publicId);
        return found is not null && found.MerchantId == context.User.RequireMerchantId() ? found
            : throw new ApiProblemException(StatusCodes.Status404NotFound, "Unknown site", $"There is no site '{publicId}'.");
    }

    private static Goal OwnGoal(Site site, string id, IControlPlaneStore store) =>
        long.TryParse(id, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long goalId) &&
        store.GetGoal(goalId) is { } goal && goal.SiteId == site.SiteId
            ? goal : throw new ApiProblemException(StatusCodes.Status404NotFound, "Unknown goal", $"Site '{site.PublicId}' has no goal '{id}'.");

    public static Funnel OwnFunnel(Site site, string id, IControlPlaneStore store) =>
        long.TryParse(id, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long funnelId) &&
        store.GetFunnel(funnelId) is { } funnel && funnel.SiteId == site.SiteId
            ? funnel : throw new ApiProblemException(StatusCodes.Status404NotFound, "Unknown funnel", $"Site '{site.PublicId}' has no funnel '{id}'.");

    private sealed record ValidatedGoal(string Name, string Kind, string Match, GoalProperty? Property, string? Currency);

    private static ValidatedGoal ValidGoal(GoalBody body)
    {
        string name = ValidName(body.Name);
        string kind = body.Kind switch
        {
            GoalKinds.Event or GoalKinds.Page => body.Kind,
            null => throw ApiProblemException.Invalid("kind", "required: \"event\" or \"page\"."),
            _ => throw ApiProblemException.Invalid("kind", $"'{body.Kind}' is not \"event\" or \"page\"."),
        };
        string match = body.Match ?? throw ApiProblemException.Invalid("match", "required: an event name, or a page path pattern.");
        if (kind == GoalKinds.Event && (match.Length == 0 || Utf8(match) > 128 || HasControl(match)))
            throw ApiProblemException.Invalid("match", "an event name of 1–128 bytes without control characters.");
        if (kind == GoalKinds.Page && (!match.StartsWith('/') && !match.StartsWith('*') || Utf8(match) > 2048 || HasControl(match)))
            throw ApiProblemException.Invalid("match", "a path pattern starting with '/' (or '*'), at most 2048 bytes, without control characters; * is any characters except '/', ** any characters.");
        GoalProperty? property = null;
        if (body.Property is { } p)
        {
            if (string.IsNullOrEmpty(p.Key) || Utf8(p.Key) > 128 || HasControl(p.Key))
                throw ApiProblemException.Invalid("property.key", "a property name of 1–128 bytes without control characters.");
            if (p.Value is null || Utf8(p.Value) > 512)
                throw ApiProblemException.Invalid("property.value", "required, at most 512 bytes (\"\" matches events without the property too).");
            property = new GoalProperty(p.Key, p.Value);
        }
        if (body.Currency is { } currency)
        {
            if (kind != GoalKinds.Event) throw ApiProblemException.Invalid("currency", "only event goals have revenue.");
            if (currency.Length != 3 || !currency.All(char.IsAsciiLetterUpper)) throw ApiProblemException.Invalid("currency", $"'{currency}' is not an ISO 4217 code such as EUR.");
        }
        return new ValidatedGoal(name, kind, match, property, body.Currency);
    }

    private sealed record ValidatedFunnel(string Name, IReadOnlyList<long> GoalIds, int WindowSeconds, string Order);

    private static ValidatedFunnel ValidFunnel(FunnelBody body, IReadOnlyList<Goal> goals)
    {
        string name = ValidName(body.Name);
        var (ids, window, order) = ValidSteps(body.Steps, body.WindowSeconds, body.Order, goals);
        return new ValidatedFunnel(name, ids.Select(g => g.Id).ToList(), window, order);
    }

    /// <summary>Steps (2–8 distinct goal names of the site), window and order, as the funnel
    /// endpoints and the inline steps of POST /v1/funnel accept them.</summary>
    public static (IReadOnlyList<Goal> Goals, int WindowSeconds, string Order) ValidSteps(IReadOnlyList<string?>? steps, int? windowSeconds, string? order, IReadOnlyList<Goal> goals)
    {
        if (steps is null || steps.Count is < 2 or > 8) throw ApiProblemException.Invalid("steps", "2–8 goal names of this site.");
        var byName = goals.ToDictionary(g => g.Name, StringComparer.Ordinal);
        var chosen = new List<Goal>();
        for (int i = 0; i < steps.Count; i++)
        {
            if (steps[i] is not { } step || !byName.TryGetValue(step, out var goal))
                throw ApiProblemException.Invalid($"steps[{i}]", $"'{steps[i]}' is not a goal of this site.");
            if (chosen.Contains(goal)) throw ApiProblemException.Invalid($"steps[{i}]", $"goal '{step}' is already step {chosen.IndexOf(goal) + 1}.");
            chosen.Add(goal);
        }
        int window = windowSeconds ?? Funnel.DefaultWindowSeconds;
        if (window is < 1 or > Funnel.MaxWindowSeconds) throw ApiProblemException.Invalid("window_seconds", $"between 1 and {Funnel.MaxWindowSeconds} (30 days).");
        string o = order ?? FunnelOrders.Sequential;
        if (o is not (FunnelOrders.Sequential or FunnelOrders.Strict)) throw ApiProblemException.Invalid("order", $"'{o}' is not \"sequential\" or \"strict\".");
        return (chosen, window, o);
    }

    private static string ValidName(string? name)
    {
        string trimmed = name?.Trim() ?? "";
        return trimmed.Length is >= 1 and <= MaxNameLength && !HasControl(trimmed) ? trimmed
            : throw ApiProblemException.Invalid("name", $"1–{MaxNameLength} characters without control characters.");
    }

    private static int Utf8(string s) => System.Text.Encoding.UTF8.GetByteCount(s);

    private static bool HasControl(string s) => s.Any(char.IsControl);

    public static object GoalJson(Goal g) => new
    {
        id = g.Id,
        name = g.Name,
        kind = g.Kind,
        match = g.Match,
        property = g.Property is { } p ? new { key = p.Key, value = p.Value } : null,
        currency = g.Currency,
    };

    private static object FunnelJson(Funnel f, IReadOnlyDictionary<long, string> goalNames) => new
    {
        id = f.Id,
        name = f.Name,
        steps = f.GoalIds.Select(id => goalNames[id]),
        window_seconds = f.WindowSeconds,
        order = f.Order,
    };

    /// <summary>Request mistakes become their problem answer; store refusals too (a taken name
    /// is 409, a value the store refuses 400).</summary>
    public static IResult Answer(Func<IResult> handle)
    {
        try
        {
            return handle();
        }
        catch (Exception e) when (Problem(e) is { } problem)
        {
            return problem;
        }
    }

    public static async Task<IResult> AnswerAsync(Func<Task<IResult>> handle)
    {
        try
        {
            return await handle();
        }
        catch (Exception e) when (Problem(e) is { } problem)
        {
            return problem;
        }
    }

    private static IResult? Problem(Exception e) => e switch
    {
        ApiProblemException p => p.ToResult(),
        ControlPlaneConflictException => Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Name taken", detail: "name: another goal or funnel of this site has this name.",
            extensions: new Dictionary<string, object?> { ["field"] = "name" }),
        ArgumentException a => Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid request", detail: a.Message),
        _ => null,
    };
}
