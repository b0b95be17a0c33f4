namespace Analytics.ControlPlane;

/// <summary>
/// The control plane's store: the source of truth for tenants and their configuration, shared by
/// every node of a deployment. Two backends implement it with the same SQL and the same
/// migrations (<see cref="Migrations"/>): SQLite for one machine, PostgreSQL for several.
/// Contract: internal ids are sequential and never shown publicly; sites also get a random
/// public id; every write is one transaction; a uniqueness violation raises
/// <see cref="ControlPlaneConflictException"/>; the daily visitor salt is created at most once
/// per day however many nodes ask at the same time, and salts older than yesterday are deleted
/// whenever a salt is created. Lookups return null when nothing matches. Calls are synchronous:
/// the ingest hot path reaches the store only through <see cref="SiteRegistry"/>'s cache.
/// </summary>
public interface IControlPlaneStore : IDisposable
{
    /// <summary>"sqlite" or "postgres".</summary>
    string Backend { get; }

    /// <summary>Versions and names of the migrations this open applied (empty when up to date).</summary>
    IReadOnlyList<string> AppliedMigrations { get; }

    Merchant CreateMerchant(string name);
    Merchant? GetMerchant(long id);
    IReadOnlyList<Merchant> ListMerchants();
    bool RenameMerchant(long id, string name);

    User CreateUser(long merchantId, string email, string passwordHash, string role);
    User? GetUser(long id);
    User? FindUserByEmail(string email);
    IReadOnlyList<User> ListUsers(long merchantId);
    bool UpdateUser(long id, string passwordHash, string role);
    bool DeleteUser(long id);

    /// <summary>Creates a site with a new random public id and a new random site key (or the given key).</summary>
    Site CreateSite(long merchantId, string domain, string? siteKey = null, string timeZone = "UTC");
    /// <summary>A new merchant and its first site in one transaction: a refused site (bad value,
    /// taken key) leaves no merchant behind.</summary>
    Site CreateMerchantWithSite(string merchantName, string domain, string? siteKey = null, string timeZone = "UTC");
    /// <summary>The site of a current key, or of a rotated key still in its grace period.</summary>
    Site? FindSiteByKey(string siteKey);
    Site? FindSiteById(long siteId);
    Site? FindSiteByPublicId(string publicId);
    /// <summary>All sites, or one merchant's.</summary>
    IReadOnlyList<Site> ListSites(long? merchantId = null);
    bool UpdateSite(long siteId, string domain, string timeZone);

    /// <summary>Gives the site a new random key; the old one keeps working for <paramref name="grace"/>
    /// (zero: not at all). Null when the site does not exist.</summary>
    Site? RotateSiteKey(long siteId, TimeSpan grace);
    /// <summary>Ends a key at once: the current key is replaced by a new one (returned), a rotated
    /// one in its grace period is dropped. Null when the key is not one of the site's.</summary>
    Site? RevokeSiteKey(long siteId, string siteKey);
    /// <summary>Rotated keys of a site still in their grace period.</summary>
    IReadOnlyList<RetiredSiteKey> ListRetiredSiteKeys(long siteId);

    bool AddAllowedOrigin(long siteId, string origin);
    bool RemoveAllowedOrigin(long siteId, string origin);
    IReadOnlyList<string> ListAllowedOrigins(long siteId);

    ApiClient CreateApiClient(long merchantId, string clientId, string secretHash, string displayName, string scopes);
    ApiClient? FindApiClient(string clientId);
    IReadOnlyList<ApiClient> ListApiClients(long merchantId);
    bool RevokeApiClient(string clientId);

    /// <summary>Stores a key's record and the SHA-256 of its secret; use <see cref="ApiKeys.Create"/>.</summary>
    ApiKey CreateApiKey(long merchantId, long userId, string prefix, byte[] secretHash, string name, string scopes);
    /// <summary>The key with this prefix and its stored secret hash.</summary>
    (ApiKey Key, byte[] SecretHash)? FindApiKey(string prefix);
    /// <summary>The merchant's keys in the order they were made: all of them, or one user's
    /// (<paramref name="userId"/>), those made after the key with id <paramref name="afterId"/>,
    /// at most <paramref name="limit"/>.</summary>
    IReadOnlyList<ApiKey> ListApiKeys(long merchantId, long? userId = null, long afterId = 0, int limit = int.MaxValue);
    void TouchApiKey(long id, DateTimeOffset usedAt);
    bool RevokeApiKey(long id);

    /// <summary>A goal; <paramref name="currency"/> (3 capital letters) only for event goals.</summary>
    Goal CreateGoal(long siteId, string name, string kind, string match, GoalProperty? property = null, string? currency = null);
    Goal? GetGoal(long id);
    IReadOnlyList<Goal> ListGoals(long siteId);
    /// <summary>Replaces every field (a null property or currency removes it).</summary>
    bool UpdateGoal(long id, string name, string kind, string match, GoalProperty? property = null, string? currency = null);
    bool DeleteGoal(long id);

    /// <summary>A funnel of 2–8 goals of the site; window 1 s to 30 days; order one of <see cref="FunnelOrders"/>.</summary>
    Funnel CreateFunnel(long siteId, string name, IReadOnlyList<long> goalIds, int windowSeconds = Funnel.DefaultWindowSeconds, string order = FunnelOrders.Sequential);
    Funnel? GetFunnel(long id);
    IReadOnlyList<Funnel> ListFunnels(long siteId);
    /// <summary>Replaces every field.</summary>
    bool UpdateFunnel(long id, string name, IReadOnlyList<long> goalIds, int windowSeconds = Funnel.DefaultWindowSeconds, string order = FunnelOrders.Sequential);
    bool DeleteFunnel(long id);

    /// <summary>The salt of a UTC day: <paramref name="candidate"/> if this call created it,
    /// otherwise the one already stored (by this node or another). Deletes salts of days before
    /// <paramref name="deleteBefore"/> in the same transaction.</summary>
    byte[] GetOrCreateSalt(DateOnly day, byte[] candidate, DateOnly deleteBefore);
}
