// packages/agent/src/proto.ts
var utf8 = new TextEncoder();
var varint = (o, n) => {
  let v = BigInt.asUintN(64, BigInt(n));
  for (; v > 127n; v >>= 7n) o.push(Number(v & 127n) | 128);
  o.push(Number(v));
};
var num = (o, field, n) => {
  if (n) {
    varint(o, field << 3);
    varint(o, n);
  }
};
var bytes = (o, field, b) => {
  if (b.length) {
    varint(o, field << 3 | 2);
    varint(o, b.length);
    o.push(...b);
  }
};
var str = (o, field, s) => bytes(o, field, utf8.encode(s));
var encodeEvent = (id, name, timeMs, url, referrer, props, revenueMicros, currency, screenWidth, engagementMs) => {
  const o = [];
  bytes(o, 1, id);
  str(o, 2, name);
  num(o, 3, timeMs);
  str(o, 4, url);
  str(o, 5, referrer);
  for (const k in props) {
    const p = [];
    str(p, 1, k);
    str(p, 2, String(props[k]));
    bytes(o, 6, p);
  }
  num(o, 7, revenueMicros);
  str(o, 8, currency);
  num(o, 9, screenWidth);
  num(o, 10, engagementMs);
  return new Uint8Array(o);
};
var encodeBatch = (siteKey, seq, events) => {
  const o = [];
  str(o, 1, siteKey);
  num(o, 2, seq);
  for (const e of events) bytes(o, 3, e);
  return new Uint8Array(o);
};
var decodeAck = (b) => {
  const r = [];
  let i = 0;
  const read = () => {
    let v = 0, scale = 1, x;
    do {
      x = b[i++];
      v += (x & 127) * scale;
      scale *= 128;
    } while (x > 127);
    return v;
  };
  while (i < b.length) {
    const tag = read();
    if ((tag & 7) == 2) i += read();
    else r[tag >> 3] = read();
  }
  return r;
};

