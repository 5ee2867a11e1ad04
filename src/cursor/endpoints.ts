/**
 * A log cursor's /metrics and /healthz over plain HTTP: `geo-operator cursor` serves them on
 * --metrics-port for its Deployment's readiness probe and Prometheus; the in-process executor
 * serves them on 127.0.0.1 for each cursor it runs. Healthy while the cursor has completed a step
 * within the last `healthyWithinMs` (a running cursor steps at least every couple of seconds).
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export const CURSOR_HEALTH_PATH = "/healthz";
export const CURSOR_METRICS_PATH = "/metrics";
export const HEALTHY_WITHIN_MS = 30_000;

export interface CursorEndpoints {
  url: string;
  close(): Promise<void>;
}

export async function serveCursorEndpoints(opts: {
  registry: Registry;
  host: string;
  port: number;
  /** When the cursor last completed a step (epoch ms; 0: never). */
  lastStepAt(): number;
  healthyWithinMs?: number;
  now?: () => number;
}): Promise<CursorEndpoints> {
  const now = opts.now ?? Date.now;
  const within = opts.healthyWithinMs ?? HEALTHY_WITHIN_MS;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === CURSOR_METRICS_PATH) {
      opts.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": opts.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else if (path === CURSOR_HEALTH_PATH) {
      const healthy = now() - opts.lastStepAt() < within;
      res.writeHead(healthy ? 200 : 503).end(healthy ? "ok\n" : "the cursor has not completed a step recently\n");
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host.includes(":") ? `[${opts.host}]` : opts.host}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
