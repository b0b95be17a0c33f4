using System.Data.Common;

namespace Analytics.ControlPlane;

/// <summary>
/// <see cref="IControlPlaneStore"/> in SQL both backends run unchanged: the backends differ only
/// in how a connection opens, how migrations are locked and how a constraint violation is
/// recognised. Internal ids come from <c>id_sequences</c> (UPDATE … RETURNING inside the
/// inserting transaction: the row lock serialises concurrent creators on PostgreSQL).
/// </summary>
public abstract class SqlControlPlaneStore : IControlPlaneStore
{
    private const string SiteColumns = """
        SELECT s.id, s.public_id, s.merchant_id, s.site_key, s.domain, s.time_zone, m.name
        FROM sites s JOIN merchants m ON m.id = s.merchant_id
        """;

    public abstract string Backend { get; }

    public IReadOnlyList<string> AppliedMigrations { get; private set; } = [];

    protected abstract DbConnection OpenConnection();

    protected abstract void LockForMigrations(DbConnection db, DbTransaction tx);

    protected enum Violation { None, Unique, ForeignKey }

    protected abstract Violation Classify(DbException e);

    /// <summary>Derived constructors call this last, once they can open connections.</summary>
    protected void Migrate()
    {
        using var db = OpenConnection();
        AppliedMigrations = Migrations.Apply(db, tx => LockForMigrations(db, tx));
    }

    private T Write<T>(string what, Func<DbConnection, DbTransaction, T> work)
    {
        using var db = OpenConnection();
        using var tx = db.BeginTransaction();
        try
        {
            var result = work(db, tx);
            tx.Commit();
            return result;
        }
        catch (DbException e) when (Classify(e) == Violation.Unique)
        {
            throw new ControlPlaneConflictException($"{what}: already exists.", e);
        }
        catch (DbException e) when (Classify(e) == Violation.ForeignKey)
        {
            throw new ArgumentException($"{what}: refers to something that does not exist (or is still referred to).", e);
        }
    }

    private List<T> Read<T>(Func<DbDataReader, T> map, string sql, params (string, object?)[] parameters)
    {
        using var db = OpenConnection();
        return Sql.Rows(db, null, map, sql, parameters);
    }

    private bool Change(string what, string sql, params (string, object?)[] parameters) =>
        Write(what, (db, tx) => Sql.Execute(db, tx, sql, parameters) > 0);

    private static long NextId(DbConnection db, DbTransaction tx, string table) =>
        Convert.ToInt64(Sql.Scalar(db, tx, "UPDATE id_sequences SET last_value = last_value + 1 WHERE name = @n RETURNING last_value", ("@n", table)),
            System.Globalization.CultureInfo.InvariantCulture);

    private static long Now => Sql.Millis(DateTimeOffset.UtcNow);

    // Merchants

    public Merchant CreateMerchant(string name)
    {
        name = Required(name, "merchant name");
        return Write("merchant", (db, tx) =>
        {
            var merchant = new Merchant(NextId(db, tx, "merchants"), name, DateTimeOffset.FromUnixTimeMilliseconds(Now));
            Sql.Execute(db, tx, "INSERT INTO merchants (id, name, created_at) VALUES (@i, @n, @t)",
                ("@i", merchant.Id), ("@n", name), ("@t", Sql.Millis(merchant.CreatedAt)));
            return merchant;
        });
    }

    private static Merchant ReadMerchant(DbDataReader r) => new(r.Long(0), r.GetString(1), r.Time(2));

    public Merchant? GetMerchant(long id) => Read(ReadMerchant, "SELECT id, name, created_at FROM merchants WHERE id = @i", ("@i", id)).FirstOrDefault();

    public IReadOnlyList<Merchant> ListMerchants() => Read(ReadMerchant, "SELECT id, name, created_at FROM merchants ORDER BY id");

    public bool RenameMerchant(long id, string name) =>
        Change("merchant", "UPDATE merchants SET name = @n WHERE id = @i", ("@n", Required(name, "merchant name")), ("@i", id));

