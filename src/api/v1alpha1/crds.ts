/**
 * The strategy-independent half of both CustomResourceDefinitions, and `assembleKinds`, which
 * merges each strategy's fragment into it. The strategies own their fragments
 * (src/strategies/<name>/definition.ts); src/strategies/crds.ts assembles the kinds, from which
 * `npm run generate` renders crds/*.yaml, the Helm chart's copy and types.generated.ts. A unit
 * test fails when any rendered file differs from what is committed.
 *
 * This module never imports a strategy: the API is the lower layer, and it only offers the merge.
 */
import { GROUP, VERSION, type JSONSchema, type Validation } from "./common.ts";
import { geoSiteSpec, geoSiteStatus } from "./geosite.ts";
import { replicableTypeSpec, replicableTypeStatus } from "./replicabletype.ts";

interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: JSONSchema;
  status: JSONSchema;
  printerColumns: PrinterColumn[];
}

const BASE_KINDS: readonly KindDefinition[] = [
  {
    kind: "GeoSite",
    plural: "geosites",
    singular: "geosite",
    shortNames: ["gsite"],
    description: "A site taking part in Geo replication: exactly one primary, any number of secondaries.",
    spec: geoSiteSpec,
    status: geoSiteStatus,
    printerColumns: [
      { name: "Role", type: "string", jsonPath: ".spec.role" },
      { name: "Health", type: "string", jsonPath: ".status.health" },
      { name: "Synced", type: "string", jsonPath: ".status.synced", description: "Synced percentage over all types" },
      { name: "Verified", type: "string", jsonPath: ".status.verified", description: "Verified percentage over all types" },
      { name: "Failover", type: "string", jsonPath: '.status.conditions[?(@.type=="FailoverReady")].status', description: "Secondary: True when the FailoverReady condition says it could be promoted now" },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    ],
  },
  {
    kind: "ReplicableType",
    plural: "replicabletypes",
    singular: "replicabletype",
    shortNames: ["rtype"],
    description: "One kind of data replicated between sites: a table of blobs in object storage or a set of git repositories.",
    spec: replicableTypeSpec,
    status: replicableTypeStatus,
    printerColumns: [
      { name: "Strategy", type: "string", jsonPath: ".spec.strategy" },
      { name: "Replication", type: "boolean", jsonPath: ".spec.replication.enabled" },
      { name: "Verification", type: "boolean", jsonPath: ".spec.verification.enabled" },
      { name: "Ready", type: "string", jsonPath: ".status.conditions[?(@.type==\"Ready\")].status" },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    ],
  },
];

/** What one strategy adds to the two kinds. Every property name must be new to the kind. */
export interface StrategyCrdFragment {
  /** The value of ReplicableType `spec.strategy` that selects this strategy. */
  name: string;
  /** One sentence for the `strategy` field's description, e.g. "objects in S3-compatible storage". */
  summary: string;
  replicableType: {
    /** Properties added to `spec.source` (where each record's data is, e.g. objectKey). */
    source?: Record<string, JSONSchema>;
    /** Type-level settings added to `spec` (e.g. `repository`). */
    spec?: Record<string, JSONSchema>;
    /** CEL rules on `spec`, e.g. the ones `sourceFieldRules` writes. */
    rules?: Validation[];
  };
  geoSite: {
    /** Properties added to the GeoSite `spec` (the storage this strategy needs on a site). */
    spec?: Record<string, JSONSchema>;
    /** Entries added to `spec.capacities`. */
    capacities?: Record<string, JSONSchema>;
    /** CEL rules on the GeoSite `spec`. */
    rules?: Validation[];
  };
}

/**
 * The two rules that tie a `source` field to one strategy: a type of the strategy must set it,
 * a type of any other strategy must not.
 */
export function sourceFieldRules(strategy: string, field: string, requiredMessage: string): Validation[] {
  return [
    { rule: `self.strategy != '${strategy}' || has(self.source.${field})`, message: requiredMessage },
    { rule: `self.strategy == '${strategy}' || !has(self.source.${field})`, message: `source.${field} applies to the ${strategy} strategy only` },
  ];
}

function mergeProperties(where: string, base: Record<string, JSONSchema> | undefined, added: Record<string, JSONSchema> | undefined): Record<string, JSONSchema> {
  for (const key of Object.keys(added ?? {})) {
    if (base && key in base) throw new Error(`${where}.${key} is declared twice (by the base schema or another strategy)`);
  }
  return { ...base, ...added };
}

/** Both kinds with every strategy's fragment merged in; `strategy` accepts exactly their names. */
export function assembleKinds(strategies: readonly StrategyCrdFragment[]): KindDefinition[] {
  const names = strategies.map((s) => s.name);
  if (new Set(names).size !== names.length) throw new Error(`strategy names must be unique: ${names.join(", ")}`);
  return BASE_KINDS.map((kind) => {
    const spec = structuredClone(kind.spec);
    const props = spec.properties!;
    const rules: Validation[] = [...(spec["x-kubernetes-validations"] ?? [])];
    for (const s of strategies) {
      if (kind.kind === "ReplicableType") {
        const source = props.source!;
        source.properties = mergeProperties("spec.source", source.properties, s.replicableType.source);
        spec.properties = mergeProperties("spec", spec.properties, s.replicableType.spec);
        rules.push(...(s.replicableType.rules ?? []));
      } else {
        spec.properties = mergeProperties("spec", spec.properties, s.geoSite.spec);
        const capacities = spec.properties.capacities!;
        capacities.properties = mergeProperties("spec.capacities", capacities.properties, s.geoSite.capacities);
        rules.push(...(s.geoSite.rules ?? []));
      }
    }
    if (kind.kind === "ReplicableType") {
      const strategy = spec.properties!.strategy!;
      strategy.enum = names;
      strategy.description = `${strategies.map((s) => `${s.name}: ${s.summary}.`).join(" ")} ${strategy.description ?? ""}`.trim();
    }
    if (rules.length) spec["x-kubernetes-validations"] = rules;
    return { ...kind, spec };
  });
}

/** The CustomResourceDefinition object for one kind, as applied to the API server. */
export function customResourceDefinition(def: KindDefinition): Record<string, unknown> {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${def.plural}.${GROUP}`,
      labels: { "app.kubernetes.io/name": "geo-operator", "app.kubernetes.io/part-of": "geo-operator" },
    },
    spec: {
      group: GROUP,
      scope: "Namespaced",
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: ["geo"],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: def.description,
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: def.spec,
                status: def.status,
              },
            },
          },
        },
      ],
    },
  };
}
