// Delivery under faults, in headless Chromium against the real server: a server killed and
// restarted mid-session, acknowledgements lost (so acknowledged events are resent), and a
// browser that goes offline and comes back. The numbers checked: events lost = 0 and events
// counted twice = 0, read back from the query API. And a page whose CSP lets no WebSocket
// through, whose events arrive by the HTTP fallback. And a tab hidden and shown again, whose
// events each leave the page once: over the socket or by beacon, never both.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { decodeBatch } from "../unit/load.mjs";
import { agentScript, launchBrowser, scriptPage, sleep, startAnalytics, startStatic, stopAll, want } from "./harness.mjs";

let analytics, browser;
before(async () => {
  analytics = await startAnalytics();
  browser = await launchBrowser();
});
// Stops the server and browser even when before() failed halfway or a test threw.
after(stopAll);

async function page(site, attrs = {}) {
  const web = await startStatic({
    "/agent.js": agentScript(),
    // A short batching interval so that batches are in flight when the faults hit.
    "/app/*": scriptPage({ "site-key": site.siteKey, endpoint: analytics.base, "track-bots": true, "flush-interval": 100, ...attrs }),
  });
  const p = await browser.newPage();
  await p.goto(`${web.base}/app/`);
  await p.waitForFunction(() => window.analyticsAgent);
  return { web, page: p };
}

/** Starts tracking one "tick" event every `ms` in the page; returns a function that stops it
 *  and answers how many were tracked. */
async function ticking(p, ms) {
  await p.evaluate((ms) => {
    window.ticks = 0;
    window.ticker = setInterval(() => {
      analyticsAgent.track("tick", { n: ++window.ticks });
    }, ms);
  }, ms);
  return () => p.evaluate(() => (clearInterval(window.ticker), window.ticks));
}

test("server killed (SIGKILL) and restarted mid-session: nothing lost, nothing counted twice", async () => {
  const site = await analytics.createSite();
  const { web, page: p } = await page(site);
  try {
    const sockets = [];
    p.on("websocket", (ws) => sockets.push(ws.url()));
    const stop = await ticking(p, 50);
    await sleep(1000);
    await analytics.kill(); // batches in flight and queued events are the agent's to resend
    await sleep(1500); // the agent keeps tracking while the server is down, and retries with backoff
    await analytics.restart();
    await sleep(1000);
    const ticks = await stop();
    await p.evaluate(() => analyticsAgent.flush());
    assert.ok(ticks > 40, `ticks: ${ticks}`);
    const expected = [
      { event: "tick", metric: "events", value: ticks },
      { metric: "pageviews", value: 1 },
    ];
    assert.deepEqual(await analytics.expectCounts(site.id, expected, { timeoutMs: 40_000 }), want(expected));
    assert.ok(sockets.length >= 2, `the agent reconnected (${sockets.length} sockets)`);
    await p.close();
  } finally {
    await web.close();
  }
});

test("acknowledgements lost, then the socket dropped: the resent events are counted once", async () => {
  const site = await analytics.createSite();
  const web = await startStatic({
    "/agent.js": agentScript(),
    // One batch for the pageview and the 25 events below: all of them take the resend path.
    "/app/*": scriptPage({ "site-key": site.siteKey, endpoint: analytics.base, "track-bots": true, "flush-interval": 500, "batch-size": 100 }),
  });
  try {
    const p = await browser.newPage();
    // A man in the middle on the page's WebSocket: the first connection forwards every batch to
    // the real server but swallows its Acks, then drops the connection. So the server has
    // stored events the agent believes unacknowledged, and the agent resends them.
    let connections = 0, swallowed = 0, forwardedOnSecond = 0, eventsInFirst = 0;
    await p.routeWebSocket(/\/v1\/ws$/, (ws) => {
      const n = ++connections;
      const server = ws.connectToServer();
      server.onMessage((m) => {
        if (n === 1) swallowed++;
        else (forwardedOnSecond++, ws.send(m));
      });
      ws.onMessage((m) => {
        server.send(m);
        if (n === 1) {
          eventsInFirst += decodeBatch(m).events.length;
          setTimeout(() => ws.close({ code: 1011 }), 1000);
        }
      });
    });
    await p.goto(`${web.base}/app/`);
    await p.waitForFunction(() => window.analyticsAgent);
    await p.evaluate(() => {
      for (let i = 0; i < 25; i++) analyticsAgent.track("once", { i });
    });
    const deadline = Date.now() + 15_000;
    while (forwardedOnSecond < 1 && Date.now() < deadline) await sleep(100);
    assert.equal(swallowed, 1, "the first batch's Ack was swallowed");
    assert.equal(eventsInFirst, 26, "the first batch held the pageview and the 25 events");
    assert.ok(forwardedOnSecond >= 1, "the batch was resent on a second connection and acknowledged");
    const expected = [
      { event: "once", metric: "events", value: 25 },
      { metric: "pageviews", value: 1 },
      { metric: "events", value: 26 },
    ];
    assert.deepEqual(await analytics.expectCounts(site.id, expected), want(expected));
    await p.close();
  } finally {
    await web.close();
  }
});

