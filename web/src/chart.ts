// One chart per metric key, several runs overlaid, drawn with uPlot.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h } from "./ui";
import { downsample, smooth, type Series } from "./series";

export interface ChartOptions {
  axis: "step" | "time";
  smoothing: number; // EMA weight, 0 = none
  log: boolean;
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const WIDTH = 560;
const HEIGHT = 240;
/** Buckets of the min/max downsampling: about one per pixel column. */
const BUCKETS = 500;

/** A chart element for one key: `lines` is [label, series] per run. */
export function metricChart(key: string, lines: [string, Series][], opts: ChartOptions): HTMLElement {
  const logged = lines.reduce((n, [, s]) => n + s.count, 0);
  const nonfinite = lines.reduce((n, [, s]) => n + s.nonfinite, 0);
  const drawnLines = lines.map(([label, s]) => {
    const xs = opts.axis === "time" ? s.times : s.steps;
    const d = downsample(xs, s.values, BUCKETS);
    let ys = smooth(d.ys, opts.smoothing);
    if (opts.log) ys = ys.map((y) => (y > 0 ? y : NaN));
    return { label, xs: d.xs, ys };
  });
  const drawn = drawnLines.reduce((n, l) => n + l.xs.length, 0);
  const yMax = Math.max(...drawnLines.flatMap((l) => l.ys.filter(Number.isFinite)));
  // uPlot wants one shared x array: the union of x values, with gaps (null) elsewhere.
  const xset = new Set<number>();
  for (const l of drawnLines) for (const x of l.xs) xset.add(x);
  const xs = Float64Array.from(xset).sort();
  const pos = new Map<number, number>();
  xs.forEach((x, i) => pos.set(x, i));
  const ys = drawnLines.map((l) => {
    const col: (number | null)[] = new Array(xs.length).fill(null);
    l.xs.forEach((x, i) => (col[pos.get(x)!] = Number.isFinite(l.ys[i]) ? l.ys[i] : null));
    return col;
  });
  const note = `${logged.toLocaleString("en-US")} points logged · ${drawn.toLocaleString("en-US")} drawn` +
    (drawn < logged - nonfinite ? " (min/max per pixel column)" : "") +
    (nonfinite ? ` · ${nonfinite} non-finite not drawable` : "");
  const box = h("div", { class: "chart", "data-testid": "chart", "data-key": key, "data-logged": logged, "data-drawn": drawn, "data-ymax": yMax },
    h("div", { class: "chart-title" }, h("b", {}, key), " ", h("span", { class: "muted", "data-testid": "points" }, note)),
  );
  const plot = new uPlot(
    {
      width: WIDTH,
      height: HEIGHT,
      scales: { x: { time: opts.axis === "time" }, y: opts.log ? { distr: 3 } : {} },
      series: [{ label: opts.axis }, ...drawnLines.map((l, i) => ({ label: l.label, stroke: COLORS[i % COLORS.length], spanGaps: true, points: { show: false } }))],
      legend: { show: lines.length > 1 },
    },
    [Array.from(xs), ...ys] as uPlot.AlignedData,
    box,
  );
  void plot;
  return box;
}

/** The controls every chart panel shares; `onChange` redraws. */
export function chartControls(opts: ChartOptions, onChange: () => void): HTMLElement {
  const axis = h("select", { "data-testid": "axis" }, h("option", { value: "step" }, "step"), h("option", { value: "time" }, "time"));
  axis.value = opts.axis;
  axis.addEventListener("change", () => { opts.axis = axis.value as "step" | "time"; onChange(); });
  const sm = h("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: opts.smoothing, "data-testid": "smoothing" });
  sm.addEventListener("change", () => { opts.smoothing = Number(sm.value); onChange(); });
  const log = h("input", { type: "checkbox", "data-testid": "log" });
  log.checked = opts.log;
  log.addEventListener("change", () => { opts.log = log.checked; onChange(); });
  return h("div", { class: "controls" }, h("label", {}, "x axis ", axis), h("label", {}, "smoothing ", sm), h("label", {}, log, " log scale"));
}
