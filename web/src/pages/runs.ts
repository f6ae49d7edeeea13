// The runs table of an experiment: sorted and filtered by Firestore, paged with
// cursors, live (onSnapshot), about one document read per shown run.
import {
  collection,
  documentId,
  FieldPath,
  limit,
  orderBy,
  query,
  startAfter,
  Timestamp,
  where,
  type DocumentSnapshot,
  type QueryConstraint,
  type WhereFilterOp,
} from "firebase/firestore";
import { db, onLeave, watchQuery } from "../fb";
import * as paths from "../paths";
import { effectiveStatus, staleCutoffMs } from "../status";
import { crumbs, enc, errorBox, fmt, fmtTime, h, mount } from "../ui";

export const PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;
const OPS: WhereFilterOp[] = ["==", "!=", "<", "<=", ">", ">="];
const FIXED = ["run", "status", "fold", "started_at", "git", "datasets"];
/**
 * Columns whose `==` filter has a composite index with the sort on `started_at`
 * (either direction) in firestore.indexes.json (tests/test_webui_indexes.py checks
 * it). Any other filter + sort on another column needs an index the cloud names in
 * its error: params, hyper-parameters and metrics are the user's own keys.
 */
export const INDEXED_FILTERS = ["status", "fold", "git"];

/** True when production Firestore has the index this filter + sort needs. */
export function indexed(fcol: string, fop: string, sort: string): boolean {
  if (!fcol || fcol === sort) return true; // single-field indexes serve it
  if (fop !== "==") return false;
  return sort === "started_at" && INDEXED_FILTERS.includes(fcol);
}

type Row = Record<string, unknown>;

/** Column id -> the document field it shows (and sorts and filters on). */
export function fieldOf(col: string): FieldPath {
  if (col === "run") return documentId() as unknown as FieldPath;
  if (col === "git") return new FieldPath("git", "commit");
  if (col === "datasets") return new FieldPath("dataset_refs");
  const [kind, ...rest] = col.split(":");
  const key = rest.join(":");
  if (kind === "param") return new FieldPath("params", key);
  if (kind === "hp") return new FieldPath("hyper_params", key);
  if (kind === "metric") return new FieldPath("summary", key, "last");
  return new FieldPath(col);
}

function cell(col: string, id: string, d: Row): unknown {
  const [kind, ...rest] = col.split(":");
  const key = rest.join(":");
  if (kind === "param") return (d.params as Row | undefined)?.[key];
  if (kind === "hp") return (d.hyper_params as Row | undefined)?.[key];
  if (kind === "metric") return ((d.summary as Row | undefined)?.[key] as Row | undefined)?.last;
  if (col === "run") return id;
  if (col === "status") return effectiveStatus(d);
  if (col === "started_at") return fmtTime(d.started_at as never);
  if (col === "git") {
    const g = (d.git ?? {}) as Row;
    return g.commit ? `${String(g.commit).slice(0, 8)}${g.dirty ? " (dirty)" : ""}` : "";
  }
  if (col === "datasets") return ((d.dataset_refs as string[] | undefined) ?? []).join(", ");
  return d[col];
}

/** A filter value as typed: numbers and booleans as such, else text. */
export function parseValue(text: string): unknown {
  const t = text.trim();
  if (t === "true" || t === "false") return t === "true";
  if (t !== "" && !Number.isNaN(Number(t))) return Number(t);
  return t;
}

