// A dataset: its versions and their changes, the runs that used a version
// (lineage), and per file a statistics overview in the spirit of Facets
// Overview, with the version's validation and drift anomalies highlighted.
import { collection, collectionGroup, doc, limit, orderBy, query, where } from "firebase/firestore";
import { db, readDoc, readQuery } from "../fb";
import * as paths from "../paths";
import { trainedOn } from "./models";
import { crumbs, enc, fmt, fmtTime, h, mount, section } from "../ui";

type Row = Record<string, unknown>;
interface Anomaly { kind: string; column: string; detail: string }
export const FILES_SHOWN = 20;

export async function datasetPage(p: string, name: string, params: URLSearchParams): Promise<void> {
  crumbs(["projects", "#/"], [p, `#/p/${enc(p)}`], [name, ""]);
  const ds = await readDoc(doc(db, paths.dataset(p, name)));
  if (!ds.exists()) throw new Error("permission-denied");
  const dsData = ds.data() as Row;
  const versions = await readQuery(query(collection(db, paths.datasetVersions(p, name)), orderBy("seq", "desc"), limit(50)));
  const latest = String(dsData.latest_version ?? versions.docs[0]?.id ?? "");
  const chosen = params.get("v") || latest;
  const vdoc = versions.docs.find((d) => d.id === chosen)?.data() as Row | undefined;
  const validation = (vdoc?.validation ?? null) as Row | null;

  const versionRows = versions.docs.map((d) => {
    const v = d.data() as Row;
    const ch = (v.changes ?? {}) as Row;
    const val = v.validation as Row | undefined;
    return h("tr", { class: d.id === chosen ? "chosen" : "" },
      h("td", {}, h("a", { href: `#/p/${enc(p)}/d/${enc(name)}?v=${enc(d.id)}` }, d.id)),
      h("td", {}, fmt(v.parent)),
      h("td", {}, fmtTime(v.created_at as never)),
      h("td", { class: "num" }, fmt(v.file_count)),
      h("td", { class: "num" }, fmt(v.total_bytes)),
      h("td", {}, Object.entries(ch).map(([k, n]) => `${k} ${n}`).join(", ")),
      h("td", { class: val ? (val.ok ? "ok" : "bad") : "muted" }, val ? (val.ok ? "ok" : `${fmt(val.anomalies)} anomalies`) : "not validated"),
      h("td", {}, fmt(v.created_by_run)),
    );
  });

  // Lineage: runs of any experiment of this project that used the chosen version.
  const users = await readQuery(query(collectionGroup(db, "Runs"), where("project", "==", p), where("dataset_refs", "array-contains", paths.datasetRef(name, chosen)), limit(50)));
  const lineage = users.docs.map((d) => {
    const r = d.data() as Row;
    const e = String(r.experiment ?? "");
    return h("li", {}, h("a", { href: `#/p/${enc(p)}/e/${enc(e)}/r/${enc(d.id)}` }, `${e} / run ${d.id}`), ` ${fmt(r.status)}`);
  });

  // Lineage the other way: model versions trained on the chosen version.
  const models = await trainedOn(p, name, chosen);

  // Statistics of the chosen version's files: the version lists its first files by
  // path and sha256 (the profiles in Files/ are by content), so any version has them
  // without the bucket; a version recorded before that field falls back to files/,
  // which holds the latest manifest.
  const listed = (vdoc?.files_listed as { path: string; sha256: string }[] | undefined) ?? null;
  let entries: [string, string][] | null;
  let more = false;
  if (listed) {
    entries = listed.slice(0, FILES_SHOWN).map((f) => [f.path, f.sha256]);
    more = Number(vdoc?.file_count ?? 0) > entries.length;
  } else if (chosen === latest) {
    const files = await readQuery(query(collection(db, paths.datasetFiles(p, name)), limit(FILES_SHOWN)));
    entries = files.docs.map((f) => [String((f.data() as Row).path ?? f.id), String((f.data() as Row).sha256 ?? "")]);
    more = files.size >= FILES_SHOWN;
  } else {
    entries = null;
  }
  const stats = await Promise.all((entries ?? []).map(async ([path, sha]) => {
    const snap = sha ? await readDoc(doc(db, paths.file(p, sha))) : null;
    return [path, sha, (snap?.data() ?? {}) as Row] as [string, string, Row];
  }));
  const anomaliesByPath = new Map<string, Anomaly[]>();
  for (const f of Object.values(((validation?.files ?? {}) as Record<string, Row>))) {
    anomaliesByPath.set(String(f.path), (f.anomalies as Anomaly[] | undefined) ?? []);
  }

  mount(
    h("h1", {}, name),
    h("p", { class: "muted" }, String(dsData.desc ?? "")),
    section("Versions",
      h("table", { class: "grid", "data-testid": "versions" },
        h("tr", {}, ["version", "parent", "created", "files", "bytes", "changes", "validation", "made by run"].map((c) => h("th", {}, c))),
        versionRows),
    ),
    section(`Validation of ${chosen}`, validationBlock(validation)),
    section(`Runs that used ${chosen}`, lineage.length ? h("ul", { "data-testid": "lineage" }, lineage) : h("p", { class: "muted", "data-testid": "lineage" }, "none")),
    section(`Models trained on ${chosen}`, models),
    section(`Statistics of ${chosen}`,
      entries === null
        ? h("p", { class: "muted", "data-testid": "no-stats" }, `${chosen} was recorded without its file list; its manifest is in Cloud Storage: \`aletheia datasets stats ${name} -v ${chosen}\`.`)
        : stats.map(([path, sha, fd]) => fileStats(path, sha, fd, anomaliesByPath.get(path) ?? [])),
      more ? h("p", { class: "muted" }, `First ${FILES_SHOWN} files shown (tables first).`) : null,
    ),
  );
}

