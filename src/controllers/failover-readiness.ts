/**
 * Whether a secondary GeoSite could be promoted now without losing data: the checklist behind its
 * `FailoverReady` condition and `kubectl geo preflight`. Pure: both callers hand in the GeoSite as
 * the API server has it (spec and status), the ReplicableTypes of its namespace and the time, so
 * the plugin evaluates the same rules at its own clock and catches a status the operator stopped
 * writing.
 *
 * Unlike GitLab's promotion-preflight-checks, verification must be finished (a type is done when
 * every record is synced AND verified, or only synced when the type's verification is off), and a
 * type with nothing to replicate (0 of 0) is done. A type the status does not list yet is not.
 */
import { parseDuration } from "../api/v1alpha1/duration.ts";
import { cursorEnabledOf } from "../api/v1alpha1/runtime.ts";
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import type { GeoSiteSpec, GeoSiteStatus } from "../api/v1alpha1/types.generated.ts";
import { ConditionType, Reason } from "./reasons.ts";

type TypeStatus = NonNullable<GeoSiteStatus["types"]>[number];

export type FailoverCheckName =
  | "siteValid"
  | "statusFresh"
  | "storageReachable"
  | "syncFailures"
  | "verificationFailures"
  | "synced"
  | "verified"
  | "deletionsHeld"
  | "replicationLag"
  | "eventCursorLag";

/** One line of the checklist. `records` is how many records block (0 when ok); `done`/`total` for synced and verified. */
export interface FailoverCheck {
  check: FailoverCheckName;
  ok: boolean;
  /** Condition reason when the check fails (FailoverReady when it passes). */
  reason: string;
  message: string;
  type?: string;
  records?: number;
  done?: number;
  total?: number;
  seconds?: number;
  limitSeconds?: number;
}

export interface FailoverReadiness {
  ready: boolean;
  checks: FailoverCheck[];
}

export interface FailoverThresholds {
  /** Replication lag of the primary's database as read through this site's replica. */
  maxReplicationLagSeconds: number;
  /** How far this site's log cursor may trail the primary's newest event. */
  maxEventCursorLagSeconds: number;
  /** How old status.lastStatusTime may be. */
  maxStatusAgeSeconds: number;
}

/** How often the operator rewrites an unchanged status at most (its heartbeat, proving it is alive). */
export const STATUS_HEARTBEAT_SECONDS = 5 * 60;

/** Defaults a person would call safe; spec.failover overrides each. */
export const DEFAULT_MAX_REPLICATION_LAG = "1m";
const DEFAULT_MIN_STATUS_AGE_SECONDS = 5 * 60;

/**
 * The site's thresholds: spec.failover, else replication lag 1 minute, cursor lag the site's own
 * eventLog.cursor.maxLag (5 minutes by default), status age 3 status intervals but at least 5 minutes.
 */
export function failoverThresholdsOf(spec: GeoSiteSpec): FailoverThresholds {
  const f = spec.failover;
  const statusIntervalSeconds = parseDuration(spec.statusInterval ?? "1m") / 1000;
  return {
    maxReplicationLagSeconds: parseDuration(f?.maxReplicationLag ?? DEFAULT_MAX_REPLICATION_LAG) / 1000,
    maxEventCursorLagSeconds: parseDuration(f?.maxEventCursorLag ?? spec.eventLog?.cursor?.maxLag ?? "5m") / 1000,
    maxStatusAgeSeconds: f?.maxStatusAge ? parseDuration(f.maxStatusAge) / 1000 : Math.max(3 * statusIntervalSeconds, DEFAULT_MIN_STATUS_AGE_SECONDS),
  };
}

/**
 * How often the operator must rewrite an unchanged status so that a live operator's status never
 * looks stale to this site's threshold: every third of it (the rewrite waits for the next
 * reconcile, up to one statusInterval, at most half the threshold, and the reconcile takes time),
 * and never less often than the heartbeat.
 */
