// The agent's hand-written protobuf writer and Ack reader against an independent implementation:
// protobufjs loading schemas/events.proto decodes every batch the agent writes, field by field.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { Ack, decodeBatch, encodeAck, loadSource } from "./load.mjs";

const { encodeEvent, encodeBatch, decodeAck } = await loadSource("proto");

/** Deterministic pseudo-random numbers, so a failure can be reproduced. */
function rng(seed) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
}

const texts = ["", "a", "pageview", "Outbound Link", "café ☕", "日本語のイベント", "emoji 🎉🎉", "x".repeat(128), "q=1&b=%20"];

function randomEvent(r) {
  const pick = (a) => a[Math.floor(r() * a.length)];
  const props = {};
  const n = Math.floor(r() * 4);
  // Keys within the server's 128 bytes: a longer one is cut (tested below).
  for (let i = 0; i < n; i++) props[`k${i}${pick(texts)}`.slice(0, 128)] = pick(texts) + i;
  const revenue = r() < 0.5 ? 0 : Math.round((r() - 0.3) * 2e12); // negative too: refunds
  return {
    id: randomBytes(16),
    name: pick(texts) || "pageview",
    clientTimeMs: pick([0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 + 5, Date.now(), 2 ** 53 - 1]),
    url: pick(["", "https://shop.example/", "https://shop.example/p?q=" + "z".repeat(1500)]),
    referrer: pick(["", "https://www.google.com/", "https://ref.example/é"]),
    props,
    revenueMicros: revenue,
    currency: revenue ? pick(["EUR", "USD"]) : "",
    screenWidth: pick([0, 1, 375, 1280, 20000]),
    engagementMs: pick([0, 999, 86_400_000]),
  };
}

const encode = (e) =>
  encodeEvent(e.id, e.name, e.clientTimeMs, e.url, e.referrer, e.props, e.revenueMicros, e.currency, e.screenWidth, e.engagementMs);

test("2,000 random events in random batches decode with protobufjs to the same values, field by field", () => {
  const r = rng(42);
  for (let b = 0; b < 200; b++) {
    const events = Array.from({ length: Math.floor(r() * 20) }, () => randomEvent(r));
    const seq = Math.floor(r() * 2 ** 40);
    const siteKey = b % 7 ? `site-${b}` : "";
    const decoded = decodeBatch(encodeBatch(siteKey, seq, events.map(encode)));
    assert.equal(decoded.siteKey, siteKey);
    assert.equal(decoded.seq, String(seq));
    assert.equal(decoded.events.length, events.length);
    decoded.events.forEach((d, i) => {
      const e = events[i];
      assert.deepEqual(Buffer.from(d.id), e.id);
      assert.equal(d.name, e.name);
      assert.equal(d.clientTimeMs, String(e.clientTimeMs));
      assert.equal(d.url, e.url);
      assert.equal(d.referrer, e.referrer);
      assert.deepEqual(Object.fromEntries(d.props.map((p) => [p.key, p.value])), e.props);
      assert.equal(d.revenueMicros, String(e.revenueMicros));
      assert.equal(d.currency, e.currency);
      assert.equal(d.screenWidth, e.screenWidth);
      assert.equal(d.engagementMs, e.engagementMs);
    });
  }
});

test("proto3 defaults are not written: an event with only an id is 18 bytes", () => {
  const bytes = encodeEvent(new Uint8Array(16), "", 0, "", "", undefined, 0, "", 0, 0);
  assert.equal(bytes.length, 18);
  assert.deepEqual([...bytes.slice(0, 2)], [0x0a, 16]);
});

/** The one event `fields` encode to, decoded. */
const roundTrip = (fields) => decodeBatch(encodeBatch("k", 1, [encode({ ...randomEvent(rng(1)), ...fields })])).events[0];

test("strings are sent as the server accepts them: cut to its byte limits on a character boundary, control characters as spaces", () => {
  // The limits of schemas/events.proto: name 128 bytes, url 2,048, property key 128, value 512.
  const e = roundTrip({
    name: "n".repeat(200),
    url: "https://shop.example/?q=" + "u".repeat(3000),
    props: { ["k".repeat(130)]: "v", odd: "a" + "é".repeat(300), even: "é".repeat(300), ctl: "a\nb\tc\x7fd\0" },
  });
  assert.equal(e.name, "n".repeat(128));
  assert.equal(Buffer.byteLength(e.url), 2048);
  const props = Object.fromEntries(e.props.map((p) => [p.key, p.value]));
  assert.equal(props["k".repeat(128)], "v");
  // "é" is 2 bytes: after "a", 255 of them are 511 bytes (a 256th would end at byte 513).
  assert.equal(props.odd, "a" + "é".repeat(255));
  assert.equal(props.even, "é".repeat(256));
  assert.equal(props.ctl, "a b c d ");
});

test("properties past the 30th and empty keys are left out, so the event is not rejected (TOO_MANY_PROPS, PROP_KEY_INVALID)", () => {
  const props = { "": "empty" };
  for (let i = 0; i < 35; i++) props[`p${i}`] = String(i);
  const e = roundTrip({ props });
  assert.deepEqual(
    e.props.map((p) => p.key),
    Array.from({ length: 30 }, (_, i) => `p${i}`),
  );
});

test("negative revenue is a 10-byte two's-complement varint, as int64 requires", () => {
  const e = { ...randomEvent(rng(1)), revenueMicros: -12_340_000, currency: "EUR", props: {} };
  const d = decodeBatch(encodeBatch("k", 1, [encode(e)])).events[0];
  assert.equal(d.revenueMicros, "-12340000");
});

test("Ack: seq, status and retry_after_ms are read; rejections and unknown fields are skipped", () => {
  const cases = [
    { seq: 1, status: 1, accepted: 3 },
    { seq: 300, status: 2, retryAfterMs: 1500 },
    { seq: 2 ** 40, status: 1, accepted: 500, rejected: 2, rejections: [{ index: 3, reason: 4 }, { index: 499, reason: 17 }] },
    { seq: 7, status: 3 },
  ];
  for (const c of cases) {
    const a = decodeAck(encodeAck(c));
    assert.equal(a[1], c.seq);
    assert.equal(a[2], c.status);
    assert.equal(a[6] ?? 0, c.retryAfterMs ?? 0);
  }
  // A newer server's extra field (number 9, varint) after the known ones.
  const extra = new Uint8Array([...Ack.encode({ seq: 5, status: 1 }).finish(), 9 << 3, 0x96, 0x01]);
  assert.deepEqual([decodeAck(extra)[1], decodeAck(extra)[2]], [5, 1]);
});
