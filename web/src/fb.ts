// Firebase set-up and every Firestore read the app makes, counted.
//
// Cost is a feature of a serverless UI: each page states how many documents it
// read. Firestore bills a read per document a query or get returns (one for an
// empty result), a read per changed document a listener receives, and one per
// 1,000 index entries an aggregation counts. Pages read only through the
// functions below, so the counter is complete (tests/test_webui_serve.py checks
// that no other module calls the SDK's read functions).
import { initializeApp, type FirebaseApp } from "firebase/app";
import {
  connectAuthEmulator,
  getAuth,
  type Auth,
} from "firebase/auth";
import {
  connectFirestoreEmulator,
  getCountFromServer,
  getDoc,
  getDocs,
  initializeFirestore,
  onSnapshot,
  type DocumentReference,
  type DocumentSnapshot,
  type Firestore,
  type Query,
  type QuerySnapshot,
} from "firebase/firestore";

export interface AppConfig {
  projectId: string;
  apiKey: string;
  authDomain: string;
  firestoreEmulator: string | null;
  authEmulator: string | null;
  defaultProject: string;
  /** The download function (run diffs and artifacts); null when none is deployed. */
  downloadsUrl: string | null;
}

export let config: AppConfig;
export let app: FirebaseApp;
export let db: Firestore;
export let auth: Auth;

/** Load config.json (written by `aletheia ui`) and connect to Firebase or the emulators. */
export async function connect(): Promise<void> {
  const resp = await fetch("./config.json", { cache: "no-store" });
  if (!resp.ok) throw new Error(`config.json: HTTP ${resp.status} (serve the app with \`aletheia ui\`)`);
  config = (await resp.json()) as AppConfig;
  app = initializeApp({ projectId: config.projectId, apiKey: config.apiKey, authDomain: config.authDomain });
  db = initializeFirestore(app, {});
  auth = getAuth(app);
  if (config.firestoreEmulator) {
    const [host, port] = splitHost(config.firestoreEmulator);
    connectFirestoreEmulator(db, host, port);
  }
  if (config.authEmulator) {
    connectAuthEmulator(auth, `http://${config.authEmulator}`, { disableWarnings: true });
  }
}

function splitHost(hostPort: string): [string, number] {
  const i = hostPort.lastIndexOf(":");
  return [hostPort.slice(0, i), Number(hostPort.slice(i + 1))];
}

// ------------------------------------------------------------------ the read counter

let pageReads = 0;
let listeners: (() => void)[] = [];
let generation = 0;

/**
 * Thrown by a read that completes after the user moved to another page: the old
 * page's code stops there, so it neither draws over the new page nor adds to its count.
 */
export class StalePage extends Error {}

async function current<R>(work: Promise<R>): Promise<R> {
  const mine = generation;
  const result = await work;
  if (mine !== generation) throw new StalePage("page left");
  return result;
}

function count(n: number): void {
  pageReads += n;
  const el = document.getElementById("reads");
  if (el) {
    el.textContent = `${pageReads} document${pageReads === 1 ? "" : "s"} read`;
    el.dataset.reads = String(pageReads);
  }
}

/** A new page: reads start from zero and the previous page's listeners stop. */
export function newPage(): void {
  for (const stop of listeners) stop();
  listeners = [];
  generation++;
  pageReads = 0;
  count(0);
}

/** Run `stop` when the page changes (timers, listeners). */
export function onLeave(stop: () => void): void {
  listeners.push(stop);
}

/** Documents read since the page was opened. */
export function readsSoFar(): number {
  return pageReads;
}

export async function readDoc<T>(ref: DocumentReference<T>): Promise<DocumentSnapshot<T>> {
  const snap = await current(getDoc(ref));
  count(1);
  return snap;
}

export async function readQuery<T>(q: Query<T>): Promise<QuerySnapshot<T>> {
  const snap = await current(getDocs(q));
  count(Math.max(snap.size, 1));
  return snap;
}

/** A count aggregation: one read per 1,000 index entries counted (at least one). */
export async function readCount<T>(q: Query<T>): Promise<number> {
  const snap = await current(getCountFromServer(q));
  const n = snap.data().count;
  count(Math.max(1, Math.ceil(n / 1000)));
  return n;
}

/** Listen to a query until the page changes; each delivered change is a read. */
export function watchQuery<T>(
  q: Query<T>,
  onNext: (snap: QuerySnapshot<T>) => void,
  onError: (err: Error) => void,
): () => void {
  let first = true;
  // With metadata changes, a snapshot that only confirms the cache is delivered too:
  // without them, a server result equal to what the cache showed would never arrive.
  const stop = onSnapshot(q, { includeMetadataChanges: true }, (snap) => {
    // A snapshot from the SDK's cache (documents another query of this page read)
    // is neither billed nor complete: wait for the server's.
    if (snap.metadata.fromCache) return;
    const changed = snap.docChanges().length;
    if (!first && !changed) return; // metadata only
    count(first ? Math.max(snap.size, 1) : changed);
    first = false;
    onNext(snap);
  }, onError);
  listeners.push(stop);
  return stop;
}

/** Listen to one document until the page changes; each new version of it is a read. */
export function watchDoc<T>(
  ref: DocumentReference<T>,
  onNext: (snap: DocumentSnapshot<T>) => void,
  onError: (err: Error) => void,
): void {
  let last: string | null = null;
  const stop = onSnapshot(ref, { includeMetadataChanges: true }, (snap) => {
    if (snap.metadata.fromCache) return;
    const version = JSON.stringify(snap.data() ?? null);
    if (version === last) return; // metadata only
    last = version;
    count(1);
    onNext(snap);
  }, onError);
  listeners.push(stop);
}
