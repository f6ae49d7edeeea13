// The model registry: a project's models (aliases, latest version), a model's
// versions, and a version's lineage (its run, the dataset versions that run
// used, commit, params, metrics). A dataset page shows the other direction.
import { collection, collectionGroup, doc, limit, orderBy, query, where } from "firebase/firestore";
import { db, readDoc, readQuery } from "../fb";
import * as paths from "../paths";
import { crumbs, enc, fmt, fmtTime, h, kvTable, mount, section } from "../ui";

type Row = Record<string, unknown>;
export const MODELS_SHOWN = 200;
export const VERSIONS_SHOWN = 100;

const modelHref = (p: string, m: string) => `#/p/${enc(p)}/m/${enc(m)}`;
const versionHref = (p: string, m: string, n: unknown) => `${modelHref(p, m)}/v/${enc(String(n))}`;
export const runHref = (p: string, e: unknown, r: unknown) => `#/p/${enc(p)}/e/${enc(String(e))}/r/${enc(String(r))}`;
const datasetHref = (p: string, name: string, v: string) => `#/p/${enc(p)}/d/${enc(name)}?v=${enc(v)}`;

/** `{champion: 3, staging: 4}` as "champion → 3, staging → 4". */
function aliasText(aliases: unknown): string {
  return Object.entries((aliases ?? {}) as Record<string, unknown>)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([a, n]) => `${a} → v${fmt(n)}`)
    .join(", ");
}

/** Aliases pointing at version `n`. */
function aliasesOf(aliases: unknown, n: unknown): string[] {
  return Object.entries((aliases ?? {}) as Record<string, unknown>).filter(([, v]) => Number(v) === Number(n)).map(([a]) => a).sort();
}

/** The project page's Models section: one read per model (one for none). */
export async function modelsSection(p: string): Promise<HTMLElement> {
  const snap = await readQuery(query(collection(db, paths.models(p)), orderBy("name"), limit(MODELS_SHOWN)));
  const rows = snap.docs.map((d) => {
    const m = d.data() as Row;
    return h("tr", { "data-model": d.id },
      h("td", {}, h("a", { href: modelHref(p, d.id), "data-testid": "model-link" }, d.id)),
      h("td", { "data-col": "latest" }, m.latest_version ? h("a", { href: versionHref(p, d.id, m.latest_version) }, `v${fmt(m.latest_version)}`) : ""),
      h("td", { class: "num" }, fmt(m.version_count)),
      h("td", { "data-col": "aliases" }, aliasText(m.aliases)),
      h("td", {}, fmtTime(m.updated_at as never)),
      h("td", {}, String(m.description ?? "")),
    );
  });
  return section("Models",
    rows.length
      ? h("table", { class: "grid", "data-testid": "models" }, h("tr", {}, ["model", "latest", "versions", "aliases", "updated", "description"].map((c) => h("th", {}, c))), rows)
      : h("p", { class: "muted", "data-testid": "models" }, "No registered models yet."));
}

/** One model: its aliases and versions, newest first (the model and one read per version). */
export async function modelPage(p: string, name: string): Promise<void> {
  crumbs(["projects", "#/"], [p, `#/p/${enc(p)}`], [name, ""]);
  const m = await readDoc(doc(db, paths.model(p, name)));
  if (!m.exists()) throw new Error(`model ${name} is not registered (or you are not a member of this project: permission-denied)`);
  const md = m.data() as Row;
  const versions = await readQuery(query(collection(db, paths.modelVersions(p, name)), orderBy("version", "desc"), limit(VERSIONS_SHOWN)));
  const rows = versions.docs.map((d) => {
    const v = d.data() as Row;
    const git = (v.git ?? {}) as Row;
    return h("tr", { "data-version": d.id },
      h("td", {}, h("a", { href: versionHref(p, name, d.id), "data-testid": "version-link" }, `v${d.id}`)),
      h("td", { "data-col": "aliases" }, aliasesOf(md.aliases, v.version).join(", ")),
      h("td", {}, v.run !== null && v.run !== undefined ? h("a", { href: runHref(p, v.experiment, v.run) }, `${fmt(v.experiment)} / run ${fmt(v.run)}`) : fmt(v.source)),
      h("td", {}, ((v.dataset_refs as string[] | undefined) ?? []).join(", ")),
      h("td", {}, git.commit ? `${String(git.commit).slice(0, 8)}${git.dirty ? " (dirty)" : ""}` : ""),
      h("td", {}, Object.entries((v.metrics ?? {}) as Row).sort().map(([k, x]) => `${k}=${fmt(x)}`).join(", ")),
      h("td", {}, fmt(v.flavor)),
      h("td", {}, fmtTime(v.created_at as never)),
    );
  });
  mount(
    h("h1", {}, name),
    h("p", { class: "muted" }, String(md.description ?? "")),
    h("table", { class: "kv", "data-testid": "model-overview" },
      h("tr", {}, h("th", {}, "latest version"), h("td", {}, `v${fmt(md.latest_version)}`)),
      h("tr", {}, h("th", {}, "aliases"), h("td", { "data-testid": "aliases" }, aliasText(md.aliases) || "none")),
      h("tr", {}, h("th", {}, "tags"), h("td", {}, fmt(md.tags))),
    ),
    section("Versions",
      h("table", { class: "grid", "data-testid": "model-versions" },
        h("tr", {}, ["version", "aliases", "run", "data", "commit", "metrics", "flavor", "registered"].map((c) => h("th", {}, c))),
        rows),
      versions.size >= VERSIONS_SHOWN ? h("p", { class: "muted" }, `Newest ${VERSIONS_SHOWN} versions shown.`) : null),
  );
}

