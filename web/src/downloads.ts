// Run files the dashboard cannot read from Cloud Storage itself (a Firebase ID token
// opens Firestore, not the bucket): the download function (aletheia/function/downloads.py)
// checks the signed-in user's membership and hands them out. Firestore reads stay in fb.ts;
// these are plain HTTP requests carrying the user's ID token.
import { auth, config } from "./fb";

export interface ArtifactFile {
  path: string;
  sha256: string;
  size: number;
}

/** The diff is shown inline up to this many bytes; the rest is a download away. */
export const DIFF_SHOWN_BYTES = 200_000;

export class DownloadError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

type Params = Record<string, string>;

async function call(params: Params): Promise<Response> {
  if (!config.downloadsUrl) throw new DownloadError(0, "no download function is configured (config.json names no downloadsUrl)");
  const user = auth.currentUser;
  if (!user) throw new DownloadError(401, "sign in to download");
  const url = `${config.downloadsUrl}?${new URLSearchParams(params)}`;
  const resp = await fetch(url, { headers: { Authorization: `Bearer ${await user.getIdToken()}` } });
  if (!resp.ok) {
    let msg = `HTTP ${resp.status}`;
    try {
      const body = (await resp.json()) as { error?: string; hint?: string };
      msg = body.error ? `${body.error}${body.hint ? ` (${body.hint})` : ""}` : msg;
    } catch { /* not JSON */ }
    throw new DownloadError(resp.status, msg);
  }
  return resp;
}

const runParams = (p: string, e: string, r: string, object: string): Params => ({ project: p, experiment: e, run: r, object });

/** The run's dirty diff: its first DIFF_SHOWN_BYTES as text, and its whole size. */
export async function diffText(p: string, e: string, r: string): Promise<{ text: string; size: number; shown: number }> {
  const bytes = new Uint8Array(await (await call(runParams(p, e, r, "diff"))).arrayBuffer());
  const shown = Math.min(bytes.length, DIFF_SHOWN_BYTES);
  return { text: new TextDecoder().decode(bytes.subarray(0, shown)), size: bytes.length, shown };
}

/** The files of an artifact version the run saved. */
export async function artifactFiles(p: string, e: string, r: string, name: string, version: string): Promise<ArtifactFile[]> {
  const resp = await call({ ...runParams(p, e, r, "artifact"), name, version });
  return ((await resp.json()) as { files: ArtifactFile[] }).files;
}

/** Save a run file on the user's disk: a signed URL (cloud) or the streamed bytes (local). */
export async function save(p: string, e: string, r: string, object: string, extra: Params, filename: string): Promise<void> {
  const resp = await call({ ...runParams(p, e, r, object), ...extra });
  const a = document.createElement("a");
  let revoke: string | null = null;
  if ((resp.headers.get("Content-Type") ?? "").startsWith("application/json")) {
    a.href = ((await resp.json()) as { url: string }).url;
  } else {
    revoke = URL.createObjectURL(await resp.blob());
    a.href = revoke;
  }
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  if (revoke) setTimeout(() => URL.revokeObjectURL(revoke!), 60_000);
}