export function statusRewriteSeconds(spec: GeoSiteSpec): number {
  return Math.min(STATUS_HEARTBEAT_SECONDS, failoverThresholdsOf(spec).maxStatusAgeSeconds / 3);
}

/** Health reasons that say the site's databases, storage or servers cannot be used. */
const UNREACHABLE_REASONS: ReadonlySet<string> = new Set([Reason.StorageUnreachable, Reason.DatabaseUnreachable, Reason.ServerNotRunning, Reason.SecretNotOptedIn]);

/** The reason a health line starts with: the controller writes every line as "<Reason>: <message>". */
export function healthReasonOf(line: string): string {
  const colon = line.indexOf(":");
  return colon < 0 ? line : line.slice(0, colon);
}

/**
 * The types a failover must have replicated: not being deleted, replication on, one per spec.name
 * (the oldest, as the operator refuses later duplicates).
 */
export function failoverTypes(types: readonly ReplicableType[]): ReplicableType[] {
  const created = (t: ReplicableType) => (t.metadata.creationTimestamp ? new Date(t.metadata.creationTimestamp).getTime() : 0);
  const sorted = [...types].sort((a, b) => created(a) - created(b) || a.metadata.name.localeCompare(b.metadata.name));
  const byName = new Map<string, ReplicableType>();
  for (const t of sorted) {
    if (t.metadata.deletionTimestamp || t.spec.replication?.enabled === false || byName.has(t.spec.name)) continue;
    byName.set(t.spec.name, t);
  }
  return [...byName.values()].sort((a, b) => a.spec.name.localeCompare(b.spec.name));
}

