/** One analytics.v1.Event, encoded once when it happens and kept as bytes until acknowledged. */
export declare const encodeEvent: (id: Uint8Array, name: string, timeMs: number, url: string, referrer: string, props: Record<string, unknown> | undefined, revenueMicros: number | undefined, currency: string | undefined, screenWidth: number, engagementMs: number) => Uint8Array<ArrayBuffer>;
/** An analytics.v1.EventBatch around already-encoded events. */
export declare const encodeBatch: (siteKey: string, seq: number, events: Uint8Array[]) => Uint8Array<ArrayBuffer>;
/** Reads an analytics.v1.Ack: the result is indexed by field number, so [1] is seq, [2] status,
 *  [6] retry_after_ms. Length-delimited fields (the rejections) are skipped; Ack has no fixed32 or
 *  fixed64 fields, so every other field is a varint. */
export declare const decodeAck: (b: Uint8Array) => number[];
