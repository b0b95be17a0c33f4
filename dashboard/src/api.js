// The page's only way to the server: OAuth2 authorization code + PKCE against this host's
// authorization server (public client "dashboard", redirect back to "/"), tokens in
// sessionStorage (this tab only), and the public API with the user's bearer token. The page
// never sees a password; a 401 renews the 15-minute access token once with the refresh token.

const CLIENT_ID = "dashboard";
const redirectUri = () => location.origin + "/";
const b64url = bytes => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

export const session = {
  get: () => JSON.parse(sessionStorage.getItem("tokens") || "null"),
  set: tokens => sessionStorage.setItem("tokens", JSON.stringify(tokens)),
  /** A new sign-in: nothing cached for the previous user stays. */
  start: tokens => { session.clear(); session.set(tokens); },
  // The cached site list (main.js) belongs to the signed-in user: it goes with the tokens.
  clear: () => { sessionStorage.removeItem("tokens"); sessionStorage.removeItem("sites"); },
};

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

export async function signIn() {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  // The dashboard's whole state (URL query) comes back after the round trip.
  sessionStorage.setItem("pkce", JSON.stringify({ verifier, state, search: location.search }));
  location.assign(`/connect/authorize?client_id=${CLIENT_ID}&response_type=code&scope=${encodeURIComponent("stats:read offline_access")}` +
    `&redirect_uri=${encodeURIComponent(redirectUri())}&code_challenge=${challenge}&code_challenge_method=S256&state=${state}`);
}

async function tokenRequest(form, fresh = false) {
  const response = await fetch("/connect/token", { method: "POST", body: new URLSearchParams({ client_id: CLIENT_ID, ...form }) });
  const body = await response.json();
  if (!response.ok) throw new ApiError(body.error_description || body.error || response.statusText, response.status);
  (fresh ? session.start : session.set)({ access: body.access_token, refresh: body.refresh_token });
}

/** Back from the authorization endpoint with ?code=&state=: redeem the code once, restore the URL. */
export async function completeSignIn() {
  const params = new URLSearchParams(location.search);
  const pending = JSON.parse(sessionStorage.getItem("pkce") || "null");
  if (!params.has("code") || !pending) return;
  sessionStorage.removeItem("pkce");
  history.replaceState(null, "", "/" + (pending.search || ""));
  if (params.get("state") !== pending.state) throw new Error("Sign-in answer did not match this tab; sign in again.");
  await tokenRequest({ grant_type: "authorization_code", code: params.get("code"), redirect_uri: redirectUri(), code_verifier: pending.verifier }, true);
}

/** Revokes the refresh token and ends the server's sign-in session (its cookie), so the next
 * "Sign in" asks for the password again instead of passing straight through. */
export async function signOut() {
  const tokens = session.get();
  session.clear();
  await Promise.all([
    tokens?.refresh ? fetch("/connect/revoke", { method: "POST", body: new URLSearchParams({ client_id: CLIENT_ID, token: tokens.refresh, token_type_hint: "refresh_token" }) }) : null,
    fetch("/account/logout", { method: "POST", redirect: "manual" }),
  ]);
}

// Several requests may meet an expired token at once: one refresh serves them all (a refresh
// token is redeemed once).
let refreshing = null;
async function refreshTokens(tokens) {
  refreshing ??= tokenRequest({ grant_type: "refresh_token", refresh_token: tokens.refresh }).finally(() => { refreshing = null; });
  return refreshing;
}

/** A request with the bearer token; JSON in and out unless `accept` says otherwise. */
export async function api(url, { body, accept = "application/json", retry = true } = {}) {
  const tokens = session.get();
  if (!tokens) throw new ApiError("Sign in to see this merchant's numbers.", 401);
  const headers = { Authorization: `Bearer ${tokens.access}`, Accept: accept };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, { method: body === undefined ? "GET" : "POST", headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401 && retry && tokens.refresh) {
    try { await refreshTokens(tokens); } catch { session.clear(); throw new ApiError("Signed out: sign in again.", 401); }
    return api(url, { body, accept, retry: false });
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    const error = new ApiError(problem.detail || problem.title || response.statusText, response.status);
    // A 503 (the store's circuit breaker, a query past its time limit) says when to try again.
    error.retryAfter = Number(response.headers.get("Retry-After")) || 0;
    throw error;
  }
  return accept === "application/json" ? response.json() : response.blob();
}

export const query = body => api("/v1/query", { body });
