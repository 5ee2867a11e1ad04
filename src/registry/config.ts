/**
 * The plain input of the registry layer. The controller builds it from a
 * ReplicableType custom resource; nothing here knows about Kubernetes or strategies.
 */

/**
 * The shape of GitLab's `<name>_states` table, which GitLab's templates choose per strategy and
 * the strategy's definition names: `keyed-by-model-id` (the blob template: the model id is the
 * primary key) or `serial-id` (the repository template: a bigserial id, a unique model id and a
 * NOT NULL retry count).
 */
export type StatesLayout = "keyed-by-model-id" | "serial-id";
export const STATES_LAYOUTS: readonly StatesLayout[] = ["keyed-by-model-id", "serial-id"];

export interface ReplicableTypeSchemaConfig {
  /** snake_case singular, e.g. "cool_widget"; at most 20 characters. */
  name: string;
  /** snake_case plural, e.g. "cool_widgets". Defaults to `${name}s`. */
  plural?: string;
  statesLayout: StatesLayout;
  source: {
    /** Schema of the model table on the primary. Defaults to "public". */
    schema?: string;
    /** The model table on the primary, e.g. "cool_widgets". */
    table: string;
    /** bigint primary key of the model table. Defaults to "id". */
    idColumn?: string;
    /** Column holding the record's namespace id (selective sync by namespace). */
    namespaceColumn?: string;
    /** Table holding the namespace tree, e.g. "namespaces". */
    namespaceTable?: string;
    /** Parent column in namespaceTable; when set, selecting a namespace selects its descendants. */
    namespaceParentColumn?: string;
    /** text column naming the storage shard (selective sync by shard). */
    shardColumn?: string;
  };
  deletionPolicy: "Retain" | "Delete";
  /** Whether checksums are computed and compared. Defaults to true. */
  verificationEnabled?: boolean;
  /** trigger (default): triggers on the model table write the event log; none: scanning only. */
  changeCapture?: ChangeCapture;
  /**
   * Model columns whose change is an "updated" event (the columns the strategy reads, plus the
   * selective sync columns). Without any, only inserts and deletes are captured.
   */
  captureColumns?: readonly string[];
}

export type ChangeCapture = "trigger" | "none";

/** A secondary site's selective sync setting, as in GitLab's GeoNode. */
export interface SelectiveSync {
  type: "" | "namespaces" | "shards";
  /** Selected namespace ids (type "namespaces"). */
  namespaces?: number[];
  /** Selected shard names (type "shards"). */
  shards?: string[];
}

export const SYNC_EVERYTHING: SelectiveSync = { type: "" };

/** Which database a schema belongs to. */
export type SchemaRole = "primary" | "secondary";

/** The config with every default filled in; produced by `resolveConfig`. */
export interface ResolvedTypeConfig {
  name: string;
  plural: string;
  statesLayout: StatesLayout;
  source: {
    schema: string;
    table: string;
    idColumn: string;
    namespaceColumn?: string;
    namespaceTable?: string;
    namespaceParentColumn?: string;
    shardColumn?: string;
  };
  deletionPolicy: "Retain" | "Delete";
  verificationEnabled: boolean;
  changeCapture: ChangeCapture;
  /** Sorted, de-duplicated, never the id column. */
  captureColumns: string[];
}
