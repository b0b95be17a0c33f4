// The agent's logic, step by step, in a fake browser with fake timers: batching, one batch in
// flight, acks, reconnects with backoff and jitter, resends with the same event ids, RETRY and
// UNKNOWN_SITE, poison batches, the HTTP fallback for a socket that never opens, the bounded queue, pagehide beacons, engagement time, SPA
// pageviews, outbound links and downloads, consent, Do Not Track / GPC, bots, and never throwing.
import assert from "node:assert/strict";
import { afterEach, beforeEach, mock, test } from "node:test";
import { installBrowser, names, settle } from "./fake-browser.mjs";
import { loadSource } from "./load.mjs";

const { createAgent, init, noopAgent } = await loadSource("agent");

const T0 = 1_800_000_000_000;
let b;
const tick = (ms) => mock.timers.tick(ms);
const ids = (batch) => batch.events.map((e) => Buffer.from(e.id).toString("hex"));
const options = (o = {}) => ({ siteKey: "site-1", endpoint: "https://analytics.example/", ...o });

/** An agent whose socket is open, with the initial pageview sent and acknowledged. */
function connected(o = {}, browserOptions = {}) {
  b = installBrowser(browserOptions);
  const agent = createAgent(options(o));
  tick(1000); // batching interval
  tick(0); // first connection: no backoff
  b.socket.open();
  b.socket.ackLast();
  return agent;
}

beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: T0 }));
afterEach(() => {
  mock.timers.reset();
  mock.restoreAll();
  b?.uninstall();
  b = undefined;
});

test("the initial pageview goes over one WebSocket to endpoint/v1/ws, with the page's fields", () => {
  b = installBrowser({ url: "https://shop.example/p/1?x=2" });
  createAgent(options());
  assert.equal(b.sockets.length, 0, "nothing before the batching interval");
  tick(1000);
  tick(0);
  assert.equal(b.socket.url, "wss://analytics.example/v1/ws");
  b.socket.open();
  const [batch] = b.socket.sent;
  assert.equal(batch.siteKey, "site-1");
  assert.equal(batch.seq, "1");
  const [e] = batch.events;
  assert.equal(e.name, "pageview");
  assert.equal(e.url, "https://shop.example/p/1?x=2");
  assert.equal(e.referrer, "https://www.google.com/");
  assert.equal(e.clientTimeMs, String(T0)); // recorded when the agent started
  assert.equal(e.screenWidth, 1440);
  assert.equal(e.id.length, 16);
});

test("event ids are time-ordered: 48-bit big-endian Unix ms, then 80 random bits", () => {
  const agent = connected();
  agent.track("first");
  tick(5);
  agent.track("second");
  tick(1000);
  const [batch] = b.socket.sent.slice(-1);
  const [a, c] = batch.events.map((e) => Buffer.from(e.id));
  assert.equal(c.readUIntBE(0, 6) - a.readUIntBE(0, 6), 5);
  assert.ok(Math.abs(a.readUIntBE(0, 6) - T0) < 5000, "the prefix is the clock in ms");
  assert.ok(Buffer.compare(a, c) < 0, "later ids sort after earlier ones");
  assert.notDeepEqual(a.subarray(6), c.subarray(6));
});

test("batches by count: the 10th waiting event sends a batch at once", () => {
  const agent = connected();
  for (let i = 0; i < 9; i++) agent.track("e", { i });
  assert.equal(b.socket.sent.length, 1);
  agent.track("e", { i: 9 });
  assert.equal(b.socket.sent.length, 2);
  assert.equal(b.socket.sent[1].events.length, 10);
});

test("batches by time: a lone event goes after flushInterval", () => {
  const agent = connected({ flushInterval: 250 });
  agent.track("lone");
  tick(249);
  assert.equal(b.socket.sent.length, 1);
  tick(1);
  assert.deepEqual(names([b.socket.sent[1]]), ["lone"]);
});

test("one batch in flight: the next waits for the Ack carrying its seq; a stale Ack changes nothing", () => {
  const agent = connected();
  agent.track("a");
  agent.flush();
  agent.track("b");
  agent.flush();
  assert.equal(b.socket.sent.length, 2, "b waits");
  b.socket.ack(1); // stale (already acknowledged)
  assert.equal(b.socket.sent.length, 2);
  b.socket.ack(2);
  assert.equal(b.socket.sent.length, 3);
  assert.deepEqual(names([b.socket.sent[2]]), ["b"]);
  assert.equal(b.socket.sent[2].seq, "3");
});

test("a dropped socket: the unacknowledged batch is resent first, with the same event ids, after a reconnect", () => {
  const agent = connected();
  agent.track("a");
  agent.flush();
  const inFlight = b.socket.sent[1];
  agent.track("b");
  b.socket.drop(1006);
  tick(1000); // backoff (at most 1 s for the first retry after a success)
  assert.equal(b.sockets.length, 2);
  b.socket.open();
  const resent = b.socket.sent[0];
  assert.deepEqual(ids(resent).slice(0, 1), ids(inFlight));
  assert.deepEqual(names([resent]), ["a", "b"]);
});

