/** The process around a command, passed in so that nothing reads globals at import time. */
import { createInterface } from "node:readline/promises";

export interface PluginIO {
  out(text: string): void;
  err(text: string): void;
  /** Whether a person can answer a question on stdin. */
  interactive: boolean;
  /** Asks a yes/no question on stderr; true only for "y" or "yes". */
  confirm(question: string): Promise<boolean>;
  now(): Date;
}

export function processIO(): PluginIO {
  return {
    out: (t) => void process.stdout.write(t),
    err: (t) => void process.stderr.write(t),
    interactive: process.stdin.isTTY === true,
    async confirm(question) {
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        const answer = await rl.question(`${question} [y/N] `);
        return /^(y|yes)$/i.test(answer.trim());
      } finally {
        rl.close();
      }
    },
    now: () => new Date(),
  };
}
