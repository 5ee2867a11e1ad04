/**
 * The blob benchmark's settings, from its command line. The defaults measure what issue 15 asks
 * for; `--quick` shrinks the object sets for a smoke run (under two minutes).
 */
import { parseArgs } from "node:util";

export interface BenchOptions {
  quick: boolean;
  /** Objects copied at once, by us and by rclone (--transfers, --checkers). */
  concurrency: number;
  /** Rounds of every measurement; the table shows medians. */
  rounds: number;
  small: { count: number; bytes: number };
  large: { count: number; bytes: number };
  /** Profile our phases (node:inspector) and print where the CPU went. */
  profile: boolean;
  /** Measurements to run: sets of objects, copies between a bucket and a volume, the SHA-256 comparison. */
  only: ("small" | "large" | "volume" | "hash")[];
}

const KiB = 1024;
const MiB = 1024 * KiB;

const USAGE = `node bench/blob/run.ts [options]
  --quick              smoke run (< 2 minutes): 500 × 64 KiB, 3 × 64 MiB, 3 rounds
  --rounds N           rounds of each measurement, medians reported (default 3)
  --concurrency N      objects at once for us and for rclone (default 10, GitLab's blob capacity)
  --small N×KiB        small objects (default 4000x64)
  --large N×MiB        large objects (default 16x64)
  --only small,large,volume,hash
                       run only these parts (default all); volume copies the large
                       objects between a bucket and a directory, both ways
  --profile            CPU profile of our sync and verification (node:inspector), summarised
  --help`;

function sizeSpec(value: string, unit: number, name: string): { count: number; bytes: number } {
  const m = /^(\d+)[x×](\d+)$/.exec(value);
  if (!m) throw new Error(`--${name} takes COUNTxSIZE, e.g. 4000x64`);
  return { count: Number(m[1]), bytes: Number(m[2]) * unit };
}

export function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      concurrency: { type: "string" },
      small: { type: "string" },
      large: { type: "string" },
      only: { type: "string" },
      profile: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = values.quick;
  const only = (values.only ?? "small,large,volume,hash").split(",").map((s) => s.trim());
  for (const o of only) if (!["small", "large", "volume", "hash"].includes(o)) throw new Error(`--only: unknown part ${o}`);
  return {
    quick,
    concurrency: Number(values.concurrency ?? 10),
    rounds: Number(values.rounds ?? 3),
    small: values.small ? sizeSpec(values.small, KiB, "small") : { count: quick ? 500 : 4000, bytes: 64 * KiB },
    large: values.large ? sizeSpec(values.large, MiB, "large") : { count: quick ? 3 : 16, bytes: 64 * MiB },
    profile: values.profile,
    only: only as BenchOptions["only"],
  };
}
