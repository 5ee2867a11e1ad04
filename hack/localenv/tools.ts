/**
 * Locates the binaries the local environment runs. Kubernetes, etcd, helm and MinIO come from
 * hack/tools/ensure.sh (env var → cache → release download → Go build, versions in
 * hack/tools/versions.env); PostgreSQL and git come from the system (installed by
 * hack/tools/ensure-system.sh).
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export type GoTool = "kube-apiserver" | "etcd" | "kubectl" | "helm" | "minio";

/** Paths of the requested tools, providing any that are missing (may build them: minutes). */
export function ensureTools(tools: GoTool[]): Record<GoTool, string> {
  const out = execFileSync("bash", [join(REPO_ROOT, "hack/tools/ensure.sh"), ...tools], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const paths = out.trim().split("\n");
  if (paths.length !== tools.length) throw new Error(`ensure.sh returned ${paths.length} paths for ${tools.length} tools`);
  return Object.fromEntries(tools.map((t, i) => [t, paths[i]!])) as Record<GoTool, string>;
}

/** Directory holding initdb and postgres: $GEO_PG_BIN, then the newest /usr/lib/postgresql/N/bin, then PATH. */
export function postgresBinDir(): string {
  const fromEnv = process.env.GEO_PG_BIN;
  if (fromEnv) return fromEnv;
  const base = "/usr/lib/postgresql";
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => existsSync(join(base, v, "bin", "postgres")))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(base, versions[0], "bin");
  }
  try {
    return dirname(execFileSync("bash", ["-c", "command -v initdb"], { encoding: "utf8" }).trim());
  } catch {
    throw new Error("PostgreSQL server binaries not found: run hack/tools/ensure-system.sh (installs Debian's postgresql) or set GEO_PG_BIN");
  }
}
