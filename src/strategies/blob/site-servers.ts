/**
 * The file retrieval server a primary runs when secondaries read its files over HTTPS
 * (files/server.ts, `geo-operator serve-files`): wanted when the primary GeoSite has
 * `fileStorage.retrieval` and some blob type reads files on the primary.
 *
 * Secrets reach it by reference only: the TLS certificate and key from `retrieval.tlsSecretRef`,
 * and one `GEO_FILES_SITE_KEY_<site>` per secondary GeoSite that has
 * `fileStorage.retrievalCredentialsSecretRef` (a Secret of that name in the primary's namespace).
 */
import type { V1EnvVar, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import type { GeoSite } from "../../api/v1alpha1/resources.ts";
import { secretEnv } from "../../k8s/env-vars.ts";
import type { SiteServer } from "../site-server.ts";
import { DEFAULT_RETRIEVAL_PORT } from "./crd.ts";
import { HEALTH_PATH } from "./files/protocol.ts";
import { FILES_TLS_CERT_ENV, FILES_TLS_KEY_ENV, SITE_KEY_ENV_PREFIX } from "./files/site-keys.ts";
import { primaryStoreKinds, type BlobSettings } from "./settings.ts";

/** `geo-files-<site>`, the server's (and its Service's) name. */
export function filesServerName(site: string): string {
  return `geo-files-${site}`;
}

export function blobSiteServers(site: GeoSite, sites: readonly GeoSite[], types: readonly BlobSettings[]): SiteServer[] {
  const files = site.spec.fileStorage;
  if (site.spec.role !== "primary" || !files?.root || !files.retrieval) return [];
  if (!types.some((t) => primaryStoreKinds(t).includes("FileStorage"))) return [];
  const root = files.root;
  const port = files.retrieval.port ?? DEFAULT_RETRIEVAL_PORT;
  const tls = files.retrieval.tlsSecretRef.name;
  const env: V1EnvVar[] = [secretEnv(FILES_TLS_CERT_ENV, tls, "tls.crt"), secretEnv(FILES_TLS_KEY_ENV, tls, "tls.key")];
  const secondaries = sites
    .filter((s) => s.metadata.namespace === site.metadata.namespace && s.spec.role === "secondary" && s.spec.fileStorage?.retrievalCredentialsSecretRef)
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const s of secondaries) {
    const ref = s.spec.fileStorage!.retrievalCredentialsSecretRef!;
    env.push(secretEnv(`${SITE_KEY_ENV_PREFIX}${s.metadata.name}`, ref.name, ref.key ?? "key"));
  }
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  if (files.persistentVolumeClaim) {
    volumes.push({ name: "files", persistentVolumeClaim: { claimName: files.persistentVolumeClaim.claimName, readOnly: true } });
    mounts.push({ name: "files", mountPath: root, readOnly: true });
  }
  return [
    {
      name: filesServerName(site.metadata.name),
      namespace: site.metadata.namespace,
      site: site.metadata.name,
      args: ["serve-files", "--root", root, "--port", String(port), "--host", "0.0.0.0"],
      env,
      volumes,
      mounts,
      port,
      readinessPath: HEALTH_PATH,
      async start(values, log) {
        const { serveFiles } = await import("./files/server.ts");
        const { siteKeysFromEnv } = await import("./files/site-keys.ts");
        const cert = values[FILES_TLS_CERT_ENV];
        const key = values[FILES_TLS_KEY_ENV];
        if (!cert || !key) throw new Error(`the file retrieval server needs ${FILES_TLS_CERT_ENV} and ${FILES_TLS_KEY_ENV} (tls.crt and tls.key of Secret ${tls})`);
        const server = await serveFiles({ root, host: "127.0.0.1", port, tls: { cert, key }, siteKeys: siteKeysFromEnv(values), log });
        return { url: server.url, close: () => server.close() };
      },
    },
  ];
}