    // Users

    private const string UserColumns = "SELECT id, merchant_id, email, password_hash, role, created_at FROM users";

    private static User ReadUser(DbDataReader r) => new(r.Long(0), r.Long(1), r.GetString(2), r.GetString(3), r.GetString(4), r.Time(5));

    private static string NormalizeEmail(string email)
    {
        email = Required(email, "email").ToLowerInvariant();
        return email.Length <= 254 && email.IndexOf('@') is > 0 and var at && at < email.Length - 1
            ? email : throw new ArgumentException($"email: '{email}' is not an email address.");
    }

    private static string ValidRole(string role) =>
        UserRoles.All.Contains(role) ? role : throw new ArgumentException($"role: '{role}' is not one of {string.Join(", ", UserRoles.All)}.");

    public User CreateUser(long merchantId, string email, string passwordHash, string role)
    {
        email = NormalizeEmail(email);
        passwordHash = Required(passwordHash, "password hash");
        role = ValidRole(role);
        return Write($"user {email} (merchant {merchantId})", (db, tx) =>
        {
            var user = new User(NextId(db, tx, "users"), merchantId, email, passwordHash, role, DateTimeOffset.FromUnixTimeMilliseconds(Now));
            Sql.Execute(db, tx, "INSERT INTO users (id, merchant_id, email, password_hash, role, created_at) VALUES (@i, @m, @e, @p, @r, @t)",
                ("@i", user.Id), ("@m", merchantId), ("@e", email), ("@p", passwordHash), ("@r", role), ("@t", Sql.Millis(user.CreatedAt)));
            return user;
        });
    }

    public User? GetUser(long id) => Read(ReadUser, UserColumns + " WHERE id = @i", ("@i", id)).FirstOrDefault();

    public User? FindUserByEmail(string email) =>
        Read(ReadUser, UserColumns + " WHERE email = @e", ("@e", email.Trim().ToLowerInvariant())).FirstOrDefault();

    public IReadOnlyList<User> ListUsers(long merchantId) => Read(ReadUser, UserColumns + " WHERE merchant_id = @m ORDER BY id", ("@m", merchantId));

    public bool UpdateUser(long id, string passwordHash, string role) =>
        Change("user", "UPDATE users SET password_hash = @p, role = @r WHERE id = @i", ("@p", Required(passwordHash, "password hash")), ("@r", ValidRole(role)), ("@i", id));

    public bool DeleteUser(long id) => Change("user", "DELETE FROM users WHERE id = @i", ("@i", id));

    // Sites

    private static Site ReadSite(DbDataReader r) => new(r.Long(0), r.GetString(1), r.Long(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6));

    public Site CreateSite(long merchantId, string domain, string? siteKey = null, string timeZone = "UTC")
    {
        (domain, siteKey, timeZone) = ValidSite(domain, siteKey, timeZone);
        return Write($"site (key '{siteKey}', merchant {merchantId})", (db, tx) => InsertSite(db, tx, merchantId, domain, siteKey, timeZone));
    }

    public Site CreateMerchantWithSite(string merchantName, string domain, string? siteKey = null, string timeZone = "UTC")
    {
        merchantName = Required(merchantName, "merchant name");
        (domain, siteKey, timeZone) = ValidSite(domain, siteKey, timeZone);
        // One transaction: a taken site key rolls the new merchant back with it.
        return Write($"site (key '{siteKey}', new merchant '{merchantName}')", (db, tx) =>
        {
            long merchantId = NextId(db, tx, "merchants");
            Sql.Execute(db, tx, "INSERT INTO merchants (id, name, created_at) VALUES (@i, @n, @t)", ("@i", merchantId), ("@n", merchantName), ("@t", Now));
            return InsertSite(db, tx, merchantId, domain, siteKey, timeZone);
        });
    }

    private static (string Domain, string SiteKey, string TimeZone) ValidSite(string domain, string? siteKey, string timeZone) =>
        (SiteRules.NormalizeDomain(domain), siteKey is null ? Identifiers.NewSiteKey() : SiteRules.ValidSiteKey(siteKey), SiteRules.ValidTimeZone(timeZone));

