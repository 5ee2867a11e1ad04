/**
 * The exit codes `kubectl geo` promises to scripts, and the one error type that carries them.
 * Anything else thrown is a runtime failure (exit 1).
 */
export const ExitCode = {
  ok: 0,
  /** Runtime failure: database or API server unreachable, permission denied, a query failed. */
  failure: 1,
  /** Usage error: unknown flag or state, missing or conflicting flags, wrong site role. */
  usage: 2,
  /** Not found: unknown type or site, type not on that site, no registry table yet. */
  notFound: 3,
  /** Not ready: `preflight` found a failover check failing (the output says which). */
  notReady: 4,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class PluginError extends Error {
  readonly exitCode: ExitCodeValue;
  constructor(exitCode: ExitCodeValue, message: string) {
    super(message);
    this.name = "PluginError";
    this.exitCode = exitCode;
  }
}

export const usageError = (message: string): PluginError => new PluginError(ExitCode.usage, message);
export const notFound = (message: string): PluginError => new PluginError(ExitCode.notFound, message);
export const failure = (message: string): PluginError => new PluginError(ExitCode.failure, message);

/** The exit-code table as `--help` prints it. */
export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  runtime failure (API server or database unreachable, permission denied)
  2  usage error (unknown flag or state, missing or conflicting flags, wrong site role)
  3  not found (unknown type or site, type not on that site, no registry table yet)
  4  not ready (preflight: a failover check fails)`;
