// Real-browser test harness: the real Analytics server (src/Host, built in Release), a static
// server for the test pages and example apps, and Debian's Chromium driven by playwright-core.
//
// Every test owns its data: each creates its own site through the admin API, so counts never mix
// between tests even though one server serves a whole test file. Ports are picked free at run
// time; everything listens on 127.0.0.1 only.
//
// Everything a harness function starts (the server child, static servers, browsers) is tracked
// from the moment it starts, so one `after(stopAll)` in a test file stops all of it on every path:
// a before() hook that failed halfway (say the server started but Chromium did not), a test that
// threw, or a start that was still in flight when another failed. A signal stops everything too,
// and at process exit any child still alive is SIGKILLed, so a failing run never leaves a server
// behind or hangs on one (a live child's pipes would keep node's event loop alive forever).
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { constants, tmpdir } from "node:os";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const agentsDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const repoDir = join(agentsDir, "..");
const dll = process.env.ANALYTICS_DLL || join(repoDir, "src", "Host", "bin", "Release", "net10.0", "analytics.dll");

/** A desktop Chrome user agent: the server classifies "HeadlessChrome" as a bot and counts nothing. */
export const DESKTOP_UA =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** What is running: each entry has stop() (graceful, async) and kill() (synchronous, at exit). */
const running = new Set();

function track(stop, kill = () => {}) {
  const entry = { stop, kill };
  running.add(entry);
  return entry;
}

/** Starts still in flight: stopAll() waits for them, so what they start is stopped too. */
const starting = new Set();

/** Runs a start function as one tracked start (see stopAll). */
async function starts(fn) {
  const p = fn();
  starting.add(p);
  try {
    return await p;
  } finally {
    starting.delete(p);
  }
}

/** Stops everything the harness started and has not stopped yet; for `after(stopAll)`. */
export async function stopAll() {
  while (running.size > 0 || starting.size > 0) {
    // Tracked things first: a server still starting is tracked already, and killing it ends
    // its start at once instead of after its health-check deadline.
    const entries = [...running];
    running.clear();
    await Promise.allSettled(entries.map((e) => e.stop()));
    await Promise.allSettled([...starting]);
  }
}

