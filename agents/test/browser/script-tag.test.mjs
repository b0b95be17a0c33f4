// The script-tag build in headless Chromium against the real server: every count is read back
// from the query API and must be exact.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { agentScript, launchBrowser, scriptPage, sleep, startAnalytics, startStatic, stopAll, want } from "./harness.mjs";

let analytics, browser;
before(async () => {
  analytics = await startAnalytics();
  browser = await launchBrowser();
});
// Stops the server and browser even when before() failed halfway or a test threw.
after(stopAll);

/** A static server with the agent and one page under /shop/* (any path: SPA fallback). `body`
 *  may be a function of the server, for links to its other host name. */
async function shop(attrs, body = "") {
  const web = await startStatic({
    "/agent.js": agentScript(),
    "/landing": { type: "text/html", body: "<!doctype html><title>elsewhere</title>" },
    "/files/report.pdf": { type: "application/pdf", body: "%PDF-1.4\n" },
  });
  web.routes["/shop/*"] = scriptPage(attrs, typeof body === "function" ? body(web) : body);
  return web;
}

test("page load, SPA navigations, custom events, revenue, outbound link and download are counted exactly", async () => {
  const site = await analytics.createSite();
  const web = await shop(
    { "site-key": site.siteKey, endpoint: analytics.base, "track-bots": true },
    (web) => `<a id="dl" href="/files/report.pdf" download>report</a> <a id="out" href="${web.otherHost}/landing">partner</a>`,
  );
  try {
    const page = await browser.newPage();
    await page.goto(`${web.base}/shop/`); // pageview 1
    await page.waitForFunction(() => window.analyticsAgent);
    await page.evaluate(async () => {
      history.pushState({}, "", "/shop/cart"); // pageview 2
      history.replaceState({}, "", "/shop/cart?step=2"); // same path: none
      history.pushState({}, "", "/shop/checkout"); // pageview 3
      const back = new Promise((r) => addEventListener("popstate", r, { once: true }));
      history.back(); // popstate to /shop/cart: pageview 4
      await back;
      analyticsAgent.track("signup", { plan: "pro" });
      analyticsAgent.track("signup", { plan: "free", seats: 3 });
      analyticsAgent.track("purchase", { sku: "A-1" }, { amount: 12.34, currency: "EUR" });
    });
    await page.click("#dl");
    await Promise.all([page.waitForURL(`${web.otherHost}/landing`), page.click("#out")]); // leaves: pagehide beacon
    const expected = [
      { metric: "pageviews", value: 4 },
      { event: "signup", metric: "events", value: 2 },
      { event: "purchase", metric: "events", value: 1 },
      { event: "File Download", metric: "events", value: 1 },
      { event: "Outbound Link", metric: "events", value: 1 },
      { metric: "visitors", value: 1 },
      { metric: "visits", value: 1 },
    ];
    assert.deepEqual(await analytics.expectCounts(site.id, expected), want(expected));
    // All events: the above plus at most one "engagement" event per page (sent before the next
    // page's pageview, or on pagehide, when the page was visible for a second or more).
    const engagement = (await analytics.aggregate(site.id, "engagement")).events;
    assert.ok(engagement <= 4, `engagement events: ${engagement}`);
    assert.equal((await analytics.aggregate(site.id)).events, 9 + engagement);
    await page.close();
  } finally {
    await web.close();
  }
});

test("hash routing: every hash route is a page", async () => {
  const site = await analytics.createSite();
  const web = await shop({ "site-key": site.siteKey, endpoint: analytics.base, "track-bots": true, "hash-routing": true });
  try {
    const page = await browser.newPage();
    await page.goto(`${web.base}/shop/#/`); // 1
    await page.waitForFunction(() => window.analyticsAgent);
    await page.evaluate(async () => {
      for (const h of ["#/products", "#/products/7", "#/products"]) {
        const changed = new Promise((r) => addEventListener("hashchange", r, { once: true }));
        location.hash = h; // 2, 3, 4
        await changed;
      }
      analyticsAgent.flush();
    });
    const expected = [{ metric: "pageviews", value: 4 }];
    assert.deepEqual(await analytics.expectCounts(site.id, expected), want(expected));
    await page.close();
  } finally {
    await web.close();
  }
});

