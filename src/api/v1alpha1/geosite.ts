import { conditions, duration, matches, secretKeyRef, secretName, type JSONSchema } from "./common.ts";

/** The twelve per-type counters GitLab's GeoNodeStatus reports, camelCased. */
export const REPLICABLE_STATUS_FIELDS = [
  "count",
  "checksumTotalCount",
  "checksummedCount",
  "checksumFailedCount",
  "syncedCount",
  "failedCount",
  "registryCount",
  "verificationTotalCount",
  "verifiedCount",
  "verificationFailedCount",
  "syncedInPercentage",
  "verifiedInPercentage",
] as const;

const countField: JSONSchema = { type: "integer", format: "int64", minimum: 0 };
const percentField: JSONSchema = { type: "number", minimum: 0, maximum: 100 };

const typeStatus: JSONSchema = {
  type: "object",
  required: ["name"],
  properties: {
    name: { type: "string", description: "ReplicableType name (snake_case)." },
    ...Object.fromEntries(
      REPLICABLE_STATUS_FIELDS.map((f) => [f, f.endsWith("Percentage") ? percentField : countField]),
    ),
    oldestPendingAgeSeconds: { ...countField, description: "Age of the oldest registry row not yet synced." },
  },
};

const s3Storage: JSONSchema = {
  type: "object",
  description: "S3-compatible object storage holding this site's blobs.",
  required: ["endpoint", "bucket", "credentialsSecretRef"],
  properties: {
    endpoint: {
      type: "string",
      maxLength: 2048,
      "x-kubernetes-validations": matches("^https?://[^\\s/]+(/.*)?$", "endpoint must be an http:// or https:// URL"),
      description: "S3 endpoint URL, e.g. https://s3.eu-west-1.amazonaws.com or http://minio.storage:9000.",
    },
    region: { type: "string", default: "us-east-1", minLength: 1, maxLength: 64 },
    bucket: {
      type: "string",
      maxLength: 255,
      "x-kubernetes-validations": matches(
        "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        "bucket must be a valid S3 bucket name: 3-63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit",
      ),
      description: "Bucket name (S3 naming rules: 3-63 lower-case letters, digits, dots and hyphens).",
    },
    prefix: {
      type: "string",
      maxLength: 512,
      description: "Optional key prefix every object lives under; must end with '/' when set, e.g. \"uploads/\".",
      "x-kubernetes-validations": [
        { rule: "self == '' || (self.endsWith('/') && !self.startsWith('/') && !self.contains('//'))", message: "prefix must be empty or a relative path ending in '/', such as \"uploads/\"" },
        { rule: "!self.split('/').exists(s, s == '..' || s == '.')", message: "prefix must not contain '.' or '..' segments" },
      ],
    },
    forcePathStyle: { type: "boolean", default: false, description: "Use path-style addressing (MinIO and most self-hosted S3)." },
    credentialsSecretRef: {
      type: "object",
      required: ["name"],
      description: "Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
      properties: { name: secretName },
    },
  },
};

const database: JSONSchema = {
  type: "object",
  description:
    "Databases this site's operator talks to. Each is a Secret key holding a PostgreSQL connection URL (postgres://user:pass@host:5432/db?sslmode=require).",
  required: ["secretRef"],
  properties: {
    secretRef: secretKeyRef(
      "url",
      "Primary: the application's main database (verification state lives here). Secondary: this site's tracking database (the registries live here).",
    ),
    primaryReplicaSecretRef: secretKeyRef(
      "url",
      "Secondary only: how this site reads the primary's main database, usually a read replica.",
    ),
    maxReplicationLag: duration(
      "10m",
      "Secondary only: deletions wait, and the site is Unhealthy, while the primary's heartbeat read through the replica is older than this.",
    ),
  },
};

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