export async function runsPage(p: string, e: string, params: URLSearchParams): Promise<void> {
  crumbs(["projects", "#/"], [p, `#/p/${enc(p)}`], [e, ""]);
  const sort = params.get("sort") ?? "started_at";
  const dir = params.get("dir") === "asc" ? "asc" : "desc";
  const fcol = params.get("f") ?? "";
  const fop = (params.get("op") ?? "==") as WhereFilterOp;
  const fval = params.get("v") ?? "";
  const pageSize = Math.min(MAX_PAGE_SIZE, Math.max(1, Number(params.get("n")) || PAGE_SIZE));
  const hiddenKey = `aletheia.hidden.${p}/${e}`;
  const hidden = new Set<string>(JSON.parse(localStorage.getItem(hiddenKey) ?? "[]") as string[]);
  const cursors: (DocumentSnapshot | null)[] = [null];
  let page = 0;
  const selected = new Set<string>();
  let lastSnap: { id: string; data: Row }[] = [];
  let pageEnd: DocumentSnapshot | null = null;

  const setHash = (next: Record<string, string | null>) => {
    const q = new URLSearchParams(params);
    for (const [k, v] of Object.entries(next)) (v === null ? q.delete(k) : q.set(k, v));
    location.hash = `#/p/${enc(p)}/e/${enc(e)}?${q}`;
  };

  const status = h("p", { class: "muted", "data-testid": "table-status" }, "Loading…");
  const table = h("table", { class: "grid runs", "data-testid": "runs" });
  const pager = h("div", { class: "pager" });
  const chooser = h("details", { class: "chooser" });
  const compareBtn = h("button", { "data-testid": "compare", disabled: true }, "Compare selected");
  compareBtn.addEventListener("click", () => {
    location.hash = `#/p/${enc(p)}/e/${enc(e)}/compare?runs=${[...selected].map(enc).join(",")}`;
  });

  const fcolSel = h("select", { "data-testid": "filter-column" });
  const fopSel = h("select", { "data-testid": "filter-op" }, OPS.map((o) => h("option", { value: o }, o)));
  fopSel.value = fop;
  const fvalIn = h("input", { value: fval, placeholder: "value", "data-testid": "filter-value" });
  const filterForm = h("form", { class: "filter", onsubmit: (ev: Event) => { ev.preventDefault(); setHash({ f: fcolSel.value || null, op: fopSel.value, v: fvalIn.value }); } },
    "Filter ", fcolSel, " ", fopSel, " ", fvalIn, " ", h("button", { type: "submit", "data-testid": "filter-apply" }, "Apply"), " ",
    h("button", { type: "button", onclick: () => setHash({ f: null, op: null, v: null }) }, "Clear"));

  const columnsOf = (rows: { data: Row }[]): string[] => {
    const keys = { param: new Set<string>(), hp: new Set<string>(), metric: new Set<string>() };
    for (const { data } of rows) {
      for (const k of Object.keys((data.params as Row) ?? {})) keys.param.add(k);
      for (const k of Object.keys((data.hyper_params as Row) ?? {})) keys.hp.add(k);
      for (const k of Object.keys((data.summary as Row) ?? {})) keys.metric.add(k);
    }
    const dyn = (kind: "param" | "hp" | "metric") => [...keys[kind]].sort().map((k) => `${kind}:${k}`);
    return [...FIXED, ...dyn("param"), ...dyn("hp"), ...dyn("metric")];
  };

  const render = () => {
    const all = columnsOf(lastSnap);
    for (const c of [sort, fcol]) if (c && !all.includes(c)) all.push(c);
    const cols = all.filter((c) => !hidden.has(c));
    fcolSel.replaceChildren(h("option", { value: "" }, "(column)"), ...all.map((c) => h("option", { value: c }, c)));
    fcolSel.value = fcol;
    chooser.replaceChildren(h("summary", {}, "Columns"), ...all.map((c) => {
      const box = h("input", { type: "checkbox" });
      box.checked = !hidden.has(c);
      box.addEventListener("change", () => {
        (box.checked ? hidden.delete(c) : hidden.add(c));
        localStorage.setItem(hiddenKey, JSON.stringify([...hidden]));
        render();
      });
      return h("label", {}, box, " ", c);
    }));
    const head = h("tr", {}, h("th", {}), cols.map((c) => {
      const mark = c === sort ? (dir === "asc" ? " ▲" : " ▼") : "";
      return h("th", { class: "sortable", "data-col": c, onclick: () => setHash({ sort: c, dir: c === sort && dir === "desc" ? "asc" : "desc" }) }, c + mark);
    }));
    const body = lastSnap.map(({ id, data }) => {
      const box = h("input", { type: "checkbox", "data-run": id });
      box.checked = selected.has(id);
      box.addEventListener("change", () => {
        (box.checked ? selected.add(id) : selected.delete(id));
        compareBtn.disabled = selected.size < 2 || selected.size > 10;
      });
      return h("tr", { "data-run": id }, h("td", {}, box), cols.map((c) => {
        const v = cell(c, id, data);
        if (c === "run") return h("td", {}, h("a", { href: `#/p/${enc(p)}/e/${enc(e)}/r/${enc(id)}` }, id));
        if (c === "status") return h("td", { class: `status ${String(v)}`, "data-col": c }, String(v));
        return h("td", { class: typeof v === "number" ? "num" : "", "data-col": c }, fmt(v));
      }));
    });
    table.replaceChildren(head, ...body);
    pager.replaceChildren(
      h("button", { disabled: page === 0, onclick: () => { page--; subscribe(); } }, "‹ Prev"),
      ` page ${page + 1} `,
      h("button", { disabled: lastSnap.length < pageSize, onclick: () => { cursors[page + 1] = pageEnd; page++; subscribe(); }, "data-testid": "next-page" }, "Next ›"),
    );
  };

  // `status == crashed` also means `running` runs whose heartbeat went stale: nothing
  // records those, so a second query finds them (status + heartbeat time) and the
  // browser keeps the ones effectiveStatus calls crashed, on the first page.
  const crashedFilter = fcol === "status" && fop === "==" && fval.trim() === "crashed";
  // And `status == running` leaves out the runs stored as running whose heartbeat
  // stopped: they show as crashed everywhere else, so listing them would contradict it.
  const runningFilter = fcol === "status" && fop === "==" && fval.trim() === "running";
  let recorded: { id: string; data: Row }[] = [];
  let stale: { id: string; data: Row }[] = [];
  const show = () => {
    const silent = page === 0 ? stale.filter((r) => effectiveStatus(r.data) === "crashed") : [];
    const listed = runningFilter ? recorded.filter((r) => effectiveStatus(r.data) === "running") : recorded;
    const dead = recorded.length - listed.length;
    lastSnap = silent.length ? sortRows([...silent, ...listed], sort, dir) : listed;
    status.textContent = `${lastSnap.length} run(s) on this page, sorted by ${sort} ${dir}` +
      (fcol ? `, where ${fcol} ${fop} ${fval}` : "") +
      (crashedFilter ? ` (${recorded.length} recorded, ${silent.length} with a stale heartbeat)` : "") +
      (dead ? ` (${dead} stored as running left out: crashed, their heartbeat stopped)` : "") +
      (sort !== "started_at" && sort !== "run" ? ` (runs without ${sort} are not listed)` : "") +
      (indexed(fcol, fop, sort) ? "" : " (in the cloud this filter and sort need a composite index: Firestore's error names it)");
    render();
  };
  let stop: (() => void) | null = null;
  let stopStale: (() => void) | null = null;
  const watchStale = () => {
    stopStale?.();
    stopStale = null;
    stale = [];
    if (!crashedFilter || page !== 0) return;
    const silent = query(collection(db, paths.runs(p, e)), ...staleRunsConstraints(Timestamp.fromMillis(staleCutoffMs())));
    stopStale = watchQuery(silent, (snap) => {
      stale = snap.docs.map((d) => ({ id: d.id, data: d.data() as Row }));
      show();
    }, (err) => status.replaceChildren(errorBox(err)));
  };
  const subscribe = () => {
    stop?.();
    const cons: QueryConstraint[] = [];
    if (fcol) cons.push(where(fieldOf(fcol), fop, parseValue(fval)));
    cons.push(orderBy(fieldOf(sort), dir));
    const after = cursors[page];
    if (after) cons.push(startAfter(after));
    cons.push(limit(pageSize));
    status.textContent = "Loading…";
    watchStale();
    stop = watchQuery(query(collection(db, paths.runs(p, e)), ...cons), (snap) => {
      recorded = snap.docs.map((d) => ({ id: d.id, data: d.data() as Row }));
      pageEnd = snap.docs[snap.docs.length - 1] ?? null;
      show();
    }, (err) => status.replaceChildren(errorBox(err)));
  };

  mount(h("h1", {}, e), filterForm, chooser, h("div", {}, compareBtn), status, table, pager);
  subscribe();
  // A running run turns crashed when its heartbeat stops, without any document change.
  // The crashed filter asks again for runs that went silent since (reading only those).
  const timer = window.setInterval(() => {
    if (crashedFilter) watchStale();
    else if (runningFilter) show();
    else if (lastSnap.length) render();
  }, 15000);
  onLeave(() => stopStale?.());
  onLeave(() => window.clearInterval(timer));
}

