/**
 * Where a cursor process spends its CPU, from the V8 CPU profile `node --cpu-prof` writes when it
 * exits: self time of every sampled function, summed by what the code belongs to (the AWS SDK,
 * the PostgreSQL client, our registry, strategies, cursor code, Node's own streams and sockets, GC).
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** What a function belongs to, from its script URL. */
export function componentOf(url: string, functionName: string): string {
  if (url === "") {
    if (functionName === "(garbage collector)") return "garbage collection";
    if (functionName === "(idle)") return "idle";
    if (functionName === "(program)") return "V8 / native (program)";
    return "native functions";
  }
  if (/node_modules\/@(aws-sdk|smithy|aws-crypto)\//.test(url)) return "AWS SDK (S3 requests)";
  if (/node_modules\/(pg|pg-protocol|pg-pool|pg-types|pgpass)\//.test(url)) return "pg (PostgreSQL client)";
  if (/node_modules\/pino/.test(url)) return "pino (logging)";
  if (url.includes("/node_modules/")) return `other libraries`;
  if (url.startsWith("node:")) {
    if (/node:(internal\/)?(stream|streams)/.test(url)) return "Node streams";
    if (/node:(internal\/)?(net|http|_http|https|tls|dns)/.test(url) || url.includes("http")) return "Node sockets and HTTP";
    if (url.includes("crypto")) return "Node crypto (SHA-256)";
    return "Node internals";
  }
  const m = /\/src\/([a-z-]+)(?:\/([a-z-]+))?\//.exec(url);
  if (m) return m[1] === "strategies" ? `src/strategies/${m[2] ?? ""}` : `src/${m[1]}`;
  if (url.includes("/cmd/")) return "cmd";
  return "other";
}

/** Milliseconds of CPU by component (idle excluded), and the profile's wall time. */
export function summarizeProfile(file: string): { byComponent: Map<string, number>; wallMs: number; cpuMs: number } {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const component = new Map(profile.nodes.map((n) => [n.id, componentOf(n.callFrame.url, n.callFrame.functionName)]));
  const byComponent = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const c = component.get(profile.samples[i]!) ?? "other";
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    byComponent.set(c, (byComponent.get(c) ?? 0) + ms);
  }
  byComponent.delete("idle");
  const cpuMs = [...byComponent.values()].reduce((a, b) => a + b, 0);
  return { byComponent, wallMs: (profile.endTime - profile.startTime) / 1000, cpuMs };
}