process.once("exit", () => {
  for (const e of running) e.kill();
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(signal, () => {
    stopAll().finally(() => process.exit(128 + constants.signals[signal]));
  });
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function ensureServerBuilt() {
  if (existsSync(dll)) return;
  // Standalone `npm test`: build the host once (test.sh has built it already).
  execFileSync("dotnet", ["build", join(repoDir, "src", "Host"), "-c", "Release", "-nologo", "-v", "quiet", "-clp:ErrorsOnly"], {
    stdio: "inherit",
  });
}

/** Starts `analytics serve --demo` on a fresh data directory and a free port. */
export const startAnalytics = () => starts(startAnalyticsNow);

async function startAnalyticsNow() {
  ensureServerBuilt();
  const dataDir = mkdtempSync(join(tmpdir(), "agents-test-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let child;
  let log = "";
  let token;

  /**
   * A bearer token as a script would get one: `analytics bootstrap` (once per data directory)
   * creates the first admin client, then the token endpoint (client credentials) issues a token
   * with the scopes the tests use. Access tokens live 15 minutes: a new one after 10.
   */
  async function accessToken() {
    if (token && token.until > Date.now()) return token.value;
    if (!token) {
      const saved = JSON.parse(execFileSync("dotnet", [dll, "bootstrap", "--data", dataDir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }));
      token = { clientId: saved.clientId, clientSecret: saved.clientSecret };
    }
    const r = await fetch(`${base}/connect/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: token.clientId, client_secret: token.clientSecret, scope: "stats:read sites:write" }),
    });
    if (!r.ok) throw new Error(`token: ${r.status} ${await r.text()}`);
    token.value = (await r.json()).access_token;
    token.until = Date.now() + 10 * 60_000;
    return token.value;
  }

  async function start() {
    child = spawn("dotnet", [dll, "serve", "--data", dataDir, "--urls", base, "--demo", "--quiet"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, DOTNET_NOLOGO: "1", DOTNET_CLI_TELEMETRY_OPTOUT: "1" },
    });
    child.stdout.on("data", (d) => (log += d));
    child.stderr.on("data", (d) => (log += d));
    const exited = new Promise((r) => child.once("exit", r));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      // A signal counts too: stopAll() may have killed a server that was still starting.
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`analytics exited with ${child.exitCode ?? child.signalCode}:\n${log}`);
      }
      try {
        // Wrapped: returning the promise itself would make start() wait for the exit.
        if ((await fetch(`${base}/healthz`)).ok) return { exited };
      } catch {}
      await sleep(100);
    }
    throw new Error(`analytics did not become healthy:\n${log}`);
  }

  const entry = track(
    () => server.stop(),
    () => {
      child?.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    },
  );
  let exited;
  const server = {
    base,
    ws: base.replace("http", "ws"),
    dataDir,
    get log() {
      return log;
    },
    /** Kills the server (SIGKILL: no graceful shutdown, like a crash). */
    async kill() {
      child.kill("SIGKILL");
      await exited;
    },
    async restart() {
      ({ exited } = await start());
    },
    async stop() {
      running.delete(entry);
      if (child && child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await gone;
        clearTimeout(t);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
    /** A new site that only this test uses (in the bootstrap admin client's merchant). */
    async createSite() {
      const r = await fetch(`${base}/v1/sites`, {
        method: "POST",
        headers: { authorization: `Bearer ${await accessToken()}`, "content-type": "application/json" },
        // The test pages are served from http://127.0.0.1:PORT (startStatic): a site allows its
        // domain's pages by default (docs/security.md, "Origins"), so that is its domain.
        body: JSON.stringify({ domain: "127.0.0.1" }),
      });
      if (r.status !== 201) throw new Error(`create site: ${r.status} ${await r.text()}`);
      return await r.json(); // { id (the public site id), siteKey, ... }
    },
    /** Counts from the query API, over yesterday..tomorrow (UTC) so midnight cannot split a test. */
    async aggregate(siteId, event) {
      const day = (d) => new Date(Date.now() + d * 864e5).toISOString().slice(0, 10);
      const q = `metrics=pageviews,events,visitors,visits&from=${day(-1)}&to=${day(1)}${event ? `&event=${encodeURIComponent(event)}` : ""}`;
      const r = await fetch(`${base}/v1/sites/${siteId}/aggregate?${q}`, { headers: { authorization: `Bearer ${await accessToken()}` } });
      if (!r.ok) throw new Error(`aggregate: ${r.status} ${await r.text()}`);
      return (await r.json()).results;
    },
    /**
     * Waits until every expectation holds, then checks again after `settleMs` so that a late
     * double count would be seen: "exactly N", not "at least N". Expectations are
     * { event?: name, metric: "pageviews" | "events" | ..., value: N }.
     */
    async expectCounts(siteId, expectations, { timeoutMs = 15_000, settleMs = 1_500 } = {}) {
      const read = async () =>
        Promise.all(expectations.map(async (e) => ({ ...e, actual: (await server.aggregate(siteId, e.event))[e.metric] })));
      const deadline = Date.now() + timeoutMs;
      let got;
      while (true) {
        got = await read();
        if (got.every((e) => e.actual === e.value)) break;
        if (Date.now() > deadline) break;
        await sleep(200);
      }
      if (got.every((e) => e.actual === e.value)) {
        await sleep(settleMs);
        got = await read();
      }
      return got.map((e) => `${e.event ?? "*"}.${e.metric}=${e.actual}`);
    },
  };
  try {
    ({ exited } = await start());
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

/** Formats expectations the way expectCounts reports them, for deepStrictEqual. */
export const want = (expectations) => expectations.map((e) => `${e.event ?? "*"}.${e.metric}=${e.value}`);

const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".pdf": "application/pdf", ".map": "application/json" };

/**
 * Static server for test pages. `routes` maps a URL path to { body, type } or a file path; a
 * prefix ending in "/*" serves its value for every path below it (single-page-app fallback).
 */
export const startStatic = (routes) => starts(() => startStaticNow(routes));

async function startStaticNow(routes) {
  const port = await freePort();
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    let hit = routes[path];
    if (hit === undefined) {
      const prefix = Object.keys(routes).find((k) => k.endsWith("/*") && path.startsWith(k.slice(0, -1)));
      if (prefix) hit = routes[prefix];
    }
    if (hit === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const page = typeof hit === "string" ? { body: readFileSync(normalize(hit)), type: types[extname(hit)] } : hit;
    res.writeHead(200, { "content-type": page.type || types[extname(path)] || "text/html", "cache-control": "no-store" });
    res.end(page.body);
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  // Browsers keep connections alive; close() alone would wait for them to time out.
  const close = () => {
    running.delete(entry);
    return new Promise((r) => (server.close(r), server.closeAllConnections()));
  };
  const entry = track(close, () => server.closeAllConnections());
  return {
    base: `http://127.0.0.1:${port}`,
    /** The same server under another host name: links there are "outbound". */
    otherHost: `http://localhost:${port}`,
    /** Routes may be added or replaced while the server runs. */
    routes,
    close,
  };
}

/**
 * Debian's Chromium through playwright-core, with a fresh profile. A normal desktop user agent
 * unless told otherwise (the server does not count HeadlessChrome); navigator.webdriver is still
 * true, so pages that should be tracked pass the agent's trackBots option.
 */
export const launchBrowser = (options) => starts(() => launchBrowserNow(options));

async function launchBrowserNow({ userAgent = DESKTOP_UA } = {}) {
  const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
  if (!existsSync(executablePath)) {
    throw new Error(`no Chromium at ${executablePath} (./test.sh installs it: apt-get install chromium; CHROMIUM_PATH overrides the path)`);
  }
  const profile = mkdtempSync(join(tmpdir(), "agents-chromium-"));
  const removeProfile = () => rmSync(profile, { recursive: true, force: true });
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      // A browser that starts but never answers fails the run in seconds, not after 3 minutes.
      timeout: 20_000,
      headless: true,
      userAgent,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // As a flag too, not only Playwright's per-page override: beacons sent while a page
        // unloads go out with the browser's own user agent, which would be HeadlessChrome.
        `--user-agent=${userAgent}`,
      ],
    });
  } catch (e) {
    removeProfile();
    throw e;
  }
  // playwright-core kills its browsers at process exit itself; kill() only removes the profile.
  const close = async () => {
    running.delete(entry);
    await context.close();
    removeProfile();
  };
  const entry = track(close, removeProfile);
  return {
    context,
    async newPage() {
      const page = await context.newPage();
      page.on("pageerror", (e) => console.log(`[page error] ${e.message}`));
      return page;
    },
    close,
  };
}

/** The agent's script-tag build, as served to test pages. */
export const agentScript = () => ({
  body: readFileSync(join(agentsDir, "packages", "agent", "dist", "agent.min.js")),
  type: "text/javascript",
});

/** A test page that loads the script-tag build with the given data- attributes. */
export function scriptPage(attrs, body = "") {
  const a = Object.entries(attrs)
    .map(([k, v]) => (v === true ? ` data-${k}` : ` data-${k}="${v}"`))
    .join("");
  return {
    type: "text/html",
    body: `<!doctype html><html><head><meta charset="utf-8"><title>test</title>
<script defer src="/agent.js"${a}></script></head><body>${body}</body></html>`,
  };
}
