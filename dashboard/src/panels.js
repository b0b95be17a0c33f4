// Breakdown panels: one POST /v1/query per shown panel (top 9 by visitors), a details dialog
// paged by the API's pagination (meta.total_rows) and searched with a `contains` filter, CSV of
// the whole breakdown through `Accept: text/csv`. Clicking a row filters the whole dashboard.
import { app, h, raw, baseQuery, addFilter, navigate, setStatus, replaceKeepingFocus } from "./main.js";
import { api, query } from "./api.js";
import { serialize } from "./state.js";
import * as fmt from "./format.js";

const TOP = 9;
const PAGE = 20;

const visit = (name, title, dimension) => ({ name, title, dimension, metrics: ["visitors", "percentage"] });
export const PANEL_GROUPS = [
  { id: "pages", tabs: [
    { name: "pages", title: "Pages", dimension: "page", metrics: ["visitors", "pageviews", "percentage"] },
    visit("entry_pages", "Entry pages", "entry_page"), visit("exit_pages", "Exit pages", "exit_page")] },
  { id: "sources", tabs: [
    visit("channels", "Channels", "channel"), visit("sources", "Sources", "source"), visit("referrers", "Referrers", "referrer"),
    visit("utm_source", "UTM source", "utm_source"), visit("utm_medium", "UTM medium", "utm_medium"), visit("utm_campaign", "UTM campaign", "utm_campaign"),
    visit("utm_content", "UTM content", "utm_content"), visit("utm_term", "UTM term", "utm_term")] },
  { id: "locations", tabs: [visit("countries", "Countries", "country"), visit("regions", "Regions", "region"), visit("cities", "Cities", "city")] },
  { id: "devices", tabs: [visit("devices", "Devices", "device"), visit("browsers", "Browsers", "browser"), visit("os", "Operating systems", "os")] },
  { id: "goals", tabs: [
    { name: "goals", title: "Goals", dimension: "goal", metrics: ["visitors", "conversions", "conversion_rate"] },
    { name: "props", title: "Properties", dimension: "props:", metrics: ["visitors", "events", "percentage"] }] },
];
const HEADINGS = { visitors: "Visitors", pageviews: "Pageviews", percentage: "%", conversions: "Conversions", conversion_rate: "CR", events: "Events" };
const FORMATS = { percentage: fmt.percent, conversion_rate: fmt.percent };

const panels = Object.fromEntries(PANEL_GROUPS.flatMap(g => g.tabs.map(t => [t.name, { ...t, group: g.id }])));

/** The `tab=` names that make the URL of `state` show the tabs shown now: each group's
 * tab where it differs from what the URL would show without any (so Goals is written while a
 * `prop=` would otherwise open Properties). */
export function tabsParam(state) {
  const defaults = tabsOf({ ...state, tabs: [] });
  return PANEL_GROUPS.map(g => app.tabs[g.id]).filter((name, i) => name !== defaults[PANEL_GROUPS[i].id]);
}

/** Each group's shown tab from the URL's state: its `tab=` names, else the Properties tab when
 * the URL names a property key, else the group's first tab. */
export function tabsOf(state) {
  const tabs = Object.fromEntries(PANEL_GROUPS.map(g => [g.id, g.tabs[0].name]));
  if (state.prop) tabs.goals = "props";
  for (const name of state.tabs) if (panels[name]) tabs[panels[name].group] = name;
  return tabs;
}

/** The property key of the props panel: the URL's, else the first one a goal names. */
export function propKey() {
  return app.state.prop || app.goals.find(g => g.property?.key)?.property.key || "";
}

export function panelOf(name) {
  const panel = panels[name];
  return panel.name === "props" ? { ...panel, dimension: propKey() ? `props:${propKey()}` : "" } : panel;
}

/** The panel groups' frames: tab buttons and an empty panel each, filled by loadPanel. */
export function renderPanelGroups(root) {
  root.replaceChildren(...PANEL_GROUPS.map(renderGroup),
    h("section", { class: "panel group funnel", id: "funnel-box" }, h("div", { "data-panel": "funnel", "data-ready": "false" }, h("p", { class: "muted" }, "Loading…"))));
}

function renderGroup(group) {
  const active = app.tabs[group.id];
  const section = h("section", { class: "panel group", "data-group": group.id },
    h("div", { class: "tabs", role: "tablist", "aria-label": group.tabs.map(t => t.title).join(", "),
      // The tabs pattern's keys: ← → move between tabs (Home, End to the ends), each one shown as it is reached.
      onkeydown: e => {
        const i = group.tabs.findIndex(t => t.name === app.tabs[group.id]), n = group.tabs.length;
        const next = { ArrowRight: (i + 1) % n, ArrowLeft: (i + n - 1) % n, Home: 0, End: n - 1 }[e.key];
        if (next === undefined) return;
        e.preventDefault();
        selectTab(group, group.tabs[next].name, e.currentTarget.closest("section"));
      } },
      group.tabs.map(t => h("button", { type: "button", role: "tab", id: `tab-${t.name}`, "aria-controls": `body-${group.id}`, "data-tab": t.name, "aria-selected": String(t.name === active), tabindex: t.name === active ? "0" : "-1",
        onclick: () => selectTab(group, t.name, section) }, t.title))),
    h("div", { class: "panel-body", id: `body-${group.id}`, role: "tabpanel", "aria-labelledby": `tab-${active}` }, frame(panelOf(active))));
  return section;
}

