/**
 * Event mode's log cursors: `geo-operator cursor --site <name>` as child processes, one for the
 * primary (checksums of changed records) and one for the secondary (sync, verify, remove) —
 * src/cursor/site-cursor.ts's runSiteCursor, as the operator's per-site Deployment runs it, in its
 * own process so the bench's writer and watcher do not share its event loop. Logs go to a file;
 * each is stopped by its PID.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";
import { eventLogBounds, loadCursorPosition } from "../../src/registry/event-log.ts";
import { PRIMARY_SITE, SECONDARY_SITE, type World } from "./world.ts";

export interface CursorProcess {
  site: string;
  log: string;
  child: ChildProcess;
  /** Kills the cursor if the bench exits without stopping it (Ctrl-C, a crash). */
  killOnExit: () => void;
}

export interface CursorOptions {
  logLevel: string;
  /** Write a V8 CPU profile of each cursor (node --cpu-prof) into `dir` when it stops. */
  profile: boolean;
}

export async function startCursors(world: World, dir: string, opts: CursorOptions): Promise<CursorProcess[]> {
  const cursors = [start(world, "primary", PRIMARY_SITE, dir, opts), start(world, "secondary", SECONDARY_SITE, dir, opts)];
  // A new cursor starts at the oldest event in the log: both go through the seeds' events (all
  // replicated already) before the writer starts.
  const head = (await eventLogBounds(world.primaryDb)).last?.id ?? 0;
  const deadline = Date.now() + 120_000;
  for (const [db, site] of [[world.primaryDb, PRIMARY_SITE], [world.trackingDb, SECONDARY_SITE]] as const) {
    while (((await loadCursorPosition(db, site).catch(() => null))?.lastEventId ?? -1) < head) {
      const dead = cursors.find((c) => c.child.exitCode !== null);
      if (dead) throw new Error(`the ${dead.site} cursor exited with ${dead.child.exitCode}: ${tail(dead.log)}`);
      if (Date.now() > deadline) throw new Error(`the ${site} cursor did not reach event ${head} within 120 s: ${tail(cursors.find((c) => c.site === site)!.log)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return cursors;
}

/** Where the CPU profile of a site's cursor goes (with CursorOptions.profile). */
export function profilePath(dir: string, mode: World["mode"], site: string): string {
  return join(dir, `cursor-${mode}-${site}.cpuprofile`);
}

function start(world: World, role: "primary" | "secondary", site: string, dir: string, opts: CursorOptions): CursorProcess {
  const log = join(dir, `cursor-${world.mode}-${site}.log`);
  const profile = opts.profile ? ["--cpu-prof", `--cpu-prof-dir=${dir}`, `--cpu-prof-name=cursor-${world.mode}-${site}.cpuprofile`] : [];
  const child = spawn(process.execPath, [...profile, join(REPO_ROOT, "bin/geo-operator.js"), "cursor", "--site", site, "--metrics-port", "0", "--log-level", opts.logLevel], {
    env: world.env(role),
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr!.pipe(createWriteStream(log));
  const killOnExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  return { site, log, child, killOnExit };
}

/** SIGTERM, then SIGKILL after 20 s; resolves when each has exited. */
export async function stopCursors(cursors: readonly CursorProcess[]): Promise<void> {
  await Promise.all(
    cursors.map(
      (c) =>
        new Promise<void>((resolve) => {
          process.off("exit", c.killOnExit);
          if (c.child.exitCode !== null || c.child.signalCode !== null) return resolve();
          const kill = setTimeout(() => c.child.kill("SIGKILL"), 20_000);
          c.child.once("exit", () => {
            clearTimeout(kill);
            resolve();
          });
          c.child.kill("SIGTERM");
        }),
    ),
  );
}

/** Warnings and errors the cursors logged (pino JSON lines), counted by message. */
export function cursorWarnings(cursors: readonly CursorProcess[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const c of cursors) {
    for (const line of readFileSync(c.log, "utf8").split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        const entry = JSON.parse(line) as { msg?: string; level?: number | string };
        // pino's numeric levels: 40 warn, 50 error; the AWS SDK's own error dumps are left out.
        if (typeof entry.msg !== "string" || entry.msg.startsWith("{") || (typeof entry.level === "number" && entry.level < 40)) continue;
        const msg = `${c.site}: ${entry.msg}`;
        counts.set(msg, (counts.get(msg) ?? 0) + 1);
      } catch {
        // a partial last line
      }
    }
  }
  return counts;
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").slice(-2000);
  } catch {
    return "(no log)";
  }
}