test("a socket that never answers (a connection dead without a close): after 15 s it is closed and the batch resent, same ids, on a new one", () => {
  const agent = connected();
  mock.method(Math, "random", () => 1);
  agent.track("a");
  agent.flush();
  const silent = b.socket;
  const inFlight = ids(silent.sent[1]);
  agent.track("b");
  tick(14_999);
  assert.equal(b.sockets.length, 1, "still waiting for the Ack");
  tick(1);
  assert.equal(silent.readyState, 3, "the silent socket is closed");
  tick(1000); // the reconnect backoff (attempt 1 after an OK: at most 1 s)
  assert.equal(b.sockets.length, 2);
  b.socket.open();
  assert.deepEqual(ids(b.socket.sent[0]).slice(0, 1), inFlight);
  assert.deepEqual(names(b.socket.sent), ["a", "b"]);
  b.socket.ackLast();
  agent.track("c");
  agent.flush();
  b.socket.ackLast();
  tick(15_000); // acknowledged in time: the socket stays
  tick(1000);
  assert.equal(b.sockets.length, 2);
  assert.equal(b.socket.readyState, 1);
});

test("reconnects back off exponentially with jitter, capped at 30 s; the online event retries at once", () => {
  const delays = [];
  for (const r of [0, 0.999999]) {
    mock.method(Math, "random", () => r);
    const agent = connected();
    agent.track("x");
    agent.flush();
    const seen = [];
    let last = b.sockets.length;
    let t = 0;
    b.socket.drop();
    while (seen.length < 8) {
      tick(50);
      t += 50;
      if (b.sockets.length > last) {
        seen.push(t);
        t = 0;
        last = b.sockets.length;
        b.socket.drop(); // the server is still down
      }
    }
    delays.push(seen);
    b.window.dispatchEvent(new Event("online"));
    tick(0);
    assert.equal(b.sockets.length, last + 1, "online: immediate attempt");
    b.uninstall();
    mock.restoreAll();
  }
  // Math.random() = 0: half of 500 ms * 2^n; = 1: all of it; both capped at 30 s.
  assert.deepEqual(delays[0], [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  assert.deepEqual(delays[1], [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test("Ack RETRY: nothing was kept, so the batch is sent again after retry_after_ms", () => {
  const agent = connected();
  agent.track("a");
  agent.flush();
  b.socket.ack(2, 2, { retryAfterMs: 700 });
  tick(699);
  assert.equal(b.socket.sent.length, 2);
  tick(1);
  assert.deepEqual(ids(b.socket.sent[2]), ids(b.socket.sent[1]));
});

test("Ack RETRY: events recorded during the wait, even a full batch of them, do not send anything before it ends", () => {
  const agent = connected();
  agent.track("a");
  agent.flush();
  const retried = ids(b.socket.sent[1]);
  b.socket.ack(2, 2, { retryAfterMs: 700, retryReason: 1 });
  for (let i = 0; i < 12; i++) agent.track("during", { i }); // past batchSize: would flush at once
  agent.flush(); // and the page asking for it does not shorten the wait either
  tick(699);
  assert.equal(b.socket.sent.length, 2, "nothing before retry_after_ms");
  tick(1);
  assert.equal(b.socket.sent.length, 3);
  assert.deepEqual(ids(b.socket.sent[2]).slice(0, 1), retried, "the retried event goes first");
  assert.deepEqual(names([b.socket.sent[2]]), ["a", ...Array(12).fill("during")]);
});

test("Ack RETRY: a socket that closes during the wait reconnects only after it", () => {
  const agent = connected();
  mock.method(Math, "random", () => 1);
  agent.track("a");
  agent.flush();
  b.socket.ack(2, 2, { retryAfterMs: 5000, retryReason: 1 });
  b.socket.drop(1006);
  tick(4999);
  assert.equal(b.sockets.length, 1, "no reconnect inside the wait");
  tick(1); // the wait ends: reconnect with the usual backoff (attempt 1: 1 s at Math.random() = 1)
  tick(1000);
  assert.equal(b.sockets.length, 2);
  b.socket.open();
  assert.deepEqual(names(b.socket.sent), ["a"]);
});

test("Ack RETRY for a rate limit: the wait doubles while the server keeps limiting (at most 30 s), and starts again after an OK", () => {
  const agent = connected();
  agent.track("a");
  agent.flush();
  const sentAt = () => b.socket.sent.length;
  // retry_reason 3: RATE_LIMITED_IP. The server asks for 400 ms each time; the agent waits
  // 800, 1,600, 3,200 ms (doubling from its reconnect backoff's count, 1 after an OK ack).
  for (const wait of [800, 1600, 3200]) {
    const before = sentAt();
    b.socket.ack(Number(b.socket.sent.at(-1).seq), 2, { retryAfterMs: 400, retryReason: 3 });
    tick(wait - 1);
    assert.equal(sentAt(), before, `nothing before ${wait} ms`);
    tick(1);
    assert.equal(sentAt(), before + 1, `resent after ${wait} ms`);
  }
  assert.deepEqual(ids(b.socket.sent.at(-1)), ids(b.socket.sent[1]), "the same events each time");
  b.socket.ackLast();
  agent.track("b");
  agent.flush();
  b.socket.ack(Number(b.socket.sent.at(-1).seq), 2, { retryAfterMs: 400, retryReason: 4 });
  tick(799);
  assert.deepEqual(names([b.socket.sent.at(-1)]), ["b"]);
  const before = b.socket.sent.length;
  tick(1);
  assert.equal(b.socket.sent.length, before + 1, "after an OK the doubling starts again from 800 ms");
});

test("Ack RETRY for the log, not a limit: the server's wait is taken as given each time", () => {
  const agent = connected();
  agent.track("a");
  agent.flush();
  for (let i = 0; i < 3; i++) {
    const before = b.socket.sent.length;
    b.socket.ack(Number(b.socket.sent.at(-1).seq), 2, { retryAfterMs: 500, retryReason: 1 });
    tick(500);
    assert.equal(b.socket.sent.length, before + 1);
  }
});

test("Ack FORBIDDEN_ORIGIN: the page may not send for this site, so the agent stops for good", () => {
  const agent = connected();
  agent.track("a");
  agent.flush();
  b.socket.ack(2, 5);
  agent.track("b");
  agent.flush();
  tick(60_000);
  assert.equal(b.batches.length, 2);
  assert.equal(b.sockets.length, 1);
});

test("after a refusal (UNKNOWN_SITE, FORBIDDEN_ORIGIN) nothing is beaconed either: the server would refuse it too", async () => {
  for (const status of [3, 5]) {
    const agent = connected();
    agent.track("refused");
    agent.flush();
    agent.track("waiting");
    b.socket.ack(2, status);
    agent.track("after");
    b.window.dispatchEvent(new Event("pagehide"));
    assert.deepEqual(await b.beaconBatches(), [], `status ${status}`);
    b.uninstall();
  }
});

test("Ack UNKNOWN_SITE: the agent stops for good", () => {
  const agent = connected();
  agent.track("a");
  agent.flush();
  b.socket.ack(2, 3);
  agent.track("b");
  agent.flush();
  tick(60_000);
  assert.equal(b.batches.length, 2);
  assert.equal(b.sockets.length, 1);
});

test("close 1007 (undecodable) drops the refused batch; later events still go", () => {
  const agent = connected();
  agent.track("poison");
  agent.flush();
  agent.track("next");
  b.socket.drop(1007);
  tick(1000);
  b.socket.open();
  assert.deepEqual(names(b.socket.sent), ["next"]);
});

test("the queue is bounded: while disconnected only the newest maxQueue events are kept", () => {
  b = installBrowser();
  const agent = createAgent(options({ maxQueue: 5, autoPageviews: false, batchSize: 100 }));
  mock.method(Math, "random", () => 0);
  for (let i = 0; i < 12; i++) agent.track(`e${i}`);
  tick(1000);
  tick(0);
  b.socket.drop(); // the server is down for a while
  tick(500);
  b.socket.open();
  assert.deepEqual(names(b.socket.sent), ["e7", "e8", "e9", "e10", "e11"]);
});

test("pagehide: the unacknowledged batch and the queue go to sendBeacon as text/plain EventBatches", async () => {
  const agent = connected();
  agent.track("in-flight");
  agent.flush();
  agent.track("queued", { k: "v" });
  b.window.dispatchEvent(new Event("pagehide"));
  const beacons = await b.beaconBatches();
  assert.equal(beacons.length, 1);
  assert.equal(beacons[0].url, "https://analytics.example/v1/events");
  assert.equal(beacons[0].type, "text/plain");
  // (And the page's visible time: connected()'s second.)
  assert.deepEqual(names([beacons[0].batch]), ["in-flight", "queued", "engagement"]);
  assert.deepEqual(ids(beacons[0].batch)[0], ids(b.socket.sent[1])[0]);
  // Nothing is sent twice by the page itself afterwards.
  tick(5000);
  assert.equal(b.socket.sent.length, 2);
});

/** An agent whose WebSocket never opens, past the three failed attempts after which it posts:
 *  with Math.random() = 1 they start 0, 1 and 2 s apart (500 ms doubling). */
async function socketBlocked() {
  b = installBrowser();
  mock.method(Math, "random", () => 1);
  const agent = createAgent(options());
  tick(1000); // batching interval; the first attempt is immediate
  tick(0);
  b.socket.drop(1006);
  tick(1000);
  b.socket.drop(1006);
  tick(2000);
  b.socket.drop(1006);
  await settle();
  return agent;
}

test("a WebSocket that never opens (server full, a proxy stripping Upgrade, a CSP): after three failed attempts batches go by HTTP POST, one at a time, while the socket is still tried", async () => {
  b = installBrowser();
  mock.method(Math, "random", () => 1);
  const agent = createAgent(options());
  tick(1000);
  tick(0);
  b.socket.drop(1006);
  tick(1000);
  b.socket.drop(1006);
  tick(2000);
  assert.equal(b.sockets.length, 3);
  await settle();
  assert.equal(b.requests.length, 0, "not while the third attempt may still open");
  b.socket.drop(1006);
  await settle();
  assert.equal(b.requests.length, 1);
  const [first] = b.requests;
  assert.equal(first.url, "https://analytics.example/v1/events");
  assert.equal(first.method, "POST");
  // One of the two types the server takes (HttpIngest.cs), and the one needing no CORS preflight.
  assert.equal(first.type, "text/plain");
  assert.equal(first.batch.siteKey, "site-1");
  assert.deepEqual(names([first.batch]), ["pageview"]);
  agent.track("a");
  agent.flush();
  await settle();
  assert.equal(b.requests.length, 1, "one batch at a time");
  first.ok();
  await settle();
  assert.equal(b.requests.length, 2);
  assert.deepEqual(names([b.requests[1].batch]), ["a"]);
  // The fourth attempt, at the backoff's pace (500 ms * 2^3 at Math.random() = 1), meanwhile.
  tick(3999);
  assert.equal(b.sockets.length, 3);
  tick(1);
  assert.equal(b.sockets.length, 4);
  b.requests[1].ok();
  await settle();
  tick(60_000);
  await settle();
  assert.equal(b.requests.length, 2, "acknowledged batches are not sent again");
  assert.equal(b.batches.length, 0);
});

/** Asserts that the HTTP batch just answered is resent, with the same events, after exactly ms. */
async function resentAfter(ms, sentIds, why) {
  const before = b.requests.length;
  await settle();
  tick(ms - 1);
  await settle();
  assert.equal(b.requests.length, before, `nothing before ${why}`);
  tick(1);
  await settle();
  assert.equal(b.requests.length, before + 1, `resent after ${why}`);
  assert.deepEqual(ids(b.requests.at(-1).batch), sentIds, "the same events");
}

test("a WebSocket the page's CSP blocks (Chromium: an error event and no close) is a failed attempt: the events go by HTTP", async () => {
  b = installBrowser();
  mock.method(Math, "random", () => 1);
  createAgent(options());
  tick(1000);
  tick(0);
  b.socket.blocked();
  tick(1000);
  b.socket.blocked();
  tick(2000);
  b.socket.blocked();
  await settle();
  assert.equal(b.sockets.length, 3);
  assert.deepEqual(names(b.requests.map((r) => r.batch)), ["pageview"]);
});

test("by HTTP, a 503 with Retry-After waits that long and resends the same batch; an Ack RETRY's retry_after_ms, finer, comes first", async () => {
  await socketBlocked();
  const sentIds = ids(b.requests[0].batch);
  // A draining server answers 503 + Retry-After with problem+json, not an Ack.
  b.requests[0].respond(503, { headers: { "retry-after": "3" } });
  await resentAfter(3000, sentIds, "Retry-After");
  // The log unavailable: 503, Retry-After in whole seconds, the Ack's wait in milliseconds.
  b.requests[1].respond(503, { ack: { seq: Number(b.requests[1].batch.seq), status: 2, retryAfterMs: 1500, retryReason: 1 }, headers: { "retry-after": "2" } });
  await resentAfter(1500, sentIds, "retry_after_ms");
  b.requests[2].ok();
  await settle();
  tick(60_000);
  await settle();
  assert.equal(b.requests.length, 3);
});

test("by HTTP, an answer the page may not read (network error, CSP, no CORS grant) resends after the backoff; a 400 (undecodable) drops the batch", async () => {
  const agent = await socketBlocked();
  const sentIds = ids(b.requests[0].batch);
  b.requests[0].fail();
  // Three attempts and this failure: attempt 4, 500 ms * 2^4 at Math.random() = 1.
  await resentAfter(8000, sentIds, "the backoff");
  b.requests[1].respond(400);
  await settle();
  agent.track("next");
  agent.flush();
  await settle();
  assert.equal(b.requests.length, 3);
  assert.deepEqual(names([b.requests[2].batch]), ["next"], "the refused batch is not sent again");
});

test("by HTTP, the socket opening later takes over once the batch in flight is answered", async () => {
  const agent = await socketBlocked();
  b.requests[0].ok();
  await settle();
  tick(4000); // the fourth attempt (500 ms * 2^3 at Math.random() = 1)
  agent.track("by-http");
  agent.flush();
  await settle();
  assert.equal(b.requests.length, 2, "the socket is still connecting");
  b.socket.open();
  assert.equal(b.socket.sent.length, 0, "the HTTP batch is still in flight");
  b.requests[1].ok();
  await settle();
  agent.track("by-socket");
  agent.flush();
  await settle();
  assert.deepEqual(names(b.socket.sent), ["by-socket"]);
  b.socket.ackLast();
  // A socket that opened starts the count again: a drop means reconnecting, not HTTP.
  b.socket.drop(1006);
  agent.track("after-drop");
  agent.flush();
  await settle();
  assert.equal(b.requests.length, 2);
  tick(1000);
  b.socket.open();
  assert.deepEqual(names([b.socket.sent[0]]), ["after-drop"]);
});

/** An agent with 2,000 events (about 150 KB) waiting and no connection yet. */
async function backlog() {
  b = installBrowser();
  const agent = createAgent(options({ autoPageviews: false, batchSize: 1e6, maxQueue: 1e6 }));
  for (let i = 0; i < 2000; i++) agent.track("bulk", { i, pad: "x".repeat(40) });
  return agent;
}
const beaconed = async () => (await b.beaconBatches()).flatMap((x) => ids(x.batch));
/** Opens a socket and acknowledges every batch until nothing more comes; returns the ids sent. */
function drain() {
  tick(1000);
  b.socket.open();
  for (let n = 0; n < b.socket.sent.length; n++) b.socket.ack(Number(b.socket.sent[n].seq));
  return b.socket.sent.flatMap(ids);
}

test("a hidden tab with a backlog over the browser's 64 KiB of beacons: beacons until the first refusal, everything kept, all of it sent once visible", async () => {
  await backlog();
  b.setHidden(true);
  const first = await beaconed();
  assert.ok(b.beacons.length > 1, "split into several beacons");
  assert.ok(b.beacons.every((x) => x.blob.size < 65536));
  assert.ok((await b.beaconBatches()).every((x) => x.batch.events.length <= 500));
  assert.ok(first.length > 0 && first.length < 2000, `the browser took ${first.length} events, not all`);
  b.beaconsDelivered();
  b.setHidden(false);
  const socket = drain();
  assert.equal(new Set(socket).size, 2000, "every event over the socket, the beaconed ones too (the server drops those by id)");
  assert.deepEqual(socket.slice(0, first.length), first, "in order, with the same ids");
});

test("pagehide with a backlog over 64 KiB: what the browser took is dropped, what it refused is kept (the page may come back)", async () => {
  await backlog();
  b.window.dispatchEvent(new Event("pagehide"));
  const took = await beaconed();
  b.beaconsDelivered();
  const socket = drain();
  assert.equal(took.length + socket.length, 2000);
  assert.equal(new Set([...took, ...socket]).size, 2000, "none twice");
});

/** Every event the server got, by id: over every socket and by beacon. */
const delivered = async () => [...b.batches.flatMap(ids), ...(await beaconed())];
/** How many ids arrived more than once. */
const twice = (all) => all.length - new Set(all).size;
const beaconNames = async () => names((await b.beaconBatches()).map((x) => x.batch));
/** An open socket with "in-flight" sent and not acknowledged and "queued" waiting; the tab is
 *  hidden `after` ms later. */
function hiddenWithBatchInFlight(after = 0) {
  const agent = connected();
  agent.track("in-flight");
  agent.flush();
  agent.track("queued");
  tick(after);
  b.setHidden(true);
}

test("hidden with an open socket: what waits goes once by beacon; the batch in flight is beaconed and stays the socket's, the one copy that may arrive twice", async () => {
  hiddenWithBatchInFlight();
  // (And the page's visible time: connected()'s second.)
  assert.deepEqual(await beaconNames(), ["in-flight", "queued", "engagement"]);
  b.socket.ackLast();
  tick(60_000);
  b.setHidden(false);
  tick(5000);
  assert.deepEqual(names(b.socket.sent), ["pageview", "in-flight"], "the socket sent nothing the beacon carried from the queue");
  const all = await delivered();
  assert.deepEqual([all.length, twice(all)], [5, 1]);
});

test("hidden with an open socket that has died without a close, and the page never runs again: nothing is lost", async () => {
  hiddenWithBatchInFlight(900); // the batch went out just before the hide, its Ack never comes
  b.beaconsDelivered();
  const got = new Set(await beaconed());
  for (const event of b.socket.sent.at(-1).events) assert.ok(got.has(Buffer.from(event.id).toString("hex")), "the batch in flight was beaconed");
  assert.deepEqual(await beaconNames(), ["in-flight", "queued", "engagement"]);
});

test("hidden with an open socket that then drops: only the batch in flight is resent, not what the beacon carried", async () => {
  hiddenWithBatchInFlight();
  b.socket.drop(1006);
  tick(30_000); // the reconnect's backoff
  b.socket.open();
  b.socket.ackLast();
  tick(5000);
  assert.deepEqual(names(b.socket.sent), ["in-flight"]);
  const all = await delivered();
  // The batch in flight: its first send, its beacon and its resend (the socket's own guarantee).
  assert.deepEqual([all.length, twice(all)], [6, 2]);
  assert.deepEqual(ids(b.socket.sent[0]), ids(b.sockets[0].sent[1]));
});

test("hidden with an open socket and a backlog over 64 KiB: what the browser took is dropped, what it refused goes over the socket; none twice", async () => {
  b = installBrowser();
  const agent = createAgent(options({ autoPageviews: false, batchSize: 1e6, maxQueue: 1e6 }));
  agent.track("first");
  tick(1000);
  tick(0);
  b.socket.open(); // "first" is in flight
  for (let i = 0; i < 2000; i++) agent.track("bulk", { i, pad: "x".repeat(40) });
  b.setHidden(true);
  const took = await beaconed();
  assert.ok(took.length > 0 && took.length < 2000, `the browser took ${took.length} events, not all`);
  b.beaconsDelivered();
  b.setHidden(false);
  for (let n = 0; n < b.socket.sent.length; n++) b.socket.ack(Number(b.socket.sent[n].seq));
  const all = await delivered();
  // "first", in flight, was beaconed too: the one event that arrives twice.
  assert.deepEqual([all.length, twice(all)], [2002, 1]);
});

test("hidden while the socket is not known to take events (a RETRY wait): everything is beaconed and kept for the socket", async () => {
  // A RETRY wait: the server refuses events now, and may refuse the beacon too.
  const agent = connected();
  agent.track("retried");
  agent.flush();
  b.socket.ack(2, 2, { retryAfterMs: 5000 });
  b.setHidden(true);
  assert.deepEqual(await beaconNames(), ["retried", "engagement"]);
  tick(5000);
  assert.deepEqual(names([b.socket.sent.at(-1)]), ["retried", "engagement"]);
});

test("offline, a hidden page beacons nothing (it would be lost) and sends it all once online", async () => {
  const agent = connected();
  agent.track("offline");
  b.navigator.onLine = false;
  b.socket.drop();
  b.setHidden(true);
  b.window.dispatchEvent(new Event("pagehide"));
  assert.equal(b.beacons.length, 0);
  b.navigator.onLine = true;
  b.window.dispatchEvent(new Event("online"));
  tick(0);
  b.socket.open();
  // (With the page's visible time, reported when it was hidden: connected()'s second.)
  assert.deepEqual(names(b.socket.sent), ["offline", "engagement"]);
});

test("engagement: the page's visible time goes out as an engagement event when it is hidden, from a second on; other events carry none", async () => {
  const agent = connected(); // the pageview at T0: nothing before it
  assert.equal(b.socket.sent[0].events[0].engagementMs, 0);
  tick(3000);
  b.setHidden(true); // 4 s visible since the pageview: an "engagement" event goes out by beacon
  let beacons = await b.beaconBatches();
  assert.deepEqual(names(beacons.map((x) => x.batch)), ["engagement"]);
  assert.equal(beacons[0].batch.events[0].engagementMs, 4000);
  tick(60_000); // hidden: not engaged
  // The socket was open and answering: the beacon carried the event, and only the beacon.
  assert.equal(b.socket.sent.length, 1);
  b.setHidden(false);
  tick(500);
  agent.track("click");
  agent.flush();
  assert.equal(b.socket.sent.at(-1).events[0].engagementMs, 0, "the server counts engagement events' time only");
  b.socket.ackLast();
  tick(200);
  b.setHidden(true); // 700 ms: under a second, no engagement event; it waits for more
  b.setHidden(false);
  tick(400);
  b.window.dispatchEvent(new Event("pagehide")); // 1,100 ms visible since the last report
  beacons = await b.beaconBatches();
  assert.equal(beacons.length, 2);
  assert.deepEqual(beacons[1].batch.events.map((e) => [e.name, e.engagementMs]), [["engagement", 1100]]);
});

test("SPA: each page's visible time goes out as an engagement event for that page before the next pageview; custom events take none of it", async () => {
  const agent = connected({ batchSize: 1e3 }, { url: "https://shop.example/a" });
  const visible = { "/a": 0 };
  let since = T0; // /a has been visible since the agent started
  tick(20_000);
  agent.track("click"); // on /a: not the end of its time
  tick(40_000);
  visible["/a"] = Date.now() - since;
  b.history.pushState({}, "", "/b");
  since = Date.now();
  tick(30_000);
  visible["/b"] = Date.now() - since;
  b.history.pushState({}, "", "/c");
  tick(500); // under a second on /c: not reported, and not counted on /d either
  b.history.pushState({}, "", "/d");
  since = Date.now();
  tick(2000);
  visible["/d"] = Date.now() - since;
  b.setHidden(true);
  // Everything after connected()'s acknowledged pageview is unacknowledged, and the click's batch
  // has waited for its Ack for a minute (the socket may be dead): all of it is beaconed.
  const events = (await b.beaconBatches()).flatMap((x) => x.batch.events);
  assert.deepEqual(
    events.map((e) => [e.name, new URL(e.url).pathname, e.engagementMs]),
    [
      ["click", "/a", 0],
      ["engagement", "/a", visible["/a"]],
      ["pageview", "/b", 0],
      ["engagement", "/b", visible["/b"]],
      ["pageview", "/c", 0],
      ["pageview", "/d", 0],
      ["engagement", "/d", visible["/d"]],
    ],
  );
  assert.deepEqual([visible["/a"], visible["/b"], visible["/d"]], [61_000, 30_000, 2000]);
});

test("SPA pageviews: pushState and popstate to a new path count, replaceState on the same path and hash changes do not", () => {
  const agent = connected();
  b.history.pushState({}, "", "/cart");
  b.history.replaceState({}, "", "/cart?step=2");
  b.history.pushState({}, "", "/cart#top");
  b.history.pushState({}, "", "/checkout");
  b.setUrl("/cart");
  b.window.dispatchEvent(new Event("popstate"));
  b.setUrl("/cart#x");
  b.window.dispatchEvent(new Event("hashchange"));
  agent.flush();
  const pv = b.socket.sent[1].events.filter((e) => e.name === "pageview").map((e) => new URL(e.url).pathname);
  assert.deepEqual(pv, ["/cart", "/checkout", "/cart"]);
});

test("hash routing: hash changes are pages; pageview(url) always records", () => {
  const agent = connected({ hashRouting: true });
  b.setUrl("/#/a");
  b.window.dispatchEvent(new Event("hashchange"));
  b.window.dispatchEvent(new Event("hashchange")); // same page: once
  b.setUrl("/#/b");
  b.window.dispatchEvent(new Event("hashchange"));
  agent.pageview(); // already recorded
  agent.pageview("https://shop.example/virtual");
  agent.flush();
  assert.deepEqual(
    b.socket.sent[1].events.filter((e) => e.name == "pageview").map((e) => e.url),
    ["https://shop.example/#/a", "https://shop.example/#/b", "https://shop.example/virtual"],
  );
});

test("outbound links and file downloads are events with the link's URL; same-host links and right clicks are not", () => {
  const agent = connected();
  b.click("https://partner.example/offer");
  b.click("/docs/guide.pdf");
  b.click("/export", { download: true });
  b.click("https://partner.example/middle", { button: 1 });
  b.click("https://partner.example/context-menu", { button: 2 });
  b.click("/about");
  b.click("mailto:x@shop.example");
  agent.flush();
  assert.deepEqual(
    b.socket.sent[1].events.map((e) => [e.name, e.props[0].value]),
    [
      ["Outbound Link", "https://partner.example/offer"],
      ["File Download", "https://shop.example/docs/guide.pdf"],
      ["File Download", "https://shop.example/export"],
      ["Outbound Link", "https://partner.example/middle"],
    ],
  );
});

test("custom events carry properties and revenue in micros with the currency", () => {
  const agent = connected();
  agent.track("purchase", { sku: "A-1", qty: 2, gift: true }, { amount: 12.34, currency: "EUR" });
  agent.flush();
  const e = b.socket.sent[1].events[0];
  assert.deepEqual(Object.fromEntries(e.props.map((p) => [p.key, p.value])), { sku: "A-1", qty: "2", gift: "true" });
  assert.equal(e.revenueMicros, "12340000");
  assert.equal(e.currency, "EUR");
});

test("values the server would reject are made valid: a path is resolved against the page, a currency upper-cased", () => {
  const agent = connected({}, { url: "https://shop.example/checkout/step-1?x=1" });
  agent.pageview("/checkout/step-2");
  agent.pageview("step-3");
  agent.track("purchase", {}, { amount: 5, currency: "eur" });
  agent.flush();
  // (After an engagement event for step-1, visible for connected()'s second.)
  const [a, c, p] = b.socket.sent[1].events.filter((e) => e.name != "engagement");
  assert.equal(a.url, "https://shop.example/checkout/step-2");
  assert.equal(c.url, "https://shop.example/checkout/step-3");
  assert.equal(p.currency, "EUR");
});

test("a referrer that is not http(s) (an Android app's android-app://) is left out; http(s) ones are kept", () => {
  for (const [referrer, sent] of [
    ["android-app://com.google.android.gm/", ""],
    ["HTTPS://news.example/a", "HTTPS://news.example/a"],
    ["http://news.example/", "http://news.example/"],
  ]) {
    b = installBrowser();
    b.document.referrer = referrer;
    createAgent(options());
    tick(1000);
    tick(0);
    b.socket.open();
    assert.equal(b.socket.sent[0].events[0].referrer, sent, referrer);
    b.uninstall();
  }
});

test("consent required: nothing at all before optIn (not even a connection); optOut discards what waits and stops", () => {
  b = installBrowser();
  const agent = createAgent(options({ requireConsent: true }));
  agent.track("before");
  tick(5000);
  assert.equal(b.sockets.length, 0);
  agent.optIn(); // records the current page
  agent.track("after");
  tick(1000);
  tick(0);
  b.socket.open();
  assert.deepEqual(names(b.socket.sent), ["pageview", "after"]);
  b.socket.ackLast();
  agent.track("queued-then-opted-out");
  agent.optOut();
  agent.track("after-opt-out");
  tick(5000);
  b.window.dispatchEvent(new Event("pagehide"));
  assert.equal(b.socket.sent.length, 1);
  assert.equal(b.beacons.length, 0);
});

test("optOut() then optIn() on the same page records the page again, as optIn() promises", () => {
  b = installBrowser();
  const agent = createAgent(options({ requireConsent: true }));
  agent.optIn();
  agent.optOut();
  agent.optIn();
  tick(1000);
  tick(0);
  b.socket.open();
  assert.deepEqual(names(b.socket.sent), ["pageview"]);
});

for (const [label, browserOptions, agentOptions, tracked] of [
  ["navigator.webdriver", { webdriver: true }, {}, false],
  ["a HeadlessChrome user agent", { userAgent: "Mozilla/5.0 HeadlessChrome/156.0" }, {}, false],
  ["a crawler", { userAgent: "Googlebot/2.1 (+http://www.google.com/bot.html)" }, {}, false],
  ["a crawler on Android", { userAgent: "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.204 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)" }, {}, false],
  ["a Cubot phone (a person, though its UA says \"bot\")", { userAgent: "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36" }, {}, true],
  ["a Cubot phone with an underscore model", { userAgent: "Mozilla/5.0 (Linux; Android 9; CUBOT_X19) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/110.0.0.0 Mobile Safari/537.36" }, {}, true],
  ["navigator.webdriver with trackBots", { webdriver: true }, { trackBots: true }, true],
  ["Do Not Track with respectDnt", { doNotTrack: "1" }, { respectDnt: true }, false],
  ["Global Privacy Control with respectDnt", { gpc: true }, { respectDnt: true }, false],
  ["Do Not Track without respectDnt", { doNotTrack: "1" }, {}, true],
]) {
  test(`${label}: ${tracked ? "tracked" : "nothing is sent, no listener or history patch installed"}`, () => {
    b = installBrowser(browserOptions);
    const pushState = b.history.pushState;
    const agent = createAgent(options(agentOptions));
    agent.track("x");
    tick(1000);
    tick(0);
    assert.equal(b.sockets.length, tracked ? 1 : 0);
    if (!tracked) assert.equal(b.history.pushState, pushState);
  });
}

test("never throws into the page: a broken WebSocket, misuse of the API, a failing beacon", () => {
  b = installBrowser();
  globalThis.WebSocket = class {
    constructor() {
      throw new Error("blocked by CSP");
    }
  };
  b.navigator.sendBeacon = () => {
    throw new TypeError("beacon refused");
  };
  // Past three failed attempts it posts: a fetch the CSP blocks too.
  let posts = 0;
  globalThis.fetch = () => (posts++, Promise.reject(new TypeError("blocked by CSP")));
  const agent = createAgent(options());
  assert.doesNotThrow(() => {
    agent.track(undefined);
    agent.track("x", { toString: null });
    agent.pageview(42);
    agent.track("r", {}, { amount: NaN, currency: "EUR" });
    agent.flush();
    for (let t = 0; t < 60; t++) tick(1000); // (one tick at a time: timers set during a tick wait for the next)
    b.history.pushState({}, "", "/next");
    b.window.dispatchEvent(new Event("pagehide"));
  });
  assert.equal(new URL(location.href).pathname, "/next", "the page's own pushState still works");
  assert.ok(posts > 0, "the HTTP fallback was tried");
});

test("init keeps one agent per page and returns a no-op agent where there is no browser", () => {
  assert.equal(init({ siteKey: "k", endpoint: "https://a.example" }), noopAgent, "no window in Node");
  assert.equal(init({ siteKey: "other", endpoint: "https://b.example" }), noopAgent, "the same agent");
  assert.doesNotThrow(() => noopAgent.track("x"));
});
