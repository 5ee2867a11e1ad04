import { conditions, duration, matches, sqlIdentifier, type JSONSchema } from "./common.ts";

/**
 * The longest identifier derived from a type name is the registry's unique index,
 * `index_<name>_registry_on_<name>_id`: 2·len + 22 bytes, which must fit PostgreSQL's 63.
 */
export const MAX_TYPE_NAME_LENGTH = 20;
export const SNAKE_CASE = "^[a-z][a-z0-9]*(_[a-z0-9]+)*$";

/**
 * The ReplicableType spec without any strategy: `strategy` has no enum yet, and `source` lacks the
 * strategies' own fields (objectKey, repositoryPath...). crds.ts merges each strategy's fragment in.
 */
export const replicableTypeSpec: JSONSchema = {
  type: "object",
  required: ["name", "strategy", "source"],
  properties: {
    name: {
      type: "string",
      minLength: 1,
      // The real limit is the CEL rule below; this bound only keeps rule costs estimable.
      maxLength: 253,
      description:
        "Singular snake_case name such as cool_widget. Tables <name>_registry and <name>_states are derived from it, so it is at most 20 characters (PostgreSQL's 63-byte identifier limit). Immutable.",
      "x-kubernetes-validations": [
        ...matches(SNAKE_CASE, "name must be snake_case: lower-case letters and digits in words joined by single underscores, starting with a letter (e.g. cool_widget)"),
        {
          rule: `size(self) <= ${MAX_TYPE_NAME_LENGTH}`,
          message: `name must be at most ${MAX_TYPE_NAME_LENGTH} characters: the registry index index_<name>_registry_on_<name>_id must fit PostgreSQL's 63-byte identifier limit`,
        },
        { rule: "self == oldSelf", message: "name is immutable: it names the registry tables" },
      ],
    },
    plural: {
      type: "string",
      minLength: 1,
      maxLength: 64,
      "x-kubernetes-validations": matches(SNAKE_CASE, "plural must be snake_case (e.g. design_repositories)"),
      description: "Plural used in metric and status names (geo_<plural>_synced). Defaults to name + \"s\"; set it for irregular plurals (design_repository → design_repositories).",
    },
    strategy: {
      type: "string",
      description: "Immutable.",
      "x-kubernetes-validations": [{ rule: "self == oldSelf", message: "strategy is immutable" }],
    },
    source: {
      type: "object",
      description: "The model table on the primary's main database: one row per replicable.",
      required: ["table"],
      properties: {
        schema: sqlIdentifier("Schema of the model table.", "public"),
        table: sqlIdentifier("Model table, e.g. cool_widgets."),
        idColumn: sqlIdentifier("Primary key column (bigint).", "id"),
        namespaceColumn: sqlIdentifier("Column with the record's namespace id, for selective sync by namespace."),
        namespaceTable: sqlIdentifier("Table of namespaces (id, parent) so that selective sync includes descendants."),
        namespaceParentColumn: sqlIdentifier("Parent column in namespaceTable."),
        shardColumn: sqlIdentifier("Column naming the record's storage shard, for selective sync by shard."),
      },
      "x-kubernetes-validations": [
        { rule: "!has(self.namespaceTable) || (has(self.namespaceColumn) && has(self.namespaceParentColumn))", message: "source.namespaceTable needs both namespaceColumn and namespaceParentColumn" },
        { rule: "!has(self.namespaceParentColumn) || has(self.namespaceTable)", message: "source.namespaceParentColumn needs source.namespaceTable" },
      ],
    },
    replication: {
      type: "object",
      default: {},
      description: "GitLab's geo_<name>_replication feature flag.",
      properties: { enabled: { type: "boolean", default: true } },
    },
    verification: {
      type: "object",
      default: {},
      description: "GitLab's geo_<name>_verification feature flag and re-verification period.",
      properties: {
        enabled: { type: "boolean", default: true },
        minimumReverificationInterval: duration("168h", "Succeeded checksums older than this are computed again."),
      },
    },
    intervals: {
      type: "object",
      default: {},
      description: "How often each Job runs.",
      properties: {
        sync: duration("1m", "Secondary sync."),
        verification: duration("1m", "Secondary verification."),
        primaryVerification: duration("1m", "Primary checksumming."),
        consistency: duration("10m", "Registry consistency (new and deleted records)."),
      },
    },
    batchSizes: {
      type: "object",
      default: {},
      properties: {
        consistency: { type: "integer", minimum: 100, maximum: 1000000, default: 10000, description: "Ids per keyset batch." },
        backfill: { type: "integer", minimum: 100, maximum: 1000000, default: 10000, description: "State rows created per batch on the primary." },
      },
    },
    timeouts: {
      type: "object",
      default: {},
      properties: {
        sync: duration("3h", "A single object or repository sync that runs longer fails and is retried. Worker Jobs get a deadline of at least this plus their run time, so a large item is never killed mid-copy."),
        stuckStarted: duration("8h", "Rows left in started longer than this return to failed."),
        missingOnPrimaryRecheck: duration("1h", "Rows synced as missing on the primary are synced again after this long, in case the data has appeared."),
      },
    },
    parallelism: {
      type: "integer",
      minimum: 1,
      maximum: 64,
      default: 1,
      description: "Pods per Job; above 1 an Indexed Job whose pods share the work.",
    },
    deletion: {
      type: "object",
      default: {},
      description:
        "When a secondary may remove a copy whose record is gone from the primary. A copy is removed only when two consistency passes at least gracePeriod apart found the record gone, and never when a pass finds an implausible picture (the replica not proven to be this primary's or lagging, the primary returning no rows, or more gone at once than the limits below): then every deletion of the type on that site is held until a person releases it.",
      properties: {
        gracePeriod: duration("1h", "Least time between the two passes that must both find a record gone. \"0s\" is allowed for tests and is unsafe: a replica that is briefly wrong can then delete copies."),
        maxPerPass: { type: "integer", minimum: 0, maximum: 100000000, default: 1000, description: "More records gone in one pass than this holds all deletions (like rclone's --max-delete)." },
        maxPercentPerPass: {
          type: "integer",
          minimum: 0,
          maximum: 100,
          default: 10,
          description: "A larger share of the registry gone in one pass holds all deletions (applies above 10 records).",
        },
      },
    },
    changeCapture: {
      type: "string",
      enum: ["trigger", "none"],
      default: "trigger",
      description:
        "How secondaries learn of changes. trigger: triggers on the model table write created/updated/deleted events into the operator's event log on the primary, and each site's log cursor acts on them within seconds (changes the database cannot see are published with geo-operator event publish). none: no triggers; new and deleted records are found by consistency passes only. Scanning stays the safety net either way.",
    },
    deletionPolicy: {
      type: "string",
      enum: ["Retain", "Delete"],
      default: "Retain",
      description: "Retain keeps registry and state tables when this ReplicableType is deleted; Delete drops them. Replicated data and primary data are never touched either way.",
    },
  },
};

