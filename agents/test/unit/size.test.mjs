// The script-tag build stays within its budget (BUDGET in scripts/build.mjs, which says why it is
// what it is), minified and gzipped, including the WebSocket transport, the HTTP fallback, the protobuf encoding,
// batching and retry.
import assert from "node:assert/strict";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { BUDGET, buildScript } from "../../scripts/build.mjs";

test(`the script-tag build is at most ${BUDGET} bytes gzipped`, async () => {
  const script = await buildScript();
  const gz = gzipSync(script, { level: 9 }).length;
  console.log(`# agent.min.js: ${script.length} bytes minified, ${gz} bytes gzipped`);
  assert.ok(gz <= BUDGET, `${gz} bytes gzipped`);
  // Nothing the budget leaves out: the transport, the encoder, the retry and the page hooks are in.
  for (const token of ["WebSocket", "sendBeacon", "fetch", "/v1/ws", "/v1/events", "pushState", "pagehide", "BigInt"]) {
    assert.ok(script.includes(token), `contains ${token}`);
  }
});
