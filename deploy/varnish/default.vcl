# Edge cache in front of the query nodes (docs/operations.md, "Edge cache"). Varnish 7.1 with
# xkey from varnish-modules. The contract:
#  * Only GET/HEAD of /v1/ with an Authorization header and no Cookie are looked up; everything
#    else (ingest, admin, sign-in, the dashboard's cookie session) goes straight to the backend.
#  * The Authorization header is part of the cache key (vcl_hash), on top of the answers'
#    `Vary: Authorization`: an answer is only ever served to the exact credential that fetched it.
#    A hit is not checked with the backend, so the backend bounds the lifetime by the token's exp
#    and purges a revoked API key's answers (docs/operations.md, "Edge cache").
#  * Lifetime: Surrogate-Control max-age (the answers' edge lifetime), else Cache-Control
#    max-age. The answers say `private` to every other shared cache; this one is configured to
#    keep them because it keys on the credential. Only 200s are stored.
#  * Answers are filed under their Surrogate-Key names (xkey). `PURGE` or `XKEY-PURGE` with an
#    `xkey: k1 k2 ...` header from the purgers ACL drops them (hard); add `xkey-soft: 1` for a
#    soft purge (the object may then be revalidated with its ETag instead of refetched).
#  * Surrogate-Key and Surrogate-Control never reach clients; X-Cache says HIT, MISS or PASS.
# The backend below is the query node; the test rewrites the port (tests/EndToEnd.Tests/EdgeCacheTests.cs).
vcl 4.1;

import std;
import xkey;

backend default {
    .host = "127.0.0.1";
    .port = "5080";
    .connect_timeout = 2s;
    .first_byte_timeout = 60s;
}

# Who may purge: the nodes' purge notifier (every node with --edge-purge-url: Rollup purges
# reprocessed site-days, query nodes revoked API keys and changed goals); here it runs next to the edge.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE" || req.method == "XKEY-PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (!req.http.xkey) {
            return (synth(400, "A purge needs an xkey header naming the surrogate keys"));
        }
        if (req.http.xkey-soft == "1") {
            set req.http.x-purged = xkey.softpurge(req.http.xkey);
        } else {
            set req.http.x-purged = xkey.purge(req.http.xkey);
        }
        return (synth(200, "Purged " + req.http.x-purged + " objects"));
    }
    if ((req.method != "GET" && req.method != "HEAD") || req.url !~ "^/v1/"
        || !req.http.Authorization || req.http.Cookie) {
        set req.http.x-cache-pass = "1";
        return (pass);
    }
    # The built-in vcl_recv would pass every request with Authorization: this one is cacheable
    # because vcl_hash keys on it.
    return (hash);
}

sub vcl_hash {
    hash_data(req.url);
    if (req.http.host) {
        hash_data(req.http.host);
    }
    hash_data(req.http.Authorization);
    return (lookup);
}

sub vcl_backend_fetch {
    unset bereq.http.x-cache-pass;
}

sub vcl_backend_response {
    if (bereq.uncacheable) {
        return (deliver);
    }
    if (beresp.status != 200 || beresp.http.Set-Cookie || beresp.http.Cache-Control ~ "no-store|no-cache") {
        set beresp.uncacheable = true;
        set beresp.ttl = 120s;
        return (deliver);
    }
    if (beresp.http.Surrogate-Control ~ "max-age=[0-9]+") {
        set beresp.ttl = std.duration(regsub(beresp.http.Surrogate-Control, "^.*max-age=([0-9]+).*$", "\1") + "s", 0s);
    } else if (beresp.http.Cache-Control ~ "max-age=[0-9]+") {
        set beresp.ttl = std.duration(regsub(beresp.http.Cache-Control, "^.*max-age=([0-9]+).*$", "\1") + "s", 0s);
    } else {
        # No lifetime stated: not stored.
        set beresp.uncacheable = true;
        set beresp.ttl = 120s;
        return (deliver);
    }
    # No stale answers: after a purge the next request waits for the new numbers.
    set beresp.grace = 0s;
    # Kept a little past expiry so a soft-purged answer can be revalidated with its ETag.
    set beresp.keep = 1h;
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
    # Skip the built-in vcl_backend_response, which refuses `private` answers.
    return (deliver);
}

sub vcl_deliver {
    unset resp.http.xkey;
    unset resp.http.Surrogate-Key;
    unset resp.http.Surrogate-Control;
    unset resp.http.Via;
    if (req.http.x-cache-pass) {
        set resp.http.X-Cache = "PASS";
    } else if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
