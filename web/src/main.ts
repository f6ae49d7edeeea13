// The dashboard: hash routes, signed in with Firebase Auth, data read straight
// from Firestore under firestore.rules. No server of ours is involved.
import "./style.css";
import { onAuthStateChanged, signOut, type User } from "firebase/auth";
import { auth, connect, newPage, StalePage } from "./fb";
import { h, mount, parseHash, crumbs, errorBox } from "./ui";
import { loginPage } from "./pages/login";
import { projectsPage } from "./pages/projects";
import { projectPage } from "./pages/project";
import { runsPage } from "./pages/runs";
import { runPage } from "./pages/run";
import { comparePage } from "./pages/compare";
import { datasetPage } from "./pages/dataset";
import { modelPage, modelVersionPage } from "./pages/models";

let user: User | null = null;

async function route(): Promise<void> {
  newPage();
  const { parts, params } = parseHash(location.hash);
  crumbs(["projects", "#/"]);
  if (!user) return loginPage();
  const [head, p, kind, name, sub, r] = parts;
  try {
    if (head !== "p" || !p) return await projectsPage(user);
    if (!kind) return await projectPage(user, p);
    if (kind === "e" && name && !sub) return await runsPage(p, name, params);
    if (kind === "e" && name && sub === "r" && r) return await runPage(p, name, r);
    if (kind === "e" && name && sub === "compare") return await comparePage(p, name, params);
    if (kind === "d" && name) return await datasetPage(p, name, params);
    if (kind === "m" && name && !sub) return await modelPage(p, name);
    if (kind === "m" && name && sub === "v" && r) return await modelVersionPage(p, name, r);
    mount(h("p", {}, "No such page. ", h("a", { href: "#/" }, "Projects")));
  } catch (err) {
    if (!(err instanceof StalePage)) mount(errorBox(err));
  }
}

function showUser(): void {
  const who = document.getElementById("who")!;
  who.replaceChildren(
    ...(user
      ? [h("span", { "data-testid": "user" }, user.email ?? user.uid), " ", h("button", { onclick: () => void signOut(auth) }, "Sign out")]
      : []),
  );
}

async function main(): Promise<void> {
  try {
    await connect();
  } catch (err) {
    mount(errorBox(err));
    return;
  }
  onAuthStateChanged(auth, (u) => {
    user = u;
    showUser();
    void route();
  });
  window.addEventListener("hashchange", () => void route());
}

void main();
