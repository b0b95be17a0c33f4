// The React, Vue and Angular example apps in headless Chromium against the real server: each
// reports its route changes (router integration only: the agent's own history tracking is
// off) and a custom event from its hook / service, counted exactly. The Angular and Vue apps also
// route with hash URLs (/#/products: HashLocationStrategy, createWebHashHistory()), which their
// adapters detect.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { bundleExample, exampleHtml, exampleNames } from "../../scripts/examples.mjs";
import { launchBrowser, startAnalytics, startStatic, stopAll, want } from "./harness.mjs";

let analytics, browser;
const bundles = {};
before(async () => {
  [analytics, browser] = await Promise.all([startAnalytics(), launchBrowser()]);
  for (const name of exampleNames) bundles[name] = await bundleExample(name);
});
// Stops the server and browser even when before() failed halfway or a test threw.
after(stopAll);

/** Home -> Products -> Product 7 (buy) -> back to Products: four pages and one purchase. With
 *  `hash` the app is opened at /#/ (the Angular example then routes with HashLocationStrategy, the
 *  Vue example with createWebHashHistory()), and its routes are /#/products ... */
async function visitShop(name, options, { hash = false, pageviews = 4 } = {}) {
  const site = await analytics.createSite();
  const config = { siteKey: site.siteKey, endpoint: analytics.base, trackBots: true, ...options };
  const web = await startStatic({
    "/app.js": { type: "text/javascript", body: bundles[name] },
    "/*": { type: "text/html", body: exampleHtml(name, config) },
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const root = hash ? `${web.base}/#` : web.base;
    await page.goto(`${root}/`);
    await page.waitForSelector("#nav-products");
    await page.click("#nav-products");
    await page.waitForURL(`${root}/products`);
    await page.click("#product-7");
    await page.waitForURL(`${root}/products/7`);
    await page.click("#buy");
    await page.goBack();
    await page.waitForSelector("#product-8");
    await page.evaluate(() => new Promise((r) => setTimeout(r, 50)));
    const expected = [
      { metric: "pageviews", value: pageviews },
      { event: "purchase", metric: "events", value: 1 },
      { metric: "visits", value: 1 },
    ];
    const got = await analytics.expectCounts(site.id, expected);
    await page.close();
    assert.deepEqual(errors, []);
    assert.deepEqual(got, want(expected));
  } finally {
    await web.close();
  }
}

for (const name of exampleNames) {
  test(`${name} example app: route changes are pageviews through the router integration`, () =>
    visitShop(name, { autoPageviews: false }));
}

for (const name of exampleNames) {
  test(`${name} example app with the agent's own history tracking left on as well: no navigation counted twice`, () =>
    visitShop(name, {}));
}

test("angular example app with HashLocationStrategy (withHashLocation()): hash routing is detected, every route is a page", () =>
  visitShop("angular", { autoPageviews: false }, { hash: true }));

test("angular example app with HashLocationStrategy and hashRouting: false set by the app: the app's choice stands, every route is the page /", () =>
  visitShop("angular", { autoPageviews: false, hashRouting: false }, { hash: true, pageviews: 1 }));

test("vue example app with a hash history (createWebHashHistory()): hash routing is detected, every route is a page", () =>
  visitShop("vue", { autoPageviews: false }, { hash: true }));

test("vue example app with a hash history and hashRouting: false set by the app: the app's choice stands, every route is the page /", () =>
  visitShop("vue", { autoPageviews: false, hashRouting: false }, { hash: true, pageviews: 1 }));
