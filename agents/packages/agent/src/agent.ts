// The browser agent.
//
// Delivery contract: an event is kept (as encoded bytes) until the server acknowledges the batch
// that carried it. Batches go over one WebSocket per page, one batch at a time: the next is sent
// when the previous one's Ack (same seq, sent by the server once the events are durable) arrives,
// and a socket without an Ack for ACK_MS is given up.
// Stop-and-wait keeps the agent small and is fast enough, because a batch may hold up to 500
// events and the server acks within milliseconds. When the socket closes, the unacknowledged batch
// goes back to the front of the queue and is sent again after the reconnect; the server
// deduplicates by the event's random 128-bit id, so a resend never counts twice. A page whose
// socket does not open (a server full answering 503 to the upgrade, a proxy that strips Upgrade,
// a CSP without wss:) sends its batches by HTTP POST to /v1/events instead, after three
// connection attempts in a row that never opened: the same EventBatch, still one batch at a time,
// answered by the same Ack (or, unreadable, counted as a failure); the socket is still tried at
// the backoff's pace, and takes over once it opens. On pagehide (or
// when the page is hidden, the last moment mobile browsers guarantee) what waits is handed to
// navigator.sendBeacon, which outlives the page, as far as the browser takes it; each waiting event
// goes once, by the socket or by a beacon, unless the server is not known to take it (see beacon()).
// Trade-offs: memory is bounded (maxQueue events plus one batch), so a page offline for very long
// drops its oldest events first; and a beacon has no answer, so an event lost after a page's last
// beacon is lost.
//
// The host page comes first: every entry point (API, listeners, the history patch) runs inside
// `safe`, so nothing here ever throws into the page, and nothing blocks it (no sync XHR, no
// storage, no cookies). Bots, headless browsers and, when configured, Do Not Track / Global
// Privacy Control get an agent that does nothing.

import { decodeAck, encodeBatch, encodeEvent } from "./proto";

/** One encoded event. */
type Bytes = ReturnType<typeof encodeEvent>;

export interface AgentOptions {
  /** The site's public key, as shown in the dashboard. */
  siteKey: string;
  /** Base URL of the analytics server, e.g. "https://analytics.example.com". */
  endpoint: string;
  /** Pageviews on load and on pushState / replaceState / popstate path changes. Default true. */
  autoPageviews?: boolean;
  /** Treat the hash as part of the page (hash routers): "#/cart" and "#/" are different pages. */
  hashRouting?: boolean;
  /** Track clicks on links to other hosts as "Outbound Link" events. Default true. */
  outboundLinks?: boolean;
  /** Track clicks on file links (known extensions or `download` attribute) as "File Download". Default true. */
  fileDownloads?: boolean;
  /** Do nothing when the browser sends Do Not Track or Global Privacy Control. Default false. */
  respectDnt?: boolean;
  /** Send nothing until optIn() is called. Default false. */
  requireConsent?: boolean;
  /** Track even headless / automated / bot-like user agents (tests). Default false. */
  trackBots?: boolean;
  /** Send a batch once this many events are waiting. Default 10. */
  batchSize?: number;
  /** ...or this many milliseconds after the first one arrived. Default 1000. */
  flushInterval?: number;
  /** At most this many events wait for a connection; the oldest are dropped first. Default 1000. */
  maxQueue?: number;
}

/** Custom properties. The server's limits are applied before sending: the first 30 are sent,
 *  empty keys are left out, keys are cut to 128 bytes and values to 512 (UTF-8), control
 *  characters become spaces. */
export type Props = Record<string, string | number | boolean>;

export interface Revenue {
  /** In currency units: 12.34 means 12.34 EUR. */
  amount: number;
  /** ISO 4217 code, e.g. "EUR" ("eur" is sent as "EUR"). */
  currency: string;
}

export interface Agent {
  /** Records a pageview. Without a URL: the current page, unless it is the page already
   *  recorded (so routers and the automatic tracking never count one navigation twice).
   *  With a URL (absolute, or a path resolved against the page's): always recorded. */
  pageview(url?: string): void;
  /** Records a custom event, with optional properties and revenue. */
  track(name: string, props?: Props, revenue?: Revenue): void;
  /** Consent given: tracking starts now (and records the current page if it was not yet). */
  optIn(): void;
  /** Consent withdrawn: nothing more is sent, and what was waiting is discarded. */
  optOut(): void;
  /** Sends what is waiting now instead of at the end of the batching interval. */
  flush(): void;
}