/** Candidates for a crash nobody recorded: `running`, silent since `cutoff`, stalest first. */
export function staleRunsConstraints(cutoff: Timestamp): QueryConstraint[] {
  return [where("status", "==", "running"), where("heartbeat_at", "<", cutoff), orderBy("heartbeat_at", "asc"), limit(MAX_PAGE_SIZE)];
}

/** Rows of two queries in the table's order (values compared as Firestore orders numbers and text). */
function sortRows(rows: { id: string; data: Row }[], sort: string, dir: "asc" | "desc"): { id: string; data: Row }[] {
  const key = (r: { id: string; data: Row }): unknown => {
    if (sort === "run") return r.id;
    if (sort === "started_at" || sort === "heartbeat_at") return (r.data[sort] as Timestamp | undefined)?.toMillis?.() ?? 0;
    if (sort === "status") return effectiveStatus(r.data);
    return cell(sort, r.id, r.data);
  };
  const cmp = (a: unknown, b: unknown): number => {
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a ?? "").localeCompare(String(b ?? ""));
  };
  const seen = new Set<string>();
  const unique = rows.filter((r) => !seen.has(r.id) && seen.add(r.id));
  return unique.sort((a, b) => (dir === "asc" ? 1 : -1) * cmp(key(a), key(b)));
}
