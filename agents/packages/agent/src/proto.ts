// Protobuf writer for analytics.v1.EventBatch and reader for analytics.v1.Ack
// (schemas/events.proto), hand-written because the agent's whole budget is 2.6 KB gzipped and a
// protobuf library alone is ten times that. Only what the agent sends is written: varints
// (wire type 0) and length-delimited fields (wire type 2). proto3 defaults (0, "") are left out,
// exactly as the reference encoders do. The tests decode every byte with protobufjs loading
// events.proto, so a field number or type written here that disagrees with the schema fails there.

const utf8 = new TextEncoder();

type Out = number[];

/** Appends a varint. int64 fields go through BigInt so negative values get the 10-byte
 *  two's-complement form protobuf requires; numbers must be integers. */
const varint = (o: Out, n: number | bigint) => {
  let v = BigInt.asUintN(64, BigInt(n));
  for (; v > 127n; v >>= 7n) o.push(Number(v & 127n) | 128);
  o.push(Number(v));
};

/** A varint field; zero is the proto3 default and is not written. */
const num = (o: Out, field: number, n: number | undefined) => {
  if (n) {
    varint(o, field << 3);
    varint(o, n);
  }
};

/** A length-delimited field; empty is the proto3 default and is not written. */
const bytes = (o: Out, field: number, b: ArrayLike<number>) => {
  if (b.length) {
    varint(o, (field << 3) | 2);
    varint(o, b.length);
    // Spread is safe here: nothing written is longer than one event (~20 KB at the server's limits).
    o.push(...(b as number[]));
  }
};

/** A string field as the server accepts it: control characters (U+0000-U+001F, U+007F) become
 *  spaces and the UTF-8 is cut to `max` bytes on a character boundary. The server rejects the
 *  whole event for either (INVALID_STRING, *_TOO_LONG); a changed value loses less than the event. */
const str = (o: Out, field: number, s: string | undefined, max = 2048) => {
  let b = utf8.encode(s?.replace(/[\0-\x1f\x7f]/g, " "));
  if (b.length > max) {
    // b[max] is the first byte left out: while it continues a character, leave that one out too.
    while ((b[max] & 192) == 128) max--;
    b = b.subarray(0, max);
  }
  bytes(o, field, b);
};

/** One analytics.v1.Event, encoded once when it happens and kept as bytes until acknowledged. */
export const encodeEvent = (
  id: Uint8Array,
  name: string,
  timeMs: number,
  url: string,
  referrer: string,
  props: Record<string, unknown> | undefined,
  revenueMicros: number | undefined,
  currency: string | undefined,
  screenWidth: number,
  engagementMs?: number,
) => {
  const o: Out = [];
  bytes(o, 1, id);
  // The server's limits (schemas/events.proto): name 128 bytes, url and referrer 2,048, at most
  // 30 properties with keys of 1-128 bytes and values of at most 512. Properties past the 30th
  // and empty keys are left out rather than lose the event (TOO_MANY_PROPS, PROP_KEY_INVALID).
  str(o, 2, name, 128);
  num(o, 3, timeMs);
  str(o, 4, url);
  str(o, 5, referrer);
  let n = 0;
  for (const k in props)
    if (k && n++ < 30) {
      const p: Out = [];
      str(p, 1, k, 128);
      str(p, 2, String(props[k]), 512);
      bytes(o, 6, p);
    }
  num(o, 7, revenueMicros);
  str(o, 8, currency);
  num(o, 9, screenWidth);
  num(o, 10, engagementMs);
  return new Uint8Array(o);
};

/** An analytics.v1.EventBatch around already-encoded events. */
export const encodeBatch = (siteKey: string, seq: number, events: Uint8Array[]) => {
  const o: Out = [];
  str(o, 1, siteKey);
  num(o, 2, seq);
  for (const e of events) bytes(o, 3, e);
  return new Uint8Array(o);
};

/** Reads an analytics.v1.Ack: the result is indexed by field number, so [1] is seq, [2] status,
 *  [6] retry_after_ms. Length-delimited fields (the rejections) are skipped; Ack has no fixed32 or
 *  fixed64 fields, so every other field is a varint. */
export const decodeAck = (b: Uint8Array): number[] => {
  const r: number[] = [];
  let i = 0;
  // Acks carry small numbers; doubles hold varints exactly up to 2^53.
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
    // Not `i += read()`: that would add the length to i as it was before the length was read.
    if ((tag & 7) == 2) i = read() + i;
    else r[tag >> 3] = read();
  }
  return r;
};
