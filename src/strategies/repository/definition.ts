/**
 * The repository strategy: git repositories on the primary's git server, mirrored under each
 * secondary's mirror root, compared by Gitaly-compatible checksums (GitLab's
 * RepositoryReplicatorStrategy). Repositories change on the primary (pushes), so verification
 * follows primary checksums and resyncs what changed.
 */
import { capacity, columnOrTemplate, matches, secretName, type JSONSchema } from "../../api/v1alpha1/common.ts";
import { sourceFieldRules } from "../../api/v1alpha1/crds.ts";
import { secretEnv } from "../../k8s/env-vars.ts";
import { ConfigurationError, secretFromEnv } from "../../util/config-env.ts";
import type { StrategyDefinition } from "../definition.ts";
import { templateColumns } from "../model-records.ts";
import type { RepositoryPathSource } from "./paths.ts";

export interface RepositorySettings {
  repositoryPath: RepositoryPathSource;
  /** Run `git gc --auto` after this many fetches of a mirror (0: never). */
  housekeepingEveryFetches: number;
}

export interface RepositoryEndpoints {
  primary: { baseURL: string; username?: string; password?: string };
  /** Where this secondary keeps its mirrors; absent on the primary. */
  mirrorRoot?: string;
}

const SYNC_CAPACITY = 25;

const git: JSONSchema = {
  type: "object",
  description: "Git repositories. A primary says where secondaries fetch from; a secondary says where its mirrors live.",
  properties: {
    baseURL: {
      type: "string",
      maxLength: 2048,
      "x-kubernetes-validations": matches("^(https?|git|ssh|file)://.+$", "baseURL must be an https://, http://, git://, ssh:// or file:// URL"),
      description: "Primary only: base URL that repository paths are appended to, e.g. https://git.example.com or git://gitaly.internal.",
    },
    credentialsSecretRef: {
      type: "object",
      required: ["name"],
      description: "Primary only: Secret with keys `username` and `password` (or a token as password) for HTTP fetches.",
      properties: { name: secretName },
    },
    mirrorRoot: {
      type: "string",
      maxLength: 1024,
      description: "Secondary only: absolute path where mirrors are kept (the mount point of persistentVolumeClaim).",
      "x-kubernetes-validations": [
        { rule: "self.startsWith('/')", message: "mirrorRoot must be an absolute path" },
        { rule: "!self.split('/').exists(s, s == '..' || s == '.')", message: "mirrorRoot must be an absolute path without '.' or '..' segments" },
      ],
    },
    persistentVolumeClaim: {
      type: "object",
      required: ["claimName"],
      description: "Secondary only: PVC mounted at mirrorRoot in sync and verification Jobs.",
      properties: { claimName: secretName },
    },
  },
};

export const repositoryStrategy: StrategyDefinition<RepositorySettings, RepositoryEndpoints> = {
  name: "repository",
  crd: {
    name: "repository",
    summary: "git repositories",
    replicableType: {
      source: { repositoryPath: columnOrTemplate("repository path (repository strategy)", "{disk_path}.git") },
      spec: {
        repository: {
          type: "object",
          default: {},
          description: "Repository strategy only.",
          properties: {
            housekeepingEveryFetches: { type: "integer", minimum: 0, maximum: 100000, default: 10, description: "Run `git gc --auto` after this many fetches (0 disables it)." },
          },
        },
      },
      rules: sourceFieldRules("repository", "repositoryPath", "strategy repository needs source.repositoryPath (a column or template that yields each repository's path)"),
    },
    geoSite: {
      spec: { git },
      capacities: { repositories: capacity(SYNC_CAPACITY, "Repositories mirrored at once by one sync Job pod") },
      rules: [
    { rule: "!has(self.git) || self.role == 'secondary' || has(self.git.baseURL)", message: "a primary site's git section needs baseURL (where secondaries fetch repositories from)" },
    { rule: "!has(self.git) || self.role == 'secondary' || (!has(self.git.mirrorRoot) && !has(self.git.persistentVolumeClaim))", message: "git.mirrorRoot and git.persistentVolumeClaim apply to secondary sites only" },
    { rule: "!has(self.git) || self.role == 'primary' || has(self.git.mirrorRoot)", message: "a secondary site's git section needs mirrorRoot (where mirrors are kept)" },
    { rule: "!has(self.git) || self.role == 'primary' || (!has(self.git.baseURL) && !has(self.git.credentialsSecretRef))", message: "git.baseURL and git.credentialsSecretRef apply to the primary site only" },
      ],
    },
  },
  statesLayout: "serial-id",
  primaryDataMayChange: true,
  notFoundSuspects: "the primary GeoSite's git.baseURL or its token (a token that cannot see a repository gets \"not found\"), and the type's source.repositoryPath",
  syncCapacity: { field: "repositories", default: SYNC_CAPACITY },

  parseSettings(spec) {
    const path = spec.source.repositoryPath;
    if (!path?.column && !path?.template) throw new Error(`ReplicableType ${spec.name} has no source.repositoryPath`);
    return {
      repositoryPath: path.column ? { column: path.column } : { template: path.template! },
      housekeepingEveryFetches: spec.repository?.housekeepingEveryFetches ?? 10,
    };
  },

  modelColumns(settings) {
    const path = settings.repositoryPath;
    // `{base}` in a template is the mirror root, not a column.
    return path.column !== undefined ? [path.column] : templateColumns(path.template).filter((c) => c !== "base");
  },

  workerStorage(_settings, site, primary) {
    const env = [];
    const credentials = primary.spec.git?.credentialsSecretRef?.name;
    if (credentials) env.push(secretEnv("GEO_PRIMARY_GIT_USERNAME", credentials, "username", true), secretEnv("GEO_PRIMARY_GIT_PASSWORD", credentials, "password", true));
    const git = site.spec.git;
    if (site.spec.role === "secondary" && git?.mirrorRoot && git.persistentVolumeClaim) {
      return {
        env,
        volumes: [{ name: "mirrors", persistentVolumeClaim: { claimName: git.persistentVolumeClaim.claimName } }],
        mounts: [{ name: "mirrors", mountPath: git.mirrorRoot }],
      };
    }
    return { env, volumes: [], mounts: [] };
  },

  endpointsFromEnv(env, site, primary) {
    const baseURL = primary.git?.baseURL;
    if (!baseURL) throw new ConfigurationError("the primary GeoSite has no git.baseURL, which repository types need");
    const username = secretFromEnv(env, "GEO_PRIMARY_GIT_USERNAME");
    const password = secretFromEnv(env, "GEO_PRIMARY_GIT_PASSWORD");
    const endpoints: RepositoryEndpoints = { primary: { baseURL, ...(username ? { username } : {}), ...(password ? { password } : {}) } };
    if (site.role === "secondary") {
      if (!site.git?.mirrorRoot) throw new ConfigurationError("this secondary GeoSite has no git.mirrorRoot, which repository types need");
      endpoints.mirrorRoot = site.git.mirrorRoot;
    }
    return endpoints;
  },

  storageSharedWithPrimary(secondary, primary) {
    const root = secondary.git?.mirrorRoot?.replace(/\/+$/, "");
    const base = primary.git?.baseURL;
    if (root && base?.startsWith("file://") && base.slice("file://".length).replace(/\/+$/, "").startsWith(root)) {
      return `its git.mirrorRoot ${root} contains the primary's repository root ${base}`;
    }
    return undefined;
  },

  async createReplicator(ctx) {
    const { RepositoryReplicator } = await import("./replicator.ts");
    return new RepositoryReplicator(ctx);
  },
};
