/**
 * Child servers of the local environment. Every process we start is recorded with its PID, and
 * only those PIDs are ever signalled. A PID file per environment lets the next run reap servers
 * left behind by a run that was killed before its teardown.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface ManagedProcessOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Directory for `<name>.log` and the PID registry. */
  stateDir: string;
  /** Signal that asks this server for a quick clean shutdown (PostgreSQL: SIGINT). */
  stopSignal?: NodeJS.Signals;
}

export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  private readonly child: ChildProcess;
  private readonly stopSignal: NodeJS.Signals;
  private exited = false;
  private exitPromise: Promise<void>;

  constructor(opts: ManagedProcessOptions) {
    this.name = opts.name;
    this.logFile = join(opts.stateDir, `${opts.name}.log`);
    this.stopSignal = opts.stopSignal ?? "SIGTERM";
    const out = openSync(this.logFile, "a");
    this.child = spawn(opts.command, opts.args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", out, out],
      detached: false,
    });
    if (this.child.pid === undefined) throw new Error(`could not start ${opts.name} (${opts.command})`);
    appendFileSync(join(opts.stateDir, "pids"), `${this.child.pid} ${opts.name}\n`);
    this.exitPromise = new Promise((resolve) => {
      this.child.once("exit", () => {
        this.exited = true;
        resolve();
      });
      this.child.once("error", () => {
        this.exited = true;
        resolve();
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return !this.exited;
  }

  /** Last lines of the server's log, for error messages. */
  tail(lines = 20): string {
    if (!existsSync(this.logFile)) return "";
    return readFileSync(this.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  }

  /** Stops the process: its own shutdown signal first, SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exited) return;
    this.child.kill(this.stopSignal);
    const done = await Promise.race([this.exitPromise.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      this.child.kill("SIGKILL");
      await this.exitPromise;
    }
  }

  /** Sends a signal now, without waiting (for exit handlers, where nothing can be awaited). */
  kill(signal: NodeJS.Signals): void {
    if (!this.exited) this.child.kill(signal);
  }

  /** Pauses the process (SIGSTOP) without losing its state; `resume` continues it. */
  pause(): void {
    this.child.kill("SIGSTOP");
  }

  resume(): void {
    this.child.kill("SIGCONT");
  }
}

/**
 * Kills servers recorded in a previous run's PID file that are still alive, checking each PID's
 * command line so a recycled PID belonging to something else is left alone.
 */
export function reapLeftovers(stateDir: string, expectedCommands: string[]): void {
  const pidFile = join(stateDir, "pids");
  if (!existsSync(pidFile)) return;
  for (const line of readFileSync(pidFile, "utf8").split("\n")) {
    const pid = Number(line.split(" ")[0]);
    if (!Number.isInteger(pid) || pid <= 1) continue;
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (expectedCommands.some((c) => cmdline.includes(c))) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  rmSync(pidFile, { force: true });
}

/** Polls `probe` until it resolves true; fails with the server's log tail after `timeoutMs`. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  opts: { timeoutMs: number; process?: ManagedProcess; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    if (opts.process && !opts.process.running) {
      throw new Error(`${what}: the process exited during start-up. Log tail:\n${opts.process.tail()}`);
    }
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    await sleep(opts.intervalMs ?? 100);
  }
  throw new Error(
    `${what} was not ready after ${opts.timeoutMs} ms${lastError ? ` (last error: ${lastError})` : ""}` +
      (opts.process ? `. Log tail:\n${opts.process.tail()}` : ""),
  );
}
