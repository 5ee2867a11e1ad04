/** The demo's live table: one line per site and type, from the GeoSite status the operator writes. */
import type { GeoSite } from "../../src/api/v1alpha1/resources.ts";

export function progressLines(sites: readonly GeoSite[]): string[] {
  const header = ["SITE", "ROLE", "HEALTH", "TYPE", "RECORDS", "SYNCED", "VERIFIED", "FAILED", "SYNCED%", "VERIFIED%"];
  const rows: string[][] = [];
  for (const site of [...sites].sort((a, b) => a.spec.role.localeCompare(b.spec.role) || a.metadata.name.localeCompare(b.metadata.name))) {
    const types = site.status?.types ?? [];
    if (types.length === 0) rows.push([site.metadata.name, site.spec.role, site.status?.health ?? "-", "(waiting)", "", "", "", "", "", ""]);
    for (const t of types) {
      const primary = site.spec.role === "primary";
      rows.push([
        site.metadata.name,
        site.spec.role,
        site.status?.health ?? "-",
        t.name,
        String(t.count ?? 0),
        primary ? "-" : String(t.syncedCount ?? 0),
        String(primary ? (t.checksummedCount ?? 0) : (t.verifiedCount ?? 0)),
        String(primary ? (t.checksumFailedCount ?? 0) : (t.failedCount ?? 0) + (t.verificationFailedCount ?? 0)),
        primary ? "-" : `${(t.syncedInPercentage ?? 0).toFixed(1)}%`,
        primary ? `${t.checksumTotalCount ? ((100 * (t.checksummedCount ?? 0)) / t.checksumTotalCount).toFixed(1) : "0.0"}%` : `${(t.verifiedInPercentage ?? 0).toFixed(1)}%`,
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [fmt(header), ...rows.map(fmt)];
}

/** Done when every secondary has every type fully synced and verified, and the primary checksummed all. */
export function everythingReplicated(sites: readonly GeoSite[], typeCount: number, expected: Record<string, number>): boolean {
  if (sites.length === 0) return false;
  return sites.every((s) => {
    const types = s.status?.types ?? [];
    if (types.length < typeCount) return false;
    return types.every((t) => {
      if ((t.count ?? 0) !== (expected[t.name] ?? -1)) return false;
      return s.spec.role === "primary" ? t.checksummedCount === t.count : t.syncedCount === t.count && t.verifiedCount === t.count && t.registryCount === t.count;
    });
  });
}