/** A batch is closed once it holds this many bytes. An event is at least 28 bytes (16-byte id,
 *  name, time), so a batch stays under the server's 500 events (13,000 / 28 + 1 < 500); and an
 *  event is at most ~20 KB, so a batch stays under the 64 KiB a beacon may carry. */
const BATCH_BYTES = 13e3;
/** Reconnect backoff: 500 ms doubling to at most 30 s, each delay randomised to 50-100 %
 *  ("equal jitter") so that a server restart is not met by every page at the same instant. */
const BACKOFF_MS = 500;
const BACKOFF_MAX_MS = 3e4;
/** A batch not acknowledged within this gives the socket up: a connection can die without a close
 *  (a NAT or a phone's network dropping it) and then nothing would ever answer. The server acks
 *  within milliseconds, or answers RETRY once its log gave up (Kafka's delivery timeout: 10 s);
 *  a timeout that was too early costs a resend, which the server drops by the events' ids. */
const ACK_MS = 15e3;

// Browser user agents never say these; crawlers and automation do. Except Cubot phones
// ("...; CUBOT X30) ..."), whose " cubot" is taken out first: isbot's rule ("(?<! cu)bot"),
// without the lookbehind, which older Safari cannot parse (and a syntax error would stop the
// whole script). (Automation frameworks set navigator.webdriver, which is checked separately.)
const BOT = /bot|crawl|spider|headless|lighthouse/i;
// Links with a `download` attribute count too, whatever their extension.
const DOWNLOAD = /\.(pdf|zip|gz|7z|rar|dmg|exe|msi|apk|csv|xlsx?|docx?|pptx?|txt|mp[34])$/i;

/** Runs f, swallowing anything it throws: the agent must never break the host page. */
const safe =
  <A extends unknown[]>(f: (...a: A) => unknown) =>
  (...a: A): void => {
    try {
      f(...a);
    } catch {}
  };

