/**
 * Turns runs into the printed tables and PASS/FAIL lines. Latencies are from each change's commit
 * on the primary: to `last_synced_at` of its registry row (creates, updates), to the poll that
 * found its row gone (deletes), to `verified_at` (the verified columns).
 */
import type { FinalState } from "./final-state.ts";
import { statePasses } from "./final-state.ts";
import type { JobRun } from "./jobs.ts";
import { percentile, type Change, type Ledger } from "./ledger.ts";
import type { LagSample } from "./watcher.ts";
import type { WriteOutcome } from "./writer.ts";
import type { Mode } from "./world.ts";

export interface RunResult {
  mode: Mode;
  rate: number;
  writer: WriteOutcome;
  ledger: Ledger;
  lag: LagSample[];
  final: FinalState;
  /** Seconds from the writer's last commit until every change settled; null if the drain timed out. */
  drainSeconds: number | null;
  confirmEvery: number;
  /** Scan mode: the observation window and the Jobs' runs. */
  windowSeconds?: number;
  jobs?: JobRun[];
  watcherLongestRoundMs: number;
  /** Warnings the cursors logged during the run, by message (event mode). */
  warnings?: Map<string, number>;
  /** CPU seconds by process role from the first write until drained (or the window closed). */
  cpu: { seconds: Map<string, number>; wallSeconds: number };
}

export const TARGET_RATE = 100;
export const TARGET_P50_MS = 1_000;
export const TARGET_P99_MS = 3_000;

interface Group {
  label: string;
  changes: Change[];
  /** Timed changes: latency in ms. */
  latencies: number[];
  verified: number[];
  /** Changes that never took effect (superseded creates/updates and untimed deletes excluded). */
  notDone: number;
  untimed: number;
}

function group(label: string, changes: Change[]): Group {
  const upserts = changes.filter((c) => c.kind !== "delete");
  const deletes = changes.filter((c) => c.kind === "delete");
  const timedDeletes = deletes.filter((c) => c.replicatedBefore);
  const untimedDeletes = deletes.filter((c) => !c.replicatedBefore);
  return {
    label,
    changes,
    latencies: [...upserts.filter((c) => c.syncedAt !== undefined).map((c) => c.syncedAt! - c.committedAt), ...timedDeletes.filter((c) => c.removedAt !== undefined).map((c) => c.removedAt! - c.committedAt)],
    verified: upserts.filter((c) => c.verifiedAt !== undefined).map((c) => c.verifiedAt! - c.committedAt),
    notDone: upserts.filter((c) => c.syncedAt === undefined && !c.superseded).length + timedDeletes.filter((c) => c.removedAt === undefined).length + untimedDeletes.filter((c) => c.removedAt === undefined).length,
    untimed: untimedDeletes.length + upserts.filter((c) => c.superseded).length,
  };
}

export function groups(ledger: Ledger): Group[] {
  const c = ledger.changes;
  const of = (data: Change["data"], kind: Change["kind"]) => c.filter((k) => k.data === data && k.kind === kind);
  return [
    group("all changes", c),
    group("blob creates", of("blob", "create")),
    group("blob updates", of("blob", "update")),
    group("blob deletes", of("blob", "delete")),
    group("repository creates", of("repo", "create")),
    group("repository pushes", of("repo", "update")),
    group("repository deletes", of("repo", "delete")),
  ];
}

export function seconds(ms: number): string {
  if (Number.isNaN(ms)) return "—";
  if (ms >= 120_000) return `${(ms / 60_000).toFixed(1)} min`;
  if (ms >= 10_000) return `${(ms / 1000).toFixed(0)} s`;
  return `${(ms / 1000).toFixed(2)} s`;
}

function rateLabel(r: RunResult): string {
  return `${r.rate}/s (${(r.writer.committed / r.writer.seconds).toFixed(0)})`;
}

