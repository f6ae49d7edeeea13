// Invitations (aletheia/cloud/invites.py): an owner invites an email address with a role;
// the user signed in with that address, verified, accepts on their projects page. Nobody
// looks a uid up by email (that needs a server): the invitee adds themselves, in one batch
// that sets their own entry of members to the invited role and deletes the invitation,
// which is exactly what firestore.rules let them write.
import { sendEmailVerification, type User } from "firebase/auth";
import {
  collection,
  collectionGroup,
  deleteDoc,
  doc,
  FieldPath,
  orderBy,
  query,
  serverTimestamp,
  setDoc,
  Timestamp,
  where,
  writeBatch,
} from "firebase/firestore";
import { db, readQuery, StalePage } from "../fb";
import * as paths from "../paths";
import { enc, errorBox, fmtTime, h, section } from "../ui";

/** How long an invitation made here stays valid (the CLI's default too). */
export const INVITE_DAYS = 14;
const ROLES = ["viewer", "writer", "owner"];
const DAY_MS = 24 * 3600 * 1000;
/** What layout.validate_email and the rules accept (the address is the document id). */
const EMAIL = /^[^@\s/]+@[^@\s/]+$/;

/**
 * The signed-in user's pending invitations, for their projects page: a collection-group
 * query on their own (lower-cased) address, the one the rules allow, and only for a
 * verified address (the rules ignore an unverified one). Null when there is nothing to say.
 */
export async function myInvitations(user: User): Promise<HTMLElement | null> {
  if (!user.email) return null;
  if (!user.emailVerified) return unverified(user);
  const email = user.email.toLowerCase();
  let snap;
  try {
    snap = await readQuery(
      query(collectionGroup(db, "Invites"), where("email", "==", email), where("expires_at", ">", Timestamp.now())),
    );
  } catch (err) {
    if (err instanceof StalePage) throw err;
    // The projects themselves still show: only this section failed.
    return section("Invitations", h("p", { class: "error", "data-testid": "invites-error" }, `Invitations could not be read: ${String(err)}`));
  }
  if (snap.empty) return null;
  const msg = h("div");
  const accept = async (p: string, role: string) => {
    try {
      const batch = writeBatch(db);
      batch.update(doc(db, paths.project(p)), new FieldPath("members", user.uid), role);
      batch.delete(doc(db, paths.invite(p, email)));
      await batch.commit();
      location.hash = `#/p/${enc(p)}`;
    } catch (err) {
      msg.replaceChildren(errorBox(err));
    }
  };
  const rows = snap.docs.map((d) => {
    // The project is the one the invitation is stored under, whatever its fields say.
    const p = d.ref.parent.parent!.id;
    const data = d.data();
    const role = String(data.role ?? "");
    return h("tr", { "data-project": p },
      h("td", {}, p),
      h("td", { "data-col": "role" }, role),
      h("td", {}, fmtTime(data.expires_at)),
      h("td", {}, h("button", { "data-testid": "accept-invite", onclick: () => void accept(p, role) }, "Accept")),
    );
  });
  return section("Invitations",
    h("table", { class: "grid", "data-testid": "my-invites" },
      h("tr", {}, h("th", {}, "project"), h("th", {}, "role"), h("th", {}, "expires"), h("th", {})), rows),
    msg,
  );
}

function unverified(user: User): HTMLElement {
  const msg = h("span", { class: "muted" });
  const send = async () => {
    try {
      await sendEmailVerification(user);
      msg.textContent = ` A link was sent to ${user.email}.`;
    } catch (err) {
      msg.replaceChildren(errorBox(err));
    }
  };
  const recheck = async () => {
    // A fresh ID token carries email_verified, which the rules read; the page then
    // starts over with it (as a sign-in would).
    await user.reload();
    await user.getIdToken(true);
    location.reload();
  };
  return h("p", { class: "muted", "data-testid": "unverified" },
    `Invitations to ${user.email} show here once the address is verified. `,
    h("button", { type: "button", onclick: () => void send() }, "Send verification email"), " ",
    h("button", { type: "button", onclick: () => void recheck() }, "I have verified it"),
    msg,
  );
}

/** A project's invitations, for its owners: pending and expired, revoke, invite. */
export async function invitesSection(user: User, p: string): Promise<HTMLElement> {
  const body = h("div");
  const render = async () => {
    const snap = await readQuery(query(collection(db, paths.invites(p)), orderBy("expires_at")));
    const msg = h("div");
    const act = (work: () => Promise<unknown>) => async () => {
      try {
        await work();
        await render();
      } catch (err) {
        msg.replaceChildren(errorBox(err));
      }
    };
    const now = Timestamp.now();
    const rows = snap.docs.map((d) => {
      const data = d.data();
      const expired = data.expires_at instanceof Timestamp && data.expires_at.toMillis() <= now.toMillis();
      return h("tr", { "data-email": d.id },
        h("td", {}, d.id),
        h("td", { "data-col": "role" }, String(data.role ?? "")),
        h("td", { class: expired ? "bad" : "" }, fmtTime(data.expires_at), expired ? " (expired)" : ""),
        h("td", {}, h("button", { "data-testid": "revoke-invite", onclick: act(() => deleteDoc(doc(db, paths.invite(p, d.id)))) }, "revoke")),
      );
    });
    const email = h("input", { type: "email", placeholder: "colleague's email", "data-testid": "invite-email", required: true });
    const role = h("select", { "data-testid": "invite-role" }, ROLES.map((r) => h("option", { value: r, selected: r === "writer" }, r)));
    const invite = (ev: Event) => {
      ev.preventDefault();
      const address = email.value.trim().toLowerCase();
      if (!EMAIL.test(address) || address.length > 254) {
        msg.replaceChildren(h("p", { class: "error", "data-testid": "error" }, `Not an email address: ${address}`));
        return;
      }
      // The rules check every field: the address as the id, the owner as inviter, the
      // server's time of the write, an expiry within a month.
      void act(() => setDoc(doc(db, paths.invite(p, address)), {
        email: address,
        role: role.value,
        project: p,
        invited_by: user.uid,
        invited_at: serverTimestamp(),
        expires_at: Timestamp.fromMillis(Date.now() + INVITE_DAYS * DAY_MS),
      }))();
    };
    body.replaceChildren(
      rows.length
        ? h("table", { class: "grid", "data-testid": "invites" },
          h("tr", {}, h("th", {}, "email"), h("th", {}, "role"), h("th", {}, "expires"), h("th", {})), rows)
        : h("p", { class: "muted", "data-testid": "no-invites" }, "No pending invitations."),
      h("form", { onsubmit: invite }, email, " ", role, " ", h("button", { type: "submit" }, "Invite"),
        h("span", { class: "muted" }, ` valid ${INVITE_DAYS} days; they accept on their projects page, signed in with that address`)),
      msg,
    );
  };
  await render();
  return section("Invitations", body);
}