test("headless and automated browsers are not tracked unless told to; nor are Do Not Track or GPC when respected", async () => {
  const site = await analytics.createSite();
  const web = await startStatic({
    "/agent.js": agentScript(),
    "/default": scriptPage({ "site-key": site.siteKey, endpoint: analytics.base }),
    "/dnt": scriptPage({ "site-key": site.siteKey, endpoint: analytics.base, "track-bots": true, "respect-dnt": true }),
    "/gpc": scriptPage({ "site-key": site.siteKey, endpoint: analytics.base, "track-bots": true, "respect-dnt": true }),
    "/tracked": scriptPage({ "site-key": site.siteKey, endpoint: analytics.base, "track-bots": true }),
  });
  try {
    const sockets = [];
    const page = await browser.newPage();
    page.on("websocket", (ws) => sockets.push(ws.url()));
    await page.goto(`${web.base}/default`); // navigator.webdriver is true here
    await page.waitForFunction(() => window.analyticsAgent);
    await page.evaluate(() => analyticsAgent.track("should-not-count"));
    await page.close();

    const dnt = await browser.newPage();
    await dnt.addInitScript(() => Object.defineProperty(Navigator.prototype, "doNotTrack", { get: () => "1" }));
    dnt.on("websocket", (ws) => sockets.push(ws.url()));
    await dnt.goto(`${web.base}/dnt`);
    await dnt.waitForFunction(() => window.analyticsAgent);
    await dnt.evaluate(() => analyticsAgent.track("should-not-count"));
    await dnt.close();

    const gpc = await browser.newPage();
    await gpc.addInitScript(() => Object.defineProperty(Navigator.prototype, "globalPrivacyControl", { get: () => true }));
    gpc.on("websocket", (ws) => sockets.push(ws.url()));
    await gpc.goto(`${web.base}/gpc`);
    await gpc.waitForFunction(() => window.analyticsAgent);
    await gpc.evaluate(() => analyticsAgent.track("should-not-count"));
    await gpc.close();

    // The control: the same browser with trackBots and no DNT is counted, so the zeros above
    // are the agent's doing.
    const tracked = await browser.newPage();
    await tracked.goto(`${web.base}/tracked`);
    await tracked.waitForFunction(() => window.analyticsAgent);
    await tracked.evaluate(() => analyticsAgent.flush());
    const expected = [
      { metric: "pageviews", value: 1 },
      { event: "should-not-count", metric: "events", value: 0 },
    ];
    assert.deepEqual(await analytics.expectCounts(site.id, expected), want(expected));
    await tracked.close();
    assert.deepEqual(sockets, [], "no WebSocket was opened by the untracked pages");
  } finally {
    await web.close();
  }
});

test("consent: nothing before optIn, the current page on optIn, nothing after optOut", async () => {
  const site = await analytics.createSite();
  const web = await shop({ "site-key": site.siteKey, endpoint: analytics.base, "track-bots": true, "require-consent": true });
  try {
    const page = await browser.newPage();
    const sockets = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    await page.goto(`${web.base}/shop/`);
    await page.waitForFunction(() => window.analyticsAgent);
    await page.evaluate(() => {
      analyticsAgent.track("before-consent");
      history.pushState({}, "", "/shop/a");
    });
    await sleep(1500); // longer than the batching interval: nothing may have gone out
    assert.deepEqual(sockets, [], "nothing is sent before consent");
    await page.evaluate(() => {
      analyticsAgent.optIn(); // the current page (/shop/a): pageview 1
      analyticsAgent.track("after-consent");
      analyticsAgent.flush();
    });
    await page.waitForTimeout(500);
    await page.evaluate(() => {
      analyticsAgent.optOut();
      analyticsAgent.track("after-opt-out");
      history.pushState({}, "", "/shop/b");
      analyticsAgent.flush();
    });
    await page.close(); // pagehide: nothing may go out either
    const expected = [
      { metric: "pageviews", value: 1 },
      { event: "before-consent", metric: "events", value: 0 },
      { event: "after-consent", metric: "events", value: 1 },
      { event: "after-opt-out", metric: "events", value: 0 },
      { metric: "events", value: 2 },
    ];
    assert.deepEqual(await analytics.expectCounts(site.id, expected), want(expected));
  } finally {
    await web.close();
  }
});

test("a host page's own errors and our failures do not interfere: pushState still works when the server is unreachable", async () => {
  const web = await shop({ "site-key": "no-such-site", endpoint: "http://127.0.0.1:9", "track-bots": true });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${web.base}/shop/`);
    await page.waitForFunction(() => window.analyticsAgent);
    const path = await page.evaluate(() => {
      history.pushState({}, "", "/shop/x");
      analyticsAgent.track("x", { a: 1 });
      analyticsAgent.track(undefined); // misuse: swallowed, never thrown
      analyticsAgent.pageview(12345);
      return location.pathname;
    });
    assert.equal(path, "/shop/x");
    await sleep(1200);
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await web.close();
  }
});
