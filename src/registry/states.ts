/** Values stored in `<name>_registry.state` (GitLab's registry state machine). */
export const SyncState = {
  pending: 0,
  started: 1,
  synced: 2,
  failed: 3,
} as const;
export type SyncStateValue = (typeof SyncState)[keyof typeof SyncState];

/**
 * Values stored in `verification_state`, on the registry (secondary) and on
 * `<name>_states` (primary) alike.
 */
export const VerificationState = {
  pending: 0,
  started: 1,
  succeeded: 2,
  failed: 3,
  disabled: 4,
} as const;
export type VerificationStateValue = (typeof VerificationState)[keyof typeof VerificationState];

/** Failure text stored when a secondary's checksum differs from the primary's. */
export const CHECKSUM_MISMATCH_MESSAGE = "Checksum does not match the primary checksum";

/** Work left in `started` longer than this is presumed dead and marked failed. */
export const DEFAULT_STARTED_TIMEOUT_SECONDS = 8 * 60 * 60;

/** GitLab's `limit: 255` on the failure text columns. */
export const FAILURE_TEXT_LIMIT = 255;

/** Cuts a failure message to what the CHECK constraint accepts (characters, not bytes). */
export function truncateFailure(message: string): string {
  const chars = Array.from(message);
  return chars.length <= FAILURE_TEXT_LIMIT ? message : chars.slice(0, FAILURE_TEXT_LIMIT).join("");
}

/** Values stored in `geo_operator_events.event`: what happened to a model record on the primary. */
export const EventKind = {
  created: 1,
  updated: 2,
  deleted: 3,
} as const;
export type EventKindName = keyof typeof EventKind;
export type EventKindValue = (typeof EventKind)[EventKindName];
export const EVENT_KIND_NAMES = Object.keys(EventKind) as EventKindName[];

/** The NOTIFY channel the capture triggers signal after writing events (for listeners on the primary itself). */
export const EVENTS_CHANNEL = "geo_operator_events";