export function latencyTable(results: RunResult[]): string {
  const lines = [
    "| mode | rate (achieved) | changes | p50 | p95 | p99 | max | verified p50 / p99 | not synced |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of results) {
    for (const g of groups(r.ledger)) {
      if (g.changes.length === 0) continue;
      const l = g.latencies;
      const verified = g.verified.length ? `${seconds(percentile(g.verified, 50))} / ${seconds(percentile(g.verified, 99))}` : "—";
      const counted = `${g.changes.length}${g.untimed ? ` (${g.untimed} untimed)` : ""}`;
      lines.push(
        `| ${r.mode} | ${rateLabel(r)} | ${g.label}: ${counted} | ${seconds(percentile(l, 50))} | ${seconds(percentile(l, 95))} | ${seconds(percentile(l, 99))} | ${seconds(l.length ? Math.max(...l) : Number.NaN)} | ${verified} | ${g.notDone} |`,
      );
    }
  }
  return lines.join("\n");
}

export function lagTable(results: RunResult[]): string {
  const lines = [
    "| mode | rate | secondary cursor: events behind p50 / max | age of the oldest unapplied event p50 / p99 / max | replica: events not replayed p50 / max | primary cursor: events behind max |",
    "|---|---|---:|---:|---:|---:|",
  ];
  for (const r of results.filter((x) => x.lag.length > 0)) {
    const behind = r.lag.map((s) => s.behind);
    const lag = r.lag.map((s) => s.lagSeconds * 1000);
    lines.push(
      `| ${r.mode} | ${rateLabel(r)} | ${percentile(behind, 50)} / ${Math.max(...behind)} | ${seconds(percentile(lag, 50))} / ${seconds(percentile(lag, 99))} / ${seconds(Math.max(...lag))} | ${percentile(r.lag.map((s) => s.replicaBehind), 50)} / ${Math.max(...r.lag.map((s) => s.replicaBehind))} | ${Math.max(...r.lag.map((s) => s.primaryBehind))} |`,
    );
  }
  return lines.join("\n");
}

