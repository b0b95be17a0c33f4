using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Analytics.QueryApi.Tests;

/// <summary>Goals and funnels over HTTP against the real host (docs/query-api.md, Goals and Funnels).</summary>
public class GoalApiTests(EngineFixture engine)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    internal static async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpClient http, HttpMethod method, string path, object? body = null, string? token = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is string raw) request.Content = new StringContent(raw, System.Text.Encoding.UTF8, "application/json");
        else if (body is not null) request.Content = JsonContent.Create(body);
        if (token is not null) request.Headers.Authorization = new("Bearer", token);
        using var response = await http.SendAsync(request, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        return (response.StatusCode, text.Length > 0 ? JsonDocument.Parse(text).RootElement.Clone() : default);
    }

    [Fact]
    public async Task Goals_are_created_listed_changed_and_deleted_with_property_and_currency()
    {
        await using var host = await TestHost.StartAsync(engine);
        string goals = $"/v1/sites/{host.Site.PublicId}/goals";
        var (status, signup) = await SendAsync(host.Http, HttpMethod.Post, goals, new { name = "Signup", kind = "event", match = "signup" });
        Assert.Equal(HttpStatusCode.Created, status);
        var (_, pro) = await SendAsync(host.Http, HttpMethod.Post, goals,
            new { name = "Pro purchase", kind = "event", match = "purchase", property = new { key = "plan", value = "pro" }, currency = "EUR" });
        var (_, list) = await SendAsync(host.Http, HttpMethod.Get, goals);
        Assert.Equal(["Signup", "Pro purchase"], list.EnumerateArray().Select(g => g.GetProperty("name").GetString()));
        var stored = list[1];
        Assert.Equal(("purchase", "plan", "pro", "EUR"), (stored.GetProperty("match").GetString(), stored.GetProperty("property").GetProperty("key").GetString(),
            stored.GetProperty("property").GetProperty("value").GetString(), stored.GetProperty("currency").GetString()));
        Assert.Equal(JsonValueKind.Null, list[0].GetProperty("property").ValueKind);

        long proId = pro.GetProperty("id").GetInt64();
        var (putStatus, changed) = await SendAsync(host.Http, HttpMethod.Put, $"{goals}/{proId}", new { name = "Pricing", kind = "page", match = "/pricing/**" });
        Assert.Equal(HttpStatusCode.OK, putStatus);
        Assert.Equal(("page", "/pricing/**", JsonValueKind.Null), (changed.GetProperty("kind").GetString(), changed.GetProperty("match").GetString(), changed.GetProperty("currency").ValueKind));
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(host.Http, HttpMethod.Delete, $"{goals}/{signup.GetProperty("id").GetInt64()}")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(host.Http, HttpMethod.Delete, $"{goals}/{signup.GetProperty("id").GetInt64()}")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(host.Http, HttpMethod.Put, $"{goals}/abc", new { name = "x", kind = "event", match = "x" })).Status);
        Assert.Single((await SendAsync(host.Http, HttpMethod.Get, goals)).Body.EnumerateArray());
    }

    private static readonly (string Json, string Field)[] BadGoals =
    [
        ("""{"kind":"event","match":"x"}""", "name"),
        ("""{"name":"   ","kind":"event","match":"x"}""", "name"),
        ($$"""{"name":"{{new string('n', 121)}}","kind":"event","match":"x"}""", "name"),
        ("""{"name":"A","kind":"click","match":"x"}""", "kind"),
        ("""{"name":"A","match":"x"}""", "kind"),
        ("""{"name":"A","kind":"event"}""", "match"),
        ("""{"name":"A","kind":"event","match":""}""", "match"),
        ($$"""{"name":"A","kind":"event","match":"{{new string('e', 129)}}"}""", "match"),
        ("""{"name":"A","kind":"page","match":"pricing"}""", "match"),
        ("""{"name":"A","kind":"page","match":"/a\nb"}""", "match"),
        ("""{"name":"A","kind":"page","match":"/p","currency":"EUR"}""", "currency"),
        ("""{"name":"A","kind":"event","match":"p","currency":"eur"}""", "currency"),
        ("""{"name":"A","kind":"event","match":"p","currency":"EURO"}""", "currency"),
        ("""{"name":"A","kind":"event","match":"p","property":{"key":"","value":"v"}}""", "property.key"),
        ("""{"name":"A","kind":"event","match":"p","property":{"key":"k"}}""", "property.value"),
        ("""{"name":"A","kind":"event","match":"p","colour":"red"}""", "colour"),
        ("""{"name":"A","kind":"event","match":7}""", "match"),
    ];

    [Fact]
    public async Task A_bad_goal_is_refused_with_400_naming_the_field_and_nothing_is_stored()
    {
        await using var host = await TestHost.StartAsync(engine);
        string goals = $"/v1/sites/{host.Site.PublicId}/goals";
        foreach (var (json, field) in BadGoals)
        {
            var (status, problem) = await SendAsync(host.Http, HttpMethod.Post, goals, json);
            Assert.True(status == HttpStatusCode.BadRequest, $"{json}: {(int)status} {problem}");
            Assert.True(field == problem.GetProperty("field").GetString(), $"{json}: {problem}");
        }
        Assert.Empty((await SendAsync(host.Http, HttpMethod.Get, goals)).Body.EnumerateArray());
    }

    [Fact]
    public async Task Names_are_unique_per_site_a_goal_in_a_funnel_stays_and_bodies_are_limited()
    {
        await using var host = await TestHost.StartAsync(engine);
        string goals = $"/v1/sites/{host.Site.PublicId}/goals", funnels = $"/v1/sites/{host.Site.PublicId}/funnels";
        var (_, a) = await SendAsync(host.Http, HttpMethod.Post, goals, new { name = "A", kind = "event", match = "a" });
        await SendAsync(host.Http, HttpMethod.Post, goals, new { name = "B", kind = "page", match = "/b" });
        var (dup, problem) = await SendAsync(host.Http, HttpMethod.Post, goals, new { name = "A", kind = "event", match = "other" });
        Assert.Equal((HttpStatusCode.Conflict, "name"), (dup, problem.GetProperty("field").GetString()));

        var (created, funnel) = await SendAsync(host.Http, HttpMethod.Post, funnels, new { name = "F", steps = new[] { "A", "B" } });
        Assert.Equal(HttpStatusCode.Created, created);
        Assert.Equal((1800, "sequential"), (funnel.GetProperty("window_seconds").GetInt32(), funnel.GetProperty("order").GetString()));
        Assert.Equal(HttpStatusCode.Conflict, (await SendAsync(host.Http, HttpMethod.Post, funnels, new { name = "F", steps = new[] { "B", "A" } })).Status);
        Assert.Equal(HttpStatusCode.Conflict, (await SendAsync(host.Http, HttpMethod.Delete, $"{goals}/{a.GetProperty("id").GetInt64()}")).Status);

        string funnelPath = $"{funnels}/{funnel.GetProperty("id").GetInt64()}";
        var (put, changed) = await SendAsync(host.Http, HttpMethod.Put, funnelPath, new { name = "F2", steps = new[] { "B", "A" }, window_seconds = 2_592_000, order = "strict" });
        Assert.Equal(HttpStatusCode.OK, put);
        Assert.Equal(["B", "A"], changed.GetProperty("steps").EnumerateArray().Select(s => s.GetString()));
        var listed = (await SendAsync(host.Http, HttpMethod.Get, funnels)).Body.EnumerateArray().Single();
        Assert.Equal(("F2", 2_592_000, "strict"), (listed.GetProperty("name").GetString(), listed.GetProperty("window_seconds").GetInt32(), listed.GetProperty("order").GetString()));
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(host.Http, HttpMethod.Delete, funnelPath)).Status);
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(host.Http, HttpMethod.Delete, $"{goals}/{a.GetProperty("id").GetInt64()}")).Status);

        string huge = $$"""{"name":"A","kind":"event","match":"{{new string('x', 70_000)}}"}""";
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await SendAsync(host.Http, HttpMethod.Post, goals, huge)).Status);

        string readOnly = await TestTokens.ClientTokenAsync(host.App.Services, host.Http, host.Site.MerchantId, "stats:read");
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(host.Http, HttpMethod.Get, goals, token: readOnly)).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(host.Http, HttpMethod.Post, goals, new { name = "C", kind = "event", match = "c" }, readOnly)).Status);
    }

    private static readonly (string Json, string Field)[] BadFunnels =
    [
        ("""{"steps":["A","B"]}""", "name"),
        ("""{"name":"F","steps":["A"]}""", "steps"),
        ("""{"name":"F","steps":["A","B","C","D","E","F","G","H","I"]}""", "steps"),
        ("""{"name":"F","steps":["A","Nope"]}""", "steps[1]"),
        ("""{"name":"F","steps":["A","B","A"]}""", "steps[2]"),
        ("""{"name":"F","steps":["A","B"],"window_seconds":0}""", "window_seconds"),
        ("""{"name":"F","steps":["A","B"],"window_seconds":2592001}""", "window_seconds"),
        ("""{"name":"F","steps":["A","B"],"order":"loose"}""", "order"),
        ("""{"name":"F","steps":["A","Other site's goal"]}""", "steps[1]"),
    ];

    [Fact]
    public async Task A_bad_funnel_is_refused_with_400_naming_the_field()
    {
        await using var host = await TestHost.StartAsync(engine);
        foreach (string name in "ABCDEFGHI".Select(c => c.ToString()))
            Assert.Equal(HttpStatusCode.Created, (await SendAsync(host.Http, HttpMethod.Post, $"/v1/sites/{host.Site.PublicId}/goals", new { name, kind = "event", match = name })).Status);
        var otherSite = host.App.Services.GetRequiredService<Analytics.ControlPlane.SiteRegistry>().Store.CreateSite(host.Site.MerchantId, "other.example");
        await SendAsync(host.Http, HttpMethod.Post, $"/v1/sites/{otherSite.PublicId}/goals", new { name = "Other site's goal", kind = "event", match = "o" });

        foreach (var (json, field) in BadFunnels)
        {
            var (status, problem) = await SendAsync(host.Http, HttpMethod.Post, $"/v1/sites/{host.Site.PublicId}/funnels", json);
            Assert.True(status == HttpStatusCode.BadRequest, $"{json}: {(int)status} {problem}");
            Assert.True(field == problem.GetProperty("field").GetString(), $"{json}: {problem}");
        }
        Assert.Empty((await SendAsync(host.Http, HttpMethod.Get, $"/v1/sites/{host.Site.PublicId}/funnels")).Body.EnumerateArray());
    }
}
