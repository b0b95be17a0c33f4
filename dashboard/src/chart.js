// The time series chart: uPlot over the API's buckets. The x axis is the bucket's position, its
// labels the API's own local time labels (so the browser's time zone never moves a bucket); the
// comparison period is a dashed second series matched by position, as the API matches it.
import uPlot from "uplot";
import { bucketLabel } from "./format.js";

let plot = null;
let last = null;

const css = name => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/** Revenue is per currency: the chart follows the first currency of the answer. */
function scalar(value, currency) {
  if (value == null) return null;
  if (typeof value === "object") return currency ? value[currency] ?? 0 : 0;
  return value;
}

export function drawChart(container, spec) {
  last = { container, spec };
  const { rows, metric, label, format, unit, comparing } = spec;
  const currency = metric === "total_revenue" ? rows.map(r => Object.keys(r.metrics[0] ?? {})[0]).find(Boolean) : undefined;
  const labels = rows.map(r => r.dimensions[0]);
  const x = rows.map((_, i) => i);
  const current = rows.map(r => scalar(r.metrics[0], currency));
  const previous = rows.map(r => r.comparison ? scalar(r.comparison.metrics[0], currency) : null);
  const previousLabels = rows.map(r => r.comparison?.dimensions?.[0] ?? null);
  const accent = css("--accent"), muted = css("--muted"), grid = css("--grid"), text = css("--text");
  const valueText = v => v == null ? "–" : format(metric === "total_revenue" && currency ? { [currency]: v } : v);
  const series = [
    { label: "Time", value: (u, i) => i == null ? "–" : bucketLabel(labels[i], unit, true) },
    { label: label + (currency ? ` (${currency})` : ""), stroke: accent, width: 2, fill: accent + "22", points: { show: rows.length <= 40 }, value: (u, v) => valueText(v) },
  ];
  const data = [x, current];
  if (comparing) {
    series.push({ label: "Previous", stroke: muted, width: 1.5, dash: [6, 4], points: { show: false },
      value: (u, v, s, i) => i == null ? "–" : `${valueText(v)}${previousLabels[i] ? ` (${bucketLabel(previousLabels[i], unit, true)})` : ""}` });
    data.push(previous);
  }
  const width = Math.max(280, container.clientWidth);
  const options = {
    width, height: width < 500 ? 200 : 260,
    scales: { x: { time: false }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [
      { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, space: 70,
        incrs: [1, 2, 3, 4, 6, 7, 12, 14, 24, 30, 60, 90, 180, 365],
        values: (u, splits) => splits.map(i => Number.isInteger(i) && labels[i] != null ? bucketLabel(labels[i], unit) : "") },
      { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 60,
        values: (u, splits) => splits.map(v => metric === "total_revenue" ? String(v) : format(v)) },
    ],
    series,
    cursor: { points: { size: 8 } },
    legend: { live: true },
  };
  plot?.destroy();
  container.replaceChildren();
  plot = new uPlot(options, data, container);
  container.dataset.metric = metric;
  container.dataset.points = String(rows.length);
  // The drawn values as data (a test, or anyone without a mouse to hover, reads them here).
  container.dataset.labels = JSON.stringify(labels);
  container.dataset.values = JSON.stringify(current);
  container.dataset.ready = "true";
  container.setAttribute("role", "img");
  container.setAttribute("aria-label", `${label} by ${unit.slice(5)}: ${rows.length} points`);
}

export function clearChart(container) {
  plot?.destroy();
  plot = null;
  last = null;
  container.replaceChildren();
  container.dataset.ready = "false";
  container.dataset.points = "0";
  delete container.dataset.labels;
  delete container.dataset.values;
}

/** Colours follow the theme; the size follows the window. */
export function redrawChart() {
  if (last) drawChart(last.container, last.spec);
}

let resizeTimer = 0;
addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (plot && last) plot.setSize({ width: Math.max(280, last.container.clientWidth), height: last.container.clientWidth < 500 ? 200 : 260 }); }, 100);
});
