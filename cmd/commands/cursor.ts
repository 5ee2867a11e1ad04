/**
 * `geo-operator cursor --site S`: the site's log cursor (src/cursor/site-cursor.ts), as the
 * operator's per-site Deployment runs it. Serves /metrics and /healthz over plain HTTP on
 * --metrics-port (src/cursor/endpoints.ts: healthy while the cursor has completed a step within
 * the last 30 s). Exit codes: 0 stopped by SIGTERM, 2 invalid configuration.
 */
import { Option, type Command } from "commander";
import { createLogger } from "../../src/util/log.ts";

interface CursorCliOptions {
  site: string;
  metricsPort: string;
  host: string;
  logLevel: string;
}

export function registerCursorCommand(program: Command): void {
  program
    .command("cursor")
    .description("follow the primary's change event log for a site: checksum on the primary, sync/verify/remove on a secondary")
    .requiredOption("--site <name>", "GeoSite this cursor acts for")
    .option("--metrics-port <port>", "port of /metrics and /healthz (0: none)", "9090")
    .option("--host <host>", "address of /metrics and /healthz", "0.0.0.0")
    .addOption(new Option("--log-level <level>", "log level").choices(["debug", "info", "warn", "error"]).default("info"))
    .action(async (opts: CursorCliOptions) => {
      const { runSiteCursor } = await import("../../src/cursor/site-cursor.ts");
      const { serveCursorEndpoints } = await import("../../src/cursor/endpoints.ts");
      const { CursorMetrics } = await import("../../src/metrics/cursor-metrics.ts");
      const { ConfigurationError } = await import("../../src/util/config-env.ts");
      const { Registry, collectDefaultMetrics } = await import("prom-client");
      const log = createLogger({ name: "cursor", level: opts.logLevel }).child({ site: opts.site });
      const registry = new Registry();
      collectDefaultMetrics({ register: registry });
      const metrics = new CursorMetrics(registry);
      let lastStep = 0;
      const endpoints = Number(opts.metricsPort) > 0 ? await serveCursorEndpoints({ registry, host: opts.host, port: Number(opts.metricsPort), lastStepAt: () => lastStep }) : undefined;
      const abort = new AbortController();
      process.once("SIGTERM", () => abort.abort());
      process.once("SIGINT", () => abort.abort());
      try {
        await runSiteCursor(process.env, { site: opts.site, log, signal: abort.signal, metrics, onPosition: () => (lastStep = Date.now()) });
      } catch (err) {
        process.stderr.write(`geo-operator cursor: ${(err as Error).message}\n`);
        process.exitCode = err instanceof ConfigurationError ? 2 : 1;
      } finally {
        await endpoints?.close();
      }
    });
}