/** Another tab of one group: only that group's panel is redrawn and asked for; focus stays on the tab. */
function selectTab(group, name, section) {
  if (app.tabs[group.id] === name) return;
  app.tabs[group.id] = name;
  // The URL keeps the tabs (a reload or a shared link shows the same panels), without a history
  // entry per tab: back goes to the previous view, not the previous tab.
  app.state.tabs = tabsParam(app.state);
  history.replaceState(null, "", "/" + serialize(app.state));
  const fresh = renderGroup(group);
  section.replaceWith(fresh);
  fresh.querySelector(`[data-tab="${name}"]`).focus();
  loadPanel(panelOf(name), app.generation).catch(e => setStatus(e.message, true));
}

function frame(panel) {
  return h("div", { "data-panel": panel.name, "data-dimension": panel.dimension, "data-ready": "false" }, h("p", { class: "muted" }, "Loading…"));
}

const columns = panel => panel.metrics;

function table(panel, rows, total) {
  const max = Math.max(1, ...rows.map(r => r.metrics[0] ?? 0));
  return h("table", { class: "rows" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, panel.name === "props" ? `Property ${propKey()}` : panel.title), columns(panel).map(m => h("th", { scope: "col", class: "num" }, HEADINGS[m])))),
    h("tbody", {}, rows.map(r => {
      const key = r.dimensions[0];
      return h("tr", { "data-row": "", "data-key": key },
        h("th", { scope: "row", class: "key" },
          h("span", { class: "bar", style: `width:${(100 * (r.metrics[0] ?? 0) / max).toFixed(1)}%`, "aria-hidden": "true" }),
          h("button", { type: "button", class: "link", title: `Filter by ${key}`, onclick: () => { document.getElementById("details").close(); addFilter(panel.dimension, key); } },
            fmt.dimensionLabel(panel.dimension, key))),
        r.metrics.map((v, i) => h("td", { class: "num", "data-col": columns(panel)[i], "data-raw": raw(v) }, (FORMATS[columns(panel)[i]] ?? fmt.count)(v))));
    })),
    total === 0 ? h("caption", { class: "muted" }, "Nothing in this range.") : null);
}

/** The panel's query; null when a search matches nothing the API could be asked for. */
function panelQuery(panel, { limit, offset = 0, search = "" } = {}) {
  const body = { ...baseQuery({ compare: false }), metrics: panel.metrics, dimensions: [panel.dimension] };
  if (search) {
    const filter = searchFilter(panel.dimension, search);
    if (!filter) return null;
    body.filters = [...body.filters, filter];
  }
  if (limit) body.pagination = { limit, offset };
  return body;
}

/** What a search in the details means for each dimension: the text the rows show. */
function searchFilter(dimension, search) {
  const contains = ["contains", dimension, [search], { case_sensitive: false }];
  // Goals take is/is_not only: the site's goal names containing the text.
  if (dimension === "goal") {
    const names = app.goals.map(g => g.name).filter(n => n.toLowerCase().includes(search.toLowerCase()));
    return names.length ? ["is", "goal", names] : null;
  }
  // Countries are shown by name and stored as ISO codes: a name or a code.
  if (dimension === "country") {
    const codes = fmt.countriesNamed(search);
    return codes.length ? ["or", [contains, ["is", "country", codes]]] : contains;
  }
  return contains;
}

function propKeyPicker() {
  const keys = [...new Set(app.goals.map(g => g.property?.key).filter(Boolean))];
  const input = h("input", { id: "prop-key", list: "prop-keys", value: propKey(), placeholder: "property key", "aria-label": "Property key", autocomplete: "off" });
  return h("form", { class: "prop-key", onsubmit: e => { e.preventDefault(); navigate({ prop: input.value.trim() }); } },
    h("label", { class: "field" }, h("span", {}, "Property"), input),
    h("datalist", { id: "prop-keys" }, keys.map(k => h("option", { value: k }))),
    h("button", { type: "submit" }, "Show"));
}

