// The projects the signed-in user is a member of: the rules allow exactly this query.
import type { User } from "firebase/auth";
import { collection, doc, FieldPath, query, serverTimestamp, setDoc, where } from "firebase/firestore";
import { db, readQuery } from "../fb";
import * as paths from "../paths";
import { enc, errorBox, h, mount } from "../ui";
import { myInvitations } from "./invites";

export const ROLES = ["viewer", "writer", "owner"];

export async function projectsPage(user: User): Promise<void> {
  const q = query(collection(db, paths.PROJECTS), where(new FieldPath("members", user.uid), "in", ROLES));
  const [snap, invitations] = await Promise.all([readQuery(q), myInvitations(user)]);
  const rows = snap.docs.map((d) => {
    const data = d.data();
    return h("tr", {},
      h("td", {}, h("a", { href: `#/p/${enc(d.id)}`, "data-testid": "project-link" }, d.id)),
      h("td", {}, String(data.members?.[user.uid] ?? "")),
      h("td", {}, String(data.description ?? "")),
    );
  });
  const name = h("input", { placeholder: "new project name", "data-testid": "new-project" });
  const msg = h("span", { class: "error" });
  const create = async (ev: Event) => {
    ev.preventDefault();
    try {
      // The rules let anyone signed in start a project with themselves as its only owner.
      await setDoc(doc(db, paths.project(name.value.trim())), {
        name: name.value.trim(),
        created_at: serverTimestamp(),
        members: { [user.uid]: "owner" },
      });
      location.hash = `#/p/${enc(name.value.trim())}`;
    } catch (err) {
      msg.replaceChildren(errorBox(err));
    }
  };
  mount(
    h("h1", {}, "Projects"),
    rows.length
      ? h("table", { class: "grid", "data-testid": "projects" }, h("tr", {}, h("th", {}, "project"), h("th", {}, "your role"), h("th", {}, "description")), rows)
      : h("p", { class: "muted", "data-testid": "no-projects" }, "You are not a member of any project yet."),
    h("form", { onsubmit: create }, name, " ", h("button", { type: "submit" }, "Create project"), " ", msg),
    invitations,
  );
}