/** One model version and its lineage: run, data, code, params, metrics (two reads). */
export async function modelVersionPage(p: string, name: string, n: string): Promise<void> {
  crumbs(["projects", "#/"], [p, `#/p/${enc(p)}`], [name, modelHref(p, name)], [`v${n}`, ""]);
  const [m, snap] = await Promise.all([readDoc(doc(db, paths.model(p, name))), readDoc(doc(db, paths.modelVersion(p, name, n)))]);
  if (!m.exists() || !snap.exists()) throw new Error(`model ${name} has no version ${n} (or you are not a member of this project: permission-denied)`);
  const v = snap.data() as Row;
  const git = (v.git ?? {}) as Row;
  const art = v.artifact as Row | null | undefined;
  const datasets = (v.datasets as { name: string; version: string }[] | undefined) ?? [];
  mount(
    h("h1", {}, `${name} v${n}`),
    h("p", { class: "muted" }, String(v.description ?? "")),
    h("table", { class: "kv", "data-testid": "version-overview" },
      h("tr", {}, h("th", {}, "aliases"), h("td", { "data-testid": "aliases" }, aliasesOf((m.data() as Row).aliases, v.version).join(", ") || "none")),
      h("tr", {}, h("th", {}, "run"), h("td", { "data-testid": "version-run" },
        v.run !== null && v.run !== undefined ? h("a", { href: runHref(p, v.experiment, v.run) }, `${fmt(v.experiment)} / run ${fmt(v.run)}`) : "none")),
      h("tr", {}, h("th", {}, "source"), h("td", {}, fmt(v.source))),
      h("tr", {}, h("th", {}, "flavor"), h("td", {}, fmt(v.flavor))),
      h("tr", {}, h("th", {}, "files"), h("td", {}, art ? `artifact ${fmt(art.name)} ${fmt(art.version)} of ${fmt(art.experiment)}: ${fmt(art.file_count)} file(s), ${fmt(art.total_bytes)} bytes` : "none (a source URI only)")),
      h("tr", {}, h("th", {}, "registered"), h("td", {}, `${fmtTime(v.created_at as never)} by ${fmt(v.registered_by)}`)),
      h("tr", {}, h("th", {}, "stage"), h("td", {}, fmt(v.stage))),
    ),
    section("Trained on",
      datasets.length
        ? h("ul", { "data-testid": "version-datasets" }, datasets.map((d) => h("li", {}, h("a", { href: datasetHref(p, d.name, d.version) }, `${d.name}@${d.version}`))))
        : h("p", { class: "muted", "data-testid": "version-datasets" }, "no dataset recorded")),
    section("Git", kvTable({ commit: git.commit, branch: git.branch, dirty: git.dirty, remote: git.remote }, "version-git")),
    section("Parameters", kvTable(v.params as Row, "version-params")),
    section("Hyper-parameters", kvTable(v.hyper_params as Row, "version-hyper-params")),
    section("Metrics at registration", kvTable(v.metrics as Row, "version-metrics")),
    section("Tags", kvTable(v.tags as Row, "version-tags")),
  );
}

/**
 * Model versions trained on `name@version` (lineage from the data side): one
 * collection-group query over `Versions`, kept in the project by its `project`
 * field (queries.model_versions_using_dataset in Python; the same index).
 */
export async function trainedOn(p: string, name: string, version: string): Promise<HTMLElement> {
  const snap = await readQuery(query(collectionGroup(db, "Versions"), where("project", "==", p), where("dataset_refs", "array-contains", paths.datasetRef(name, version)), limit(50)));
  const items = snap.docs.map((d) => {
    const v = d.data() as Row;
    const m = String(v.model ?? "");
    return h("li", {}, h("a", { href: versionHref(p, m, v.version) }, `${m} v${fmt(v.version)}`),
      v.run !== null && v.run !== undefined ? [" from ", h("a", { href: runHref(p, v.experiment, v.run) }, `${fmt(v.experiment)} / run ${fmt(v.run)}`)] : null);
  });
  return items.length ? h("ul", { "data-testid": "trained-models" }, items) : h("p", { class: "muted", "data-testid": "trained-models" }, "none");
}
