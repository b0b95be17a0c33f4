// A minimal browser for the agent's unit tests: the globals the agent touches (window, document,
// navigator, location, history, screen, WebSocket, sendBeacon, fetch), each under the test's
// control. The WebSocket is a fake the test opens, answers and drops by hand; so is fetch, whose
// requests wait until the test answers them (await settle() lets the agent see the answer). Real-browser behaviour is
// covered by test/browser; these tests pin down the agent's own logic step by step.
import { decodeBatch, encodeAck } from "./load.mjs";

export class FakeSocket {
  constructor(url, browser) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    browser.sockets.push(this);
  }
  send(bytes) {
    if (this.readyState !== 1) throw new Error("InvalidStateError: not open");
    this.sent.push(decodeBatch(bytes));
  }
  close() {
    this.drop(1000);
  }
  // Test controls.
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  ack(seq, status = 1, more = {}) {
    // A copy: protobufjs may hand out a view into a shared pool buffer.
    this.onmessage?.({ data: new Uint8Array(encodeAck({ seq, status, ...more })).buffer });
  }
  drop(code = 1006) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code });
  }
  /** A socket the page's CSP blocks, as Chromium ends it: an error event, and no close. */
  blocked() {
    this.readyState = 3;
    this.onerror?.({});
  }
  /** The last batch sent, acknowledged OK. */
  ackLast() {
    const b = this.sent.at(-1);
    this.ack(Number(b.seq));
    return b;
  }
}

/** Lets pending promises (a fetch and its answer) run; fake timers do not move. */
export const settle = () => new Promise((r) => setImmediate(r));

/** One fetch() the agent made, with its body decoded, waiting for the test's answer. */
class FakeRequest {
  constructor(url, init, batch, resolve, reject) {
    Object.assign(this, { url, method: init.method, type: init.body.type, batch, resolve, reject });
  }
  /** Answers with a status, an Ack (protobuf body, as the server sends) or else a problem+json
   *  body, and headers. */
  respond(status, { ack, headers = {} } = {}) {
    const body = ack ? new Uint8Array(encodeAck(ack)) : JSON.stringify({ title: "not an Ack" });
    this.resolve(new Response(body, { status, headers: { "content-type": ack ? "application/x-protobuf" : "application/problem+json", ...headers } }));
  }
  /** 200 with Ack OK for this batch. */
  ok() {
    this.respond(200, { ack: { seq: Number(this.batch.seq), status: 1 } });
  }
  /** What a browser does for a network error, a CSP, or an answer without a CORS grant. */
  fail() {
    this.reject(new TypeError("Failed to fetch"));
  }
}

/** Installs the fake globals; returns the handle the test drives. */
export function installBrowser({ url = "https://shop.example/", userAgent = "Mozilla/5.0 Chrome/156.0 Safari/537.36", webdriver = false, doNotTrack = null, gpc = false } = {}) {
  // beaconBytes: the bytes of beacons the browser holds. Chromium refuses a beacon (sendBeacon
  // returns false) that would take its pending keepalive bytes past 64 KiB; the test calls
  // beaconsDelivered() when the network has carried them.
  const browser = { sockets: [], beacons: [], beaconBytes: 0, requests: [] };
  const window = new EventTarget();
  const document = new EventTarget();
  document.hidden = false;
  document.referrer = "https://www.google.com/";
  let current = new URL(url);
  const location = {
    get href() {
      return current.href;
    },
    get pathname() {
      return current.pathname;
    },
    get hash() {
      return current.hash;
    },
    get host() {
      return current.host;
    },
  };
  const history = {
    pushState(_s, _t, u) {
      current = new URL(u, current);
    },
    replaceState(_s, _t, u) {
      current = new URL(u, current);
    },
  };
  const navigator = {
    userAgent,
    webdriver,
    doNotTrack,
    globalPrivacyControl: gpc,
    onLine: true,
    sendBeacon(url, blob) {
      if (browser.beaconBytes + blob.size > 65536) return false;
      browser.beaconBytes += blob.size;
      browser.beacons.push({ url, blob });
      return true;
    },
  };
  const globals = {
    window,
    document,
    location,
    history,
    navigator,
    screen: { width: 1440 },
    WebSocket: class extends FakeSocket {
      constructor(u) {
        super(u, browser);
      }
    },
    async fetch(url, init) {
      const batch = decodeBatch(new Uint8Array(await init.body.arrayBuffer()));
      return new Promise((resolve, reject) => browser.requests.push(new FakeRequest(url, init, batch, resolve, reject)));
    },
  };
  for (const [k, v] of Object.entries(globals)) Object.defineProperty(globalThis, k, { value: v, configurable: true, writable: true });
  // defineProperties, not Object.assign: assign would read the getters once, now.
  Object.defineProperties(browser, Object.getOwnPropertyDescriptors({
    window,
    document,
    history,
    navigator,
    get socket() {
      return browser.sockets.at(-1);
    },
    /** Every batch sent over every socket, decoded. */
    get batches() {
      return browser.sockets.flatMap((s) => s.sent);
    },
    /** Navigates within the page (the way a router does, or the back button). */
    setUrl(u) {
      current = new URL(u, current);
    },
    async beaconBatches() {
      return Promise.all(browser.beacons.map(async (b) => ({ url: b.url, type: b.blob.type, batch: decodeBatch(new Uint8Array(await b.blob.arrayBuffer())) })));
    },
    /** Dispatches a click whose target is inside <a href=...> (closest() finds the link). */
    click(href, { download = false, button = 0 } = {}) {
      const a = new URL(href, current);
      const link = { href: a.href, host: a.host, pathname: a.pathname, hasAttribute: (n) => n === "download" && download };
      const e = new Event(button ? "auxclick" : "click");
      Object.defineProperty(e, "target", { value: { closest: () => link } });
      Object.defineProperty(e, "button", { value: button });
      document.dispatchEvent(e);
    },
    beaconsDelivered() {
      browser.beaconBytes = 0;
    },
    setHidden(hidden) {
      document.hidden = hidden;
      document.dispatchEvent(new Event("visibilitychange"));
    },
    uninstall() {
      for (const k of Object.keys(globals)) delete globalThis[k];
    },
  }));
  return browser;
}

/** Names of the events in decoded batches. */
export const names = (batches) => batches.flatMap((b) => b.events.map((e) => e.name));
