using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.HttpOverrides;
using IPNetwork = System.Net.IPNetwork;

namespace Analytics.FastIngest.Transport;

/// <summary>Which header the trusted proxies write the client's address into. Exactly one is
/// believed: a proxy that writes one passes the other through as the client sent it, so
/// believing both would let a client choose its own address.</summary>
public enum ClientAddressHeader
{
    /// <summary>`X-Forwarded-For` (HAProxy's `option forwardfor`, nginx, cloud load balancers); `Forwarded` is ignored.</summary>
    XForwardedFor,
    /// <summary>RFC 7239 `Forwarded: for=…` (HAProxy's `option forwarded`, Envoy, some CDNs); `X-Forwarded-For` is ignored.</summary>
    Forwarded,
}

/// <summary>
/// The client's own address behind load balancers and reverse proxies.
///
/// Contract: `X-Forwarded-For`, or RFC 7239 `Forwarded: for=…` (one of them, as configured:
/// <see cref="ClientAddressHeader"/>), is honoured only when the connection comes from a
/// configured trusted proxy (an address or a network). ASP.NET Core's
/// ForwardedHeaders middleware does the work: it walks the list from the right, replacing the
/// connection's remote address with each entry while the address it came from is trusted, so
/// the result is the right-most address not in the trusted list. Entries a client wrote itself
/// sit to the left of what the proxies appended and are never reached: `X-Forwarded-For:
/// 1.2.3.4, 198.51.100.7` through one trusted proxy is 198.51.100.7. From an untrusted peer the
/// headers change nothing. With no trusted proxies configured (the default) nothing is
/// honoured at all; ASP.NET Core's own default (trust loopback) is cleared on purpose, since a
/// local reverse proxy is something an operator says, not something we assume.
/// The WebSocket and HTTP ingest paths both read HttpContext.Connection.RemoteIpAddress after
/// this middleware, so both see the client's address.
/// </summary>
public static class TrustedProxies
{
    /// <summary>Parses "10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8" entries (commas or whitespace
    /// may also separate several in one string). False with a one-line error for anything else.</summary>
    public static bool TryParse(IEnumerable<string> entries, out IReadOnlyList<IPAddress> proxies, out IReadOnlyList<IPNetwork> networks, out string? error)
    {
        var addresses = new List<IPAddress>();
        var nets = new List<IPNetwork>();
        proxies = addresses;
        networks = nets;
        error = null;
        foreach (string entry in entries.SelectMany(e => e.Split([',', ' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            if (entry.Contains('/'))
            {
                if (!IPNetwork.TryParse(entry, out var network) || !IPAddress.TryParse(entry.AsSpan(0, entry.IndexOf('/')), out var written) || !written.Equals(network.BaseAddress))
                {
                    error = $"trusted proxies: \"{entry}\" is not a network (write it as 10.0.0.0/8 or fd00::/8, host bits zero)";
                    return false;
                }
                nets.Add(network);
            }
            else if (IPAddress.TryParse(entry, out var address))
            {
                addresses.Add(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);
            }
            else
            {
                error = $"trusted proxies: \"{entry}\" is not an IP address or network";
                return false;
            }
        }
        return true;
    }

    /// <summary>Adds the forwarded-headers step for the given trusted proxies; nothing when the
    /// list is empty. Call it first, before anything reads the remote address.</summary>
    public static IApplicationBuilder UseTrustedProxies(this IApplicationBuilder app, IReadOnlyList<string> trusted, ClientAddressHeader header = ClientAddressHeader.XForwardedFor)
    {
        if (!TryParse(trusted, out var proxies, out var networks, out string? error)) throw new ArgumentException(error);
        if (proxies.Count == 0 && networks.Count == 0) return app;
        var options = new ForwardedHeadersOptions
        {
            ForwardedHeaders = ForwardedHeaders.XForwardedFor,
            // No hop limit: every trusted hop is unwrapped, so the answer is the right-most
            // untrusted entry however many of our own proxies are in front. The work is bounded
            // by the header's length, which Kestrel limits (32 KB of request headers).
            ForwardLimit = null,
        };
        options.KnownProxies.Clear();
        options.KnownIPNetworks.Clear();
        foreach (var proxy in proxies)
        {
            options.KnownProxies.Add(proxy);
            // Kestrel reports IPv4 peers on a dual-stack socket as ::ffff:a.b.c.d.
            if (proxy.AddressFamily == AddressFamily.InterNetwork) options.KnownProxies.Add(proxy.MapToIPv6());
        }
        foreach (var network in networks)
        {
            options.KnownIPNetworks.Add(network);
            if (network.BaseAddress.AddressFamily == AddressFamily.InterNetwork)
                options.KnownIPNetworks.Add(new IPNetwork(network.BaseAddress.MapToIPv6(), network.PrefixLength + 96));
        }
        // With X-Forwarded-For nothing more is needed: ForwardedHeaders reads only that header.
        if (header == ClientAddressHeader.Forwarded) app.Use(TranslateForwarded);
        return app.UseForwardedHeaders(options);
    }

    /// <summary>
    /// ForwardedHeaders reads only X-Forwarded-For. With proxies that write the standard
    /// `Forwarded` header, its `for=` values are copied into X-Forwarded-For, in order, so the same
    /// trust rules apply, and an X-Forwarded-For the client sent (which such a proxy passes
    /// through) is dropped first: believed, it would let the client name its own address.
    /// Elements without `for=`, and obfuscated (`_hidden`) or `unknown` values, become `unknown`,
    /// which stops the middleware there (it never trusts past what it cannot read).
    /// </summary>
    private static Task TranslateForwarded(HttpContext context, Func<Task> next)
    {
        var headers = context.Request.Headers;
        headers.Remove(ForwardedHeadersDefaults.XForwardedForHeaderName);
        if (headers.TryGetValue("Forwarded", out var forwarded))
            headers[ForwardedHeadersDefaults.XForwardedForHeaderName] = ForwardedToXForwardedFor(forwarded.ToString());
        return next();
    }

    /// <summary>`for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"` → `192.0.2.60, [2001:db8::17]:4711`.</summary>
    internal static string ForwardedToXForwardedFor(string forwarded)
    {
        var entries = new List<string>();
        foreach (string element in SplitOutsideQuotes(forwarded, ','))
        {
            string value = "unknown";
            foreach (string pair in SplitOutsideQuotes(element, ';'))
            {
                int eq = pair.IndexOf('=');
                if (eq < 0 || !pair.AsSpan(0, eq).Trim().Equals("for", StringComparison.OrdinalIgnoreCase)) continue;
                value = pair[(eq + 1)..].Trim().Trim('"');
                break;
            }
            entries.Add(value.Length == 0 || value.StartsWith('_') ? "unknown" : value);
        }
        return string.Join(", ", entries);
    }

    private static IEnumerable<string> SplitOutsideQuotes(string text, char separator)
    {
        int start = 0;
        bool quoted = false;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '"') quoted = !quoted;
            else if (text[i] == separator && !quoted)
            {
                yield return text[start..i];
                start = i + 1;
            }
        }
        yield return text[start..];
    }
}
