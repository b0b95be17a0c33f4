// The merchant dashboard: cards, chart, panels, funnel and realtime count for one site, all from
// the public API with the signed-in user's token (docs/dashboard.md). Named date ranges go to
// the API by name: the server's clock decides what "today" is, never the browser's. The DOM
// contract (ids, data-* attributes) is what the browser tests read: docs/dashboard.md lists it.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { api, query, session, signIn, signOut, completeSignIn } from "./api.js";
import { parse, serialize, dateRange, interval, apiFilters } from "./state.js";
import * as fmt from "./format.js";
import { drawChart, redrawChart, clearChart } from "./chart.js";
import { PANEL_GROUPS, panelOf, renderPanelGroups, loadPanel, openDetails, setupDetails, exportCsv, tabsOf, tabsParam } from "./panels.js";
import { loadFunnel } from "./funnel.js";

const $ = id => document.getElementById(id);
export const h = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c);
  return el;
};
export const raw = v => v == null ? "" : JSON.stringify(v);

/** Replaces a box's content without taking the keyboard from the user: the realtime view redraws
 * every 5 s, and a redraw must not drop the key they are typing, the button they tabbed to or
 * the row they were about to click. The element in focus is found again in the new content by
 * its id, its data-* name or its row, and gets the focus, typed text and caret back. A list
 * the user has open (a focused <select>) is left alone by a background refresh: replacing it
 * would close it under the mouse; the next refresh after it updates the box. Returns whether
 * the box was replaced. */
export function replaceKeepingFocus(box, ...nodes) {
  const active = document.activeElement;
  if (!active || !box.contains(active)) { box.replaceChildren(...nodes); return true; }
  if (app.refreshing && active.tagName === "SELECT") return false;
  const key = focusKey(active);
  const typed = active.tagName === "INPUT" ? { value: active.value, start: active.selectionStart, end: active.selectionEnd } : null;
  box.replaceChildren(...nodes);
  const again = key && box.querySelector(key);
  if (!again) return true;
  if (typed && again.tagName === "INPUT") { again.value = typed.value; again.setSelectionRange?.(typed.start, typed.end); }
  again.focus();
  return true;
}

function focusKey(el) {
  if (el.id) return `#${CSS.escape(el.id)}`;
  for (const name of ["data-card", "data-details", "data-export", "data-retry", "data-tab"])
    if (el.hasAttribute(name)) return `[${name}="${CSS.escape(el.getAttribute(name))}"]`;
  const row = el.closest("[data-key]");
  if (row) return `[data-key="${CSS.escape(row.dataset.key)}"] ${el.tagName.toLowerCase()}`;
  return el.type === "submit" ? `${el.tagName.toLowerCase()}[type=submit]` : null;
}

export const CARDS = [
  { metric: "visitors", label: "Unique visitors", format: fmt.count },
  { metric: "visits", label: "Visits", format: fmt.count },
  { metric: "pageviews", label: "Pageviews", format: fmt.count },
  { metric: "views_per_visit", label: "Views per visit", format: fmt.count },
  { metric: "bounce_rate", label: "Bounce rate", format: fmt.percent, points: true, lowerIsBetter: true },
  { metric: "visit_duration", label: "Visit duration", format: fmt.duration },
  { metric: "conversion_rate", label: "Conversion rate", format: fmt.percent, points: true, needsGoals: true },
  { metric: "total_revenue", label: "Revenue", format: fmt.money, needsRevenue: true },
];

// What the page knows besides the URL: the merchant's sites, the chosen site's goals and funnels.
export const app = {
  state: parse(location.search),
  sites: [],
  goals: [],
  funnels: [],
  generation: 0,
  ready: false,
  tabs: {},
};

/** The status line; data-state (loading, done, error) tells a test or a screen reader where a load stands. */
export function setStatus(text, error = false, state = error ? "error" : "done") {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
  $("status").dataset.state = state;
  document.querySelector("main").setAttribute("aria-busy", String(state === "loading"));
}

/** A new view: a history entry (back restores it), then everything reloads. */
export function navigate(change) {
  // A refused site of the URL or a failed sign-in was reported once; a new view is the user's own choice.
  app.notice = "";
  app.signInError = null;
  Object.assign(app.state, change);
  // The tabs shown stay shown: a change of prop= (a site change clears it) must not flip them.
  app.state.tabs = tabsParam(app.state);
  history.pushState(null, "", "/" + serialize(app.state));
  syncControls();
  load();
}

export function addFilter(dimension, value, op = "is") {
  const filters = app.state.filters.filter(f => !(f.dimension === dimension && f.op === op));
  navigate({ filters: [...filters, { dimension, op, value }] });
}