/** Whether the site runs a log cursor: its cursor not switched off and some type captures changes. */
function runsCursor(site: GeoSite, types: readonly ReplicableType[]): boolean {
  return cursorEnabledOf(site.spec) && types.some((t) => (t.spec.changeCapture ?? "trigger") !== "none");
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const secs = (s: number) => `${Math.round(s)} s`;

export interface FailoverInputs {
  site: GeoSite;
  /** The namespace's ReplicableTypes; failoverTypes picks the ones that count. */
  types: readonly ReplicableType[];
  now: Date;
  /**
   * The primary's statusInterval in seconds: it writes its heartbeat that often, so the measured
   * replication lag includes up to one of them on top of the real lag (60 when unknown).
   */
  primaryHeartbeatSeconds?: number;
  thresholds?: FailoverThresholds;
}

/**
 * The checklist, in the order a person should fix things: a status they can trust first, then
 * failures, then what is unfinished, then the lags. Ready when every line is ok.
 */
export function failoverReadiness(inputs: FailoverInputs): FailoverReadiness {
  const { site, now } = inputs;
  const status = site.status ?? {};
  const t = inputs.thresholds ?? failoverThresholdsOf(site.spec);
  const types = failoverTypes(inputs.types);
  const byName = new Map((status.types ?? []).map((s) => [s.name, s]));
  const checks: FailoverCheck[] = [];
  const pass = (check: FailoverCheckName, message: string, extra: Partial<FailoverCheck> = {}) => checks.push({ check, ok: true, reason: Reason.FailoverReady, message, ...extra });
  const fail = (check: FailoverCheckName, reason: string, message: string, extra: Partial<FailoverCheck> = {}) => checks.push({ check, ok: false, reason, message, ...extra });

  // The site itself: enabled, and not refused by the topology check.
  const sitesValid = (status.conditions ?? []).find((c) => c.type === ConditionType.SitesValid);
  if (site.spec.enabled === false) fail("siteValid", Reason.SiteDisabled, "the site is disabled (spec.enabled: false): the operator schedules nothing for it");
  else if (sitesValid?.status === "False") fail("siteValid", sitesValid.reason, `the site is refused: ${sitesValid.message}`);
  else pass("siteValid", "the site is enabled and the site topology is valid");

  // Status fresh: everything below is only as good as it.
  const written = status.lastStatusTime ? new Date(status.lastStatusTime) : undefined;
  const age = written ? Math.max(0, (now.getTime() - written.getTime()) / 1000) : undefined;
  const generation = site.metadata.generation;
  if (age === undefined) fail("statusFresh", Reason.StatusStale, "the site has no status yet: is the operator running?");
  else if (age > t.maxStatusAgeSeconds) {
    fail("statusFresh", Reason.StatusStale, `status last written ${secs(age)} ago at ${written!.toISOString()} (limit ${secs(t.maxStatusAgeSeconds)}): the operator may not be running, or cannot reach the site's databases`, { seconds: Math.round(age), limitSeconds: t.maxStatusAgeSeconds });
  } else if (generation !== undefined && (status.observedGeneration ?? 0) < generation) {
    fail("statusFresh", Reason.StatusStale, `status is for generation ${status.observedGeneration ?? 0} of the spec, not ${generation}: the operator has not seen the latest change`);
  } else pass("statusFresh", `status written ${secs(age)} ago (limit ${secs(t.maxStatusAgeSeconds)})`, { seconds: Math.round(age), limitSeconds: t.maxStatusAgeSeconds });

  // Storage and databases reachable, as the operator last found them.
  const unreachable = [
    ...(status.healthReasons ?? []).filter((line) => UNREACHABLE_REASONS.has(healthReasonOf(line))),
    ...(status.conditions ?? []).filter((c) => c.status === "False" && UNREACHABLE_REASONS.has(c.reason)).map((c) => `${c.reason}: ${c.message}`),
  ];
  if (unreachable.length) fail("storageReachable", Reason.StorageUnreachable, unreachable.join("; "));
  else pass("storageReachable", "databases, storage and site servers reachable");

  const perType = (f: (type: string, s: TypeStatus) => void) => {
    for (const type of types) {
      const s = byName.get(type.spec.name);
      if (s) f(type.spec.name, s);
    }
  };
  // A checksum mismatch fails the row's sync (so the copy is fetched again), not only its
  // verification: mismatches are in failedCount, and never in verificationFailedCount, which counts
  // synced rows only. The status carries no separate mismatch count (kubectl geo registries
  // --mismatch lists them).
  perType((type, s) => {
    const failed = s.failedCount ?? 0;
    if (failed > 0) fail("syncFailures", Reason.SyncFailures, `${type}: ${plural(failed, "record")} failed to sync (checksum mismatches included)`, { type, records: failed });
    else pass("syncFailures", `${type}: no failed syncs`, { type, records: 0 });
  });
  perType((type, s) => {
    const failed = s.verificationFailedCount ?? 0;
    if (failed > 0) fail("verificationFailures", Reason.VerificationFailures, `${type}: ${plural(failed, "record")} failed verification`, { type, records: failed });
    else pass("verificationFailures", `${type}: no failed verifications`, { type, records: 0 });
  });
  for (const type of types) {
    const name = type.spec.name;
    const s = byName.get(name);
    if (!s) {
      fail("synced", Reason.NotSynced, `${name}: no status yet: the operator has not counted this type on the site`, { type: name });
      continue;
    }
    const registry = s.registryCount ?? 0;
    // Records on the primary the registry does not list yet are as unsynced as pending rows.
    const count = s.count ?? 0;
    const total = Math.max(count, registry);
    const synced = s.syncedCount ?? 0;
    const missing = Math.max(0, count - registry);
    const unsynced = registry - synced + missing;
    if (total === 0) pass("synced", `${name}: nothing to replicate (0 of 0)`, { type: name, records: 0, done: 0, total: 0 });
    else if (unsynced > 0) {
      const detail = missing > 0 ? ` (${plural(missing, "record")} not in the registry yet)` : "";
      fail("synced", Reason.NotSynced, `${name}: ${plural(unsynced, "record")} not synced, ${synced} of ${total} done${detail}`, { type: name, records: unsynced, done: synced, total });
    } else pass("synced", `${name}: all ${total} synced`, { type: name, records: 0, done: synced, total });
  }
  perType((type, s) => {
    const rt = types.find((x) => x.spec.name === type)!;
    if (rt.spec.verification?.enabled === false) {
      pass("verified", `${type}: verification is off for this type: sync is enough`, { type, records: 0 });
      return;
    }
    const total = Math.max(s.count ?? 0, s.registryCount ?? 0);
    const verified = s.verifiedCount ?? 0;
    const unverified = Math.max(0, total - verified);
    if (total === 0) pass("verified", `${type}: nothing to verify (0 of 0)`, { type, records: 0, done: 0, total: 0 });
    else if (unverified > 0) fail("verified", Reason.NotVerified, `${type}: ${plural(unverified, "record")} not verified, ${verified} of ${total} done`, { type, records: unverified, done: verified, total });
    else pass("verified", `${type}: all ${total} verified`, { type, records: 0, done: verified, total });
  });
  perType((type, s) => {
    const held = s.heldDeletions ?? 0;
    if (held > 0) fail("deletionsHeld", Reason.DeletionsHeld, `${type}: ${plural(held, "deletion")} held: check why (kubectl geo status), then release them or fix the cause`, { type, records: held });
    else pass("deletionsHeld", `${type}: no deletions held`, { type, records: 0 });
  });

  // The primary's heartbeat is written once per its statusInterval: the measured lag includes up to one.
  const allowance = inputs.primaryHeartbeatSeconds ?? 60;
  const lagLimit = t.maxReplicationLagSeconds + allowance;
  const lag = status.replicationLagSeconds;
  if (lag === undefined) {
    fail("replicationLag", Reason.ReplicaUnproven, "replication lag unknown: the database read through database.primaryReplicaSecretRef is not proven to be the primary's (no heartbeat of it, or one from another database; see the site's health reasons)");
  } else if (lag > lagLimit) {
    fail("replicationLag", Reason.ReplicaLagging, `the primary's database replica is ${secs(lag)} behind (limit ${secs(t.maxReplicationLagSeconds)} + ${secs(allowance)} heartbeat interval)`, { seconds: lag, limitSeconds: lagLimit });
  } else pass("replicationLag", `replication lag ${secs(lag)} (limit ${secs(t.maxReplicationLagSeconds)} + ${secs(allowance)} heartbeat interval)`, { seconds: lag, limitSeconds: lagLimit });

  if (site.spec.enabled !== false && runsCursor(site, types)) {
    const cursorLag = status.eventLog?.lagSeconds;
    if (cursorLag === undefined) fail("eventCursorLag", Reason.EventCursorBehind, "the log cursor has no position yet: it has not applied any event of the primary's log");
    else if (cursorLag > t.maxEventCursorLagSeconds) {
      fail("eventCursorLag", Reason.EventCursorBehind, `the log cursor is ${secs(cursorLag)} behind the primary's newest event (limit ${secs(t.maxEventCursorLagSeconds)})`, { seconds: cursorLag, limitSeconds: t.maxEventCursorLagSeconds });
    } else pass("eventCursorLag", `log cursor ${secs(cursorLag)} behind (limit ${secs(t.maxEventCursorLagSeconds)})`, { seconds: cursorLag, limitSeconds: t.maxEventCursorLagSeconds });
  }

  return { ready: checks.every((c) => c.ok), checks };
}

/** Blocking lines a condition message lists; `kubectl geo preflight` shows them all. */
export const CONDITION_MESSAGE_CHECKS = 10;

/** The FailoverReady condition for a readiness: the first blocking check's reason, the blocking lines in the message. */
export function failoverCondition(readiness: FailoverReadiness): { status: "True" | "False"; reason: string; message: string } {
  const blocking = readiness.checks.filter((c) => !c.ok);
  if (!blocking.length) return { status: "True", reason: Reason.FailoverReady, message: `all ${readiness.checks.length} failover checks pass` };
  const listed = blocking.slice(0, CONDITION_MESSAGE_CHECKS).map((c) => `${c.reason}: ${c.message}`);
  const more = blocking.length - listed.length;
  if (more > 0) listed.push(`and ${more} more failing checks (kubectl geo preflight lists them all)`);
  return { status: "False", reason: blocking[0]!.reason, message: listed.join("; ") };
}
