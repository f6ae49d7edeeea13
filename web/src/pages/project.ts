// One project: its experiments (run counts, last activity), datasets and members.
import type { User } from "firebase/auth";
import { collection, deleteField, doc, FieldPath, limit, orderBy, query, updateDoc } from "firebase/firestore";
import { db, readCount, readDoc, readQuery } from "../fb";
import * as paths from "../paths";
import { crumbs, enc, errorBox, fmt, fmtTime, h, mount, section } from "../ui";
import { invitesSection } from "./invites";
import { modelsSection } from "./models";
import { ROLES } from "./projects";

export async function projectPage(user: User, p: string): Promise<void> {
  crumbs(["projects", "#/"], [p, ""]);
  const proj = await readDoc(doc(db, paths.project(p)));
  if (!proj.exists()) throw new Error("permission-denied");
  const members = (proj.data().members ?? {}) as Record<string, string>;
  const [exps, sets, models, invitations] = await Promise.all([
    readQuery(query(collection(db, paths.experiments(p)), limit(200))),
    readQuery(query(collection(db, paths.datasets(p)), limit(200))),
    modelsSection(p),
    // Only owners may read a project's invitations (firestore.rules).
    members[user.uid] === "owner" ? invitesSection(user, p) : null,
  ]);
  // Per experiment: a count aggregation and the newest run (one read each).
  const expRows = await Promise.all(
    exps.docs.map(async (e) => {
      const runsCol = collection(db, paths.runs(p, e.id));
      const [n, newest] = await Promise.all([
        readCount(runsCol),
        readQuery(query(runsCol, orderBy("started_at", "desc"), limit(1))),
      ]);
      const last = newest.docs[0]?.data();
      return h("tr", {},
        h("td", {}, h("a", { href: `#/p/${enc(p)}/e/${enc(e.id)}`, "data-testid": "experiment-link" }, e.id)),
        h("td", { class: "num", "data-testid": "run-count" }, n),
        h("td", {}, fmtTime(last?.heartbeat_at ?? last?.started_at)),
        h("td", {}, String(e.data().desc ?? "")),
      );
    }),
  );
  const setRows = sets.docs.map((d) => {
    const data = d.data();
    return h("tr", {},
      h("td", {}, h("a", { href: `#/p/${enc(p)}/d/${enc(d.id)}`, "data-testid": "dataset-link" }, d.id)),
      h("td", {}, fmt(data.latest_version)),
      h("td", { class: "num" }, fmt(data.version_count)),
      h("td", {}, String(data.desc ?? "")),
    );
  });
  mount(
    h("h1", {}, p),
    section("Experiments",
      expRows.length
        ? h("table", { class: "grid", "data-testid": "experiments" }, h("tr", {}, h("th", {}, "experiment"), h("th", {}, "runs"), h("th", {}, "last activity"), h("th", {}, "description")), expRows)
        : h("p", { class: "muted" }, "No experiments yet."),
    ),
    section("Datasets",
      setRows.length
        ? h("table", { class: "grid", "data-testid": "datasets" }, h("tr", {}, h("th", {}, "dataset"), h("th", {}, "latest"), h("th", {}, "versions"), h("th", {}, "description")), setRows)
        : h("p", { class: "muted" }, "No datasets yet."),
    ),
    models,
    section("Members", membersTable(user, p, members)),
    invitations,
  );
}

function membersTable(user: User, p: string, members: Record<string, string>): HTMLElement {
  const owner = members[user.uid] === "owner";
  const msg = h("div");
  const change = async (uid: string, role: string | null) => {
    try {
      // The rules decide: only an owner may change members, and one owner must remain.
      await updateDoc(doc(db, paths.project(p)), new FieldPath("members", uid), role ?? deleteField());
      location.reload();
    } catch (err) {
      msg.replaceChildren(errorBox(err));
    }
  };
  const rows = Object.entries(members).sort().map(([uid, role]) =>
    h("tr", {}, h("td", {}, uid === user.uid ? `${uid} (you)` : uid), h("td", {}, role),
      h("td", {}, owner && uid !== user.uid ? h("button", { onclick: () => void change(uid, null) }, "remove") : "")));
  const uid = h("input", { placeholder: "member's Firebase uid" });
  const role = h("select", {}, ROLES.map((r) => h("option", { value: r }, r)));
  return h("div", {},
    h("table", { class: "grid", "data-testid": "members" }, h("tr", {}, h("th", {}, "uid"), h("th", {}, "role"), h("th", {})), rows),
    owner ? h("form", { onsubmit: (ev: Event) => { ev.preventDefault(); void change(uid.value.trim(), role.value); } }, uid, " ", role, " ", h("button", { type: "submit" }, "Add / change")) : "",
    msg,
  );
}
