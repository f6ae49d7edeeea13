// One run: everything recorded, and a chart per metric; live while it runs.
import { collection, doc } from "firebase/firestore";
import { db, watchDoc, watchQuery } from "../fb";
import * as paths from "../paths";
import { assemble, type ChunkDoc } from "../series";
import { effectiveStatus } from "../status";
import { chartControls, metricChart, type ChartOptions } from "../chart";
import { crumbs, enc, errorBox, fmt, fmtTime, h, kvTable, mount, section } from "../ui";
import { artifactFiles, diffText, save } from "../downloads";

type Row = Record<string, unknown>;

export async function runPage(p: string, e: string, r: string): Promise<void> {
  crumbs(["projects", "#/"], [p, `#/p/${enc(p)}`], [e, `#/p/${enc(p)}/e/${enc(e)}`], [r, ""]);
  const info = h("div", { "data-testid": "run-info" }, h("p", { class: "muted" }, "Loading…"));
  const charts = h("div", { class: "charts", "data-testid": "charts" });
  const opts: ChartOptions = { axis: "step", smoothing: 0, log: false };
  const chunks = new Map<string, ChunkDoc>();
  // What the download function returned, kept across the run document's live updates.
  const fetched = new Map<string, HTMLElement>();
  let pending = false;
  const draw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      const series = assemble(chunks);
      charts.replaceChildren(...[...series.values()].map((s) => metricChart(s.key, [[r, s]], opts)));
      if (!series.size) charts.replaceChildren(h("p", { class: "muted" }, "No metrics logged."));
    });
  };
  mount(h("h1", {}, `Run ${r}`), info, section("Metrics", chartControls(opts, draw), charts));

  watchDoc(doc(db, paths.run(p, e, r)), (snap) => {
    if (!snap.exists()) {
      info.replaceChildren(errorBox(new Error("permission-denied")));
      return;
    }
    info.replaceChildren(...details(p, e, r, snap.data() as Row, fetched));
  }, (err) => info.replaceChildren(errorBox(err)));
  watchQuery(collection(db, paths.metrics(p, e, r)), (snap) => {
    for (const change of snap.docChanges()) {
      if (change.type === "removed") chunks.delete(change.doc.id);
      else chunks.set(change.doc.id, change.doc.data() as ChunkDoc);
    }
    draw();
  }, (err) => charts.replaceChildren(errorBox(err)));
}