/** One panel's top rows into its frame (when the panel is still the one shown). */
export async function loadPanel(panel, generation) {
  const body = document.getElementById(`body-${panel.group}`);
  const head = h("div", { class: "panel-actions" },
    h("button", { type: "button", class: "small", "data-details": panel.name, disabled: !panel.dimension }, "Details"),
    h("button", { type: "button", class: "small", "data-export": panel.name, disabled: !panel.dimension }, "CSV"));
  const extra = panel.name === "props" ? propKeyPicker() : null;
  let content;
  if (panel.name === "goals" && app.goals.length === 0) {
    content = h("p", { class: "muted" }, "No goals yet. Add them with POST /v1/sites/{site}/goals (docs/query-api.md, Goals).");
  } else if (!panel.dimension) {
    content = h("p", { class: "muted" }, "Choose a custom property key to break down by.");
  } else {
    try {
      const answer = await query(panelQuery(panel, { limit: TOP }));
      if (generation !== app.generation) return;
      content = table(panel, answer.results, answer.meta.total_rows);
    } catch (error) {
      // The panel says what failed and offers another try; the status line reports it too.
      if (generation !== app.generation || app.tabs[panel.group] !== panel.name || !body) throw error;
      replaceKeepingFocus(body, failed(panel.name, panel.dimension, error, () => loadPanel(panelOf(panel.name), app.generation)
        .then(() => { if (document.getElementById("status").classList.contains("error")) setStatus(`Updated ${new Date().toLocaleTimeString()}`); })
        .catch(() => {})));
      throw error;
    }
  }
  if (generation !== app.generation || app.tabs[panel.group] !== panel.name || !body) return;
  replaceKeepingFocus(body, h("div", { "data-panel": panel.name, "data-dimension": panel.dimension, "data-ready": "true" }, head, extra, content));
}

/** A panel whose query failed: the reason (a 503 says when to try again) and a Retry button. */
export function failed(name, dimension, error, retry) {
  const after = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
  return h("div", { "data-panel": name, "data-dimension": dimension, "data-ready": "error" },
    h("p", { class: "error", "data-error": "" }, `Could not load: ${error.message}.${after}`),
    h("button", { type: "button", class: "small", "data-retry": "", onclick: retry }, "Retry"));
}

// Details dialog: the shown panel, paged and searchable.
const details = { panel: null, offset: 0, search: "", total: 0, timer: 0, generation: 0 };

export function setupDetails() {
  const $ = id => document.getElementById(id);
  $("details-prev").addEventListener("click", () => { details.offset = Math.max(0, details.offset - PAGE); loadDetails(); });
  $("details-next").addEventListener("click", () => { details.offset += PAGE; loadDetails(); });
  $("details-search").addEventListener("input", e => {
    clearTimeout(details.timer);
    details.timer = setTimeout(() => { details.search = e.target.value.trim(); details.offset = 0; loadDetails(); }, 250);
    notReady();
  });
}

export function openDetails(name) {
  const panel = panelOf(name);
  if (!panel.dimension) return;
  Object.assign(details, { panel, offset: 0, search: "", total: 0 });
  const dialog = document.getElementById("details");
  document.getElementById("details-title").textContent = panel.title;
  document.getElementById("details-search").value = "";
  document.getElementById("details-table").replaceChildren();
  delete dialog.dataset.total;
  dialog.showModal();
  document.getElementById("details-search").focus();
  loadDetails();
}

/** The rows shown belong to the previous page or search until the new answer is in. */
const notReady = () => document.getElementById("details-table").firstElementChild?.setAttribute("data-ready", "false");

async function loadDetails() {
  const generation = ++details.generation;
  notReady();
  const { panel, offset, search } = details;
  try {
    const body = panelQuery(panel, { limit: PAGE, offset, search });
    const answer = body ? await query(body) : { results: [], meta: { total_rows: 0 } };
    if (generation !== details.generation) return;
    details.total = answer.meta.total_rows;
    document.getElementById("details-table").replaceChildren(h("div", { "data-panel": panel.name, "data-dimension": panel.dimension, "data-ready": "true" }, table(panel, answer.results, details.total)));
    document.getElementById("details").dataset.total = String(details.total);
    const shown = answer.results.length;
    document.getElementById("details-page").textContent = details.total ? `${offset + 1}–${offset + shown} of ${fmt.count(details.total)}` : "No rows";
    document.getElementById("details-prev").disabled = offset === 0;
    document.getElementById("details-next").disabled = offset + shown >= details.total;
  } catch (error) {
    if (generation === details.generation) document.getElementById("details-page").textContent = error.message;
  }
}

/** The whole breakdown as the API's CSV (same query, `Accept: text/csv`), saved as a file. */
export async function exportCsv(name) {
  const panel = panelOf(name);
  if (!panel.dimension) return;
  try {
    const blob = await api("/v1/query", { body: panelQuery(panel), accept: "text/csv" });
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: `${app.state.site}-${name}-${app.state.period}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    setStatus(`CSV export failed: ${error.message}`, true);
  }
}