    private static Site InsertSite(DbConnection db, DbTransaction tx, long merchantId, string domain, string siteKey, string timeZone)
    {
        long id = NextId(db, tx, "sites");
        Sql.Execute(db, tx, "INSERT INTO sites (id, public_id, merchant_id, site_key, domain, time_zone, created_at) VALUES (@i, @p, @m, @k, @d, @z, @t)",
            ("@i", id), ("@p", Identifiers.NewPublicId()), ("@m", merchantId), ("@k", siteKey), ("@d", domain), ("@z", timeZone), ("@t", Now));
        return Sql.Rows(db, tx, ReadSite, SiteColumns + " WHERE s.id = @i", ("@i", id))[0];
    }

    public Site? FindSiteByKey(string siteKey) =>
        Read(ReadSite, SiteColumns + " WHERE s.site_key = @k", ("@k", siteKey)).FirstOrDefault()
        ?? Read(ReadSite, SiteColumns + " JOIN site_retired_keys r ON r.site_id = s.id WHERE r.site_key = @k AND r.valid_until > @n", ("@k", siteKey), ("@n", Now)).FirstOrDefault();

    public Site? RotateSiteKey(long siteId, TimeSpan grace)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(grace, TimeSpan.Zero);
        string newKey = Identifiers.NewSiteKey();
        return Write($"site key of site {siteId}", (db, tx) =>
        {
            var current = Sql.Rows(db, tx, ReadSite, SiteColumns + " WHERE s.id = @i", ("@i", siteId)).FirstOrDefault();
            if (current is null) return null;
            long now = Now;
            if (grace > TimeSpan.Zero)
            {
                Sql.Execute(db, tx, "INSERT INTO site_retired_keys (site_key, site_id, retired_at, valid_until) VALUES (@k, @s, @n, @u)",
                    ("@k", current.SiteKey), ("@s", siteId), ("@n", now), ("@u", now + (long)grace.TotalMilliseconds));
            }
            // Expired retired keys of the site go with every rotation: the table stays small.
            Sql.Execute(db, tx, "DELETE FROM site_retired_keys WHERE site_id = @s AND valid_until <= @n", ("@s", siteId), ("@n", now));
            Sql.Execute(db, tx, "UPDATE sites SET site_key = @k WHERE id = @i", ("@k", newKey), ("@i", siteId));
            return current with { SiteKey = newKey };
        });
    }

    public Site? RevokeSiteKey(long siteId, string siteKey)
    {
        var site = FindSiteById(siteId);
        if (site is null) return null;
        if (site.SiteKey == siteKey) return RotateSiteKey(siteId, TimeSpan.Zero);
        return Change("site key", "DELETE FROM site_retired_keys WHERE site_id = @s AND site_key = @k", ("@s", siteId), ("@k", siteKey)) ? site : null;
    }

    public IReadOnlyList<RetiredSiteKey> ListRetiredSiteKeys(long siteId) =>
        Read(r => new RetiredSiteKey(r.GetString(0), r.Time(1), r.Time(2)),
            "SELECT site_key, retired_at, valid_until FROM site_retired_keys WHERE site_id = @s AND valid_until > @n ORDER BY retired_at", ("@s", siteId), ("@n", Now));

    public Site? FindSiteById(long siteId) => Read(ReadSite, SiteColumns + " WHERE s.id = @i", ("@i", siteId)).FirstOrDefault();

    public Site? FindSiteByPublicId(string publicId) => Read(ReadSite, SiteColumns + " WHERE s.public_id = @p", ("@p", publicId)).FirstOrDefault();

    public IReadOnlyList<Site> ListSites(long? merchantId = null) => merchantId is { } m
        ? Read(ReadSite, SiteColumns + " WHERE s.merchant_id = @m ORDER BY s.id", ("@m", m))
        : Read(ReadSite, SiteColumns + " ORDER BY s.id");

    public bool UpdateSite(long siteId, string domain, string timeZone) =>
        Change("site", "UPDATE sites SET domain = @d, time_zone = @z WHERE id = @i", ("@d", SiteRules.NormalizeDomain(domain)), ("@z", SiteRules.ValidTimeZone(timeZone)), ("@i", siteId));

    public bool AddAllowedOrigin(long siteId, string origin) =>
        Change("allowed origin", "INSERT INTO site_allowed_origins (site_id, origin) VALUES (@s, @o) ON CONFLICT (site_id, origin) DO NOTHING",
            ("@s", siteId), ("@o", ValidOrigin(origin)));

    public bool RemoveAllowedOrigin(long siteId, string origin) =>
        Change("allowed origin", "DELETE FROM site_allowed_origins WHERE site_id = @s AND origin = @o", ("@s", siteId), ("@o", ValidOrigin(origin)));

    public IReadOnlyList<string> ListAllowedOrigins(long siteId) =>
        Read(r => r.GetString(0), "SELECT origin FROM site_allowed_origins WHERE site_id = @s ORDER BY origin", ("@s", siteId));

    /// <summary>An origin as browsers send it (scheme://host[:port]), or scheme://*.domain; see <see cref="OriginPolicy"/>.</summary>
    private static string ValidOrigin(string origin) => OriginPolicy.Normalize(origin);

    // API clients

    private const string ClientColumns = "SELECT id, client_id, secret_hash, display_name, scopes, merchant_id, created_at, revoked_at FROM api_clients";

    private static ApiClient ReadClient(DbDataReader r) =>
        new(r.Long(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.Long(5), r.Time(6), r.OptionalTime(7));

    private static string NormalizeScopes(string scopes) =>
        string.Join(' ', scopes.Split(' ', StringSplitOptions.RemoveEmptyEntries).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal));

    public ApiClient CreateApiClient(long merchantId, string clientId, string secretHash, string displayName, string scopes)
    {
        clientId = Required(clientId, "client id");
        return Write($"client '{clientId}'", (db, tx) =>
        {
            var client = new ApiClient(NextId(db, tx, "api_clients"), clientId, Required(secretHash, "secret hash"), displayName,
                NormalizeScopes(scopes), merchantId, DateTimeOffset.FromUnixTimeMilliseconds(Now), null);
            Sql.Execute(db, tx, "INSERT INTO api_clients (id, client_id, secret_hash, display_name, scopes, merchant_id, created_at) VALUES (@i, @c, @h, @d, @s, @m, @t)",
                ("@i", client.Id), ("@c", clientId), ("@h", client.SecretHash), ("@d", displayName), ("@s", client.Scopes), ("@m", merchantId), ("@t", Sql.Millis(client.CreatedAt)));
            return client;
        });
    }

    public ApiClient? FindApiClient(string clientId) => Read(ReadClient, ClientColumns + " WHERE client_id = @c", ("@c", clientId)).FirstOrDefault();

    public IReadOnlyList<ApiClient> ListApiClients(long merchantId) => Read(ReadClient, ClientColumns + " WHERE merchant_id = @m ORDER BY id", ("@m", merchantId));

    public bool RevokeApiClient(string clientId) =>
        Change("client", "UPDATE api_clients SET revoked_at = @t WHERE client_id = @c AND revoked_at IS NULL", ("@t", Now), ("@c", clientId));

    // Personal API keys

    private const string KeyColumns = "SELECT id, prefix, name, scopes, merchant_id, user_id, created_at, last_used_at, revoked_at, secret_hash FROM api_keys";

    private static ApiKey ReadKey(DbDataReader r) =>
        new(r.Long(0), r.GetString(1), r.GetString(2), r.GetString(3), r.Long(4), r.Long(5), r.Time(6), r.OptionalTime(7), r.OptionalTime(8));

    public ApiKey CreateApiKey(long merchantId, long userId, string prefix, byte[] secretHash, string name, string scopes) =>
        Write("API key", (db, tx) =>
        {
            var key = new ApiKey(NextId(db, tx, "api_keys"), prefix, name, NormalizeScopes(scopes), merchantId, userId, DateTimeOffset.FromUnixTimeMilliseconds(Now), null, null);
            Sql.Execute(db, tx, "INSERT INTO api_keys (id, prefix, secret_hash, name, scopes, merchant_id, user_id, created_at) VALUES (@i, @p, @h, @n, @s, @m, @u, @t)",
                ("@i", key.Id), ("@p", prefix), ("@h", secretHash), ("@n", name), ("@s", key.Scopes), ("@m", merchantId), ("@u", userId), ("@t", Sql.Millis(key.CreatedAt)));
            return key;
        });

    public (ApiKey Key, byte[] SecretHash)? FindApiKey(string prefix) =>
        Read(r => (ReadKey(r), (byte[])r.GetValue(9)), KeyColumns + " WHERE prefix = @p", ("@p", prefix)) is [var found] ? found : null;

    public IReadOnlyList<ApiKey> ListApiKeys(long merchantId, long? userId = null, long afterId = 0, int limit = int.MaxValue) =>
        userId is { } user
            ? Read(ReadKey, KeyColumns + " WHERE merchant_id = @m AND user_id = @u AND id > @a ORDER BY id LIMIT @l", ("@m", merchantId), ("@u", user), ("@a", afterId), ("@l", limit))
            : Read(ReadKey, KeyColumns + " WHERE merchant_id = @m AND id > @a ORDER BY id LIMIT @l", ("@m", merchantId), ("@a", afterId), ("@l", limit));

    public void TouchApiKey(long id, DateTimeOffset usedAt) =>
        Change("API key", "UPDATE api_keys SET last_used_at = @t WHERE id = @i", ("@t", Sql.Millis(usedAt)), ("@i", id));

    public bool RevokeApiKey(long id) =>
        Change("API key", "UPDATE api_keys SET revoked_at = @t WHERE id = @i AND revoked_at IS NULL", ("@t", Now), ("@i", id));

    // Goals and funnels

    private const string GoalColumns = "SELECT id, site_id, name, kind, match_value, created_at, property_key, property_value, currency FROM goals";

    private static Goal ReadGoal(DbDataReader r) => new(r.Long(0), r.Long(1), r.GetString(2), r.GetString(3), r.GetString(4), r.Time(5))
    {
        Property = r.IsDBNull(6) ? null : new GoalProperty(r.GetString(6), r.IsDBNull(7) ? "" : r.GetString(7)),
        Currency = r.IsDBNull(8) ? null : r.GetString(8),
    };

    private static string ValidKind(string kind) =>
        kind is GoalKinds.Event or GoalKinds.Page ? kind : throw new ArgumentException($"goal kind: '{kind}' is not '{GoalKinds.Event}' or '{GoalKinds.Page}'.");

    /// <summary>The same currency rule as ingest (three capital letters), so a goal can only name
    /// a currency an event can carry; only event goals have revenue.</summary>
    private static string? ValidCurrency(string? currency, string kind) => currency switch
    {
        null => null,
        _ when kind != GoalKinds.Event => throw new ArgumentException("goal currency: only event goals have revenue."),
        { Length: 3 } when currency.All(char.IsAsciiLetterUpper) => currency,
        _ => throw new ArgumentException($"goal currency: '{currency}' is not an ISO 4217 code such as EUR."),
    };

    private static GoalProperty? ValidProperty(GoalProperty? property) =>
        property is null ? null : new GoalProperty(Required(property.Key, "goal property key"), property.Value ?? "");

    public Goal CreateGoal(long siteId, string name, string kind, string match, GoalProperty? property = null, string? currency = null)
    {
        name = Required(name, "goal name");
        kind = ValidKind(kind);
        match = Required(match, "goal match");
        property = ValidProperty(property);
        currency = ValidCurrency(currency, kind);
        return Write($"goal '{name}'", (db, tx) =>
        {
            var goal = new Goal(NextId(db, tx, "goals"), siteId, name, kind, match, DateTimeOffset.FromUnixTimeMilliseconds(Now))
            {
                Property = property,
                Currency = currency,
            };
            Sql.Execute(db, tx, """
                INSERT INTO goals (id, site_id, name, kind, match_value, created_at, property_key, property_value, currency)
                VALUES (@i, @s, @n, @k, @v, @t, @pk, @pv, @c)
                """,
                ("@i", goal.Id), ("@s", siteId), ("@n", name), ("@k", kind), ("@v", match), ("@t", Sql.Millis(goal.CreatedAt)),
                ("@pk", property?.Key), ("@pv", property?.Value), ("@c", currency));
            return goal;
        });
    }

    public Goal? GetGoal(long id) => Read(ReadGoal, GoalColumns + " WHERE id = @i", ("@i", id)).FirstOrDefault();

    public IReadOnlyList<Goal> ListGoals(long siteId) => Read(ReadGoal, GoalColumns + " WHERE site_id = @s ORDER BY id", ("@s", siteId));

    public bool UpdateGoal(long id, string name, string kind, string match, GoalProperty? property = null, string? currency = null)
    {
        kind = ValidKind(kind);
        property = ValidProperty(property);
        return Change($"goal '{name}'", """
            UPDATE goals SET name = @n, kind = @k, match_value = @v, property_key = @pk, property_value = @pv, currency = @c WHERE id = @i
            """,
            ("@n", Required(name, "goal name")), ("@k", kind), ("@v", Required(match, "goal match")),
            ("@pk", property?.Key), ("@pv", property?.Value), ("@c", ValidCurrency(currency, kind)), ("@i", id));
    }

    public bool DeleteGoal(long id) => Change("goal", "DELETE FROM goals WHERE id = @i", ("@i", id));

    private static int ValidWindow(int seconds) => seconds is >= 1 and <= Funnel.MaxWindowSeconds ? seconds
        : throw new ArgumentException($"funnel window: {seconds} seconds is not between 1 and {Funnel.MaxWindowSeconds} (30 days).");

    private static string ValidOrder(string order) => order is FunnelOrders.Sequential or FunnelOrders.Strict ? order
        : throw new ArgumentException($"funnel order: '{order}' is not '{FunnelOrders.Sequential}' or '{FunnelOrders.Strict}'.");

    private static void WriteSteps(DbConnection db, DbTransaction tx, long funnelId, long siteId, IReadOnlyList<long> goalIds)
    {
        if (goalIds.Count is < 2 or > 8) throw new ArgumentException("funnel: between 2 and 8 steps.");
        Sql.Execute(db, tx, "DELETE FROM funnel_steps WHERE funnel_id = @f", ("@f", funnelId));
        for (int i = 0; i < goalIds.Count; i++)
        {
            // A step must be a goal of the funnel's own site.
            if (Sql.Scalar(db, tx, "SELECT site_id FROM goals WHERE id = @g", ("@g", goalIds[i])) is not { } owner ||
                Convert.ToInt64(owner, System.Globalization.CultureInfo.InvariantCulture) != siteId)
                throw new ArgumentException($"funnel step {i + 1}: goal {goalIds[i]} is not a goal of this site.");
            Sql.Execute(db, tx, "INSERT INTO funnel_steps (funnel_id, position, goal_id) VALUES (@f, @p, @g)", ("@f", funnelId), ("@p", i), ("@g", goalIds[i]));
        }
    }

    public Funnel CreateFunnel(long siteId, string name, IReadOnlyList<long> goalIds, int windowSeconds = Funnel.DefaultWindowSeconds, string order = FunnelOrders.Sequential)
    {
        name = Required(name, "funnel name");
        windowSeconds = ValidWindow(windowSeconds);
        order = ValidOrder(order);
        return Write($"funnel '{name}'", (db, tx) =>
        {
            long id = NextId(db, tx, "funnels");
            Sql.Execute(db, tx, "INSERT INTO funnels (id, site_id, name, created_at, window_seconds, step_order) VALUES (@i, @s, @n, @t, @w, @o)",
                ("@i", id), ("@s", siteId), ("@n", name), ("@t", Now), ("@w", (long)windowSeconds), ("@o", order));
            WriteSteps(db, tx, id, siteId, goalIds);
            return LoadFunnels(db, tx, "f.id = @p", id)[0];
        });
    }

    private static List<Funnel> LoadFunnels(DbConnection db, DbTransaction? tx, string where, long parameter)
    {
        var rows = Sql.Rows(db, tx, r => (Id: r.Long(0), Site: r.Long(1), Name: r.GetString(2), Created: r.Time(3), Goal: r.IsDBNull(4) ? (long?)null : r.Long(4),
                Window: (int)r.Long(5), Order: r.GetString(6)),
            $"""
            SELECT f.id, f.site_id, f.name, f.created_at, s.goal_id, f.window_seconds, f.step_order FROM funnels f
            LEFT JOIN funnel_steps s ON s.funnel_id = f.id WHERE {where} ORDER BY f.id, s.position
            """, ("@p", parameter));
        return rows.GroupBy(r => r.Id)
            .Select(g => new Funnel(g.Key, g.First().Site, g.First().Name, g.Where(r => r.Goal is not null).Select(r => r.Goal!.Value).ToList(), g.First().Created)
            {
                WindowSeconds = g.First().Window,
                Order = g.First().Order,
            })
            .ToList();
    }

    public Funnel? GetFunnel(long id)
    {
        using var db = OpenConnection();
        return LoadFunnels(db, null, "f.id = @p", id).FirstOrDefault();
    }

    public IReadOnlyList<Funnel> ListFunnels(long siteId)
    {
        using var db = OpenConnection();
        return LoadFunnels(db, null, "f.site_id = @p", siteId);
    }

    public bool UpdateFunnel(long id, string name, IReadOnlyList<long> goalIds, int windowSeconds = Funnel.DefaultWindowSeconds, string order = FunnelOrders.Sequential)
    {
        name = Required(name, "funnel name");
        windowSeconds = ValidWindow(windowSeconds);
        order = ValidOrder(order);
        return Write($"funnel '{name}'", (db, tx) =>
        {
            if (Sql.Scalar(db, tx, "SELECT site_id FROM funnels WHERE id = @i", ("@i", id)) is not { } site) return false;
            Sql.Execute(db, tx, "UPDATE funnels SET name = @n, window_seconds = @w, step_order = @o WHERE id = @i",
                ("@n", name), ("@w", (long)windowSeconds), ("@o", order), ("@i", id));
            WriteSteps(db, tx, id, Convert.ToInt64(site, System.Globalization.CultureInfo.InvariantCulture), goalIds);
            return true;
        });
    }

    public bool DeleteFunnel(long id) => Change("funnel", "DELETE FROM funnels WHERE id = @i", ("@i", id));

    // Visitor salts

    public byte[] GetOrCreateSalt(DateOnly day, byte[] candidate, DateOnly deleteBefore) =>
        Write("salt", (db, tx) =>
        {
            string d = day.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
            // Under concurrency the second inserter waits for the first to commit, then does
            // nothing; its SELECT (a new statement, a new snapshot) reads the first one's salt.
            Sql.Execute(db, tx, "INSERT INTO visitor_salts (day, salt) VALUES (@d, @s) ON CONFLICT (day) DO NOTHING", ("@d", d), ("@s", candidate));
            Sql.Execute(db, tx, "DELETE FROM visitor_salts WHERE day < @old", ("@old", deleteBefore.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture)));
            return (byte[])Sql.Scalar(db, tx, "SELECT salt FROM visitor_salts WHERE day = @d", ("@d", d))!;
        });

    private static string Required(string? value, string what) =>
        string.IsNullOrWhiteSpace(value) ? throw new ArgumentException($"{what} is required.") : value.Trim();

    public abstract void Dispose();
}