const hasGoals = () => app.goals.length > 0;
const hasRevenue = () => app.goals.some(g => g.currency);
const visibleCards = () => CARDS.filter(c => (!c.needsGoals || hasGoals()) && (!c.needsRevenue || hasRevenue()));

/** The body every query of this view shares: site, range, filters, comparison. */
export function baseQuery({ compare = true } = {}) {
  const body = { site_id: app.state.site, date_range: dateRange(app.state), filters: apiFilters(app.state) };
  if (compare && app.state.compare !== "off") body.include = { comparisons: { mode: app.state.compare } };
  return body;
}

/** conversion_rate needs goals in scope: every goal of the site, unless a goal filter chose some. */
function conversionQuery(metrics) {
  const body = baseQuery();
  if (!app.state.filters.some(f => f.dimension === "goal")) body.filters = [...body.filters, ["is", "goal", app.goals.map(g => g.name)]];
  return { ...body, metrics };
}

function syncControls() {
  const s = app.state;
  $("period").value = s.period;
  $("compare").value = s.compare;
  $("custom-range").hidden = s.period !== "custom";
  if (s.period === "custom") { $("from").value = s.from; $("to").value = s.to; }
  if ([...$("site-picker").options].some(o => o.value === s.site)) $("site-picker").value = s.site;
  renderChips();
}

function renderChips() {
  const box = $("filters");
  box.replaceChildren(...app.state.filters.map((f, i) => h("span", { class: "chip", "data-chip": "", "data-dimension": f.dimension, "data-op": f.op, "data-value": f.value },
    h("span", {}, `${f.dimension.replace(/^props:/, "property ")} ${f.op.replace("_", " ")} `, h("strong", {}, fmt.dimensionLabel(f.dimension, f.value))),
    h("button", { type: "button", "aria-label": `Remove filter ${f.dimension} ${f.op} ${f.value}`, onclick: () => navigate({ filters: app.state.filters.filter((_, j) => j !== i) }) }, "×"))));
  box.hidden = app.state.filters.length === 0;
}

/** values: metric → {value, change} from the answers so far; cards of goals and revenue appear once the site's goals are known. */
function renderCards(values) {
  const known = app.siteLoaded === app.state.site;
  const cards = known ? visibleCards() : CARDS.filter(c => !c.needsGoals && !c.needsRevenue);
  if (known && !cards.some(c => c.metric === app.state.metric)) app.state.metric = "visitors";
  replaceKeepingFocus($("cards"), ...cards.map(card => {
    const { value = null, change: delta } = values[card.metric] ?? {};
    const pressed = card.metric === app.state.metric;
    return h("button", { type: "button", class: "card", "data-card": card.metric, "aria-pressed": String(pressed), onclick: () => { if (!pressed) navigate({ metric: card.metric }); } },
      h("span", { class: "label" }, card.label),
      h("span", { class: "value", "data-value": "", "data-raw": raw(value) }, card.format(value)),
      delta === undefined ? null : h("span", { class: `change ${changeClass(delta, card)}`, "data-change": "", "data-raw": raw(delta) },
        typeof delta === "object" && delta !== null ? fmt.moneyChange(delta) : fmt.change(delta, card.points)));
  }));
}

function changeClass(delta, card) {
  // Revenue changes per currency: up or down only when every currency that has one agrees.
  const changes = (delta !== null && typeof delta === "object" ? Object.values(delta) : [delta]).filter(d => typeof d === "number" && d !== 0);
  if (!changes.length || !(changes.every(d => d > 0) || changes.every(d => d < 0))) return "flat";
  return (changes[0] > 0) !== !!card.lowerIsBetter ? "up" : "down";
}

/** The values of one answer's single row by metric, with the comparison's change when there is one. */
function valuesOf(metrics, row) {
  return Object.fromEntries(metrics.map((m, i) => [m, { value: row?.metrics[i] ?? null, change: row?.comparison ? row.comparison.change[i] : undefined }]));
}

/** The six visit cards at once (they need nothing but the site); conversion rate and revenue when the goals say they apply. */
async function loadTotals(generation, config) {
  const metrics = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"];
  const totals = await query({ ...baseQuery(), metrics });
  if (generation !== app.generation) return null;
  const values = valuesOf(metrics, totals.results[0]);
  renderCards(values);
  const extras = (async () => {
    await config;
    if (generation !== app.generation) return;
    const [conversion, revenue] = await Promise.all([
      hasGoals() ? query(conversionQuery(["conversion_rate"])) : null,
      hasRevenue() ? query({ ...baseQuery(), metrics: ["total_revenue"] }) : null,
    ]);
    if (generation !== app.generation) return;
    if (conversion) Object.assign(values, valuesOf(["conversion_rate"], conversion.results[0]));
    if (revenue) Object.assign(values, valuesOf(["total_revenue"], revenue.results[0]));
    renderCards(values);
  })();
  return { totals, extras };
}

