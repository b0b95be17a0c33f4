// The dashboard's whole state lives in the URL, so a view can be bookmarked or shared and the
// browser's back button restores the previous one:
//   /?site=ID&period=30d&compare=previous_period&metric=visitors&f=DIM,OP,VALUE&f=…
//     &from=YYYY-MM-DD&to=YYYY-MM-DD (custom only) &funnel=ID &prop=KEY &tab=NAME&tab=… (each
//     panel group's tab when it is not the group's first)
// A filter's VALUE is everything after the second comma (values may contain commas).

export const PERIODS = ["realtime", "day", "yesterday", "7d", "30d", "month", "last_month", "6mo", "12mo", "custom"];
export const COMPARES = ["off", "previous_period", "year_over_year"];
export const OPS = ["is", "is_not", "contains", "contains_not", "matches", "matches_not"];
const DATE = /^\d{4}-\d{2}-\d{2}$/;

export function parse(search) {
  const p = new URLSearchParams(search);
  const period = PERIODS.includes(p.get("period")) ? p.get("period") : "30d";
  const filters = p.getAll("f").map(f => {
    const first = f.indexOf(","), second = f.indexOf(",", first + 1);
    if (first < 1 || second < 0) return null;
    const filter = { dimension: f.slice(0, first), op: f.slice(first + 1, second), value: f.slice(second + 1) };
    return OPS.includes(filter.op) ? filter : null;
  }).filter(Boolean);
  const state = {
    site: p.get("site") || "",
    period,
    compare: COMPARES.includes(p.get("compare")) ? p.get("compare") : "off",
    metric: p.get("metric") || "visitors",
    filters,
    from: DATE.test(p.get("from") || "") ? p.get("from") : "",
    to: DATE.test(p.get("to") || "") ? p.get("to") : "",
    funnel: p.get("funnel") || "",
    prop: p.get("prop") || "",
    tabs: p.getAll("tab").filter(Boolean),
  };
  // A custom range without both dates falls back to the default.
  if (state.period === "custom" && !(state.from && state.to)) state.period = "30d";
  return state;
}

export function serialize(state) {
  const p = new URLSearchParams();
  if (state.site) p.set("site", state.site);
  p.set("period", state.period);
  if (state.period === "custom") { p.set("from", state.from); p.set("to", state.to); }
  if (state.compare !== "off") p.set("compare", state.compare);
  if (state.metric !== "visitors") p.set("metric", state.metric);
  for (const f of state.filters) p.append("f", `${f.dimension},${f.op},${f.value}`);
  if (state.funnel) p.set("funnel", state.funnel);
  if (state.prop) p.set("prop", state.prop);
  for (const tab of state.tabs ?? []) p.append("tab", tab);
  return "?" + p.toString();
}

/** The API's date_range: a name, or the two dates of a custom range. */
export const dateRange = state => state.period === "custom" ? [state.from, state.to] : state.period;

/** The chart's bucket for a range: minutes for realtime, hours for one day, months for half a year and more. */
export function interval(state) {
  switch (state.period) {
    case "realtime": return "time:minute";
    case "day": case "yesterday": return "time:hour";
    case "6mo": case "12mo": return "time:month";
    case "custom": {
      const days = (Date.parse(state.to) - Date.parse(state.from)) / 86400000 + 1;
      return days <= 2 ? "time:hour" : days <= 120 ? "time:day" : "time:month";
    }
    default: return "time:day";
  }
}

/** The API's filters: every chip must hold. */
export const apiFilters = state => state.filters.map(f => f.op.startsWith("contains")
  ? [f.op, f.dimension, [f.value], { case_sensitive: false }]
  : [f.op, f.dimension, [f.value]]);