/** Where the time goes in event mode: commit → cursor applied → synced → verified, and by size. */
export function breakdownTable(results: RunResult[]): string {
  const lines = [
    "| rate | commit → readable by the secondary p50 / p99 | → cursor applied p50 / p99 | → synced p50 / p99 | synced → verified p50 / p99 | blobs 4 KiB p50 / p99 | 256 KiB | 8 MiB | repositories |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  const pair = (v: number[]) => (v.length ? `${seconds(percentile(v, 50))} / ${seconds(percentile(v, 99))}` : "—");
  for (const r of results.filter((x) => x.mode === "event")) {
    const up = r.ledger.changes.filter((c) => c.kind !== "delete" && c.syncedAt !== undefined);
    const applied = up.filter((c) => c.appliedAt !== undefined && c.replayedAt !== undefined);
    const bySize = (size: string) => up.filter((c) => c.size === size).map((c) => c.syncedAt! - c.committedAt);
    lines.push(
      `| ${rateLabel(r)} | ${pair(applied.map((c) => c.replayedAt! - c.committedAt))} | ${pair(applied.map((c) => Math.max(0, c.appliedAt! - c.replayedAt!)))} | ${pair(applied.map((c) => Math.max(0, c.syncedAt! - c.appliedAt!)))} | ${pair(up.filter((c) => c.verifiedAt !== undefined).map((c) => c.verifiedAt! - c.syncedAt!))} | ${pair(bySize("4 KiB"))} | ${pair(bySize("256 KiB"))} | ${pair(bySize("8 MiB"))} | ${pair(up.filter((c) => c.data === "repo").map((c) => c.syncedAt! - c.committedAt))} |`,
    );
  }
  return lines.join("\n");
}

const CPU_ROLES = ["bench (writer, watcher, git pushes)", "secondary cursor", "primary cursor", "MinIO primary", "MinIO secondary", "PostgreSQL primary", "PostgreSQL replica", "PostgreSQL secondary", "git daemon", "other"];

/** CPU per change of each process (ms of CPU time per committed change), and how busy the cores were. */
export function cpuTable(results: RunResult[]): string {
  const roles = CPU_ROLES.filter((role) => results.some((r) => r.cpu.seconds.has(role)));
  const lines = [`| mode | rate | wall s | ${roles.join(" | ")} | total (cores busy) |`, `|---|---|---:|${roles.map(() => "---:").join("|")}|---:|`];
  for (const r of results) {
    const total = [...r.cpu.seconds.values()].reduce((a, b) => a + b, 0);
    const perChange = (s: number) => ((s * 1000) / Math.max(1, r.writer.committed)).toFixed(1);
    lines.push(`| ${r.mode} | ${rateLabel(r)} | ${r.cpu.wallSeconds.toFixed(0)} | ${roles.map((role) => perChange(r.cpu.seconds.get(role) ?? 0)).join(" | ")} | ${perChange(total)} (${(total / r.cpu.wallSeconds).toFixed(2)}) |`);
  }
  return lines.join("\n");
}

export function writerTable(results: RunResult[]): string {
  const lines = ["| mode | rate | committed | failed | seconds | write p50 / p99 | most changes due but not started |", "|---|---|---:|---:|---:|---:|---:|"];
  for (const r of results) {
    const w = r.writer;
    lines.push(`| ${r.mode} | ${rateLabel(r)} | ${w.committed} | ${w.failed} | ${w.seconds.toFixed(1)} | ${seconds(percentile(w.writeMs, 50))} / ${seconds(percentile(w.writeMs, 99))} | ${w.maxBehind} |`);
  }
  return lines.join("\n");
}

export interface CursorProfile {
  label: string;
  byComponent: Map<string, number>;
  cpuMs: number;
  wallMs: number;
}

/** CPU seconds and share by component, one column per cursor, ordered by the first cursor's. */
export function profileTable(profiles: CursorProfile[]): string {
  if (profiles.length === 0) return "(no profiles were written)";
  const components = [...new Set(profiles.flatMap((p) => [...p.byComponent.keys()]))].sort((a, b) => (profiles[0]!.byComponent.get(b) ?? 0) - (profiles[0]!.byComponent.get(a) ?? 0));
  const lines = [`| component | ${profiles.map((p) => `${p.label} CPU s (share)`).join(" | ")} |`, `|---|${profiles.map(() => "---:").join("|")}|`];
  for (const c of components) lines.push(`| ${c} | ${profiles.map((p) => `${((p.byComponent.get(c) ?? 0) / 1000).toFixed(1)} (${(((p.byComponent.get(c) ?? 0) / p.cpuMs) * 100).toFixed(0)} %)`).join(" | ")} |`);
  lines.push(`| total busy / wall | ${profiles.map((p) => `${(p.cpuMs / 1000).toFixed(1)} / ${(p.wallMs / 1000).toFixed(0)}`).join(" | ")} |`);
  return lines.join("\n");
}

export interface Verdict {
  ok: boolean;
  line: string;
}

const mark = (ok: boolean) => (ok ? "PASS" : "FAIL");

/** Correctness lines for a run (event mode: all must pass; scan mode: only ordering is expected to). */
export function verdicts(r: RunResult): Verdict[] {
  const all = groups(r.ledger)[0]!;
  const out: Verdict[] = [];
  const at = `${r.mode} ${r.rate}/s`;
  const f = r.final;
  const describe = (name: string, s: FinalState["blob"]) =>
    `${name}: ${s.live} live, ${s.missing.length} missing, ${s.differing.length} differing, ${s.extra.length} copies of deleted records, registry ${s.registryMissing.length} missing / ${s.registryExtra.length} extra / ${s.notSynced.length} not synced, ${s.verified} verified`;
  const finalOk = statePasses(f.blob) && statePasses(f.repo);
  if (r.mode === "event") {
    out.push({ ok: all.notDone === 0, line: `${mark(all.notDone === 0)} ${at}: no change lost — ${all.changes.length - all.notDone} of ${all.changes.length} changes took effect on the secondary${r.drainSeconds === null ? " (drain timed out)" : ` (last one ${r.drainSeconds.toFixed(1)} s after the writer stopped)`}` });
  }
  const ordered = r.ledger.regressions === 0;
  out.push({ ok: ordered, line: `${mark(ordered)} ${at}: no change applied out of order — ${r.ledger.regressions} older versions seen after newer ones (content looked at for every ${r.confirmEvery === 1 ? "" : `${r.confirmEvery}th `}change)` });
  if (r.mode === "event") {
    out.push({ ok: finalOk, line: `${mark(finalOk)} ${at}: final secondary state equals the primary's — ${describe("blobs", f.blob)} (${f.blob.fullyCompared} read in full on both sides); ${describe("repositories", f.repo)}` });
  } else {
    for (const data of ["blob", "repo"] as const) {
      const updates = r.ledger.changes.filter((c) => c.data === data && c.kind === "update" && c.replicatedBefore);
      const followed = updates.filter((c) => c.syncedAt !== undefined);
      const deletes = r.ledger.changes.filter((c) => c.data === data && c.kind === "delete" && c.replicatedBefore);
      out.push({
        ok: true,
        line: `INFO ${at}: ${data === "blob" ? "blob" : "repository"} updates of records already replicated: ${followed.length} of ${updates.length} synced within the window (${
          data === "blob"
            ? "scan mode treats blobs as immutable: a rewritten blob is followed only when re-verification finds it, after minimumReverificationInterval, 168 h by default"
            : "a published push drops the primary checksum: verify-primary, then the verify Job's changed-checksum resync, then sync follow it, one interval of each"
        }); deletes of replicated records: ${deletes.filter((c) => c.removedAt !== undefined).length} of ${deletes.length} removed (it takes two consistency passes a grace period apart)`,
      });
    }
    out.push({ ok: true, line: `INFO ${at}: final state after ${((r.windowSeconds ?? 0) / 60).toFixed(1)} min (not expected to match: scan mode does not follow rewritten blobs and needs two consistency passes per delete) — ${describe("blobs", f.blob)}; ${describe("repositories", f.repo)}` });
  }
  const late = r.ledger.staleAfterApplied;
  if (r.mode === "event") {
    const first = late[0];
    const detail = first
      ? ` — e.g. ${first.change.data} ${first.change.modelId} v${first.change.version}: event applied by ${new Date(first.change.appliedAt!).toISOString()}, row synced at ${new Date(first.lastSyncedAt).toISOString()} holding v${first.found}`
      : "";
    out.push({ ok: late.length === 0, line: `${mark(late.length === 0)} ${at}: no row synced with an older version after the cursor applied the newer change's event — ${late.length}${detail}` });
  }
  if (r.ledger.staleSeen.size > late.length) {
    out.push({ ok: true, line: `INFO ${at}: ${r.ledger.staleSeen.size - late.length} changes had their row synced after the commit with an older version in place, before the cursor was seen to apply their event (a copy that began before the change); each was timed only once the new version was there` });
  }
  const held = [...(r.warnings ?? [])].filter(([m]) => m.includes("look deleted on the primary at once"));
  if (held.length > 0) {
    const n = held.reduce((a, [, c]) => a + c, 0);
    out.push({ ok: true, line: `INFO ${at}: the deletion rails held deletions (${n} checks), e.g. "${held[0]![0].split(": check")[0]}" — held copies stay until a person releases them, so those deletes never complete` });
  }
  if (r.ledger.leftovers.size > 0) out.push({ ok: true, line: `INFO ${at}: ${r.ledger.leftovers.size} deletes had their registry row gone while the copy was still in storage` });
  return out;
}

export function targetVerdicts(results: RunResult[]): Verdict[] {
  const r = results.find((x) => x.mode === "event" && x.rate === TARGET_RATE);
  if (!r) return [];
  const l = groups(r.ledger)[0]!.latencies;
  const p50 = percentile(l, 50);
  const p99 = percentile(l, 99);
  return [
    { ok: p50 < TARGET_P50_MS, line: `${mark(p50 < TARGET_P50_MS)} target: event mode p50 ${seconds(p50)} < ${seconds(TARGET_P50_MS)} at ${TARGET_RATE} changes/s` },
    { ok: p99 < TARGET_P99_MS, line: `${mark(p99 < TARGET_P99_MS)} target: event mode p99 ${seconds(p99)} < ${seconds(TARGET_P99_MS)} at ${TARGET_RATE} changes/s` },
  ];
}