const selectiveSync: JSONSchema = {
  type: "object",
  description: "Secondary only: replicate a subset (GitLab's selective sync). Empty type replicates everything.",
  properties: {
    type: { type: "string", enum: ["", "namespaces", "shards"], default: "" },
    namespaces: {
      type: "array",
      maxItems: 10000,
      "x-kubernetes-list-type": "set",
      items: { type: "integer", format: "int64", minimum: 1 },
      description: "Namespace ids to replicate (with their descendants when the type names a parent column).",
    },
    shards: {
      type: "array",
      maxItems: 1000,
      "x-kubernetes-list-type": "set",
      items: { type: "string", minLength: 1, maxLength: 255 },
      description: "Repository storage shards to replicate.",
    },
  },
  "x-kubernetes-validations": [
    { rule: "!has(self.type) || self.type != 'namespaces' || (has(self.namespaces) && size(self.namespaces) > 0)", message: "selectiveSync.type 'namespaces' needs at least one entry in selectiveSync.namespaces" },
    { rule: "!has(self.type) || self.type != 'shards' || (has(self.shards) && size(self.shards) > 0)", message: "selectiveSync.type 'shards' needs at least one entry in selectiveSync.shards" },
  ],
};

const capacity = (def: number, what: string): JSONSchema => ({
  type: "integer",
  minimum: 1,
  maximum: 10000,
  default: def,
  description: `${what} (GitLab's default: ${def}).`,
});

export const geoSiteSpec: JSONSchema = {
  type: "object",
  required: ["role", "database"],
  properties: {
    role: {
      type: "string",
      enum: ["primary", "secondary"],
      description: "primary holds the source of truth; secondaries replicate from it. Immutable: to fail over, create a new GeoSite.",
      "x-kubernetes-validations": [{ rule: "self == oldSelf", message: "role is immutable; create a new GeoSite to change a site's role" }],
    },
    enabled: { type: "boolean", default: true, description: "When false the operator schedules nothing for this site." },
    url: { type: "string", maxLength: 2048, description: "The site's external URL, used as the `url` label of metrics." },
    database,
    objectStorage: s3Storage,
    git,
    selectiveSync,
    capacities: {
      type: "object",
      default: {},
      properties: {
        blobs: capacity(10, "Blobs copied at once by one sync Job pod"),
        repositories: capacity(25, "Repositories mirrored at once by one sync Job pod"),
        verification: capacity(100, "Checksums computed at once by one verification Job pod"),
      },
    },
    statusInterval: duration("1m", "How often the operator refreshes this site's status."),
  },
  "x-kubernetes-validations": [
    { rule: "self.role == 'secondary' || !has(self.selectiveSync)", message: "selectiveSync applies to secondary sites only" },
    { rule: "self.role == 'secondary' || !has(self.database.primaryReplicaSecretRef)", message: "database.primaryReplicaSecretRef applies to secondary sites only (the primary reads its own database)" },
    { rule: "self.role == 'primary' || has(self.database.primaryReplicaSecretRef)", message: "a secondary site needs database.primaryReplicaSecretRef: how it reads the primary's main database" },
    { rule: "!has(self.git) || self.role == 'secondary' || has(self.git.baseURL)", message: "a primary site's git section needs baseURL (where secondaries fetch repositories from)" },
    { rule: "!has(self.git) || self.role == 'secondary' || (!has(self.git.mirrorRoot) && !has(self.git.persistentVolumeClaim))", message: "git.mirrorRoot and git.persistentVolumeClaim apply to secondary sites only" },
    { rule: "!has(self.git) || self.role == 'primary' || has(self.git.mirrorRoot)", message: "a secondary site's git section needs mirrorRoot (where mirrors are kept)" },
    { rule: "!has(self.git) || self.role == 'primary' || (!has(self.git.baseURL) && !has(self.git.credentialsSecretRef))", message: "git.baseURL and git.credentialsSecretRef apply to the primary site only" },
  ],
};

export const geoSiteStatus: JSONSchema = {
  type: "object",
  properties: {
    observedGeneration: { type: "integer", format: "int64" },
    health: { type: "string", enum: ["Healthy", "Unhealthy", "Unknown"] },
    healthReasons: { type: "array", items: { type: "string" }, description: "Why the site is Unhealthy." },
    synced: { type: "string", description: "Synced percentage over all types, formatted for kubectl (\"97.5%\")." },
    verified: { type: "string", description: "Verified percentage over all types, formatted for kubectl." },
    syncedInPercentage: percentField,
    verifiedInPercentage: percentField,
    lastStatusTime: { type: "string", format: "date-time" },
    replicationLagSeconds: {
      type: "number",
      minimum: 0,
      description: "Secondary: age of the primary's heartbeat read through the replica (GitLab's db_replication_lag_seconds).",
    },
    types: {
      type: "array",
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["name"],
      items: typeStatus,
    },
    conditions,
  },
};
