/**
 * Which refs make a mirror's checksum differ from its primary's, for the operator to read in a
 * verification failure or status. Only refs that count in the checksum are compared, so every
 * difference listed is one that explains a mismatch.
 */
import { isChecksummedRef } from "./checksum.ts";
import { parseRefListing } from "./refs.ts";

export interface RefDifference {
  ref: string;
  /** The oid on the primary; null when the primary does not have the ref. */
  primary: string | null;
  /** The oid in the mirror; null when the mirror does not have the ref. */
  secondary: string | null;
}

export interface RefDifferences {
  /** At most `cap` differences, sorted by ref name. */
  differences: RefDifference[];
  /** How many differences there are in all (more than `differences.length` when capped). */
  total: number;
}

/**
 * Compares two ref listings (`git show-ref --head` or `git ls-remote` output, in any mix) and
 * lists the checksummed refs that differ: different oid, or present on one side only.
 */
export function refDifferences(primaryShowRef: string, mirrorShowRef: string, cap: number): RefDifferences {
  const primary = checksummed(primaryShowRef);
  const mirror = checksummed(mirrorShowRef);
  const names = [...new Set([...primary.keys(), ...mirror.keys()])].sort();
  const all: RefDifference[] = [];
  for (const ref of names) {
    const p = primary.get(ref) ?? null;
    const s = mirror.get(ref) ?? null;
    if (p !== s) all.push({ ref, primary: p, secondary: s });
  }
  return { differences: all.slice(0, Math.max(0, cap)), total: all.length };
}

function checksummed(listing: string): Map<string, string> {
  return new Map(parseRefListing(listing).refs.filter((r) => isChecksummedRef(r.name)).map((r) => [r.name, r.oid]));
}

/** One line per difference, for a failure message: `refs/heads/x: primary abc1234, secondary missing`. */
export function describeRefDifferences({ differences, total }: RefDifferences): string {
  const short = (oid: string | null): string => (oid === null ? "missing" : oid.slice(0, 12));
  const lines = differences.map((d) => `${d.ref}: primary ${short(d.primary)}, secondary ${short(d.secondary)}`);
  if (total > differences.length) lines.push(`… and ${total - differences.length} more`);
  return lines.join("\n");
}
