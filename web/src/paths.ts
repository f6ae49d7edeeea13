// Firestore paths, mirroring aletheia/layout.py (the one place the Python side builds them).
export const PROJECTS = "Projects";

export const project = (p: string) => `${PROJECTS}/${p}`;
export const experiments = (p: string) => `${project(p)}/Experiments`;
export const experiment = (p: string, e: string) => `${experiments(p)}/${e}`;
export const runs = (p: string, e: string) => `${experiment(p, e)}/Runs`;
export const run = (p: string, e: string, r: string) => `${runs(p, e)}/${r}`;
export const metrics = (p: string, e: string, r: string) => `${run(p, e, r)}/Metrics`;
export const datasets = (p: string) => `${project(p)}/Datasets`;
export const dataset = (p: string, d: string) => `${datasets(p)}/${d}`;
export const datasetVersions = (p: string, d: string) => `${dataset(p, d)}/Versions`;
export const datasetFiles = (p: string, d: string) => `${dataset(p, d)}/files`;
export const file = (p: string, sha: string) => `${project(p)}/Files/${sha}`;
export const datasetRef = (d: string, v: string) => `${d}@${v}`;

/** Inverse of layout.metric_chunk_id: `train%2Floss~000003` -> ["train/loss", 3]. */
export function parseChunkId(id: string): [string, number] {
  const i = id.lastIndexOf("~");
  return [decodeURIComponent(id.slice(0, i)), Number(id.slice(i + 1))];
}
export const models = (p: string) => `${project(p)}/Models`;
export const model = (p: string, m: string) => `${models(p)}/${m}`;
export const modelVersions = (p: string, m: string) => `${model(p, m)}/Versions`;
export const modelVersion = (p: string, m: string, n: string | number) => `${modelVersions(p, m)}/${n}`;
export const INVITES = "Invites";
export const invites = (p: string) => `${project(p)}/Invites`;
/** An invitation is named after the invited address, lower-cased (layout.invite). */
export const invite = (p: string, email: string) => `${invites(p)}/${email}`;
