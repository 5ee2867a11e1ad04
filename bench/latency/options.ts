/**
 * The latency benchmark's settings, from its command line. Everything has a default that measures
 * what issue 13 asks for; `--quick` shrinks every duration for a smoke run (under two minutes).
 */
import { parseArgs } from "node:util";

export interface RatePlan {
  /** Changes per second the writer aims at (blobs and repositories together). */
  rate: number;
  /** How long it writes. */
  seconds: number;
}

export interface ScanPlan extends RatePlan {
  /** The whole observation window, from the first write; scan mode's changes wait for passes. */
  windowSeconds: number;
  /** The Jobs' intervals: the samples' unless --quick scales them down. */
  intervals: { sync: string; verification: string; primaryVerification: string; consistency: string } | "samples";
}

export interface BenchOptions {
  quick: boolean;
  /** What the secondary reads the primary's database through. */
  secondaryReads: "replica" | "primary";
  /** The cursors' --log-level (their logs are kept in a temp directory). */
  cursorLogLevel: string;
  /** Profile the cursors' CPU (node --cpu-prof) and print where it went. */
  profileCursors: boolean;
  modes: ("event" | "scan")[];
  event: RatePlan[];
  /** Scan mode's plan; it runs once per rate of `scanRates` (each with a world of its own). */
  scan: ScanPlan;
  scanRates: number[];
  /** Share of changes that go to repositories, and their ceiling in pushes per second. */
  repoShare: number;
  repoMaxRate: number;
  /** Percent of creates, updates and deletes. */
  mix: { create: number; update: number; delete: number };
  /** Records on the primary (and replicated) before the writer starts. */
  seed: { blobs: number; repos: number };
  /** Blob sizes and their shares. */
  sizes: { bytes: number; share: number; label: string }[];
  /** After the writer stops, how long to wait for the last changes before judging. */
  drainSeconds: number;
  /** The watcher's poll of the secondary's registry. */
  pollMs: number;
  /** Confirm the content of every n-th synced change on the secondary's storage (1 = all). */
  confirmEvery: (rate: number) => number;
  /** Most changes the writer has in flight; beyond it the rate is not kept (and the output says so). */
  writerConcurrency: number;
}

const USAGE = `node bench/latency/run.ts [options]
  --quick                 smoke run (< 2 minutes): event mode at 20/s for 8 s, scan mode with intervals
                          scaled down (consistency 15s, sync 4s) for 30 s; not numbers for the record
  --mode event|scan|both  default both
  --secondary-reads replica|primary
                          the secondary reads the primary's database through its streaming replica
                          (default, no NOTIFY: adaptive poll) or directly (the cursor LISTENs)
  --rates 10,30,100,500   event mode rates (changes/s)
  --seconds 60,60,60,20   how long each event mode rate writes
  --scan-rates 10,100,500 scan mode's rates (each a run of --scan-minutes)
  --scan-minutes 12       scan mode's window from the first write (it writes for all but the last 2 minutes)
  --repo-share 0.1        share of changes that are repository pushes
  --repo-max-rate 10      at most this many pushes per second
  --drain-seconds 300     wait for the backlog after the writer stops
  --poll-ms 100           the watcher's registry poll
  --cursor-log-level warn the cursors' log level (debug shows each step), logs kept in /tmp/geo-latency-logs-*
  --profile-cursors       V8 CPU profiles of both cursors (node --cpu-prof), summed by component`;

function numbers(text: string, name: string): number[] {
  const values = text.split(",").map((v) => Number(v.trim()));
  if (values.some((v) => !Number.isFinite(v) || v <= 0)) throw new Error(`--${name} wants positive numbers separated by commas, got ${text}`);
  return values;
}

export function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      mode: { type: "string", default: "both" },
      "secondary-reads": { type: "string", default: "replica" },
      rates: { type: "string" },
      seconds: { type: "string" },
      "scan-rates": { type: "string" },
      "scan-minutes": { type: "string" },
      "repo-share": { type: "string", default: "0.1" },
      "repo-max-rate": { type: "string", default: "10" },
      "drain-seconds": { type: "string" },
      "poll-ms": { type: "string", default: "100" },
      "cursor-log-level": { type: "string", default: "warn" },
      "profile-cursors": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = values.quick;
  if (!["event", "scan", "both"].includes(values.mode)) throw new Error(`--mode is event, scan or both, not ${values.mode}`);
  const secondaryReads = values["secondary-reads"];
  if (secondaryReads !== "replica" && secondaryReads !== "primary") throw new Error(`--secondary-reads is replica or primary, not ${secondaryReads}`);
  const modes = values.mode === "both" ? (["event", "scan"] as const) : ([values.mode] as ["event"] | ["scan"]);
  // 30/s is about where two shared cores saturate (see docs/performance.md): the knee between.
  const rates = numbers(values.rates ?? (quick ? "20" : "10,30,100,500"), "rates");
  const seconds = numbers(values.seconds ?? (quick ? "8" : "60,60,60,20"), "seconds");
  if (seconds.length !== rates.length) throw new Error(`--seconds needs one duration per rate (${rates.length})`);
  const scanRates = numbers(values["scan-rates"] ?? (quick ? "10" : "10,100,500"), "scan-rates");
  const windowSeconds = quick ? 30 : numbers(values["scan-minutes"] ?? "12", "scan-minutes")[0]! * 60;
  return {
    quick,
    secondaryReads,
    cursorLogLevel: values["cursor-log-level"],
    profileCursors: values["profile-cursors"],
    modes: [...modes],
    event: rates.map((rate, i) => ({ rate, seconds: seconds[i]! })),
    scanRates,
    scan: {
      rate: scanRates[0]!,
      // One consistency interval of writes, then the next pass and a sync run to pick them up.
      seconds: quick ? 15 : Math.max(60, windowSeconds - 120),
      windowSeconds,
      intervals: quick ? { sync: "4s", verification: "4s", primaryVerification: "4s", consistency: "15s" } : "samples",
    },
    repoShare: numbers(values["repo-share"], "repo-share")[0]!,
    repoMaxRate: numbers(values["repo-max-rate"], "repo-max-rate")[0]!,
    mix: { create: 40, update: 40, delete: 20 },
    // Registries of realistic size: a burst of deletes in a small one trips the deletion rails' share
    // rule (over 10 % of the rows in one check), which holds every deletion of the type until a
    // person releases it: with 30 repositories, a cursor a few seconds behind at 100 changes/s did.
    seed: quick ? { blobs: 250, repos: 20 } : { blobs: 3000, repos: 300 },
    sizes: [
      { bytes: 4 * 1024, share: 0.8, label: "4 KiB" },
      { bytes: 256 * 1024, share: 0.18, label: "256 KiB" },
      { bytes: 8 * 1024 * 1024, share: 0.02, label: "8 MiB" },
    ],
    drainSeconds: Number(values["drain-seconds"] ?? (quick ? 30 : 300)),
    pollMs: numbers(values["poll-ms"], "poll-ms")[0]!,
    // A HEAD per synced change costs the secondary's MinIO and the bench a share of two cores at high rates.
    confirmEvery: (rate) => (rate <= 10 ? 1 : 10),
    writerConcurrency: 200,
  };
}
