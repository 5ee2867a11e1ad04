/**
 * Schema fragments shared by both kinds. Everything here is plain data in the shape of an
 * apiextensions.k8s.io/v1 structural schema; `crds.ts` assembles the kinds from it.
 */
export type JSONSchema = {
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  description?: string;
  properties?: Record<string, JSONSchema>;
  required?: string[];
  items?: JSONSchema;
  enum?: (string | number | boolean)[];
  default?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  additionalProperties?: boolean | JSONSchema;
  "x-kubernetes-validations"?: { rule: string; message: string; reason?: string; fieldPath?: string }[];
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-preserve-unknown-fields"?: boolean;
};

export type Validation = NonNullable<JSONSchema["x-kubernetes-validations"]>[number];

export const GROUP = "geo.replication.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

/**
 * A string rule whose failure message a person can act on. The API server's own message for
 * `pattern` only repeats the regular expression, so patterns are written as CEL rules instead.
 */
export function matches(regex: string, message: string): NonNullable<JSONSchema["x-kubernetes-validations"]> {
  if (regex.includes("'")) throw new Error("regex must not contain a single quote");
  return [{ rule: `self.matches(r'${regex}')`, message }];
}

/** Kubernetes object names for Secrets: RFC 1123 subdomain. */
export const secretName: JSONSchema = {
  type: "string",
  minLength: 1,
  maxLength: 253,
  description: "Name of a Secret in the same namespace.",
  "x-kubernetes-validations": matches(
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    "must be a valid Secret name: lower-case letters, digits, '-' and '.'",
  ),
};

export function secretKeyRef(defaultKey: string, description: string): JSONSchema {
  return {
    type: "object",
    description,
    required: ["name"],
    properties: {
      name: secretName,
      key: {
        type: "string",
        default: defaultKey,
        minLength: 1,
        maxLength: 253,
        pattern: "^[-._a-zA-Z0-9]+$",
        description: `Key inside the Secret (default "${defaultKey}").`,
      },
    },
  };
}

/** Go-style durations limited to the units that make sense for schedules: "90s", "10m", "1h30m". */
export function duration(defaultValue: string, description: string): JSONSchema {
  return {
    type: "string",
    default: defaultValue,
    maxLength: 32,
    "x-kubernetes-validations": matches("^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$", 'must be a duration such as "30s", "10m", "1h30m" or "168h"'),
    description: `${description} A duration such as "30s", "10m" or "168h" (default "${defaultValue}").`,
  };
}

/** SQL identifiers we quote ourselves; still restricted so that a typo cannot reach a database. */
export function sqlIdentifier(description: string, defaultValue?: string): JSONSchema {
  return {
    type: "string",
    description,
    maxLength: 63,
    "x-kubernetes-validations": matches(
      "^[a-z_][a-z0-9_]*$",
      "must be a lower-case SQL identifier (letters, digits and underscores, not starting with a digit), at most 63 bytes",
    ),
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
  };
}

export const conditions: JSONSchema = {
  type: "array",
  description: "Standard Kubernetes conditions; `Ready` summarises the others.",
  "x-kubernetes-list-type": "map",
  "x-kubernetes-list-map-keys": ["type"],
  items: {
    type: "object",
    required: ["type", "status", "lastTransitionTime", "reason", "message"],
    properties: {
      type: { type: "string", maxLength: 316, pattern: "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$" },
      status: { type: "string", enum: ["True", "False", "Unknown"] },
      observedGeneration: { type: "integer", format: "int64", minimum: 0 },
      lastTransitionTime: { type: "string", format: "date-time" },
      reason: { type: "string", maxLength: 1024, minLength: 1, pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$" },
      message: { type: "string", maxLength: 32768 },
    },
  },
};

/** `{column}` placeholders in key and path templates. */
const TEMPLATE = "^([^{}]|\\{[a-z_][a-z0-9_]*\\})+$";

/** Where each record's key or path comes from: one column, or a template over columns. */
export const columnOrTemplate = (what: string, example: string): JSONSchema => ({
  type: "object",
  description: `Where each record's ${what} comes from: one column, or a template over columns such as "${example}".`,
  properties: {
    column: sqlIdentifier(`Column holding the ${what}.`),
    template: {
      type: "string",
      minLength: 1,
      maxLength: 1024,
      "x-kubernetes-validations": matches(TEMPLATE, "template may contain only text and {column} placeholders with lower-case column names"),
      description: `Template with {column} placeholders, e.g. "${example}".`,
    },
  },
  "x-kubernetes-validations": [
    { rule: "has(self.column) != has(self.template)", message: `set exactly one of column or template for the ${what}` },
  ],
});

/** One of a GeoSite's `capacities`: how many items one Job pod handles at once. */
export const capacity = (def: number, what: string): JSONSchema => ({
  type: "integer",
  minimum: 1,
  maximum: 10000,
  default: def,
  description: `${what} (GitLab's default: ${def}).`,
});
