using System.Globalization;
using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.QueryService.Http;
using Analytics.QueryService.Query;
using Analytics.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Analytics.QueryService.Goals;

/// <summary>
/// POST /v1/funnel (stats:read): a stored funnel (<c>funnel_id</c>) or inline <c>steps</c>
/// (goal names of the site) with <c>window_seconds</c> and <c>order</c>, over <c>date_range</c>
/// in <c>timezone</c> (default: the site's) and the events <c>filters</c> select; date ranges and
/// filters are parsed by POST /v1/query's parser (QueryParser), so they mean the same. Answers, per step, the visitors who reached it
/// (<see cref="FunnelReader"/>), the % of step 1 and the drop-off from the step before.
/// Another merchant's site or funnel answers 404 like a missing one.
/// </summary>
public static class FunnelEndpoint
{
    public sealed record FunnelQueryBody(string? SiteId, JsonElement? DateRange, string? Timezone, long? FunnelId,
        List<string?>? Steps, int? WindowSeconds, string? Order, JsonElement? Filters);

    public static IEndpointRouteBuilder MapFunnelQuery(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/v1/funnel", async (HttpContext context, SiteRegistry sites, FunnelReader reader, QueryEngine engine, TimeProvider clock) => await GoalEndpoints.AnswerAsync(async () =>
        {
            var body = await JsonBodies.ReadAsync<FunnelQueryBody>(context);
            if (string.IsNullOrEmpty(body.SiteId)) throw ApiProblemException.Invalid("site_id", "required: the site's public id.");
            var site = GoalEndpoints.OwnSite(context, body.SiteId, sites);
            var goals = sites.Store.ListGoals(site.SiteId);

            Funnel? stored = null;
            IReadOnlyList<Goal> steps;
            int window;
            string order;
            if (body.FunnelId is { } id)
            {
                if (body.Steps is not null || body.WindowSeconds is not null || body.Order is not null)
                    throw ApiProblemException.Invalid("funnel_id", "either funnel_id or inline steps/window_seconds/order, not both.");
                stored = GoalEndpoints.OwnFunnel(site, id.ToString(CultureInfo.InvariantCulture), sites.Store);
                var byId = goals.ToDictionary(g => g.Id);
                (steps, window, order) = (stored.GoalIds.Select(g => byId[g]).ToList(), stored.WindowSeconds, stored.Order);
            }
            else
            {
                if (body.Steps is null) throw ApiProblemException.Invalid("steps", "required without funnel_id: 2–8 goal names of this site.");
                (steps, window, order) = GoalEndpoints.ValidSteps(body.Steps, body.WindowSeconds, body.Order, goals);
            }

            var tz = body.Timezone is null ? TimeZoneInfo.FindSystemTimeZoneById(site.TimeZone) : Zone(body.Timezone);
            var ct = context.RequestAborted;
            var parser = new QueryParser.Context(_ => site, _ => goals, s => engine.FirstEventAsync(s.MerchantId, s.SiteId, ct), p => engine.RegexErrorAsync(p, ct), clock.GetUtcNow())
            {
                EnrichedKeptFrom = engine.EnrichedKeptFrom,
            };
            NormalQuery query;
            long[] visitors;
            try
            {
                if (body.DateRange is not { ValueKind: not JsonValueKind.Null } range) throw new QueryException("date_range", "date_range is required: a name such as \"7d\" or [from, to].");
                Filter? filter = null;
                if (body.Filters is { ValueKind: not JsonValueKind.Null } filters)
                {
                    filter = QueryParser.ParseFilterList(filters, "filters", goals, 0);
                    if (filter is not null) await QueryParser.CheckRegexesAsync(filter, parser);
                }
                var (from, to, input) = await QueryParser.ParseDateRangeAsync(range, "date_range", tz, parser, site);
                query = new NormalQuery(site.MerchantId, site.SiteId, site.PublicId, from, to, tz, ["visitors"], [], filter, [], 0, 0, false, null, goals, input);
                // A funnel orders each visitor's events, which only the enriched events hold.
                if (!RetentionPlanner.EnrichedCovers(query, engine.Retention, engine.Clock.GetUtcNow()))
                    throw RetentionPlanner.EventsOnly(query, engine.Retention, engine.Clock.GetUtcNow(), "funnels");
                visitors = await reader.VisitorsPerStepAsync(query, steps, window, order, engine, ct);
            }
            catch (QueryException e)
            {
                throw new ApiProblemException(StatusCodes.Status400BadRequest, "Invalid request", e.Message, e.Field);
            }
            catch (QueryEngine.QueryTimeoutException)
            {
                // The funnel's statement, or the site's first event for date_range "all".
                return QueryEndpoint.TooSlow(context, engine.MaxExecutionSeconds);
            }
            return Results.Json(new
            {
                steps = steps.Select((g, i) => new
                {
                    name = g.Name,
                    visitors = visitors[i],
                    conversion_rate = Percent(visitors[i], visitors[0]),
                    drop_off = i == 0 ? 0 : visitors[i - 1] - visitors[i],
                    drop_off_rate = i == 0 ? 0 : Percent(visitors[i - 1] - visitors[i], visitors[i - 1]),
                }),
                funnel = new { id = stored?.Id, name = stored?.Name, window_seconds = window, order },
                query = new
                {
                    site_id = site.PublicId,
                    date_range = new[] { TimeZoneInfo.ConvertTime(query.From, tz), TimeZoneInfo.ConvertTime(query.To, tz) },
                    timezone = tz.Id,
                },
            });
        })).RequireAuthorization(Scopes.StatsRead).AcceptsJson();
        return routes;
    }

    /// <summary>% with one decimal, halves away from zero; 0 when the base is 0.</summary>
    private static double Percent(long part, long whole) => whole == 0 ? 0 : Math.Round(100.0 * part / whole, 1, MidpointRounding.AwayFromZero);

    private static TimeZoneInfo Zone(string name)
    {
        try
        {
            return QueryParameters.ParseTimeZone(name);
        }
        catch (QueryParameters.InvalidQueryException e)
        {
            throw ApiProblemException.Invalid("timezone", e.Message["tz: ".Length..]);
        }
    }
}
