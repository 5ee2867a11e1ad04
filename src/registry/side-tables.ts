/**
 * The operator's own tables beside GitLab's: on a secondary's tracking database the copy locations,
 * worker runs and deletion evidence; on the primary's main database the heartbeat. Created with
 * IF NOT EXISTS by whoever gets there first (the reconciler or a worker).
 */
import type { Queryable } from "./db.ts";
import { ensureDeletionTables } from "./deletions.ts";
import { ensureHeartbeatTable } from "./heartbeat.ts";
import { ensureReplicasTable, ensureWorkerRunsTable } from "./replicas.ts";

export async function ensureTrackingSideTables(db: Queryable): Promise<void> {
  await ensureReplicasTable(db);
  await ensureWorkerRunsTable(db);
  await ensureDeletionTables(db);
}

export async function ensurePrimarySideTables(db: Queryable): Promise<void> {
  await ensureHeartbeatTable(db);
}