async function loadChart(generation) {
  const metric = app.state.metric;
  const card = CARDS.find(c => c.metric === metric);
  const unit = interval(app.state);
  // Per bucket the rate is the bucket's converted visitors over the bucket's visitors:
  // group_conversion_rate. (conversion_rate divides every bucket by the whole range's visitors.)
  const body = metric === "conversion_rate" ? conversionQuery(["group_conversion_rate"]) : { ...baseQuery(), metrics: [metric] };
  body.dimensions = [unit];
  body.include = { ...body.include, time_labels: true };
  const answer = await query(body);
  if (generation !== app.generation) return;
  drawChart($("chart"), { metric, label: card.label, format: card.format, unit, rows: answer.results, comparing: app.state.compare !== "off" });
}

async function loadRealtime() {
  if (!app.state.site || !session.get()) return;
  try {
    const answer = await query({ site_id: app.state.site, date_range: "realtime", metrics: ["visitors"] });
    const value = answer.results[0]?.metrics[0] ?? 0;
    $("realtime-visitors").dataset.raw = raw(value);
    $("realtime-visitors").textContent = fmt.count(value);
  } catch { /* the main view reports errors; the counter keeps its last value */ }
}

/** What the status line keeps saying above the numbers: a sign-in that failed while an older
 * session still shows its numbers, a refused site of the URL. */
const notices = () => [app.signInError, app.notice].filter(Boolean).map(t => t + " ").join("");

/** Everything of the current view, in parallel; answers of an older view are dropped. */
export async function load({ quiet = false } = {}) {
  showAccount();
  // A sign-in that failed on the way back says why, instead of the plain invitation.
  if (!session.get()) { setStatus(app.signInError ?? "Sign in to see your sites' numbers.", Boolean(app.signInError)); return; }
  const generation = ++app.generation;
  if (!quiet) setStatus("Loading…", false, "loading");
  app.loading = true;
  app.refreshing = quiet;
  try {
    if (!app.sites.length) await loadSites();
    if (generation !== app.generation) return;
    if (!app.state.site) { setStatus(`${notices()}No site yet: create one (README, “Sites and merchants”).`, true); return; }
    // The site's goals and funnels load beside the first numbers (only goal-based views wait for them).
    const config = app.siteLoaded === app.state.site ? Promise.resolve() : loadSiteConfig(generation);
    if (!quiet || !document.getElementById("funnel-box")) renderPanelGroups($("panels"));
    const needsGoals = ["conversion_rate", "total_revenue"].includes(app.state.metric);
    const totals = loadTotals(generation, config);
    const chart = needsGoals ? config.then(() => {
      if (generation !== app.generation) return;
      // A site without goals (another site picked, an old link) has no such card: chart visitors.
      if (!visibleCards().some(c => c.metric === app.state.metric)) {
        app.state.metric = "visitors";
        history.replaceState(null, "", "/" + serialize(app.state));
      }
      return loadChart(generation);
    }) : loadChart(generation);
    const rest = config.then(() => generation === app.generation && Promise.all([
      ...PANEL_GROUPS.map(g => loadPanel(panelOf(app.tabs[g.id]), generation)), loadFunnel(generation), loadRealtime()]));
    // Whichever fails first is reported; the others must not surface as unhandled rejections.
    for (const p of [totals, chart, rest]) p.catch(() => {});
    const [first] = await Promise.all([totals, chart]);
    first?.extras.catch(() => {});
    if (generation !== app.generation) return;
    if (!app.ready) { app.ready = true; performance.mark("dashboard-ready"); }
    await Promise.all([first?.extras, rest]);
    if (generation !== app.generation) return;
    const answer = first?.totals;
    // A refused site in the URL stays visible as an error above the numbers of the site shown instead.
    setStatus(`${notices()}Updated ${new Date().toLocaleTimeString()} · time zone ${answer?.query?.timezone ?? "of the site"}`, Boolean(notices()), "done");
  } catch (error) {
    if (generation !== app.generation) return;
    setStatus(error.message, true);
    if (error.status === 401) showAccount();
  } finally {
    if (generation === app.generation) app.loading = false;
  }
}

// The merchant's sites, kept for this tab's session (cleared at sign-in and sign-out): a reload
// then asks for its numbers at once and checks the list in the background.
const SITES_KEY = "sites";

async function loadSites() {
  const cached = JSON.parse(sessionStorage.getItem(SITES_KEY) || "null");
  // A site the cached list does not know may be new: then the list is asked for first.
  if (cached && (!app.state.site || cached.some(s => s.id === app.state.site))) {
    showSites(cached);
    api("/v1/sites").then(fresh => {
      sessionStorage.setItem(SITES_KEY, JSON.stringify(fresh));
      if (JSON.stringify(fresh) === JSON.stringify(cached)) return;
      app.sites = [];
      load();
    }).catch(() => { /* the view's own requests report a lost session */ });
    return;
  }
  const sites = await api("/v1/sites");
  sessionStorage.setItem(SITES_KEY, JSON.stringify(sites));
  showSites(sites);
}