// packages/agent/src/agent.ts
var BATCH_BYTES = 13e3;
var BACKOFF_MS = 500;
var BACKOFF_MAX_MS = 3e4;
var BOT = /bot|crawl|spider|headless|lighthouse/i;
var DOWNLOAD = /\.(pdf|zip|gz|7z|rar|dmg|exe|msi|apk|csv|xlsx?|docx?|pptx?|txt|mp[34])$/i;
var safe = (f) => (...a) => {
  try {
    f(...a);
  } catch {
  }
};
function createAgent(o) {
  const w = window, d = document, nav = navigator, loc = location;
  const now = Date.now;
  const key = o.siteKey;
  const http = o.endpoint.replace(/\/$/, "");
  const max = o.maxQueue || 1e3;
  const auto = o.autoPageviews != false;
  let queue = [];
  let sent = [];
  let seq = 0;
  let ws = 0;
  let attempt = 0;
  let batchTimer = 0;
  let retryTimer = 0;
  let last = 0;
  let consent = !o.requireConsent;
  let shown = d.hidden ? 0 : now();
  let engaged = 0;
  let off = !o.trackBots && (nav.webdriver || BOT.test(nav.userAgent)) || o.respectDnt && (nav.doNotTrack == "1" || nav.globalPrivacyControl);
  const on = (t, type, f) => t.addEventListener(type, safe(f), true);
  const pageKey = () => loc.pathname + (o.hashRouting ? loc.hash : "");
  const engagement = () => {
    const ms = engaged + (shown && now() - shown);
    engaged = 0;
    if (shown) shown = now();
    return Math.min(864e5, ms);
  };
  const record = (name, props, revenue, url = loc.href) => {
    if (off || !consent) return;
    queue.push(
      encodeEvent(
        crypto.getRandomValues(new Uint8Array(16)),
        name,
        now(),
        // href and referrer are ASCII (the URL serializer percent-encodes), so 2,048 characters
        // are 2,048 bytes: the server's limit, cut here rather than lose the event.
        url.slice(0, 2048),
        d.referrer.slice(0, 2048),
        props,
        revenue && Math.round(revenue.amount * 1e6),
        revenue && revenue.currency,
        screen.width,
        engagement()
      )
    );
    if (queue.length > max) queue.shift();
    if (queue.length >= (o.batchSize || 10)) flush();
    else batchTimer || (batchTimer = setTimeout(flush, o.flushInterval || 1e3));
  };
  const take = (from) => {
    let i = 0, size = 0;
    while (i < from.length && size < BATCH_BYTES) size += from[i++].length;
    return from.splice(0, i);
  };
  const flush = safe(() => {
    clearTimeout(batchTimer);
    batchTimer = 0;
    if (queue.length && !off && consent) {
      if (!ws)
        retryTimer || (retryTimer = setTimeout(
          connect,
          attempt && Math.min(BACKOFF_MAX_MS, BACKOFF_MS * 2 ** attempt) * (0.5 + Math.random() / 2)
        ));
      else if (ws.readyState == 1 && !sent.length) ws.send(encodeBatch(key, ++seq, sent = take(queue)));
    }
  });
  const connect = () => {
    retryTimer = 0;
    attempt++;
    if (ws || !consent) return;
    const s = ws = new WebSocket(http.replace(/^http/, "ws") + "/v1/ws");
    s.binaryType = "arraybuffer";
    s.onopen = flush;
    s.onmessage = safe((m) => {
      const ack = decodeAck(new Uint8Array(m.data));
      if (ack[1] != seq) return;
      attempt = 0;
      if (ack[2] == 2) {
        queue = sent.concat(queue);
        sent = [];
        clearTimeout(batchTimer);
        batchTimer = setTimeout(flush, ack[6] || 1e3);
      } else if (ack[2] == 3) {
        off = 1;
        s.close();
      } else {
        sent = [];
        flush();
      }
    });
    s.onclose = safe((e) => {
      if (s != ws) return;
      ws = 0;
      queue = (/^100[379]$/.test(e.code) ? [] : sent).concat(queue);
      sent = [];
      flush();
    });
  };
  const beacon = () => {
    const all = sent.concat(queue);
    sent = [];
    queue = [];
    while (all.length)
      nav.sendBeacon(http + "/v1/events", new Blob([encodeBatch(key, ++seq, take(all))], { type: "text/plain" }));
  };
  const hide = () => {
    if (shown) engaged += now() - shown;
    shown = 0;
    if (engaged >= 1e3 && last) record("engagement");
    beacon();
  };
  const pageview = (url) => {
    const k = pageKey();
    if (url || k != last) {
      last = k;
      record("pageview", void 0, void 0, url);
    }
  };
  const click = (e) => {
    const a = e.target.closest("a[href]");
    const href = a && a.href;
    if (!/^https?:/.test(href) || e.button > 1) return;
    if (o.fileDownloads != false && (a.hasAttribute("download") || DOWNLOAD.test(a.pathname)))
      record("File Download", { url: href });
    else if (o.outboundLinks != false && a.host != loc.host) record("Outbound Link", { url: href });
  };
  const agent = {
    pageview: safe(pageview),
    track: safe(record),
    optIn: safe(() => {
      consent = true;
      if (auto) pageview();
    }),
    optOut: safe(() => {
      consent = false;
      sent = [];
      queue = [];
    }),
    flush
  };
  if (!off) {
    if (auto) {
      const page = safe(() => pageview());
      for (const m of ["pushState", "replaceState"]) {
        const original = history[m];
        history[m] = function(...a) {
          const r = original.apply(this, a);
          page();
          return r;
        };
      }
      on(w, "popstate", page);
      on(w, "hashchange", page);
      page();
    }
    on(d, "click", click);
    on(d, "auxclick", click);
    on(d, "visibilitychange", () => d.hidden ? hide() : shown = now());
    on(w, "pagehide", hide);
    on(w, "pageshow", (e) => e.persisted && auto && (last = 0, pageview()));
    on(w, "online", () => {
      attempt = 0;
      clearTimeout(retryTimer);
      retryTimer = 0;
      flush();
    });
  }
  return agent;
}
var nothing = () => {
};
var noopAgent = { pageview: nothing, track: nothing, optIn: nothing, optOut: nothing, flush: nothing };
var instance;
var init = (options) => {
  if (!instance) {
    try {
      instance = createAgent(options);
    } catch {
      instance = noopAgent;
    }
  }
  return instance;
};
export {
  createAgent,
  init,
  noopAgent
};
