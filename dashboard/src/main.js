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
import { PANEL_GROUPS, panelOf, renderPanelGroups, loadPanel, openDetails, setupDetails, exportCsv } from "./panels.js";
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
  tabs: Object.fromEntries(PANEL_GROUPS.map(g => [g.id, g.tabs[0].name])),
};

export function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

/** A new view: a history entry (back restores it), then everything reloads. */
export function navigate(change) {
  Object.assign(app.state, change);
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

function renderCards(totals, conversion) {
  const cards = visibleCards();
  if (!cards.some(c => c.metric === app.state.metric)) app.state.metric = "visitors";
  $("cards").replaceChildren(...cards.map(card => {
    const source = card.metric === "conversion_rate" ? conversion : totals;
    const index = source?.metrics.indexOf(card.metric) ?? -1;
    const row = source?.row;
    const value = index >= 0 ? row?.metrics[index] ?? null : null;
    const delta = index >= 0 && row?.comparison ? row.comparison.change[index] : undefined;
    const pressed = card.metric === app.state.metric;
    return h("button", { type: "button", class: "card", "data-card": card.metric, "aria-pressed": String(pressed), onclick: () => { if (!pressed) navigate({ metric: card.metric }); } },
      h("span", { class: "label" }, card.label),
      h("span", { class: "value", "data-value": "", "data-raw": raw(value) }, card.format(value)),
      delta === undefined ? null : h("span", { class: `change ${changeClass(delta, card)}`, "data-change": "", "data-raw": raw(delta) },
        typeof delta === "object" && delta !== null ? fmt.money(delta) : fmt.change(delta, card.points)));
  }));
}

function changeClass(delta, card) {
  if (typeof delta !== "number" || delta === 0) return "flat";
  return (delta > 0) !== !!card.lowerIsBetter ? "up" : "down";
}

async function loadTotals(generation) {
  const metrics = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"];
  if (hasRevenue()) metrics.push("total_revenue");
  const [totals, conversion] = await Promise.all([
    query({ ...baseQuery(), metrics }),
    hasGoals() ? query(conversionQuery(["conversion_rate"])) : null,
  ]);
  if (generation !== app.generation) return null;
  renderCards({ metrics, row: totals.results[0] }, conversion && { metrics: ["conversion_rate"], row: conversion.results[0] });
  return totals;
}

async function loadChart(generation) {
  const metric = app.state.metric;
  const card = CARDS.find(c => c.metric === metric);
  const unit = interval(app.state);
  const body = metric === "conversion_rate" ? conversionQuery([metric]) : { ...baseQuery(), metrics: [metric] };
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

/** Everything of the current view, in parallel; answers of an older view are dropped. */
export async function load({ quiet = false } = {}) {
  showAccount();
  if (!session.get()) { setStatus("Sign in to see your sites' numbers."); return; }
  const generation = ++app.generation;
  if (!quiet) setStatus("Loading…");
  try {
    if (!app.sites.length) await loadSites();
    if (generation !== app.generation) return;
    if (!app.state.site) { setStatus("No site yet: create one (README, “Sites and merchants”).", true); return; }
    if (app.siteLoaded !== app.state.site) await loadSiteConfig(generation);
    if (generation !== app.generation) return;
    if (!quiet || !document.getElementById("funnel-box")) renderPanelGroups($("panels"));
    const totals = loadTotals(generation);
    const chart = loadChart(generation);
    const panels = PANEL_GROUPS.map(g => loadPanel(panelOf(app.tabs[g.id]), generation));
    const funnel = loadFunnel(generation);
    const [answer] = await Promise.all([totals, chart]);
    if (generation !== app.generation) return;
    if (!app.ready) { app.ready = true; performance.mark("dashboard-ready"); }
    await Promise.all([...panels, funnel, loadRealtime()]);
    if (generation !== app.generation) return;
    setStatus(`Updated ${new Date().toLocaleTimeString()} · time zone ${answer?.query?.timezone ?? "of the site"}`);
  } catch (error) {
    if (generation !== app.generation) return;
    setStatus(error.message, true);
    if (error.status === 401) showAccount();
  }
}

async function loadSites() {
  app.sites = await api("/v1/sites");
  const picker = $("site-picker");
  picker.replaceChildren(...app.sites.map(s => h("option", { value: s.id }, s.domain)));
  picker.disabled = app.sites.length === 0;
  // A site that is not one of this merchant's is never asked about (the API would say 404 anyway).
  if (app.state.site && !app.sites.some(s => s.id === app.state.site)) {
    setStatus(`There is no site '${app.state.site}' among your sites; showing ${app.sites[0]?.domain ?? "none"}.`, true);
    app.state.site = "";
  }
  if (!app.state.site && app.sites.length) {
    app.state.site = app.sites[0].id;
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
    await signOut();
    app.sites = []; app.goals = []; app.funnels = []; app.siteLoaded = null; app.generation++;
    // Nothing of this user's stays on the page.
    for (const id of ["cards", "panels", "filters"]) $(id).replaceChildren();
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
  setInterval(() => app.state.period === "realtime" ? load({ quiet: true }) : loadRealtime(), 5000);
}

applyTheme();
wire();
syncControls();
completeSignIn()
  .then(() => { app.state = parse(location.search); syncControls(); })
  .catch(error => setStatus(error.message, true))
  .finally(() => load());