function validationBlock(v: Row | null): HTMLElement {
  if (!v) return h("p", { class: "muted", "data-testid": "validation" }, "Not validated (first version, or files still being profiled).");
  const items = Object.values((v.files ?? {}) as Record<string, Row>).flatMap((f) =>
    ((f.anomalies as Anomaly[] | undefined) ?? []).map((a) => h("li", { class: "bad" }, `${String(f.path)}: ${a.kind} ${a.column} (${a.detail})`)));
  return h("div", { "data-testid": "validation" },
    h("p", { class: v.ok ? "ok" : "bad" }, `against ${fmt(v.parent)}: ${fmt(v.anomalies)} anomalies in ${fmt(v.files_compared)} file(s) compared`),
    items.length ? h("ul", { "data-testid": "anomalies" }, items) : null);
}

function fileStats(path: string, sha: string, fd: Row, anomalies: Anomaly[]): HTMLElement {
  const status = String(fd.status ?? "not profiled yet");
  const cols = (((fd.stats as Row | undefined)?.columns ?? []) as Row[]);
  const byColumn = new Map<string, Anomaly[]>();
  for (const a of anomalies) byColumn.set(a.column, [...(byColumn.get(a.column) ?? []), a]);
  const head = ["column", "type", "count", "missing %", "distinct", "min", "max", "mean", "distribution", "anomalies"];
  return h("div", { class: "file-stats", "data-testid": "file-stats", "data-path": path, "data-sha": sha },
    h("h3", {}, path, h("span", { class: "muted" }, ` [${status}]${fd.rows !== undefined ? ` · ${fmt(fd.rows)} rows · ${fmt(fd.format)}` : ""}`)),
    cols.length
      ? h("table", { class: "grid" }, h("tr", {}, head.map((c) => h("th", {}, c))),
        cols.map((c) => {
          const name = String(c.name);
          const count = Number(c.count ?? 0);
          const missing = Number(c.missing ?? 0);
          const total = count + missing;
          const found = byColumn.get(name) ?? [];
          return h("tr", { class: found.length ? "anomaly" : "", "data-column": name },
            h("td", {}, name), h("td", {}, fmt(c.type)), h("td", { class: "num" }, fmt(c.count)),
            h("td", { class: "num" + (missing ? " warn" : "") }, total ? `${fmt(Number((100 * missing / total).toFixed(2)))}` : ""),
            h("td", { class: "num" }, fmt(c.distinct) + (c.distinct_exact ? "" : "~")),
            h("td", { class: "num" }, fmt(c.min)), h("td", { class: "num" }, fmt(c.max)), h("td", { class: "num" }, fmt(c.mean)),
            h("td", {}, distribution(c)),
            h("td", { class: "bad", "data-testid": found.length ? "column-anomaly" : null }, found.map((a) => `${a.kind}: ${a.detail}`).join("; ")),
          );
        }))
      : h("p", { class: "muted" }, String(fd.reason ?? "")),
  );
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag: string, attrs: Record<string, string | number>, title?: string): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (title) {
    const t = document.createElementNS(SVG, "title");
    t.textContent = title;
    el.append(t);
  }
  return el;
}

/** A histogram for numbers, bars of the top values otherwise (as stats_report.py draws them). */
function distribution(c: Row): Node {
  const hist = c.histogram as { edges?: number[]; counts?: number[] } | undefined;
  const W = 200;
  if (hist?.counts?.length) {
    const H = 50;
    const peak = Math.max(1, ...hist.counts);
    const bar = W / hist.counts.length;
    const root = svg("svg", { width: W, height: H, class: "histogram", role: "img", "data-bins": hist.counts.length });
    hist.counts.forEach((n, i) => {
      const hgt = (H * n) / peak;
      const lo = hist.edges?.[i];
      const hi = hist.edges?.[i + 1];
      root.append(svg("rect", { x: i * bar, y: H - hgt, width: Math.max(bar - 1, 1), height: hgt, fill: "#4a7fb5" }, `[${fmt(lo)}, ${fmt(hi)}): ${n}`));
    });
    return root;
  }
  const top = ((c.top ?? []) as { value: unknown; count: number }[]).slice(0, 6);
  if (!top.length) return document.createTextNode("");
  const row = 13;
  const peak = Math.max(1, ...top.map((t) => t.count));
  const root = svg("svg", { width: W, height: row * top.length, class: "bars", role: "img" });
  top.forEach((t, i) => {
    const label = svg("text", { x: 0, y: i * row + 10, "font-size": 10 });
    label.textContent = String(t.value).slice(0, 12);
    root.append(label, svg("rect", { x: 80, y: i * row + 2, width: ((W - 80) * t.count) / peak, height: row - 4, fill: "#7a9e4a" }, `${String(t.value)}: ${t.count}`));
  });
  return root;
}
