/**
 * Whether a complete consistency pass may delete copies on a secondary. Pure: given what the pass
 * found and what the replica proves, it says delete, hold (with a reason a person can act on) or
 * nothing to do. The evidence rule itself (two passes, the grace period apart) is applied in SQL
 * (registry/deletions.ts); this decides whether the picture as a whole can be believed.
 */
import { ACCEPT_PRIMARY_IDENTITY_ANNOTATION } from "../api/v1alpha1/resources.ts";
import type { ReplicaProof } from "../registry/heartbeat.ts";
import type { DeletionHold, PassOutcome } from "../registry/deletions.ts";

/** Hold reasons (also the condition reasons and the metric's `reason` label). */
export const HoldReason = {
  ReplicaUnproven: "ReplicaUnproven",
  ReplicaLagging: "ReplicaLagging",
  PrimaryEmpty: "PrimaryEmpty",
  TooManyDeletions: "TooManyDeletions",
} as const;
export type HoldReasonValue = (typeof HoldReason)[keyof typeof HoldReason];

/**
 * The share rule (maxPercentPerPass) applies above this many deletions: in a small registry a
 * handful is a large share without being implausible. Below it, losing more than half of the
 * registry at once (two records or more) still holds: a source.table edited to a small table, or
 * a wrong but proven replica, must not empty a small type.
 */
export const SHARE_RULE_FLOOR = 10;

export interface DeletionSettings {
  graceSeconds: number;
  maxPerPass: number;
  maxPercentPerPass: number;
  maxReplicationLagSeconds: number;
}

export interface DeletionInput {
  typeName: string;
  primarySiteName: string;
  outcome: PassOutcome;
  /** Primary rows the whole pass read. */
  passScanned: number;
  replica: ReplicaProof;
  settings: DeletionSettings;
  /** The type's hold from an earlier pass, if any. */
  hold: DeletionHold | null;
}

export type DeletionDecision =
  | { action: "nothing" }
  | { action: "delete"; released: boolean }
  | { action: "hold"; reason: HoldReasonValue; message: string };

const RELEASE_HINT =
  "Nothing is deleted while held and new records keep replicating. When you have checked, release the hold: " +
  "kubectl annotate replicabletype <object> geo.replication.dev/release-deletions=\"$(date +%s)\" --overwrite";

function problem(input: DeletionInput): { reason: HoldReasonValue; message: string } | undefined {
  const { outcome, replica, settings, typeName, primarySiteName } = input;
  const what = `${outcome.goneThisPass} of ${outcome.registryRows} ${typeName} registry rows look deleted on the primary`;
  if (replica.state === "no-heartbeat") {
    return {
      reason: HoldReason.ReplicaUnproven,
      message: `${what}, but the primary's read replica has no geo-operator heartbeat: check that database.primaryReplicaSecretRef names a replica of the primary's main database (not a decomposed, empty or restored one) and that the primary's operator is running`,
    };
  }
  if (replica.state === "other-site") {
    return {
      reason: HoldReason.ReplicaUnproven,
      message: `${what}, but the primary's read replica carries the heartbeat of ${replica.siteNames.join(", ") || "no site"}, not of primary ${primarySiteName}: check database.primaryReplicaSecretRef`,
    };
  }
  if (replica.state === "other-identity") {
    return {
      reason: HoldReason.ReplicaUnproven,
      message: `${what}, but ${replicaIdentityChange(primarySiteName, replica)}`,
    };
  }
  if (replica.lagSeconds > settings.maxReplicationLagSeconds) {
    return {
      reason: HoldReason.ReplicaLagging,
      message: `${what}, but the primary's read replica is ${Math.round(replica.lagSeconds)} s behind (limit ${settings.maxReplicationLagSeconds} s): check database replication to this site`,
    };
  }
  if (input.passScanned === 0 && outcome.registryRows > 0) {
    return {
      reason: HoldReason.PrimaryEmpty,
      message: `the primary's ${typeName} model table returned no rows while this site's registry has ${outcome.registryRows}: check source.table, source.schema and selective sync, and that the replica is not empty`,
    };
  }
  const overCount = outcome.goneThisPass > settings.maxPerPass;
  const overShare = outcome.goneThisPass > SHARE_RULE_FLOOR && outcome.goneThisPass * 100 > settings.maxPercentPerPass * outcome.registryRows;
  const overHalfOfSmall = outcome.goneThisPass <= SHARE_RULE_FLOOR && outcome.goneThisPass >= 2 && outcome.goneThisPass * 2 > outcome.registryRows;
  if (overCount || overShare || overHalfOfSmall) {
    const limit = overHalfOfSmall
      ? `more than half of this site's ${outcome.registryRows} rows`
      : `above the limit of ${settings.maxPerPass} rows or ${settings.maxPercentPerPass}% per pass`;
    return {
      reason: HoldReason.TooManyDeletions,
      message: `${what} at once, ${limit}: check recent changes to source.table, selective sync and the primary's data`,
    };
  }
  return undefined;
}

/**
 * What a changed primary identity means and how to accept it, for hold messages and the GeoSite's
 * condition. Accepting is per site (the annotation goes on this secondary's GeoSite, not on a type).
 */
export function replicaIdentityChange(primarySiteName: string, replica: Extract<ReplicaProof, { state: "other-identity" }>): string {
  return (
    `the primary's read replica carries a heartbeat of ${primarySiteName} from another database (identity ${replica.identity}, database ${replica.databaseName}) ` +
    `than the one this site has replicated from since ${replica.pinnedAt.toISOString()} (identity ${replica.pinnedIdentity}): ` +
    `check database.primaryReplicaSecretRef (another environment's database with the same site names?). ` +
    `If the primary's database was rebuilt on purpose, accept it: kubectl annotate geosite <this secondary> ${ACCEPT_PRIMARY_IDENTITY_ANNOTATION}=${replica.identity} --overwrite`
  );
}

/**
 * Holds for these reasons stay until a person releases them or nothing is gone any more: the
 * picture that caused them (a table swapped, a selection narrowed) can look plausible to the next
 * pass, e.g. once that pass has added rows for the new ids. Replica holds end by themselves when
 * the replica is proven and fresh again.
 */
const STICKY: readonly HoldReasonValue[] = [HoldReason.TooManyDeletions, HoldReason.PrimaryEmpty];

export function decideDeletions(input: DeletionInput): DeletionDecision {
  const hold = input.hold;
  const released = (reason: string) => !!hold && hold.reason === reason && hold.releasedAt !== null && hold.releasedAt.getTime() >= hold.heldAt.getTime();
  const sticky = hold && (STICKY as readonly string[]).includes(hold.reason) && !released(hold.reason) && input.outcome.goneThisPass > 0;
  const found = problem(input) ?? (sticky ? { reason: hold.reason as HoldReasonValue, message: hold.message.replace(/\. Nothing is deleted while held.*$/s, "") } : undefined);
  if (input.outcome.goneThisPass === 0 && input.outcome.confirmed === 0 && !found) return { action: "nothing" };
  if (!found) return { action: "delete", released: !!hold && released(hold.reason) };
  if (released(found.reason)) return { action: "delete", released: true };
  if (input.outcome.goneThisPass === 0 && input.outcome.confirmed === 0) return { action: "nothing" };
  return { action: "hold", reason: found.reason, message: `${found.message}. ${RELEASE_HINT}` };
}
