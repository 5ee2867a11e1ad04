import { toNumber } from "./db.ts";

/** One `<name>_registry` row, camelCased. `modelId` is the `<name>_id` column. */
export interface RegistryRow {
  id: number;
  modelId: number;
  createdAt: Date;
  lastSyncedAt: Date | null;
  retryAt: Date | null;
  verifiedAt: Date | null;
  verificationStartedAt: Date | null;
  verificationRetryAt: Date | null;
  state: number;
  verificationState: number;
  retryCount: number;
  verificationRetryCount: number;
  checksumMismatch: boolean;
  missingOnPrimary: boolean;
  verificationChecksum: Buffer | null;
  verificationChecksumMismatched: Buffer | null;
  verificationFailure: string | null;
  lastSyncFailure: string | null;
  /**
   * The sync claim this row is under (last_synced_at, written by the claim, to the microsecond).
   * Completions are fenced on it, so only the claim that did the work can finish it.
   */
  syncClaim: string | null;
  /** The verification claim (verification_started_at to the microsecond), fenced likewise. */
  verificationClaim: string | null;
}

export interface RegistryRowRecord {
  id: string;
  model_id: string;
  created_at: Date;
  last_synced_at: Date | null;
  retry_at: Date | null;
  verified_at: Date | null;
  verification_started_at: Date | null;
  verification_retry_at: Date | null;
  state: number;
  verification_state: number;
  retry_count: number;
  verification_retry_count: number;
  checksum_mismatch: boolean;
  missing_on_primary: boolean;
  verification_checksum: Buffer | null;
  verification_checksum_mismatched: Buffer | null;
  verification_failure: string | null;
  last_sync_failure: string | null;
  sync_claim: string | null;
  verification_claim: string | null;
}

/**
 * A claim timestamp as an exact, session-independent token (microseconds since the epoch, UTC);
 * JS Dates keep only milliseconds, which could not tell two claims apart.
 */
export function claimTokenSql(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')`;
}

/** SQL that is true when `column` holds the claim `param` (a claimTokenSql value). */
export function claimMatchesSql(column: string, param: string): string {
  return `${column} = (${param}::timestamp AT TIME ZONE 'UTC')`;
}

/** Column list for RETURNING / SELECT; `alias` is the registry's alias in the query. */
export function registryColumns(alias: string, modelId: string): string {
  const a = `${alias}.`;
  return [
    `${a}id`,
    `${a}${modelId} AS model_id`,
    ...[
      "created_at",
      "last_synced_at",
      "retry_at",
      "verified_at",
      "verification_started_at",
      "verification_retry_at",
      "state",
      "verification_state",
      "retry_count",
      "verification_retry_count",
      "checksum_mismatch",
      "missing_on_primary",
      "verification_checksum",
      "verification_checksum_mismatched",
      "verification_failure",
      "last_sync_failure",
    ].map((c) => `${a}${c}`),
    claimTokenSql(`${a}last_synced_at`) + " AS sync_claim",
    claimTokenSql(`${a}verification_started_at`) + " AS verification_claim",
  ].join(", ");
}

export function toRegistryRow(r: RegistryRowRecord): RegistryRow {
  return {
    id: toNumber(r.id),
    modelId: toNumber(r.model_id),
    createdAt: r.created_at,
    lastSyncedAt: r.last_synced_at,
    retryAt: r.retry_at,
    verifiedAt: r.verified_at,
    verificationStartedAt: r.verification_started_at,
    verificationRetryAt: r.verification_retry_at,
    state: r.state,
    verificationState: r.verification_state,
    retryCount: r.retry_count,
    verificationRetryCount: r.verification_retry_count,
    checksumMismatch: r.checksum_mismatch,
    missingOnPrimary: r.missing_on_primary,
    verificationChecksum: r.verification_checksum,
    verificationChecksumMismatched: r.verification_checksum_mismatched,
    verificationFailure: r.verification_failure,
    lastSyncFailure: r.last_sync_failure,
    syncClaim: r.sync_claim,
    verificationClaim: r.verification_claim,
  };
}