function showSites(sites) {
  app.sites = sites;
  const picker = $("site-picker");
  picker.replaceChildren(...sites.map(s => h("option", { value: s.id }, s.domain)));
  picker.disabled = sites.length === 0;
  // A site that is not one of this merchant's is never asked about (the API would say 404 anyway).
  app.notice = "";
  if (app.state.site && !sites.some(s => s.id === app.state.site)) {
    app.notice = `There is no site '${app.state.site}' among your sites; showing ${sites[0]?.domain ?? "none"}.`;
    app.state.site = "";
  }
  if (!app.state.site && sites.length) {
    app.state.site = sites[0].id;
    history.replaceState(null, "", "/" + serialize(app.state));
  }
  picker.value = app.state.site;
}

async function loadSiteConfig(generation) {
  const site = encodeURIComponent(app.state.site);
  const [goals, funnels] = await Promise.all([api(`/v1/sites/${site}/goals`), api(`/v1/sites/${site}/funnels`)]);
  if (generation !== app.generation) return;
  app.goals = Array.isArray(goals) ? goals : goals.goals ?? [];
  app.funnels = Array.isArray(funnels) ? funnels : funnels.funnels ?? [];
  app.siteLoaded = app.state.site;
}

function showAccount() {
  const signedIn = !!session.get();
  $("signin").hidden = signedIn;
  $("signout").hidden = !signedIn;
}

// Theme: the system's preference unless the toggle chose one (kept for this browser).
function applyTheme() {
  const chosen = localStorage.getItem("theme");
  const dark = chosen ? chosen === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = dark ? "dark" : "light";
  $("theme").textContent = dark ? "Light" : "Dark";
  $("theme").setAttribute("aria-pressed", String(dark));
  redrawChart();
}

function wire() {
  $("signin").addEventListener("click", signIn);
  $("signout").addEventListener("click", async () => {
    // The page is cleared even when the server cannot be reached to revoke.
    await signOut().catch(() => {});
    app.sites = []; app.goals = []; app.funnels = []; app.siteLoaded = null; app.generation++;
    // Nothing of this user's stays on the page, the site picker's domains included.
    for (const id of ["cards", "panels", "filters", "site-picker"]) $(id).replaceChildren();
    clearChart($("chart"));
    $("realtime-visitors").textContent = "–"; $("realtime-visitors").dataset.raw = "";
    showAccount();
    setStatus("Signed out.");
  });
  $("site-picker").addEventListener("change", e => { app.siteLoaded = null; navigate({ site: e.target.value, filters: [], funnel: "", prop: "" }); });
  $("period").addEventListener("change", e => {
    if (e.target.value === "custom") {
      $("custom-range").hidden = false;
      $("from").focus();
      return;
    }
    navigate({ period: e.target.value });
  });
  $("apply-range").addEventListener("click", () => {
    const from = $("from").value, to = $("to").value;
    if (!from || !to || from > to) { setStatus("Choose a start date on or before the end date.", true); return; }
    navigate({ period: "custom", from, to });
  });
  $("compare").addEventListener("change", e => navigate({ compare: e.target.value }));
  $("theme").addEventListener("click", () => {
    localStorage.setItem("theme", document.documentElement.dataset.theme === "dark" ? "light" : "dark");
    applyTheme();
  });
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", applyTheme);
  addEventListener("popstate", () => {
    const previous = app.state.site;
    app.state = parse(location.search);
    app.tabs = tabsOf(app.state);
    if (app.state.site !== previous) app.siteLoaded = null;
    syncControls();
    load();
  });
  setupDetails();
  document.addEventListener("click", e => {
    const details = e.target.closest("[data-details]");
    if (details) openDetails(details.dataset.details);
    const exported = e.target.closest("[data-export]");
    if (exported) exportCsv(exported.dataset.export);
  });
  // Realtime: the count every 5 s; the realtime view reloads whole.
  // A background reload never cancels one still in flight (on a slow server it would never finish).
  setInterval(() => {
    if (app.state.period !== "realtime") loadRealtime();
    else if (!app.loading) load({ quiet: true });
  }, 5000);
}

applyTheme();
wire();
app.tabs = tabsOf(app.state);
syncControls();
completeSignIn()
  .then(() => { app.state = parse(location.search); app.tabs = tabsOf(app.state); syncControls(); })
  .catch(error => { app.signInError = error.message; })
  .finally(() => load());
