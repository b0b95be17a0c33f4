using Microsoft.EntityFrameworkCore;

namespace Analytics.Identity;

/// <summary>OpenIddict's applications, authorizations, scopes and tokens (its EF Core model, the
/// <c>OpenIddict*</c> tables), kept in the control-plane database.</summary>
public sealed class IdentityDbContext(DbContextOptions<IdentityDbContext> options) : DbContext(options);
