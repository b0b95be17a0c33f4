// The script-tag entry (src/script.ts) in the fake browser: options from the tag's data-
// attributes, one agent per page whichever copy of the code comes first.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { afterEach, beforeEach, mock, test } from "node:test";
import { installBrowser, names } from "./fake-browser.mjs";
import { loadSource } from "./load.mjs";

let b;
beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"] }));
afterEach(() => {
  mock.timers.reset();
  b?.uninstall();
  b = undefined;
});

/** Runs the script tag's code once, as <script src=".../agent.js" data-...>. (Each load is a new
 *  copy of the module, as two bundles on one page are.) */
async function scriptTag(dataset = { siteKey: "site-1" }) {
  b.document.currentScript = { src: "https://analytics.example/agent.js", dataset };
  await loadSource("script");
}

/** Events sent once the first connection opens. */
function delivered() {
  mock.timers.tick(1000);
  mock.timers.tick(0);
  for (const s of b.sockets) s.open();
  return b.sockets.flatMap((s) => s.sent);
}

test("the script tag loaded twice, or after an npm copy's init: one agent, one socket, one pageview", async () => {
  b = installBrowser();
  const { init } = await loadSource("agent"); // the npm package, bundled by the app
  const app = init({ siteKey: "site-1", endpoint: "https://analytics.example" });
  await scriptTag();
  await scriptTag();
  assert.equal(b.window.analyticsAgent, app);
  const { init: otherCopy } = await loadSource("agent"); // a second bundle with its own copy
  assert.equal(otherCopy({ siteKey: "site-1", endpoint: "https://analytics.example" }), app);
  assert.deepEqual(names(delivered()), ["pageview"]);
  assert.equal(b.sockets.length, 1);
});

test("the script tag first, then an npm init: init returns the script's agent", async () => {
  b = installBrowser();
  await scriptTag();
  const { init } = await loadSource("agent");
  assert.equal(init({ siteKey: "site-1", endpoint: "https://analytics.example" }), b.window.analyticsAgent);
  assert.deepEqual(names(delivered()), ["pageview"]);
});

test("the README's pre-load stub takes every method (a consent manager's optIn() too) and the script replays them in order", async () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const stub = readme.match(/<script>\s*(window\.analyticsAgent = [^]*?)<\/script>/)[1];
  b = installBrowser();
  new Function("window", stub)(b.window);
  const early = b.window.analyticsAgent;
  assert.doesNotThrow(() => {
    early.optIn();
    early.track("early", { n: 1 });
    early.pageview("/virtual");
    early.flush();
  });
  await scriptTag({ siteKey: "site-1", requireConsent: "" });
  assert.notEqual(b.window.analyticsAgent, early);
  assert.deepEqual(names(delivered()), ["pageview", "early", "pageview"]);
});
