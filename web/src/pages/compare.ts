// Compare 2–10 runs: the parameters that differ, metrics side by side,
// overlaid charts, and the fold aggregate (mean ± std per hyper-parameter set).
import { collection, doc } from "firebase/firestore";
import { db, readDoc, readQuery } from "../fb";
import * as paths from "../paths";
import { assemble, type ChunkDoc, type Series } from "../series";
import { effectiveStatus } from "../status";
import { chartControls, metricChart, type ChartOptions } from "../chart";
import { crumbs, enc, fmt, h, mount, section } from "../ui";

type Row = Record<string, unknown>;
export const MAX_COMPARED = 10;

/** The settings of a run that a comparison lines up. */
function settingsOf(d: Row): Row {
  const out: Row = { fold: d.fold, model: (d.model as Row | undefined)?.name, "git commit": (d.git as Row | undefined)?.commit, datasets: ((d.dataset_refs as string[]) ?? []).join(", ") };
  for (const [k, v] of Object.entries((d.params as Row) ?? {})) out[`param ${k}`] = v;
  for (const [k, v] of Object.entries((d.hyper_params as Row) ?? {})) out[`hyper ${k}`] = v;
  return out;
}

export async function comparePage(p: string, e: string, params: URLSearchParams): Promise<void> {
  crumbs(["projects", "#/"], [p, `#/p/${enc(p)}`], [e, `#/p/${enc(p)}/e/${enc(e)}`], ["compare", ""]);
  const ids = [...new Set((params.get("runs") ?? "").split(",").filter(Boolean))];
  if (ids.length < 2 || ids.length > MAX_COMPARED) {
    mount(h("p", { class: "error" }, `Choose 2 to ${MAX_COMPARED} runs to compare (got ${ids.length}).`));
    return;
  }
  const snaps = await Promise.all(ids.map((r) => readDoc(doc(db, paths.run(p, e, r)))));
  const runs = snaps.filter((s) => s.exists()).map((s) => ({ id: s.id, data: s.data() as Row }));
  const allSettings = runs.map((r) => settingsOf(r.data));
  const keys = [...new Set(allSettings.flatMap((s) => Object.keys(s)))].sort();
  const differs = (k: string) => new Set(allSettings.map((s) => JSON.stringify(s[k] ?? null))).size > 1;
  const showAll = h("input", { type: "checkbox" });
  const settingsTable = h("table", { class: "grid", "data-testid": "compare-params" });
  const renderSettings = () => {
    const shown = keys.filter((k) => showAll.checked || differs(k));
    settingsTable.replaceChildren(
      h("tr", {}, h("th", {}, ""), runs.map((r) => h("th", {}, r.id))),
      ...shown.map((k) => h("tr", { class: differs(k) ? "differs" : "", "data-key": k }, h("th", {}, k), allSettings.map((s) => h("td", {}, fmt(s[k]))))),
    );
    if (!shown.length) settingsTable.replaceChildren(h("tr", {}, h("td", {}, "No parameter differs.")));
  };
  showAll.addEventListener("change", renderSettings);
  renderSettings();

  const metricKeys = [...new Set(runs.flatMap((r) => Object.keys((r.data.summary as Row) ?? {})))].sort();
  const last = (r: { data: Row }, k: string) => (((r.data.summary as Row) ?? {})[k] as Row | undefined)?.last as number | undefined;
  const metricsTable = h("table", { class: "grid", "data-testid": "compare-metrics" },
    h("tr", {}, h("th", {}, "metric (last)"), runs.map((r) => h("th", {}, r.id))),
    h("tr", {}, h("th", {}, "status"), runs.map((r) => h("td", {}, effectiveStatus(r.data)))),
    metricKeys.map((k) => h("tr", {}, h("th", {}, k), runs.map((r) => h("td", { class: "num" }, fmt(last(r, k)))))),
  );

  // Fold aggregate: runs with the same hyper-parameters are folds of one setting.
  const groups = new Map<string, { id: string; data: Row }[]>();
  for (const r of runs) {
    const hp = (r.data.hyper_params as Row) ?? {};
    const key = JSON.stringify(Object.fromEntries(Object.entries(hp).sort()));
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(r);
  }
  const aggTable = h("table", { class: "grid", "data-testid": "fold-aggregate" },
    h("tr", {}, h("th", {}, "hyper-parameters"), h("th", {}, "runs"), metricKeys.map((k) => h("th", {}, k))),
    [...groups].map(([hp, members]) => h("tr", {}, h("td", {}, hp), h("td", {}, members.map((m) => m.id).join(", ")),
      metricKeys.map((k) => h("td", { class: "num" }, meanStd(members.map((m) => last(m, k)).filter((v): v is number => typeof v === "number" && Number.isFinite(v))))))),
  );

  const charts = h("div", { class: "charts", "data-testid": "charts" });
  const opts: ChartOptions = { axis: "step", smoothing: 0, log: false };
  mount(
    h("h1", {}, `Compare ${runs.length} runs`),
    section("Parameters", h("label", {}, showAll, " show parameters that are the same too"), settingsTable),
    section("Metrics", metricsTable),
    section("Fold aggregate (mean ± std per hyper-parameter set)", aggTable),
    section("Charts", chartControls(opts, () => drawCharts()), charts),
  );
  const perRun = await Promise.all(runs.map(async (r) => {
    const snap = await readQuery(collection(db, paths.metrics(p, e, r.id)));
    const chunks = new Map<string, ChunkDoc>(snap.docs.map((d) => [d.id, d.data() as ChunkDoc]));
    return [r.id, assemble(chunks)] as [string, Map<string, Series>];
  }));
  const drawCharts = () => {
    const keysDrawn = [...new Set(perRun.flatMap(([, m]) => [...m.keys()]))].sort();
    charts.replaceChildren(...keysDrawn.map((k) => metricChart(k, perRun.filter(([, m]) => m.has(k)).map(([id, m]) => [id, m.get(k)!]), opts)));
  };
  drawCharts();
}

export function meanStd(xs: number[]): string {
  if (!xs.length) return "";
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length === 1) return `${fmt(mean)} (n=1)`;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
  return `${fmt(mean)} ± ${fmt(sd)} (n=${xs.length})`;
}
