/**
 * Structured JSON logs (one object per line on stderr) through pino. Callers create a logger and
 * pass it down; there is no module-level logger.
 */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(options: { name: string; level?: string }): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? "info",
      base: { name: options.name },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Connection strings and secrets must never reach a log line, whatever a caller passes.
      redact: { paths: ["password", "*.password", "secretAccessKey", "*.secretAccessKey", "url", "*.connectionString"], censor: "[redacted]" },
    },
    pino.destination(2),
  );
}
