using System.Globalization;
using System.Net;
using System.Security.Claims;
using Analytics.ControlPlane;
using Analytics.Security;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Analytics.Identity;

/// <summary>
/// The dashboard users' sign-in page: a server-rendered form (no script), checked against the
/// control plane's password hashes. Success sets a login cookie (HttpOnly, SameSite=Lax, 8 h)
/// that only the authorization endpoint reads, and returns to a local URL (never another site:
/// no open redirect). The form carries an antiforgery token (no login CSRF). A wrong email and
/// a wrong password get the same answer in about the same time (a hash is checked either way).
/// Not here yet: lockout and rate limits on failed attempts (see docs/security.md).
/// </summary>
public static class LoginPage
{
    public const string Path = "/account/login";
    public const string LogoutPath = "/account/logout";
    public const string CookieScheme = "login";

    // A valid hash of a random password: verified against when the email is unknown, so both
    // failures take as long as a real check.
    private static readonly Lazy<string> DecoyHash = new(() => UserPasswords.Hash(Guid.NewGuid().ToString("N")));

    public static void MapLoginPage(this IEndpointRouteBuilder app)
    {
        app.MapGet(Path, (HttpContext context, IAntiforgery antiforgery) =>
            Form(context, antiforgery, LocalOrRoot(context.Request.Query["ReturnUrl"]), error: null, StatusCodes.Status200OK));
        app.MapPost(Path, async (HttpContext context, IAntiforgery antiforgery, IControlPlaneStore store, TimeProvider clock) =>
        {
            if (!context.Request.HasFormContentType) return Results.Problem(statusCode: 415, title: "Form expected", detail: "Post the sign-in form (application/x-www-form-urlencoded).");
            try
            {
                await antiforgery.ValidateRequestAsync(context);
            }
            catch (AntiforgeryValidationException)
            {
                return Results.Problem(statusCode: 400, title: "Expired form", detail: "Reload the sign-in page and try again.");
            }
            var form = await context.Request.ReadFormAsync(context.RequestAborted);
            string email = form["email"].ToString().Trim();
            string password = form["password"].ToString();
            string returnUrl = LocalOrRoot(form["returnUrl"]);
            var user = email.Length is > 0 and <= 320 ? store.FindUserByEmail(email) : null;
            bool ok = UserPasswords.Verify(user?.PasswordHash ?? DecoyHash.Value, password, out bool rehash) && user is not null;
            if (!ok) return Form(context, antiforgery, returnUrl, "Wrong email or password.", StatusCodes.Status401Unauthorized);
            if (rehash) store.UpdateUser(user!.Id, UserPasswords.Hash(password), user.Role);
            var identity = new ClaimsIdentity(
                [new Claim(UserClaims.UserId, user!.Id.ToString(CultureInfo.InvariantCulture)), new Claim(ClaimTypes.Name, user.Email)], CookieScheme);
            await context.SignInAsync(CookieScheme, new ClaimsPrincipal(identity));
            return Results.Redirect(returnUrl);
        });
        app.MapPost(LogoutPath, async (HttpContext context) =>
        {
            await context.SignOutAsync(CookieScheme);
            return Results.Redirect("/");
        });
    }

    /// <summary>Only a path on this server: "/x" but not "//host" or "/\host" (which browsers
    /// treat as another site), nor anything with a control character ("/\t/host": browsers drop
    /// tabs and newlines, leaving "//host"). The rules of ASP.NET Core's IsLocalUrl.</summary>
    private static string LocalOrRoot(string? url) =>
        url is { Length: > 0 } u && u[0] == '/' && (u.Length == 1 || (u[1] != '/' && u[1] != '\\')) &&
        !u.Any(c => c < 0x20 || c == 0x7F) ? u : "/";

    private static IResult Form(HttpContext context, IAntiforgery antiforgery, string returnUrl, string? error, int status)
    {
        var tokens = antiforgery.GetAndStoreTokens(context);
        context.Response.Headers.CacheControl = "no-store";
        context.Response.Headers["X-Frame-Options"] = "DENY";
        string html = $"""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Sign in · Analytics</title>
            <style>body{"{"}font:16px system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem{"}"}label{"{"}display:block;margin:.8rem 0 .2rem{"}"}input{"{"}width:100%;padding:.45rem;box-sizing:border-box{"}"}button{"{"}margin-top:1rem;padding:.5rem 1.2rem{"}"}.error{"{"}color:#b00020{"}"}</style>
            </head><body>
            <h1>Sign in</h1>
            {(error is null ? "" : $"<p class=\"error\" role=\"alert\">{WebUtility.HtmlEncode(error)}</p>")}
            <form method="post" action="{Path}">
              <input type="hidden" name="{WebUtility.HtmlEncode(tokens.FormFieldName)}" value="{WebUtility.HtmlEncode(tokens.RequestToken)}">
              <input type="hidden" name="returnUrl" value="{WebUtility.HtmlEncode(returnUrl)}">
              <label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" required autofocus>
              <label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
              <button type="submit">Sign in</button>
            </form>
            </body></html>
            """;
        return Results.Content(html, "text/html; charset=utf-8", statusCode: status);
    }
}
