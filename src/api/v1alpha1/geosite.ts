import { capacity, conditions, duration, secretKeyRef, type JSONSchema } from "./common.ts";

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
    heldDeletions: { ...countField, description: "Secondary: copies whose deletion is held until a person releases it (absent when nothing is held)." },
  },
};

/** A duration without a default: when unset, the field's description says what applies. */
const optionalDuration = (description: string): JSONSchema => {
  const { default: _unused, ...rest } = duration("0s", "");
  return { ...rest, description: `${description} A duration such as "30s", "10m" or "1h".` };
};

const failover: JSONSchema = {
  type: "object",
  description:
    "Secondary only: the thresholds of the FailoverReady condition and `kubectl geo preflight` (see docs/operations.md, Planned failover).",
  properties: {
    maxReplicationLag: duration(
      "1m",
      "The primary's database, read through database.primaryReplicaSecretRef, may lag at most this much (the primary's statusInterval, its heartbeat period, is allowed on top).",
    ),
    maxEventCursorLag: optionalDuration("How far this site's log cursor may trail the primary's newest event. Default: eventLog.cursor.maxLag."),
    maxStatusAge: optionalDuration(
      "How old status.lastStatusTime may be. Default: three statusIntervals, at least 5m. At least twice statusInterval: the operator rewrites an unchanged status every third of it.",
    ),
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

/**
 * The GeoSite spec without any strategy: each strategy's fragment adds the storage it needs
 * (objectStorage, git...), its `capacities` entry and its rules (see crds.ts).
 */
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
    selectiveSync,
    capacities: {
      type: "object",
      default: {},
      properties: {
        verification: capacity(100, "Checksums computed at once by one verification Job pod"),
      },
    },
    statusInterval: duration("1m", "How often the operator refreshes this site's status."),
    failover,
    eventLog: {
      type: "object",
      default: {},
      description: "The change event log (ReplicableType changeCapture: trigger) and each site's log cursor.",
      properties: {
        retention: duration("24h", "Primary only: events older than this are pruned from the event log. A secondary whose cursor falls further behind misses events and relies on scanning and verification until it catches up."),
        cursor: {
          type: "object",
          default: {},
          properties: {
            enabled: { type: "boolean", default: true, description: "Run this site's log cursor (a Deployment, or in the manager's process with the in-process executor)." },
            maxLag: duration("5m", "Secondary: the cursor is reported behind (condition, alert) when the newest event it has applied is older than the primary's newest by more than this."),
          },
        },
      },
    },
  },
  "x-kubernetes-validations": [
    { rule: "self.role == 'secondary' || !has(self.selectiveSync)", message: "selectiveSync applies to secondary sites only" },
    { rule: "self.role == 'secondary' || !has(self.database.primaryReplicaSecretRef)", message: "database.primaryReplicaSecretRef applies to secondary sites only (the primary reads its own database)" },
    { rule: "self.role == 'primary' || has(self.database.primaryReplicaSecretRef)", message: "a secondary site needs database.primaryReplicaSecretRef: how it reads the primary's main database" },
    { rule: "self.role == 'secondary' || !has(self.failover)", message: "failover applies to secondary sites only (it sets when the site may be promoted)" },
    {
      rule: "!has(self.failover) || !has(self.failover.maxStatusAge) || !has(self.statusInterval) || duration(self.failover.maxStatusAge) >= duration(self.statusInterval) + duration(self.statusInterval)",
      message: "failover.maxStatusAge must be at least twice statusInterval: an unchanged status is rewritten only once per statusInterval",
    },
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
    eventLog: {
      type: "object",
      description: "The change event log as this site sees it.",
      properties: {
        lastEventId: { type: "integer", format: "int64", minimum: 0, description: "Primary: newest event in the log (GitLab's geo_last_event_id)." },
        lastEventTime: { type: "string", format: "date-time", description: "Primary: when the newest event was written." },
        oldestEventAgeSeconds: { type: "number", minimum: 0, description: "Primary: age of the oldest event not yet pruned." },
        cursorLastEventId: { type: "integer", format: "int64", minimum: 0, description: "Secondary: the newest event this site's cursor has applied (GitLab's geo_cursor_last_event_id)." },
        cursorLastEventTime: { type: "string", format: "date-time", description: "Secondary: when that event was written on the primary." },
        lagSeconds: { type: "number", minimum: 0, description: "Secondary: how far the cursor is behind the primary's newest event, in seconds of event time (0 when caught up)." },
        pendingGaps: { type: "integer", minimum: 0, description: "Secondary: event ids skipped by the cursor and still awaited (transactions that commit out of order)." },
      },
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