function details(p: string, e: string, r: string, d: Row, fetched: Map<string, HTMLElement>): HTMLElement[] {
  const status = effectiveStatus(d);
  const git = (d.git ?? {}) as Row;
  const env = (d.env ?? {}) as Row;
  const summary = (d.summary ?? {}) as Record<string, Row>;
  const refs = (d.dataset_refs as string[] | undefined) ?? [];
  const arts = ((d.artifacts as Row[] | undefined) ?? []).map((a) => [String(a.name), String(a.version)] as const);
  const diffRef = git.diff_ref as Row | undefined;
  const once = (key: string, make: () => HTMLElement) => {
    if (!fetched.has(key)) fetched.set(key, make());
    return fetched.get(key)!;
  };
  return [
    h("table", { class: "kv", "data-testid": "overview" },
      h("tr", {}, h("th", {}, "status"), h("td", { class: `status ${status}`, "data-testid": "run-status" }, status + (status !== d.status ? ` (recorded: ${String(d.status)}; heartbeat stopped)` : ""))),
      h("tr", {}, h("th", {}, "fold"), h("td", {}, fmt(d.fold))),
      h("tr", {}, h("th", {}, "model"), h("td", {}, fmt(d.model))),
      h("tr", {}, h("th", {}, "started"), h("td", {}, fmtTime(d.started_at as never))),
      h("tr", {}, h("th", {}, "ended"), h("td", {}, fmtTime(d.ended_at as never))),
      h("tr", {}, h("th", {}, "last heartbeat"), h("td", {}, fmtTime(d.heartbeat_at as never))),
      h("tr", {}, h("th", {}, "host / pid"), h("td", {}, `${fmt(d.host)} / ${fmt(d.pid)}`)),
      d.error ? h("tr", {}, h("th", {}, "error"), h("td", {}, h("pre", {}, String(d.error)))) : null,
    ),
    section("Final metrics",
      Object.keys(summary).length
        ? h("table", { class: "grid", "data-testid": "summary" },
          h("tr", {}, ["metric", "last", "step", "min", "max", "points", "non-finite"].map((c) => h("th", {}, c))),
          Object.entries(summary).sort().map(([k, s]) => h("tr", {}, h("td", {}, k), [s.last, s.last_step, s.min, s.max, s.count, s.nonfinite].map((v) => h("td", { class: "num" }, fmt(v))))))
        : h("p", { class: "muted" }, "none"),
    ),
    section("Parameters", kvTable(d.params as Row, "params")),
    section("Hyper-parameters", kvTable(d.hyper_params as Row, "hyper-params")),
    section("Git",
      kvTable({ commit: git.commit, branch: git.branch, dirty: git.dirty, changed: git.changed, untracked: git.untracked_count, remote: git.remote }, "git"),
      diffRef ? once(`diff:${String(diffRef.sha256)}`, () => diffView(p, e, r)) : null,
    ),
    section("Datasets",
      refs.length
        ? h("ul", { "data-testid": "run-datasets" }, refs.map((ref) => {
          const [name, version] = ref.split("@");
          return h("li", {}, h("a", { href: `#/p/${enc(p)}/d/${enc(name)}?v=${enc(version ?? "")}` }, ref));
        }))
        : h("p", { class: "muted" }, "none"),
    ),
    section("Artifacts",
      arts.length
        ? h("ul", { "data-testid": "artifacts" }, arts.map(([name, version]) => once(`artifact:${name}@${version}`, () => artifactView(p, e, r, name, version))))
        : h("p", { class: "muted" }, "none"),
    ),
    section("Environment", kvTable(flatten(env), "env"),
      env.packages_ref ? h("p", {}, h("a", { href: "#", "data-testid": "packages-download", onclick: (ev: Event) => {
        ev.preventDefault();
        save(p, e, r, "packages", {}, `${r}-requirements.txt`).catch((err) => (ev.target as HTMLElement).after(errorBox(err)));
      } }, "download the package list")) : null,
    ),
  ];
}

function flatten(obj: Row, prefix = ""): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v && typeof v === "object" && !Array.isArray(v) && !("toMillis" in (v as object))) Object.assign(out, flatten(v as Row, `${prefix}${k}.`));
    else out[`${prefix}${k}`] = v;
  }
  return out;
}

/** The dirty diff, fetched through the download function; long ones are cut, and say so. */
function diffView(p: string, e: string, r: string): HTMLElement {
  const box = h("div", { "data-testid": "diff" }, h("p", { class: "muted" }, "Loading the dirty diff…"));
  const download = h("a", { href: "#", "data-testid": "diff-download", onclick: (ev: Event) => {
    ev.preventDefault();
    save(p, e, r, "diff", {}, `${r}.diff`).catch((err) => box.append(errorBox(err)));
  } }, "download the diff");
  diffText(p, e, r).then(({ text, size, shown }) => {
    box.replaceChildren(
      h("h3", {}, "Dirty diff"),
      shown < size ? h("p", { class: "muted", "data-testid": "diff-cut" }, `Showing the first ${shown.toLocaleString()} of ${size.toLocaleString()} bytes: `, download) : h("p", {}, download),
      h("pre", { class: "diff", "data-testid": "diff-text" }, text),
    );
  }).catch((err) => box.replaceChildren(errorBox(err)));
  return box;
}

/** An artifact version the run saved, with a download link per file. */
function artifactView(p: string, e: string, r: string, name: string, version: string): HTMLElement {
  const files = h("ul", {}, h("li", { class: "muted" }, "Loading its files…"));
  const item = h("li", { "data-artifact": `${name}@${version}` }, `${name} ${version}`, files);
  artifactFiles(p, e, r, name, version).then((list) => {
    if (!list.length) {
      files.replaceChildren(h("li", { class: "muted" }, "no files uploaded"));
      return;
    }
    files.replaceChildren(...list.map((f) => h("li", {},
      h("a", { href: "#", "data-file": f.path, onclick: (ev: Event) => {
        ev.preventDefault();
        save(p, e, r, "artifact", { name, version, path: f.path }, f.path.split("/").pop() || name).catch((err) => item.append(errorBox(err)));
      } }, f.path),
      ` (${f.size.toLocaleString()} bytes)`)));
  }).catch((err) => files.replaceChildren(h("li", {}, errorBox(err))));
  return item;
}
