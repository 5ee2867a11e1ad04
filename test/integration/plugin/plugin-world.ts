/**
 * A namespace with a primary (london) and a secondary (tokyo) GeoSite whose Secrets point at fresh
 * databases on the two test PostgreSQL servers, a ReplicableType whose tables exist there, and a
 * way to run `kubectl-geo` as a child process the way kubectl would.
 */
import { join } from "node:path";
import { stringify } from "yaml";
import { REPO_ROOT } from "../../../hack/localenv/tools.ts";
import { LABELS } from "../../../src/api/v1alpha1/resources.ts";
import { typeRuntimeConfig } from "../../../src/strategies/type-config.ts";
import type { ReplicableTypeSpec } from "../../../src/api/v1alpha1/types.generated.ts";
import type { ReplicableTypeSchemaConfig } from "../../../src/registry/config.ts";
import { applySchema } from "../../../src/registry/schema-manager.ts";
import { commandAsync, type CommandResult } from "../../support/command.ts";
import { createNamespace, kubectlOk } from "../../support/kubectl.ts";
import { createTestDatabases, withClient, type TestDatabases } from "../registry/databases.ts";

export const PLUGIN = join(REPO_ROOT, "bin/kubectl-geo.js");

/** Runs `node bin/kubectl-geo.js <args>`; stdin is a pipe (never a TTY). */
export function runGeo(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; command?: string[] } = {}): Promise<CommandResult> {
  const [cmd, ...pre] = opts.command ?? [process.execPath, PLUGIN];
  return commandAsync(cmd!, [...pre, ...args], { ...(opts.env ? { env: opts.env } : {}), ...(opts.input !== undefined ? { input: opts.input } : {}) });
}

export const widgetSpec: ReplicableTypeSpec = {
  name: "cool_widget",
  strategy: "blob",
  source: { table: "cool_widgets", objectKey: { template: "cool_widgets/{id}/{file_name}" } },
};

export interface PluginWorld {
  ns: string;
  dbs: TestDatabases;
  config: ReplicableTypeSchemaConfig;
  /** Runs the plugin in this world's namespace. */
  geo(args: string[], opts?: { input?: string }): Promise<CommandResult>;
  close(): Promise<void>;
}

function apply(ns: string, docs: object[]): void {
  kubectlOk(["apply", "-n", ns, "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));
}

export async function createPluginWorld(prefix: string): Promise<PluginWorld> {
  kubectlOk(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "crd/geosites.geo.replication.dev", "crd/replicabletypes.geo.replication.dev"]);
  const ns = createNamespace(prefix);
  const dbs = await createTestDatabases();
  await dbs.primary.query(`CREATE TABLE cool_widgets (id bigserial PRIMARY KEY, file_name text NOT NULL)`);
  const config = typeRuntimeConfig(widgetSpec).schema;
  await withClient(dbs.primary, (c) => applySchema(c, config, "primary"));
  await withClient(dbs.tracking, (c) => applySchema(c, config, "secondary"));

  const secret = (name: string, url: string) => ({ apiVersion: "v1", kind: "Secret", metadata: { name, labels: { [LABELS.credentials]: "true" } }, stringData: { url } });
  const gsite = (name: string, spec: object) => ({ apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name }, spec });
  const rtype = (name: string, spec: ReplicableTypeSpec) => ({ apiVersion: "geo.replication.dev/v1alpha1", kind: "ReplicableType", metadata: { name }, spec });
  apply(ns, [
    secret("primary-db", dbs.primaryUrl),
    secret("tracking-db", dbs.trackingUrl),
    // A tracking database nobody listens on, with a password that must never be printed.
    secret("osaka-db", "postgres://geo:pl4in-s3cret-pw@127.0.0.1:1/tracking"),
    gsite("london", { role: "primary", database: { secretRef: { name: "primary-db" } } }),
    gsite("tokyo", { role: "secondary", database: { secretRef: { name: "tracking-db" }, primaryReplicaSecretRef: { name: "primary-db" } } }),
    gsite("osaka", { role: "secondary", database: { secretRef: { name: "osaka-db" }, primaryReplicaSecretRef: { name: "primary-db" } } }),
    gsite("paris", { role: "secondary", database: { secretRef: { name: "no-such-secret" }, primaryReplicaSecretRef: { name: "primary-db" } } }),
    rtype("cool-widget", widgetSpec),
    // A type whose tables were never created: registries must say so.
    rtype("gadget", { name: "gadget", strategy: "blob", source: { table: "gadgets", objectKey: { column: "path" } } }),
  ]);
  return {
    ns,
    dbs,
    config,
    geo: (args, opts = {}) => runGeo(["-n", ns, ...args], opts),
    async close() {
      await dbs.drop();
      kubectlOk(["delete", "namespace", ns, "--wait=false"]);
    },
  };
}
