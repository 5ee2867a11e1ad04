/**
 * A long-running server the operator keeps on a site: one a strategy needs (the blob strategy's
 * file retrieval server on a primary whose files live on a volume), or the site's log cursor
 * (src/cursor/site-server.ts). Like a worker run, one value describes it for both executors: the
 * Jobs executor renders it as a Deployment and a Service, the in-process executor calls `start`
 * with the same environment resolved from Secrets.
 */
import type { V1EnvVar, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import type { Logger } from "../util/log.ts";

export interface RunningSiteServer {
  /** Where it listens (in-process: 127.0.0.1 and the bound port). */
  url: string;
  close(): Promise<void>;
}

export interface SiteServer {
  /** DNS-1123 name, unique in the namespace, e.g. geo-files-london; also the Service's name. */
  name: string;
  namespace: string;
  /** The GeoSite it serves for. */
  site: string;
  /** `geo-operator` arguments of the server's container, e.g. ["serve-files", "--root", "/data", ...]. */
  args: string[];
  /** Secrets by reference only (secretKeyRef), as for worker runs. */
  env: V1EnvVar[];
  volumes: V1Volume[];
  mounts: V1VolumeMount[];
  /** The container port, exposed by the Service under the same number. */
  port: number;
  /** What `port` speaks (readiness probe, Service port name); HTTPS when absent. */
  scheme?: "HTTP" | "HTTPS";
  /** An unauthenticated path over `scheme` that answers 200 when the server is up (readiness probe). */
  readinessPath: string;
  /** Extra labels of the Deployment, its pods and the Service (what a ServiceMonitor selects). */
  labels?: Record<string, string>;
  /** Runs the same server in this process with `env` resolved; used by the in-process executor. */
  start(env: Record<string, string | undefined>, log: Logger): Promise<RunningSiteServer>;
}
