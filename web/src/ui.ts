// Small DOM helpers: no framework, the pages are tables and charts.
import { Timestamp } from "firebase/firestore";

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | ((ev: Event) => void)>;

/** Create an element: h("a", {href: "#/"}, "home"). Text children are escaped. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replace the page's content. */
export function mount(...children: (Child | Child[])[]): HTMLElement {
  const app = document.getElementById("app")!;
  app.replaceChildren(...children.flat().filter((c): c is Node | string => c !== null && c !== undefined && c !== false).map((c) => (c instanceof Node ? c : String(c))));
  return app;
}

/** Breadcrumbs in the header. */
export function crumbs(...items: [string, string][]): void {
  const nav = document.getElementById("crumbs")!;
  nav.replaceChildren(...items.flatMap(([label, href], i) => [i ? " / " : "", href ? h("a", { href }, label) : h("span", {}, label)]));
}

export function fmt(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (v instanceof Timestamp) return fmtTime(v);
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    return Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : String(Number(v.toPrecision(4)));
  }
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function fmtTime(t: Timestamp | null | undefined): string {
  if (!(t instanceof Timestamp)) return "";
  return t.toDate().toISOString().replace("T", " ").slice(0, 19);
}

export function errorBox(err: unknown): HTMLElement {
  const msg = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string } | null)?.code ?? "";
  const denied = code === "permission-denied" || /permission-denied|insufficient permissions/i.test(msg);
  return h(
    "p",
    { class: "error", "data-testid": "error" },
    denied ? "Not found, or you are not a member of this project." : `Error: ${msg}`,
  );
}

/** A two-column table of a flat or nested map. */
export function kvTable(obj: Record<string, unknown> | null | undefined, testid?: string): HTMLElement {
  const rows = Object.entries(obj ?? {}).sort(([a], [b]) => a.localeCompare(b));
  if (!rows.length) return h("p", { class: "muted" }, "none");
  return h(
    "table",
    { class: "kv", "data-testid": testid },
    rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, fmt(v)))),
  );
}

export function section(title: string, ...body: (Child | Child[])[]): HTMLElement {
  return h("section", {}, h("h2", {}, title), ...body);
}

/** Parse `#/a/b?x=1` into path parts and query parameters. */
export function parseHash(hash: string): { parts: string[]; params: URLSearchParams } {
  const raw = hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?", 2);
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

export const enc = encodeURIComponent;
