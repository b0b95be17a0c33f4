// The funnel view: the site's stored funnels (GET /v1/sites/{site}/funnels) in a picker, the
// chosen one answered by POST /v1/funnel over the view's range and filters: per step the
// visitors who reached it, % of step 1, and the drop-off from the step before.
import { app, h, raw, navigate, replaceKeepingFocus } from "./main.js";
import { api } from "./api.js";
import { failed } from "./panels.js";
import { dateRange, apiFilters } from "./state.js";
import * as fmt from "./format.js";

export async function loadFunnel(generation) {
  const box = document.getElementById("funnel-box");
  if (!box) return;
  const title = h("h2", { class: "panel-title" }, "Funnel");
  if (app.funnels.length === 0) {
    replaceKeepingFocus(box, h("div", { "data-panel": "funnel", "data-ready": "true" }, title,
      h("p", { class: "muted" }, "No funnels yet. A funnel is 2–8 goals in order: POST /v1/sites/{site}/funnels (docs/query-api.md, Funnels).")));
    return;
  }
  const chosen = app.funnels.find(f => String(f.id) === app.state.funnel) ?? app.funnels[0];
  const picker = h("select", { id: "funnel-picker", "aria-label": "Funnel", onchange: e => navigate({ funnel: e.target.value }) },
    app.funnels.map(f => h("option", { value: String(f.id), selected: f.id === chosen.id }, f.name)));
  const head = h("div", { class: "panel-head" }, title, h("label", { class: "field" }, h("span", {}, "Funnel"), picker));
  let answer;
  try {
    answer = await api("/v1/funnel", { body: { site_id: app.state.site, date_range: dateRange(app.state), funnel_id: chosen.id, filters: apiFilters(app.state) } });
  } catch (error) {
    // The picker stays: another funnel may well answer.
    if (generation === app.generation) {
      const why = failed("funnel", "", error, () => loadFunnel(app.generation).catch(() => {}));
      why.dataset.funnel = String(chosen.id);
      why.prepend(head);
      replaceKeepingFocus(box, why);
    }
    throw error;
  }
  if (generation !== app.generation) return;
  const first = Math.max(1, answer.steps[0]?.visitors ?? 0);
  replaceKeepingFocus(box, h("div", { "data-panel": "funnel", "data-funnel": String(chosen.id), "data-ready": "true" }, head,
    h("table", { class: "rows funnel-steps" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Step"), h("th", { scope: "col", class: "num" }, "Visitors"),
        h("th", { scope: "col", class: "num" }, "Conversion"), h("th", { scope: "col", class: "num" }, "Drop-off"))),
      h("tbody", {}, answer.steps.map((step, i) => h("tr", { "data-step": String(i + 1) },
        h("th", { scope: "row", class: "key" },
          h("span", { class: "bar", style: `width:${(100 * step.visitors / first).toFixed(1)}%`, "aria-hidden": "true" }),
          h("span", { class: "step-name" }, `${i + 1}. ${step.name}`)),
        h("td", { class: "num", "data-col": "visitors", "data-raw": raw(step.visitors) }, fmt.count(step.visitors)),
        h("td", { class: "num", "data-col": "conversion_rate", "data-raw": raw(step.conversion_rate) }, fmt.percent(step.conversion_rate)),
        h("td", { class: "num", "data-col": "dropoff", "data-raw": raw(step.drop_off) },
          i === 0 ? "–" : `${fmt.count(step.drop_off)} (${fmt.percent(step.drop_off_rate)})`)))))));
}
