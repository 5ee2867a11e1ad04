/** The tracking-database layer: schema, state machines, consistency and status for ReplicableTypes. */
export type { ReplicableTypeSchemaConfig, ResolvedTypeConfig, SchemaRole, SelectiveSync } from "./config.ts";
export { SYNC_EVERYTHING } from "./config.ts";
export type { ClockOption, Queryable } from "./db.ts";
export { ping } from "./db.ts";
export { SyncState, VerificationState, CHECKSUM_MISMATCH_MESSAGE, DEFAULT_STARTED_TIMEOUT_SECONDS, truncateFailure } from "./states.ts";
export { InvalidIdentifierError, MAX_IDENTIFIER_BYTES, MAX_TYPE_NAME_LENGTH, deriveIdentifiers, resolveConfig } from "./identifiers.ts";
export { renderSchemaDDL, schemaMigrations } from "./ddl.ts";
export { applyMigrations, applySchema, appliedSchemaVersions, appliedVersions, dropSchemaForDeletedType } from "./schema-manager.ts";
export { ensurePrimarySideTables, ensureTrackingSideTables, OPERATOR_MIGRATION_SET, renderSideTablesDDL, sideTableMigrations } from "./side-tables.ts";
export type { ApplySchemaResult, DropSchemaResult } from "./schema-manager.ts";
export { drawJitter, minimumRetryDelaySeconds, nextRetryAt, retryDelaySeconds } from "./backoff.ts";
export type { JitterOption, RandomSource } from "./backoff.ts";
export type { RegistryRow } from "./registry-row.ts";
export { claimSyncWork, failStuckSyncs, findRegistryRows, markSynced, markSyncFailed, requestResync, startSync } from "./sync-state.ts";
export type { ClaimOptions, StuckOptions, SyncedOptions, SyncFailedOptions } from "./sync-state.ts";
export {
  claimVerificationWork,
  claimVerificationWorkFromPrimary,
  failStuckVerifications,
  findVerificationCandidates,
  markChecksumMismatch,
  markVerificationFailed,
  markVerificationSucceeded,
  readPrimaryChecksums,
} from "./verification-state.ts";
export type { ClaimedVerification, VerificationCandidate } from "./verification-state.ts";
export {
  claimChecksumWork,
  failStuckChecksums,
  findChecksumStates,
  markChecksumFailed,
  markChecksumSucceeded,
  requestChecksum,
  setVerificationEnabled,
} from "./checksum-state.ts";
export type { ChecksumStateRow } from "./checksum-state.ts";
export { deleteRegistryRows, ensureRegistryRows, reconcileRegistry, registryConsistencyBatches } from "./consistency.ts";
export type { ConsistencyBatch, ConsistencySummary, GoneRegistryRow } from "./consistency.ts";
export { backfillStates } from "./states-backfill.ts";
export type { StatesBackfillSummary } from "./states-backfill.ts";
export { primaryStatus, secondaryStatus } from "./status.ts";
export type { ReplicableStatus } from "./status.ts";
export { markPrimaryReverificationDue, markSecondaryReverificationDue, requestReverification } from "./reverification.ts";
export { countRows, existingModelIds, listRegistryRows, modelIdBatches, modelIdsOfRegistryIds, registrySide, statesSide } from "./row-selection.ts";
export type { RowFilter, Side } from "./row-selection.ts";
export { modelTableColumns, readModelRows } from "./model-tables.ts";
export type { ModelTable } from "./model-tables.ts";
