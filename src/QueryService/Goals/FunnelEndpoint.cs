using System.Globalization;
using System.Text.Json;
using Analytics.ControlPlane;
using Analytics.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Analytics.QueryService.Goals;

/// <summary>
/// POST /v1/funnel (stats:read): a stored funnel (<c>funnel_id</c>) or inline <c>steps</c>
/// (goal names of the site) with <c>window_seconds</c> and <c>order</c>, over <c>date_range</c>
/// in <c>timezone</c> (default: the site's). Answers, per step, the visitors who reached it
/// (<see cref="FunnelReader"/>), the % of step 1 and the drop-off from the step before.
/// Another merchant's site or funnel answers 404 like a missing one.
/// </summary>
public static class FunnelEndpoint
{
    public sealed record FunnelQueryBody(string? SiteId, JsonElement? DateRange, string? Timezone, long? FunnelId,
        List<string?>? Steps, int? WindowSeconds, string? Order);

    public static IEndpointRouteBuilder MapFunnelQuery(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/v1/funnel", async (HttpContext context, SiteRegistry sites, FunnelReader reader, TimeProvider clock) => await GoalEndpoints.AnswerAsync(async () =>
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
            var (from, to) = await DateRangeAsync(body.DateRange, tz, clock.GetUtcNow(), () => reader.FirstEventAsync(site.MerchantId, site.SiteId, context.RequestAborted));
            var visitors = await reader.VisitorsPerStepAsync(site.MerchantId, site.SiteId, steps, window, order, from, to, null, context.RequestAborted);
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
                    date_range = new[] { TimeZoneInfo.ConvertTime(from, tz), TimeZoneInfo.ConvertTime(to, tz) },
                    timezone = tz.Id,
                },
            });
        })).RequireAuthorization(Scopes.StatsRead);
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

    /// <summary>The query API's date ranges (docs/query-api.md, Date ranges) as [from, to) instants.</summary>
    public static async Task<(DateTimeOffset From, DateTimeOffset To)> DateRangeAsync(JsonElement? range, TimeZoneInfo tz, DateTimeOffset now, Func<Task<DateTimeOffset?>> firstEvent)
    {
        const string field = "date_range";
        var today = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(now, tz).DateTime);
        var endOfToday = QueryParameters.StartOfLocalDay(today.AddDays(1), tz);
        DateTimeOffset Day(DateOnly d) => QueryParameters.StartOfLocalDay(d, tz);
        var firstOfMonth = new DateOnly(today.Year, today.Month, 1);
        if (range is not { } r) throw ApiProblemException.Invalid(field, "required: a name such as \"7d\" or [from, to].");
        if (r.ValueKind == JsonValueKind.String)
        {
            return r.GetString() switch
            {
                "day" => (Day(today), endOfToday),
                "7d" => (Day(today.AddDays(-6)), endOfToday),
                "28d" => (Day(today.AddDays(-27)), endOfToday),
                "30d" => (Day(today.AddDays(-29)), endOfToday),
                "month" => (Day(firstOfMonth), endOfToday),
                "6mo" => (Day(firstOfMonth.AddMonths(-5)), endOfToday),
                "12mo" => (Day(firstOfMonth.AddMonths(-11)), endOfToday),
                "year" => (Day(new DateOnly(today.Year, 1, 1)), endOfToday),
                "realtime" => (now.AddMinutes(-5), now),
                "all" => (await firstEvent() is { } first ? Day(DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(first, tz).DateTime)) : Day(today), endOfToday),
                var other => throw ApiProblemException.Invalid(field, $"'{other}' is not one of day, 7d, 28d, 30d, month, 6mo, 12mo, year, all, realtime."),
            };
        }
        if (r.ValueKind != JsonValueKind.Array || r.GetArrayLength() != 2 || r.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
            throw ApiProblemException.Invalid(field, "a name such as \"7d\", or [from, to]: two dates or two ISO 8601 times with an offset.");
        string a = r[0].GetString()!, b = r[1].GetString()!;
        bool dates = !a.Contains('T') && !b.Contains('T');
        if (a.Contains('T') != b.Contains('T')) throw ApiProblemException.Invalid(field, "[from, to] are both dates or both times.");
        DateTimeOffset from, to;
        try
        {
            from = QueryParameters.ParseBound("date_range[0]", a, tz, isEnd: false, default);
            // A date `to` includes its day; a time `to` is excluded (ParseBound does both).
            to = QueryParameters.ParseBound("date_range[1]", b, tz, isEnd: dates, default);
        }
        catch (QueryParameters.InvalidQueryException e)
        {
            throw ApiProblemException.Invalid(e.Message.StartsWith("date_range[0]", StringComparison.Ordinal) ? "date_range[0]" : "date_range[1]", e.Message[(e.Message.IndexOf(':') + 2)..]);
        }
        if (from >= to) throw ApiProblemException.Invalid(field, $"from ({a}) must be before to ({b}).");
        if (to - from > TimeSpan.FromDays(366 * 20)) throw ApiProblemException.Invalid(field, "at most 20 years.");
        return (from, to);
    }
}
