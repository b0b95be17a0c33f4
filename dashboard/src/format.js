// How numbers, labels and time buckets read on the page. The raw API value always goes into a
// data-raw attribute beside the formatted text (docs/dashboard.md).

const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const regions = typeof Intl.DisplayNames === "function" ? new Intl.DisplayNames(["en"], { type: "region" }) : null;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export const count = v => v == null ? "–" : number.format(v);
export const percent = v => v == null ? "–" : `${number.format(v)}%`;

export function duration(seconds) {
  if (seconds == null) return "–";
  const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}h ${String(m).padStart(2, "0")}m` : m ? `${m}m ${String(r).padStart(2, "0")}s` : `${r}s`;
}

/** total_revenue is per currency: {"EUR": 120.5, "USD": 9.99}; no conversion between them. */
export function money(v) {
  if (v == null || typeof v !== "object") return "–";
  const entries = Object.entries(v);
  if (!entries.length) return "0";
  return entries.map(([currency, amount]) => {
    try { return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount); }
    catch { return `${number.format(amount)} ${currency}`; }
  }).join(" · ");
}

/** A dimension value as people read it: country names, "(none)" for the empty value. */
export function dimensionLabel(dimension, value) {
  if (value === "" || value == null) return "(none)";
  if (dimension === "country" && /^[A-Z]{2}$/.test(value)) {
    try { return `${regions?.of(value) ?? value}`; } catch { return value; }
  }
  return value;
}

/** The API's local time labels ("2026-11-30 14:05:00", "2026-11-30", "2026-11-01") read as they are: never through the browser's zone. */
export function bucketLabel(label, unit, long = false) {
  if (label == null) return "";
  const [date, time = ""] = label.split(" ");
  const [y, mo, d] = date.split("-").map(Number);
  const day = `${MONTHS[mo - 1]} ${d}`;
  switch (unit) {
    case "time:minute": case "time:hour": return long ? `${day}, ${time.slice(0, 5)}` : time.slice(0, 5);
    case "time:month": return `${MONTHS[mo - 1]} ${y}`;
    case "time:week": return long ? `Week of ${day}, ${y}` : day;
    default: return long ? `${day}, ${y}` : day;
  }
}

/** Country codes whose English name contains the text (case-insensitive): the panel shows
 * names, the API stores ISO codes, so a search for "germ" must ask for DE. */
export function countriesNamed(text) {
  const needle = text.toLowerCase();
  if (!regions || !needle) return [];
  const codes = [];
  for (let a = 65; a <= 90; a++) for (let b = 65; b <= 90; b++) {
    const code = String.fromCharCode(a, b);
    let name;
    try { name = regions.of(code); } catch { continue; }
    if (name && name !== code && name.toLowerCase().includes(needle)) codes.push(code);
  }
  return codes;
}

/** total_revenue's change: a % per currency ({"EUR": 25, "USD": null}), each read as change() reads one. */
export function moneyChange(v) {
  if (v == null || typeof v !== "object") return "–";
  const entries = Object.entries(v);
  if (!entries.length) return "–";
  return entries.length === 1 ? change(entries[0][1], false) : entries.map(([currency, pct]) => `${currency} ${change(pct, false)}`).join(" · ");
}

/** A comparison change: % for counts, points for rates (docs/query-api.md, comparisons). */
export function change(value, points) {
  if (value == null) return "–";
  const sign = value > 0 ? "↑" : value < 0 ? "↓" : "";
  return `${sign} ${number.format(Math.abs(value))}${points ? " pts" : "%"}`.trim();
}
