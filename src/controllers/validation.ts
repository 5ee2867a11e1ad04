/**
 * Checks that need more than one object, which the CRD schema cannot express. Pure functions over
 * the GeoSites of a namespace; the controllers turn the findings into conditions and skip
 * scheduling for whatever is invalid.
 */
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import { STRATEGIES } from "../strategies/catalog.ts";
import { Reason, type ReasonValue } from "./reasons.ts";

export interface Finding {
  reason: ReasonValue;
  message: string;
}

export interface TopologyCheck {
  primary?: GeoSite;
  /** Why the topology as a whole is unusable (no primary, several). */
  problem?: Finding;
  /** Per secondary: why that secondary cannot be scheduled. */
  invalidSecondaries: Map<string, Finding>;
}

const secretKey = (ref: { name: string; key?: string } | undefined) => (ref ? `${ref.name}/${ref.key ?? "url"}` : undefined);

export function checkTopology(sites: readonly GeoSite[]): TopologyCheck {
  const enabled = sites.filter((s) => s.spec.enabled !== false);
  const primaries = enabled.filter((s) => s.spec.role === "primary");
  const invalidSecondaries = new Map<string, Finding>();
  if (primaries.length === 0) {
    return { problem: { reason: Reason.NoPrimary, message: "no enabled GeoSite has role primary in this namespace; exactly one is required" }, invalidSecondaries };
  }
  if (primaries.length > 1) {
    const names = primaries.map((p) => p.metadata.name).sort().join(", ");
    return { problem: { reason: Reason.MultiplePrimaries, message: `GeoSites ${names} all have role primary; exactly one is allowed` }, invalidSecondaries };
  }
  const primary = primaries[0]!;
  for (const s of enabled.filter((x) => x.spec.role === "secondary")) {
    // Each strategy knows when a secondary's storage of its kind is the primary's.
    const problems = STRATEGIES.map((strategy) => strategy.storageSharedWithPrimary?.(s.spec, primary.spec)).filter((p): p is string => p !== undefined);
    const tracking = secretKey(s.spec.database.secretRef);
    if (tracking && tracking === secretKey(primary.spec.database.secretRef)) {
      problems.push(`its tracking database Secret ${tracking} is the primary's main database Secret`);
    }
    if (problems.length) invalidSecondaries.set(s.metadata.name, { reason: Reason.PointsAtPrimary, message: `secondary ${s.metadata.name}: ${problems.join("; ")}` });
  }
  return { primary, invalidSecondaries };
}

/** Same check with the resolved connection URLs (different Secrets may hold the same database). */
export function sameDatabase(a: string, b: string): boolean {
  try {
    const x = new URL(a);
    const y = new URL(b);
    const port = (u: URL) => u.port || "5432";
    return x.hostname.toLowerCase() === y.hostname.toLowerCase() && port(x) === port(y) && x.pathname === y.pathname;
  } catch {
    return a === b;
  }
}

/**
 * ReplicableTypes that share a spec.name share registry and state tables, so they would delete
 * each other's copies. The oldest object (then the lexically first name) keeps the name; every
 * later one is refused. Returns refused object name → the object that holds the name.
 */
export function duplicateTypeNames(types: readonly ReplicableType[]): Map<string, string> {
  const byName = new Map<string, ReplicableType[]>();
  for (const t of types) {
    if (t.metadata.deletionTimestamp) continue;
    byName.set(t.spec.name, [...(byName.get(t.spec.name) ?? []), t]);
  }
  const refused = new Map<string, string>();
  const created = (t: ReplicableType) => (t.metadata.creationTimestamp ? new Date(t.metadata.creationTimestamp).getTime() : 0);
  for (const group of byName.values()) {
    if (group.length < 2) continue;
    const sorted = [...group].sort((a, b) => created(a) - created(b) || a.metadata.name.localeCompare(b.metadata.name));
    for (const later of sorted.slice(1)) refused.set(later.metadata.name, sorted[0]!.metadata.name);
  }
  return refused;
}