test("offline, then online: what was tracked offline is sent, once", async () => {
  const site = await analytics.createSite();
  const { web, page: p } = await page(site);
  try {
    await p.evaluate(() => analyticsAgent.track("online-1"));
    await sleep(500);
    await browser.context.setOffline(true);
    await p.evaluate(() => {
      for (let i = 0; i < 5; i++) analyticsAgent.track("offline", { i });
      history.pushState({}, "", "/app/offline-page");
    });
    await sleep(1500);
    const during = await analytics.aggregate(site.id, "offline");
    await browser.context.setOffline(false);
    await p.evaluate(() => analyticsAgent.track("online-2"));
    const expected = [
      { event: "online-1", metric: "events", value: 1 },
      { event: "offline", metric: "events", value: 5 },
      { event: "online-2", metric: "events", value: 1 },
      { metric: "pageviews", value: 2 },
    ];
    assert.deepEqual(await analytics.expectCounts(site.id, expected, { timeoutMs: 20_000 }), want(expected));
    assert.equal(during.events, 0, "nothing arrived while offline");
    await p.close();
  } finally {
    await web.close();
  }
});

test("a page whose CSP allows no WebSocket to the server (connect-src http: only): events go by HTTP POST, counted once", async () => {
  const site = await analytics.createSite();
  const page = scriptPage({ "site-key": site.siteKey, endpoint: analytics.base, "track-bots": true, "flush-interval": 100 });
  // An http: source does not match ws: URLs (CSP 3, scheme-part matching), so fetch may reach the
  // server and the socket may not.
  page.body = page.body.replace("<head>", `<head><meta http-equiv="Content-Security-Policy" content="connect-src ${analytics.base}">`);
  const web = await startStatic({ "/agent.js": agentScript(), "/app/*": page });
  try {
    const p = await browser.newPage();
    const errors = [], sockets = [], posts = [];
    p.on("pageerror", (e) => errors.push(e.message));
    p.on("websocket", (ws) => sockets.push(ws.url()));
    p.on("request", (r) => r.url().endsWith("/v1/events") && posts.push(r.method()));
    await p.goto(`${web.base}/app/`);
    await p.waitForFunction(() => window.analyticsAgent);
    await p.evaluate(() => {
      for (let i = 0; i < 5; i++) analyticsAgent.track("no-socket", { i });
      history.pushState({}, "", "/app/second");
    });
    const expected = [
      { event: "no-socket", metric: "events", value: 5 },
      { metric: "pageviews", value: 2 },
    ];
    assert.deepEqual(await analytics.expectCounts(site.id, expected, { timeoutMs: 20_000 }), want(expected));
    assert.ok(posts.length >= 1 && posts.every((m) => m === "POST"), `posted: ${posts.length}`);
    assert.deepEqual(sockets, [], "no WebSocket got through");
    assert.deepEqual(errors, []);
    await p.close();
  } finally {
    await web.close();
  }
});

/** Hides or shows the page as the browser would: document.hidden and visibilityState change and
 *  visibilitychange fires. (Headless Chromium never hides a page by itself: a minimized window or
 *  another page in front leaves it visible, and CDP has no visibility override.) */
const setHidden = (p, hidden) =>
  p.evaluate((hidden) => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (hidden ? "hidden" : "visible") });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);

test("a tab hidden and shown again: each event leaves the page once, by the socket or by beacon, and is counted once", async () => {
  const site = await analytics.createSite();
  const web = await startStatic({
    "/agent.js": agentScript(),
    "/app/*": scriptPage({ "site-key": site.siteKey, endpoint: analytics.base, "track-bots": true }),
  });
  try {
    const p = await browser.newPage();
    // What leaves the page: the socket's frames (as Chromium sends them), and the beacons the
    // browser accepted (their bodies, copied on the way to the real sendBeacon).
    const frames = [];
    let acks = 0;
    p.on("websocket", (ws) => {
      ws.on("framesent", (f) => frames.push(decodeBatch(f.payload)));
      ws.on("framereceived", () => acks++);
    });
    await p.addInitScript(() => {
      const send = navigator.sendBeacon.bind(navigator);
      window.beacons = [];
      navigator.sendBeacon = (url, data) => {
        const ok = send(url, data);
        if (ok) data.arrayBuffer().then((b) => window.beacons.push([...new Uint8Array(b)]));
        return ok;
      };
    });
    await p.goto(`${web.base}/app/`);
    await p.waitForFunction(() => window.analyticsAgent);
    const deadline = Date.now() + 10_000;
    while (acks < 1 && Date.now() < deadline) await sleep(50); // the pageview's Ack: the socket is open and answering
    await sleep(1000); // a second visible, so hiding records an engagement event too
    // Tracked just before the tab is hidden: they wait for the batching interval, so the
    // hidden page hands them to sendBeacon.
    await p.evaluate(() => {
      for (let i = 0; i < 3; i++) analyticsAgent.track("hidden", { i });
    });
    await setHidden(p, true);
    await sleep(2000); // past the batching interval and any Ack
    await setHidden(p, false);
    await p.evaluate(() => analyticsAgent.track("shown"));
    await sleep(2000);
    const beacons = (await p.evaluate(() => window.beacons)).map((b) => decodeBatch(Uint8Array.from(b)));
    const ids = (batches) => batches.flatMap((x) => x.events.map((e) => Buffer.from(e.id).toString("hex")));
    const names = (batches) => batches.flatMap((x) => x.events.map((e) => e.name)).sort();
    assert.deepEqual(names(beacons), ["engagement", "hidden", "hidden", "hidden"]);
    assert.deepEqual(names(frames), ["pageview", "shown"]);
    const all = [...ids(frames), ...ids(beacons)];
    assert.equal(all.length - new Set(all).size, 0, "events that left the page twice");
    const expected = [
      { event: "hidden", metric: "events", value: 3 },
      { event: "shown", metric: "events", value: 1 },
      { event: "engagement", metric: "events", value: 1 },
      { metric: "pageviews", value: 1 },
    ];
    assert.deepEqual(await analytics.expectCounts(site.id, expected), want(expected));
    await p.close();
  } finally {
    await web.close();
  }
});
