/**
 * The secondary sites' secret keys as the retrieval server reads them: a directory with one file
 * per site, named after the site (a mounted Secret whose keys are site names). Kubernetes' own
 * entries in such a mount (`..data`, `..2026_…`) start with a dot and are skipped.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { isSiteName, parseSecretKey } from "./signing.ts";

export interface LoadedSiteKeys {
  keys: Map<string, string>;
  /** Entries that are not named like a site, so not keys (reported, not fatal). */
  ignored: string[];
}

/** Reads every site key in `dir`. Throws when a key file is unreadable or too short, or none is found. */
export async function loadSiteKeys(dir: string): Promise<LoadedSiteKeys> {
  const keys = new Map<string, string>();
  const ignored: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    if (name.startsWith(".")) continue;
    if (!isSiteName(name)) {
      ignored.push(name);
      continue;
    }
    const path = join(dir, name);
    keys.set(name, parseSecretKey(await readFile(path, "utf8"), `site key file ${path}`));
  }
  if (keys.size === 0) throw new Error(`${dir} holds no site key (expected one file per secondary site, named after the site)`);
  return { keys, ignored };
}

/** PEM certificate chain and private key of the retrieval server, as env values (the operator's Deployment). */
export const FILES_TLS_CERT_ENV = "GEO_FILES_TLS_CERT";
export const FILES_TLS_KEY_ENV = "GEO_FILES_TLS_KEY";

/** Env vars holding one secondary site's key each: `GEO_FILES_SITE_KEY_<site name>`. */
export const SITE_KEY_ENV_PREFIX = "GEO_FILES_SITE_KEY_";

/**
 * The site keys given as env vars (how the operator's Deployment passes them, by secretKeyRef).
 * Throws when a key is too short or a variable's suffix is not a site name; an empty value is skipped.
 */
export function siteKeysFromEnv(env: Readonly<Record<string, string | undefined>>): Map<string, string> {
  const keys = new Map<string, string>();
  for (const [name, value] of Object.entries(env).sort(([a], [b]) => a.localeCompare(b))) {
    if (!name.startsWith(SITE_KEY_ENV_PREFIX) || !value) continue;
    const site = name.slice(SITE_KEY_ENV_PREFIX.length);
    if (!isSiteName(site)) throw new Error(`${name}: ${JSON.stringify(site)} is not a site name`);
    keys.set(site, parseSecretKey(value, name));
  }
  return keys;
}
