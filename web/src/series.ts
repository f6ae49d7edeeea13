// Metric series from chunk documents (aletheia/metrics.py: Metrics/{key}~{chunk}
// holds parallel arrays steps, values, times of up to 1,000 points), and their
// downsampling for display.
import { Timestamp } from "firebase/firestore";
import { parseChunkId } from "./paths";

export interface Series {
  key: string;
  steps: number[];
  values: number[];
  times: number[]; // epoch seconds
  /** Points logged: every point of every chunk read (what the chart must admit to). */
  count: number;
  nonfinite: number;
}

export interface ChunkDoc {
  steps?: number[];
  values?: number[];
  times?: Timestamp[];
}

/** Assemble series from chunk documents, by key, in chunk (= logging) order. */
export function assemble(chunks: Map<string, ChunkDoc>): Map<string, Series> {
  const byKey = new Map<string, [number, ChunkDoc][]>();
  for (const [id, doc] of chunks) {
    const [key, n] = parseChunkId(id);
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key)!.push([n, doc]);
  }
  const out = new Map<string, Series>();
  for (const [key, parts] of [...byKey].sort((a, b) => a[0].localeCompare(b[0]))) {
    parts.sort((a, b) => a[0] - b[0]);
    const s: Series = { key, steps: [], values: [], times: [], count: 0, nonfinite: 0 };
    for (const [, doc] of parts) {
      const steps = doc.steps ?? [];
      const values = doc.values ?? [];
      const times = doc.times ?? [];
      for (let i = 0; i < values.length; i++) {
        const v = Number(values[i]);
        s.steps.push(Number(steps[i] ?? s.steps.length));
        s.values.push(v);
        const t = times[i];
        s.times.push(t instanceof Timestamp ? t.toMillis() / 1000 : NaN);
        if (!Number.isFinite(v)) s.nonfinite++;
      }
      s.count += values.length;
    }
    out.set(key, s);
  }
  return out;
}

export interface Drawn {
  xs: number[];
  ys: number[];
}

/**
 * At most ~2 points per bucket: the minimum and maximum of each of `buckets`
 * x-ranges, in x order, so peaks and dips survive (no point is dropped without
 * the chart saying how many it drew). Non-finite values are not drawable.
 */
export function downsample(xs: number[], ys: number[], buckets: number): Drawn {
  const idx: number[] = [];
  for (let i = 0; i < xs.length; i++) if (Number.isFinite(ys[i]) && Number.isFinite(xs[i])) idx.push(i);
  idx.sort((a, b) => xs[a] - xs[b] || a - b);
  if (idx.length <= buckets * 2) return { xs: idx.map((i) => xs[i]), ys: idx.map((i) => ys[i]) };
  const outX: number[] = [];
  const outY: number[] = [];
  const per = idx.length / buckets;
  for (let b = 0; b < buckets; b++) {
    const lo = Math.floor(b * per);
    const hi = Math.min(idx.length, Math.floor((b + 1) * per));
    if (hi <= lo) continue;
    let mn = idx[lo];
    let mx = idx[lo];
    for (let j = lo; j < hi; j++) {
      const i = idx[j];
      if (ys[i] < ys[mn]) mn = i;
      if (ys[i] > ys[mx]) mx = i;
    }
    const pair = mn === mx ? [mn] : xs[mn] <= xs[mx] ? [mn, mx] : [mx, mn];
    for (const i of pair) {
      outX.push(xs[i]);
      outY.push(ys[i]);
    }
  }
  return { xs: outX, ys: outY };
}

/** Exponential moving average with weight `alpha` in [0, 1) (0: unsmoothed). */
export function smooth(ys: number[], alpha: number): number[] {
  if (alpha <= 0) return ys;
  const out: number[] = [];
  let acc = NaN;
  for (const y of ys) {
    acc = Number.isFinite(acc) ? alpha * acc + (1 - alpha) * y : y;
    out.push(acc);
  }
  return out;
}
