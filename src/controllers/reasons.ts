/**
 * Condition types, reasons and event reasons, in one place. Every reason a condition, a site's
 * status or an Event carries is one of these; the hold reasons that consistency runs write to the
 * tracking database (workers/deletion-policy.ts HoldReason) are among them (reasons.test.ts).
 */
export const ConditionType = {
  Ready: "Ready",
  SitesValid: "SitesValid",
  SourceValid: "SourceValid",
  SchemaReady: "SchemaReady",
  Healthy: "Healthy",
  DeletionsHeld: "DeletionsHeld",
  DeletionBlocked: "DeletionBlocked",
  /** Secondary only: the site could be promoted now without losing data (controllers/failover-readiness.ts). */
  FailoverReady: "FailoverReady",
} as const;

export const Reason = {
  Reconciled: "Reconciled",
  NoPrimary: "NoPrimary",
  MultiplePrimaries: "MultiplePrimaries",
  PointsAtPrimary: "PointsAtPrimary",
  SourceMissing: "SourceMissing",
  DatabaseUnreachable: "DatabaseUnreachable",
  /** A server a strategy needs on the site (file retrieval) could not be started or updated. */
  ServerNotRunning: "ServerNotRunning",
  /** A strategy's storage probe on a site failed (a bucket missing or refusing the credentials...). */
  StorageUnreachable: "StorageUnreachable",
  /** A GeoSite names a Secret without the geo.replication.dev/credentials=true label. */
  SecretNotOptedIn: "SecretNotOptedIn",
  SchemaFailed: "SchemaFailed",
  SchemaApplied: "SchemaApplied",
  JobFailed: "JobFailed",
  JobsFailing: "JobsFailing",
  StatusStale: "StatusStale",
  SiteDisabled: "SiteDisabled",
  NotManagedHere: "NotManagedHere",
  Healthy: "Healthy",
  Unhealthy: "Unhealthy",
  ManualTrigger: "ManualTrigger",
  Deleting: "Deleting",
  TablesDropped: "TablesDropped",
  TablesRetained: "TablesRetained",
  DuplicateName: "DuplicateName",
  JobsNotCreated: "JobsNotCreated",
  TablesMissing: "TablesMissing",
  DeletionsHeld: "DeletionsHeld",
  DeletionsReleased: "DeletionsReleased",
  /** Events: a user resynced or reverified rows through the registry API (the message names them). */
  ResyncRequested: "ResyncRequested",
  ReverifyRequested: "ReverifyRequested",
  NothingHeld: "NothingHeld",
  SiteUnreachable: "SiteUnreachable",
  ForcedDeletion: "ForcedDeletion",
  VerificationFailuresRising: "VerificationFailuresRising",
  RegistryBehind: "RegistryBehind",
  ReplicaUnproven: "ReplicaUnproven",
  ReplicaLagging: "ReplicaLagging",
  /** Event: a secondary now replicates from the primary database identity its GeoSite's annotation named. */
  PrimaryIdentityAccepted: "PrimaryIdentityAccepted",
  /** A secondary's log cursor is behind the primary's event log by more than eventLog.cursor.maxLag, or stuck. */
  EventCursorBehind: "EventCursorBehind",
  PrimaryEmpty: "PrimaryEmpty",
  TooManyDeletions: "TooManyDeletions",
  /** FailoverReady: every failover check passes. The reasons below say which check blocks first. */
  FailoverReady: "FailoverReady",
  /** Records of an enabled type not synced yet (pending, started, failed or not in the registry). */
  NotSynced: "NotSynced",
  /** Records of a type with verification on not verified yet. */
  NotVerified: "NotVerified",
  /** Registry rows whose sync failed. */
  SyncFailures: "SyncFailures",
  /** Synced rows whose verification failed (a checksum mismatch sends the row back to sync: it counts under SyncFailures). */
  VerificationFailures: "VerificationFailures",
} as const;

export type ReasonValue = (typeof Reason)[keyof typeof Reason];

const KNOWN_REASONS: ReadonlySet<string> = new Set(Object.values(Reason));

/**
 * A reason read back from somewhere typed as text (a status written earlier, a hold row in the
 * tracking database) as one of ours; anything else becomes `fallback`, so no foreign reason reaches
 * a condition or an Event.
 */
export function knownReason(value: string | undefined, fallback: ReasonValue): ReasonValue {
  return value !== undefined && KNOWN_REASONS.has(value) ? (value as ReasonValue) : fallback;
}
