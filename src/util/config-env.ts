/**
 * Reading a process's configuration from env: the worker's contract (src/workers/environment.ts)
 * and each strategy's endpoints (src/strategies/<name>/definition.ts) use these helpers.
 *
 * A secret is read from `NAME`, or from the file named by `NAME_FILE`. The operator's Jobs set
 * `NAME` through an env `valueFrom.secretKeyRef` (the Job spec references the Secret, never its
 * value); `NAME_FILE` is for a worker run by hand or by another deployment that mounts Secrets
 * as files.
 */
import { readFileSync } from "node:fs";

export class ConfigurationError extends Error {
  override readonly name = "ConfigurationError";
}

export type Env = Record<string, string | undefined>;

/** A value from `NAME` or from the file named by `NAME_FILE` (trailing newline trimmed). */
export function secretFromEnv(env: Env, name: string): string | undefined {
  const file = env[`${name}_FILE`];
  if (file) {
    try {
      return readFileSync(file, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new ConfigurationError(`${name}_FILE points at ${file}, which cannot be read: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  return env[name] || undefined;
}

export function requireSecret(env: Env, name: string, why: string): string {
  const v = secretFromEnv(env, name);
  if (!v) throw new ConfigurationError(`${name} (or ${name}_FILE) is required: ${why}`);
  return v;
}