/** Creates an agent. Most pages want `init`, which keeps one per page. */
export function createAgent(o: AgentOptions): Agent {
  const w = window, d = document, nav = navigator, loc = location;
  const now = Date.now;
  const key = o.siteKey;
  const http = o.endpoint.replace(/\/$/, "");
  const max = o.maxQueue || 1e3;
  const auto = o.autoPageviews != false;
  let queue: Bytes[] = [];
  /** The events of batch `seq`, sent and not yet acknowledged. */
  let sent: Bytes[] = [];
  let seq = 0;
  let ws: WebSocket | 0 = 0;
  let attempt = 0;
  /** Connection attempts in a row whose socket never opened, the one connecting now included:
   *  after three, batches go by HTTP. */
  let fails = 0;
  let batchTimer: any = 0;
  /** Runs while a batch is in flight on the socket (ACK_MS). */
  let ackTimer: any = 0;
  /** The wait before the next connection attempt. */
  let connectTimer: any = 0;
  /** The wait a RETRY (or an HTTP batch that failed) asked for: while it runs, flush sends
   *  nothing (and schedules no connection), whatever calls it. The browser's `online` event ends
   *  it early, as it ends connectTimer's. (Not one timer for both: by HTTP, batches go during the
   *  socket's backoff.) */
  let retryTimer: any = 0;
  /** The page last recorded by pageview(): path (and hash with hashRouting), and its URL as sent. */
  let last: string | 0 = 0;
  let page = "";
  let consent = !o.requireConsent;
  // Millisecond instant the page became visible (0 while hidden), and visible time not yet reported.
  let shown = d.hidden ? 0 : now();
  let engaged = 0;
  let off: unknown =
    (!o.trackBots && (nav.webdriver || BOT.test(nav.userAgent.replace(/ cubot/gi, "")))) ||
    (o.respectDnt && (nav.doNotTrack == "1" || (nav as any).globalPrivacyControl));

  const on = (t: EventTarget, type: string, f: (e: any) => void) => t.addEventListener(type, safe(f), true);
  const pageKey = () => loc.pathname + (o.hashRouting ? loc.hash : "");

  /** A time-ordered id: 48-bit Unix ms (big endian), then 80 random bits, the layout of a UUIDv7
   *  without its version bits (the server needs neither, and the agent's size budget is tight).
   *  Time-ordered ids keep the server's duplicate check on the recent end of its id index.
   *  (Typed arrays store each assignment mod 256, so dividing by 256 walks the bytes from the end.) */
  const id = () => {
    const b = crypto.getRandomValues(new Uint8Array(16));
    for (let i = 6, t = now(); i--; t /= 256) b[i] = t;
    return b;
  };

  /** ms: engagement_ms, which only `engagement` events carry. */
  const record = (name: string, props?: Props, revenue?: Revenue, url = loc.href, ms?: number) => {
    if (off || !consent) return;
    queue.push(
      encodeEvent(
        id(),
        name,
        now(),
        // The server takes absolute http(s) URLs only: a path ("/checkout/step-2") is resolved
        // against the page, and a referrer of another scheme (android-app://, which Android
        // apps send) is left out rather than have the server reject every event of the page.
        new URL(url, loc.href).href,
        /^https?:/i.test(d.referrer) ? d.referrer : "",
        props,
        revenue && Math.round(revenue.amount * 1e6),
        // ISO 4217 codes are upper case on the wire; "eur" means EUR.
        revenue && revenue.currency.toUpperCase(),
        screen.width,
        ms,
      ),
    );
    if (queue.length > max) queue.shift();
    if (queue.length >= (o.batchSize || 10)) flush();
    else batchTimer ||= setTimeout(flush, o.flushInterval || 1e3);
  };

  /** Takes the next batch's events off the front of `from`. */
  const take = (from: Bytes[]) => {
    let i = 0, size = 0;
    while (i < from.length && size < BATCH_BYTES) size += from[i++].length;
    return from.splice(0, i);
  };

  /** The reconnect backoff's delay after n attempts (0 for none: the page's first connection, and
   *  the first after an `online` event, are immediate). */
  const backoff = (n: number) => n && Math.min(BACKOFF_MAX_MS, BACKOFF_MS * 2 ** n) * (0.5 + Math.random() / 2);

  /** Sends nothing for ms, then what waits. */
  const wait = (ms: number) => (retryTimer = setTimeout(() => ((retryTimer = 0), flush()), ms));

  /** An EventBatch as a request body. text/plain: the only body type sendBeacon may send
   *  cross-origin without a preflight, and a fetch with it needs none either. */
  const body = (n: number, events: Bytes[]) => new Blob([encodeBatch(key, n, events)], { type: "text/plain" });

  /** Sends the next batch if nothing is in flight: over the socket when it is open, else by HTTP
   *  after three attempts that never opened; (re)connects, with backoff, if there is no socket. */
  const flush = safe(() => {
    // (clearTimeout returns undefined: falsy, as "no timer" is.)
    batchTimer = clearTimeout(batchTimer);
    // (A batch in flight by HTTP keeps the socket's attempts going.)
    if (sent.length + queue.length && !off && consent && !retryTimer) {
      if (!ws) connectTimer ||= setTimeout(connect, backoff(attempt));
      // (Then the queue is not empty.)
      if (!sent.length) {
        if (ws && ws.readyState == 1)
          ws.send(encodeBatch(key, ++seq, (sent = take(queue)))), (ackTimer = setTimeout(drop, ACK_MS));
        // A socket still connecting is one of the attempts counted, not yet one that failed.
        else if (fails > (ws ? 3 : 2)) post();
      }
    }
  });

  /** The server's Ack for the batch in flight (`sent`), from the socket or by HTTP. safe: it runs
   *  after an await too, where a throw would reach the page as an unhandled rejection. */
  const answer = safe((ack: number[], socket?: unknown) => {
    ackTimer = clearTimeout(ackTimer);
    if (ack[2] > 2)
      // UNKNOWN_SITE, FORBIDDEN_ORIGIN (and MALFORMED): refusals that no retry fixes, nor a
      // beacon (the server would refuse it too): what waits is dropped, nothing is recorded.
      (queue = sent = []), (off = 1), ws && ws.close();
    else if (ack[2] == 2)
      // RETRY: nothing of the batch was kept; send it again first, after the server's delay
      // (retry_after_ms, which the server always sends with RETRY), during which flush sends
      // nothing. Rate limited (retry_reason 2-4: this socket, this address, this site): slow
      // down too, doubling the wait while the server keeps limiting. The count is the
      // reconnect backoff's `attempt` (1 after an OK ack; false counts as 0 doublings): a page
      // the server is limiting also reconnects slower. The log being unavailable is not our
      // doing, so its wait is taken as given.
      (queue = sent.concat(queue)), wait(Math.min(BACKOFF_MAX_MS, ack[6] * 2 ** ((ack[7] > 1 && attempt++) as number)));
    // OK over the socket. Not 0: after a drop, even the first reconnect waits (with jitter), so
    // that a server restart is not met by every page at the same instant. (OK by HTTP says
    // nothing about the socket: its backoff goes on.)
    else if (socket) attempt = 1;
    sent = [];
    flush();
  });

  /** Sends the next batch by HTTP. Cross-origin the page reads every answer but a 403 (foreign
   *  origin, unknown key), which the server lets no page read: an Ack is honoured as the socket's,
   *  400 and 413 drop the batch; anything else (a 503 without an Ack, a 403, a network error, a
   *  CSP) resends it after the Retry-After it gave, when readable, or the backoff, which then
   *  grows. */
  const post = async () => {
    const n = ++seq;
    let r: any = 0, ack: number[] = [];
    try {
      r = await fetch(http + "/v1/events", { method: "POST", body: body(n, (sent = take(queue))) });
      ack = decodeAck(new Uint8Array(await r.arrayBuffer()));
    } catch {}
    // Else not this batch's answer any more: it went back to the queue (a socket opened and closed).
    if (n == seq) {
      if (ack[1] == n) answer(ack);
      // 400 undecodable, 413 too big: resending would fail forever (the socket's 1007 / 1009).
      else if (r.status == 400 || r.status == 413) (sent = []), flush();
      else (queue = sent.concat(queue)), (sent = []), wait(+(r && r.headers.get("retry-after")) * 1e3 || backoff(++attempt));
    }
  };

  /** The socket is gone: closed, or silent past ACK_MS (then it is closed here, and its own close
   *  event later is ignored). Its unacknowledged batch goes back to the front of the queue, unless
   *  the server refused that batch itself (`poison`), and the agent reconnects. safe: it also runs
   *  from a timer. */
  const drop = safe((poison?: unknown) => {
    const s = ws;
    ws = 0;
    ackTimer = clearTimeout(ackTimer);
    s && s.close();
    queue = (poison ? [] : sent).concat(queue);
    sent = [];
    flush();
  });

  // safe: it runs from a timer, where a throw (a WebSocket blocked by CSP, which some browsers
  // throw at once) would reach the page's error handlers.
  const open = safe(() => {
    const s = (ws = new WebSocket(http.replace(/^http/, "ws") + "/v1/ws"));
    s.binaryType = "arraybuffer";
    s.onopen = () => ((fails = 0), flush());
    s.onmessage = safe((m: MessageEvent) => {
      const ack = decodeAck(new Uint8Array(m.data));
      ack[1] == seq && answer(ack, 1);
    });
    // A socket that never opened (fails is not 0) carried nothing: the batch in flight, if any,
    // is HTTP's. 1003 / 1007 / 1009: the server refused the batch itself (not binary,
    // undecodable, too big). Resending it would fail forever; any other close sends it again.
    // error too: Chromium ends a socket its CSP blocks with an error and no close. (Elsewhere a
    // close follows the error, and finds the socket given up already.)
    s.onerror = s.onclose = (e: any) => s == ws && (fails ? ((ws = 0), flush()) : drop(/^100[379]$/.test(e.code)));
  });

  /** A connection attempt; then flush, which posts by HTTP once enough attempts failed, and
   *  schedules the next attempt when the WebSocket constructor threw. */
  const connect = () => {
    connectTimer = 0;
    attempt++;
    if (!ws && consent) fails++, open();
    flush();
  };

  /** Hands everything unacknowledged to the browser, which sends it even after the page is gone,
   *  batch by batch until it refuses one: browsers cap the bytes of pending beacons (about 64 KiB
   *  in all), so a large backlog does not fit, and what the browser refused is kept for the
   *  socket. Offline, a beacon would be lost, so nothing is handed over. A beacon has no answer
   *  (nor a seq: the socket's batch in flight keeps its own), so:
   *  - The page is going away (`unload`, pagehide): what the browser took is dropped.
   *  - The page is merely hidden and the socket takes events (open, no RETRY wait): what the
   *    browser took from the queue is dropped (each of those events goes once; left to the socket
   *    alone, a hidden page frozen or killed without a pagehide would lose it), while the batch in
   *    flight, beaconed too, stays the socket's until its Ack: a socket that died without a close
   *    resends it, a page killed meanwhile has it beaconed. Only that batch can arrive twice
   *    (the server drops the copy by the events' ids); usually nothing is in flight, as Acks come
   *    within milliseconds.
   *  - Merely hidden otherwise (no socket open: connecting, backing off, by HTTP; a RETRY wait):
   *    the server is not known to take events now, so it may refuse or never get the beacon, and
   *    nothing would tell: everything is kept and sent again when the page runs. */
  const beacon = (unload?: unknown) => {
    const socket = !unload && ws && ws.readyState == 1 && !retryTimer;
    let rest = sent.concat(queue), refused: Bytes[] = [];
    // (fetch keepalive shares sendBeacon's 64 KiB budget, so it would not rescue a refused beacon.)
    while (nav.onLine && rest.length && nav.sendBeacon(http + "/v1/events", body(0, (refused = take(rest)))))
      refused = [];
    // Not handed over: a suffix of sent + queue. Shorter than the queue, it is the queue's tail.
    rest = refused.concat(rest);
    if (unload) (sent = []), (queue = rest);
    else if (socket && rest.length < queue.length) queue = rest;
  };

  /** Reports the page's visible time not yet reported, once it is at least a second, as an
   *  `engagement` event for the page (the URL of its pageview; engagement_ms at most one day):
   *  the server's time_on_page sums engagement_ms of these events only. Less waits for more
   *  visible time on the same page. */
  const engage = () => {
    if (shown) (engaged += now() - shown), (shown = now());
    if (engaged >= 1e3 && last) record("engagement", undefined, undefined, page, Math.min(864e5, engaged)), (engaged = 0);
  };

  /** The page is hidden or going away: report its visible time, then beacon what is left. */
  const hide = (unload?: unknown) => {
    engage();
    shown = 0;
    beacon(unload);
  };

  const pageview = (url?: string) => {
    const k = pageKey();
    // Without consent the page is not recorded, so optIn() can still record it.
    if (consent && (url || k != last)) {
      // A new page (a SPA's navigation): the page left gets its time first, and keeps what was
      // under a second; the new one starts from nothing.
      engage();
      engaged = 0;
      last = k;
      record("pageview", undefined, undefined, (page = new URL(url || loc.href, loc.href).href));
    }
  };

  const click = (e: MouseEvent) => {
    const a = (e.target as Element).closest("a[href]") as HTMLAnchorElement;
    const href = a && a.href;
    // button: 0 for a click, 1 for a middle click (auxclick); not the context menu's 2.
    if (!/^https?:/.test(href) || e.button > 1) return;
    if (o.fileDownloads != false && (a.hasAttribute("download") || DOWNLOAD.test(a.pathname)))
      record("File Download", { url: href });
    else if (o.outboundLinks != false && a.host != loc.host) record("Outbound Link", { url: href });
  };

  const agent: Agent = {
    pageview: safe(pageview),
    track: safe(record),
    optIn: safe(() => {
      consent = true;
      if (auto) pageview();
    }),
    optOut: safe(() => {
      consent = false;
      // The socket may stay open: with consent false nothing is written to it. The page's
      // pageview was discarded or may be, so a later optIn() records the page again.
      sent = [];
      queue = [];
      last = 0;
    }),
    flush,
  };

  if (!off) {
    if (auto) {
      const page = safe(() => pageview());
      for (const m of ["pushState", "replaceState"] as const) {
        const original = history[m];
        history[m] = function (this: History, ...a: Parameters<History["pushState"]>) {
          const r = original.apply(this, a);
          page();
          return r;
        };
      }
      // Without hashRouting a hash change keeps the page key, so pageview() records nothing.
      on(w, "popstate", page);
      on(w, "hashchange", page);
      page();
    }
    on(d, "click", click);
    on(d, "auxclick", click);
    on(d, "visibilitychange", () => (d.hidden ? hide() : (shown = now())));
    // pagehide passes its event (truthy): the page is going away.
    on(w, "pagehide", hide);
    // Back from the back/forward cache: a new view of the page. (visibilitychange restarts the
    // engagement clock.)
    on(w, "pageshow", (e: PageTransitionEvent) => e.persisted && auto && ((last = 0), pageview()));
    on(w, "online", () => {
      attempt = 0;
      retryTimer = clearTimeout(retryTimer);
      connectTimer = clearTimeout(connectTimer);
      flush();
    });
  }
  return agent;
}

const nothing = () => {};

/** An agent that does nothing: what `init` gives where there is no browser (server-side
 *  rendering) or when the options are unusable. */
export const noopAgent: Agent = { pageview: nothing, track: nothing, optIn: nothing, optOut: nothing, flush: nothing };

/** Where the page's agent is kept: on window, not in a module variable, so that every copy of
 *  this code on a page (the script tag and an npm package, or two bundles) finds the same agent
 *  instead of counting everything twice. */
export const AGENT = Symbol.for("analytics.agent");

/** The page's agent: created on the first call, returned by every later one (options of later
 *  calls are ignored), so a page never holds more than one WebSocket. Never throws: without a
 *  browser (server-side rendering) or with unusable options it returns `noopAgent`. */
export const init = (options: AgentOptions): Agent => {
  try {
    return ((window as any)[AGENT] ||= createAgent(options));
  } catch {
    return noopAgent;
  }
};
