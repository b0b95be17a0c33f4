using System.Text.Json.Serialization;

namespace Analytics.ControlPlane;

public sealed record Merchant(long Id, string Name, DateTimeOffset CreatedAt);

/// <summary>A site. <see cref="SiteId"/> is internal (sequential; ClickHouse rows carry it) and
/// never leaves the server: every URL and every JSON answer names a site by <see cref="PublicId"/>.</summary>
public sealed record Site(
    [property: JsonIgnore] long SiteId,
    [property: JsonPropertyName("id")] string PublicId,
    long MerchantId,
    string SiteKey,
    string Domain,
    string TimeZone,
    string MerchantName);

/// <summary>A rotated site key that still works until <see cref="ValidUntil"/>.</summary>
public sealed record RetiredSiteKey(string SiteKey, DateTimeOffset RetiredAt, DateTimeOffset ValidUntil);

public static class UserRoles
{
    public const string Owner = "owner";
    public const string Admin = "admin";
    public const string Viewer = "viewer";
    public static readonly IReadOnlySet<string> All = new HashSet<string>(StringComparer.Ordinal) { Owner, Admin, Viewer };
}

/// <summary>A dashboard user of one merchant. The email is stored lower-cased (unique across the
/// control plane); the password hash is ASP.NET Core Identity's format (see <see cref="UserPasswords"/>).</summary>
public sealed record User(long Id, long MerchantId, string Email, string PasswordHash, string Role, DateTimeOffset CreatedAt);

/// <summary>An OAuth2 client (client credentials) of one merchant. Scopes are space-separated,
/// as in OAuth2's scope parameter.</summary>
public sealed record ApiClient(long Id, string ClientId, string SecretHash, string DisplayName, string Scopes, long MerchantId, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);

/// <summary>A personal API key's record: the prefix identifies it in lists and logs; only the
/// SHA-256 of the secret is kept (see <see cref="ApiKeys"/>).</summary>
public sealed record ApiKey(long Id, string Prefix, string Name, string Scopes, long MerchantId, long UserId,
    DateTimeOffset CreatedAt, DateTimeOffset? LastUsedAt, DateTimeOffset? RevokedAt);

public static class GoalKinds
{
    /// <summary>A custom event by name (match = the event name).</summary>
    public const string Event = "event";
    /// <summary>A pageview of a path (match = a path pattern: * any characters except '/', ** any characters).</summary>
    public const string Page = "page";
}

/// <summary>A custom property an event must carry (props[Key] = Value) to complete a goal.</summary>
public sealed record GoalProperty(string Key, string Value);

/// <summary>A conversion of one site. <see cref="Property"/> (optional) narrows it to events
/// carrying that property value; <see cref="Currency"/> (ISO 4217, event goals only) makes it a
/// revenue goal. Both are init properties so code that builds a goal from (name, kind, match)
/// keeps compiling.</summary>
public sealed record Goal(long Id, long SiteId, string Name, string Kind, string Match, DateTimeOffset CreatedAt)
{
    public GoalProperty? Property { get; init; }
    public string? Currency { get; init; }
}

public static class FunnelOrders
{
    /// <summary>Other events may come between steps.</summary>
    public const string Sequential = "sequential";
    /// <summary>The pageview or custom event after a step must be the next step.</summary>
    public const string Strict = "strict";
}

/// <summary>A funnel: an ordered list of goals of one site, reached within
/// <see cref="WindowSeconds"/> of the first step, in <see cref="Order"/>.</summary>
public sealed record Funnel(long Id, long SiteId, string Name, IReadOnlyList<long> GoalIds, DateTimeOffset CreatedAt)
{
    public const int DefaultWindowSeconds = 1800;
    public const int MaxWindowSeconds = 30 * 24 * 3600;

    public int WindowSeconds { get; init; } = DefaultWindowSeconds;
    public string Order { get; init; } = FunnelOrders.Sequential;

    public bool Equals(Funnel? other) => other is not null && Id == other.Id && SiteId == other.SiteId && Name == other.Name &&
        GoalIds.SequenceEqual(other.GoalIds) && CreatedAt == other.CreatedAt && WindowSeconds == other.WindowSeconds && Order == other.Order;

    public override int GetHashCode() => HashCode.Combine(Id, SiteId, Name);
}

/// <summary>A uniqueness rule refused a write (a taken email, site key, client id, goal name…).</summary>
public sealed class ControlPlaneConflictException(string message, Exception inner) : Exception(message, inner);

/// <summary>A value the control plane refuses to store, naming the request field it came from
/// (<c>domain</c>, <c>siteKey</c>, <c>timeZone</c>) so an API answers with it.</summary>
public sealed class ControlPlaneValidationException(string field, string message) : ArgumentException(message)
{
    public string Field { get; } = field;
}

/// <summary>The control plane could not be opened (bad --control-plane value, unreachable server),
/// or failed a lookup ingest needed (<see cref="SiteRegistry"/>: a site key, the day's salt).</summary>
public sealed class ControlPlaneUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
