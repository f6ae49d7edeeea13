// The status a reader shows: aletheia.metastore.effective_status, in the browser.
import { Timestamp } from "firebase/firestore";

/** Seconds between heartbeats when a run does not say (aletheia.metrics.HEARTBEAT_S). */
export const HEARTBEAT_S = 30;
/** A running run whose heartbeat is older than this many intervals is crashed. */
export const STALE_HEARTBEATS = 3;

export function effectiveStatus(doc: Record<string, unknown>, nowMs = Date.now()): string {
  const status = String(doc.status ?? "running");
  if (status !== "running") return status;
  const beat = (doc.heartbeat_at ?? doc.started_at) as Timestamp | undefined;
  const interval = Number(doc.heartbeat_interval_s) || HEARTBEAT_S;
  if (beat instanceof Timestamp) {
    const ageS = (nowMs - beat.toMillis()) / 1000;
    if (ageS > STALE_HEARTBEATS * interval) return "crashed";
  }
  return status;
}

/**
 * The shortest heartbeat interval the crashed filter is exact for. Firestore cannot
 * compare each run's heartbeat with its own interval, so the filter asks for
 * `running` runs silent for STALE_HEARTBEATS of these and keeps those whose own
 * interval says crashed; a run beating faster shows 3 s after its last beat.
 */
export const MIN_HEARTBEAT_S = 1;

/** Runs silent since before this instant may be crashed (the Firestore side of the filter). */
export function staleCutoffMs(nowMs = Date.now()): number {
  return nowMs - STALE_HEARTBEATS * MIN_HEARTBEAT_S * 1000;
}
