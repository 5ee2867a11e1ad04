/**
 * Where the machine's CPU goes during a run: CPU seconds of every process this bench started (the
 * servers, the cursors, git), from /proc, grouped by role. A process's own time plus the time of
 * its children that already exited (cutime/cstime), so git processes are counted with whoever ran
 * them: the writer's pushes with the bench, the cursor's fetches with the cursor, the daemon's
 * receive-pack and upload-pack with the git daemon. Linux only; empty elsewhere.
 */
import { readdirSync, readFileSync } from "node:fs";

export type CpuSnapshot = Map<string, number>;

const TICKS_PER_SECOND = 100;

interface Proc {
  pid: number;
  ppid: number;
  seconds: number;
  cmdline: string;
}

function readProcs(): Proc[] {
  const out: Proc[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return out;
  }
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      // Fields after the command (which may hold spaces) start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
      const cmdline = readFileSync(`/proc/${e}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      out.push({ pid: Number(e), ppid: Number(fields[1]), seconds: ticks / TICKS_PER_SECOND, cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The role of one of our processes, from its command line (and its ancestors' for PostgreSQL backends). */
function role(p: Proc, byPid: Map<number, Proc>, rootPid: number): string {
  if (p.pid === rootPid) return "bench (writer, watcher, git pushes)";
  const c = p.cmdline;
  if (c.includes("cursor --site london")) return "primary cursor";
  if (c.includes("cursor --site tokyo")) return "secondary cursor";
  if (c.includes("minio server") && c.includes("s3-primary")) return "MinIO primary";
  if (c.includes("minio server") && c.includes("s3-secondary")) return "MinIO secondary";
  if (c.includes("git daemon") || c.includes("git-daemon")) return "git daemon";
  for (let q: Proc | undefined = p; q; q = byPid.get(q.ppid)) {
    if (q.cmdline.includes("pg-primary-replica")) return "PostgreSQL replica";
    if (q.cmdline.includes("pg-primary")) return "PostgreSQL primary";
    if (q.cmdline.includes("pg-secondary")) return "PostgreSQL secondary";
    if (q.pid === rootPid) break;
  }
  return "other";
}

/** CPU seconds by role of this process and its descendants right now. */
export function cpuSnapshot(): CpuSnapshot {
  const procs = readProcs();
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const root = process.pid;
  const ours = (p: Proc) => {
    for (let q: Proc | undefined = p; q; q = byPid.get(q.ppid)) if (q.pid === root) return true;
    return false;
  };
  const snapshot: CpuSnapshot = new Map();
  for (const p of procs.filter(ours)) {
    const r = role(p, byPid, root);
    snapshot.set(r, (snapshot.get(r) ?? 0) + p.seconds);
  }
  return snapshot;
}

/** CPU seconds spent by role between two snapshots (a role whose processes exited meanwhile counts 0). */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): Map<string, number> {
  const out = new Map<string, number>();
  for (const [r, s] of after) out.set(r, Math.max(0, s - (before.get(r) ?? 0)));
  return out;
}
