/**
 * Where a cursor process spends its CPU, from the V8 CPU profile `node --cpu-prof` writes when it
 * exits. Each sample's time goes to the nearest caller that is not Node's own code or a builtin
 * (a socket write made by the AWS SDK counts for the SDK), summed by what that caller belongs to:
 * the AWS SDK, the PostgreSQL client, starting git processes, our registry, strategies and cursor
 * code. Samples with no such caller are the event loop's own work (socket reads, timers) and GC.
 * The git processes' own CPU is not in the profile (see the per-process CPU table).
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** What a script belongs to; undefined for Node's own code and builtins (look at the caller). */
export function componentOf(url: string): string | undefined {
  if (url === "" || url.startsWith("node:")) return undefined;
  if (/node_modules\/@(aws-sdk|smithy|aws-crypto)\//.test(url)) return "AWS SDK (S3 requests, signing)";
  if (/node_modules\/(pg|pg-protocol|pg-pool|pg-types|pgpass|postgres-[a-z]+)\//.test(url)) return "pg (PostgreSQL client)";
  if (/node_modules\/(@?simple-git)\//.test(url) || url.endsWith("/src/strategies/repository/git-process.ts")) return "starting git processes";
  if (/node_modules\/pino/.test(url)) return "logging";
  if (url.endsWith("/src/util/sha256-meter.ts")) return "SHA-256 of copied bytes";
  if (url.includes("/node_modules/")) return "other libraries";
  const m = /\/src\/([a-z-]+)(?:\/([a-z-]+))?\//.exec(url);
  if (m) return m[1] === "strategies" && m[2] ? `src/strategies/${m[2]}` : `src/${m[1]}`;
  return "start-up (loading modules, configuration)";
}

/**
 * For a sample's node id, the component its time counts for: the nearest caller `componentOf`
 * knows, else the event loop; garbage collection, idle and V8's own work by name.
 */
export function sampleOwner(profile: Pick<Profile, "nodes">, componentOf: (url: string) => string | undefined): (id: number) => string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const owner = new Map<number, string>();
  const ownerOf = (id: number): string => {
    const known = owner.get(id);
    if (known) return known;
    const node = byId.get(id)!;
    const fn = node.callFrame.functionName;
    let found: string;
    if (fn === "(garbage collector)") found = "garbage collection";
    else if (fn === "(idle)") found = "idle";
    else {
      const here = componentOf(node.callFrame.url);
      const up = parent.get(id);
      found = here ?? (up === undefined ? "event loop (sockets, timers, no JS caller)" : ownerOf(up));
      if (found.startsWith("event loop") && fn === "(program)") found = "V8 (program)";
    }
    owner.set(id, found);
    return found;
  };
  return ownerOf;
}

/** Milliseconds of CPU by component (idle excluded), and the profile's wall time. */
export function summarizeProfile(file: string): { byComponent: Map<string, number>; wallMs: number; cpuMs: number } {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const ownerOf = sampleOwner(profile, componentOf);
  const byComponent = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const c = ownerOf(profile.samples[i]!);
    byComponent.set(c, (byComponent.get(c) ?? 0) + (profile.timeDeltas[i + 1] ?? 0) / 1000);
  }
  byComponent.delete("idle");
  const cpuMs = [...byComponent.values()].reduce((a, b) => a + b, 0);
  return { byComponent, wallMs: (profile.endTime - profile.startTime) / 1000, cpuMs };
}
