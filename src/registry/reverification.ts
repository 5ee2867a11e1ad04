/**
 * Re-verification: checksums older than the type's minimumReverificationInterval are computed
 * again, on the primary (`_states`) and on each secondary (registry), so silent corruption and
 * changed data (a push to a repository) are found without any event from the application.
 */
import type { ReplicableTypeSchemaConfig } from "./config.ts";
import { nowSql } from "./db.ts";
import type { ClockOption, Queryable } from "./db.ts";
import { tableRefs } from "./tables.ts";

export async function markPrimaryReverificationDue(
  primary: Queryable,
  config: ReplicableTypeSchemaConfig,
  intervalMs: number,
  options: ClockOption & { limit?: number } = {},
): Promise<number> {
  const { states, modelId } = tableRefs(config);
  const res = await primary.query(
    `UPDATE ${states} SET verification_state = 0
     WHERE ${modelId} IN (
       SELECT ${modelId} FROM ${states}
       WHERE verification_state = 2 AND verified_at < ${nowSql("$2")} - make_interval(secs => $1::double precision)
       LIMIT $3::integer FOR UPDATE SKIP LOCKED)`,
    [intervalMs / 1000, options.now ?? null, options.limit ?? 10_000],
  );
  return res.rowCount ?? 0;
}

export async function markSecondaryReverificationDue(
  tracking: Queryable,
  config: ReplicableTypeSchemaConfig,
  intervalMs: number,
  options: ClockOption & { limit?: number } = {},
): Promise<number> {
  const { registry } = tableRefs(config);
  const res = await tracking.query(
    `UPDATE ${registry} SET verification_state = 0
     WHERE id IN (
       SELECT id FROM ${registry}
       WHERE state = 2 AND verification_state = 2 AND verified_at < ${nowSql("$2")} - make_interval(secs => $1::double precision)
       LIMIT $3::integer FOR UPDATE SKIP LOCKED)`,
    [intervalMs / 1000, options.now ?? null, options.limit ?? 10_000],
  );
  return res.rowCount ?? 0;
}
