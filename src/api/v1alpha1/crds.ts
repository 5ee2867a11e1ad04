/**
 * The single source of truth for both CustomResourceDefinitions. `npm run generate` renders
 * crds/*.yaml, the Helm chart's copy and types.generated.ts from these objects; a unit test fails
 * when any rendered file differs from what is committed.
 */
import { GROUP, VERSION, type JSONSchema } from "./common.ts";
import { geoSiteSpec, geoSiteStatus } from "./geosite.ts";
import { replicableTypeSpec, replicableTypeStatus } from "./replicabletype.ts";

interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: JSONSchema;
  status: JSONSchema;
  printerColumns: PrinterColumn[];
}

export const KINDS: KindDefinition[] = [
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
