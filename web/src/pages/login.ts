// Sign in or register with email and password, or with Google (Firebase Auth; its
// emulator locally, which serves its own stand-in for Google's sign-in page).
import { createUserWithEmailAndPassword, GoogleAuthProvider, signInWithEmailAndPassword, signInWithPopup } from "firebase/auth";
import { auth } from "../fb";
import { h, mount } from "../ui";

export function loginPage(): void {
  const email = h("input", { type: "email", name: "email", placeholder: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", placeholder: "password (6+ characters)", autocomplete: "current-password", required: true });
  const message = h("p", { class: "error", "data-testid": "login-error" });
  const go = (register: boolean) => async (ev: Event) => {
    ev.preventDefault();
    message.textContent = "";
    try {
      if (register) await createUserWithEmailAndPassword(auth, email.value, password.value);
      else await signInWithEmailAndPassword(auth, email.value, password.value);
    } catch (err) {
      const code = (err as { code?: string }).code ?? String(err);
      message.textContent = `${register ? "Registration" : "Sign-in"} failed: ${code.replace("auth/", "").replace(/-/g, " ")}`;
    }
  };
  const google = async () => {
    message.textContent = "";
    try {
      await signInWithPopup(auth, new GoogleAuthProvider());
    } catch (err) {
      const code = (err as { code?: string }).code ?? String(err);
      message.textContent = `Google sign-in failed: ${code.replace("auth/", "").replace(/-/g, " ")}`;
    }
  };
  mount(
    h("form", { class: "login", "data-testid": "login", onsubmit: go(false) },
      h("h1", {}, "Sign in"),
      email,
      password,
      h("div", {}, h("button", { type: "submit" }, "Sign in"), " ", h("button", { type: "button", onclick: go(true) }, "Register")),
      h("div", {}, h("button", { type: "button", "data-testid": "google-sign-in", onclick: () => void google() }, "Sign in with Google")),
      message,
    ),
  );
}
