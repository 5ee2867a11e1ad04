/**
 * Where our side of the blob benchmark spends its CPU: a V8 CPU profile (node:inspector, the same
 * profile `node --cpu-prof` writes) taken around one phase, summed by component and by function.
 * Each sample's time goes to the nearest caller that is not Node's own code (a socket write made
 * by the AWS SDK counts for the SDK); the top functions are by self time. MinIO's and rclone's
 * CPU is not in it (separate processes).
 */
import { Session } from "node:inspector/promises";
import { componentOf, sampleOwner } from "../latency/cpu-profile.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  wallMs: number;
  /** CPU milliseconds (idle excluded) by component, largest first. */
  byComponent: [string, number][];
  /** Self CPU milliseconds by function, largest first. */
  topFunctions: [string, number][];
}

/**
 * Runs `fn` under the CPU profiler and returns its result with the profile and the process's CPU
 * time meanwhile (user + system, all threads, the profiler's own cost included). The profile's
 * sample times count time the thread waited for a core too, so on a loaded machine they run high;
 * the process CPU time does not.
 */
export async function profiled<T>(fn: () => Promise<T>): Promise<{ result: T; profile: CpuProfile; processCpuMs: number; systemCpuMs: number }> {
  const session = new Session();
  session.connect();
  try {
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 500 });
    await session.post("Profiler.start");
    const before = process.cpuUsage();
    const result = await fn();
    const used = process.cpuUsage(before);
    const { profile } = await session.post("Profiler.stop");
    return { result, profile: profile as unknown as CpuProfile, processCpuMs: (used.user + used.system) / 1000, systemCpuMs: used.system / 1000 };
  } finally {
    session.disconnect();
  }
}

/** Component of a script for this benchmark: the latency bench's split, plus Node's stream and HTTP internals. */
function blobComponentOf(url: string): string | undefined {
  if (url.endsWith("/src/strategies/blob/copy.ts") || url.endsWith("/src/strategies/blob/s3-read.ts")) return "src/strategies/blob (copy, read)";
  if (url.endsWith("/src/strategies/blob/s3-lean.ts")) return "lean S3 path (s3-lean.ts: requests, errors, retries)";
  // The SDK signs with the same code; its share counts here too.
  if (url.includes("/node_modules/@smithy/signature-v4/") || /node_modules\/@smithy\/core\/dist-[a-z]+\/submodules\/checksum\//.test(url)) return "SigV4 signing (@smithy/signature-v4, HMAC-SHA256)";
  if (url.includes("/node_modules/@aws-sdk/lib-storage/")) return "AWS SDK (multipart upload)";
  return componentOf(url);
}

/** Sums a profile by component (nearest non-Node caller) and by function (self time). */
export function summarizeCpuProfile(profile: CpuProfile, top = 12): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const ownerOf = sampleOwner(profile, blobComponentOf);
  const byComponent = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const c = ownerOf(id);
    if (c === "idle") continue;
    byComponent.set(c, (byComponent.get(c) ?? 0) + ms);
    const f = byId.get(id)!.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules\/|src\/|bench\/)/, "$1").replace(/^node:/, "node:")}:${f.lineNumber + 1}` : "";
    const name = `${f.functionName || "(anonymous)"}${where ? ` ${where}` : ""}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
  }
  const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return { wallMs: (profile.endTime - profile.startTime) / 1000, byComponent: sorted(byComponent), topFunctions: sorted(byFunction).slice(0, top) };
}

/** The summary as Markdown: CPU by component, then the top functions by self time. */
export function formatProfile(title: string, s: ProfileSummary, processCpuMs: number, systemCpuMs: number): string {
  const cpu = s.byComponent.reduce((a, [, ms]) => a + ms, 0);
  const heading =
    `#### ${title}: ${(cpu / 1000).toFixed(2)} s CPU sampled, ${(processCpuMs / 1000).toFixed(2)} s process CPU ` +
    `(${(systemCpuMs / 1000).toFixed(2)} s of it in the kernel), in ${(s.wallMs / 1000).toFixed(2)} s wall`;
  const lines = [heading, "", "| component | CPU ms | share |", "|---|---:|---:|"];
  for (const [c, ms] of s.byComponent) lines.push(`| ${c} | ${ms.toFixed(0)} | ${((100 * ms) / cpu).toFixed(1)} % |`);
  lines.push("", "| function (self time) | CPU ms |", "|---|---:|");
  for (const [f, ms] of s.topFunctions) lines.push(`| \`${f}\` | ${ms.toFixed(0)} |`);
  return lines.join("\n");
}