const jobRecord: JSONSchema = {
  type: "object",
  required: ["site", "kind"],
  properties: {
    site: { type: "string" },
    kind: { type: "string", enum: ["verify-primary", "sync", "verify", "consistency"] },
    jobName: { type: "string" },
    result: { type: "string", enum: ["Running", "Succeeded", "Failed"] },
    startTime: { type: "string", format: "date-time" },
    completionTime: { type: "string", format: "date-time" },
    message: { type: "string" },
  },
};

export const replicableTypeStatus: JSONSchema = {
  type: "object",
  properties: {
    observedGeneration: { type: "integer", format: "int64" },
    lastTrigger: { type: "string", description: "The geo.replication.dev/trigger annotation value last acted on." },
    lastDeletionRelease: { type: "string", description: "The geo.replication.dev/release-deletions annotation value last acted on." },
    sites: {
      type: "array",
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["name"],
      items: {
        type: "object",
        required: ["name", "ready"],
        properties: {
          name: { type: "string" },
          role: { type: "string", enum: ["primary", "secondary"] },
          ready: { type: "boolean" },
          reason: { type: "string" },
          message: { type: "string" },
          schemaVersion: { type: "integer" },
          heldDeletions: { type: "integer", format: "int64", minimum: 0, description: "Copies whose deletion is held on this secondary (see conditions)." },
          holdReason: { type: "string" },
        },
      },
    },
    lastJobs: {
      type: "array",
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["site", "kind"],
      items: jobRecord,
    },
    conditions,
  },
};
