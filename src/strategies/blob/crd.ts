/**
 * What the blob strategy adds to the CRDs: a site's object storage (S3) and file storage (a
 * directory, usually a mounted PersistentVolumeClaim, optionally served to secondaries over HTTPS),
 * and a type's choice of store on each side (`spec.blob`, `source.storeColumn`).
 */
import { capacity, columnOrTemplate, matches, secretKeyRef, secretName, sqlIdentifier, type JSONSchema } from "../../api/v1alpha1/common.ts";
import { sourceFieldRules, type StrategyCrdFragment } from "../../api/v1alpha1/crds.ts";

export const SYNC_CAPACITY = 10;
/** Where the retrieval server listens unless `fileStorage.retrieval.port` says otherwise. */
export const DEFAULT_RETRIEVAL_PORT = 8443;

const objectStorage: JSONSchema = {
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
    uploadChecksum: {
      type: "string",
      enum: ["SHA256", "None"],
      default: "SHA256",
      description:
        "What a copy written to this store carries for the store to check before it commits it. SHA256: the copy's SHA-256 (x-amz-checksum-sha256; objects over 8 MiB send it as an aws-chunked trailer), which the store verifies and keeps, so a corrupt write is refused and a first verification can use the store's checksum. None: for S3-compatible stores that refuse those headers (older Ceph RGW and some hosted services answer NotImplemented or InvalidArgument); copies up to 8 MiB carry Content-MD5 instead, larger ones only their length, and every first verification reads the copy back.",
    },
    credentialsSecretRef: {
      type: "object",
      required: ["name"],
      description: "Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
      properties: { name: secretName },
    },
  },
};

const fileStorage: JSONSchema = {
  type: "object",
  description: "A directory holding this site's blobs as files (GitLab's local storage), usually a mounted PersistentVolumeClaim.",
  properties: {
    root: {
      type: "string",
      maxLength: 1024,
      description:
        "Absolute path of the directory in worker pods (where persistentVolumeClaim is mounted); object keys are paths relative to it. Required on a primary; a secondary that keeps its copies in object storage only needs retrievalCredentialsSecretRef.",
      "x-kubernetes-validations": [
        { rule: "self.startsWith('/')", message: "fileStorage.root must be an absolute path" },
        {
          rule: "self == '/' || (!self.endsWith('/') && !self.contains('//') && !self.split('/').exists(s, s == '..' || s == '.'))",
          message: "fileStorage.root must be a clean absolute path: no '.' or '..' segments, no '//', no trailing '/'",
        },
      ],
    },
    persistentVolumeClaim: {
      type: "object",
      required: ["claimName"],
      description: "PVC mounted at root in worker Jobs: read-only for the primary's files, read-write on a secondary.",
      properties: { claimName: { ...secretName, description: "Name of a PersistentVolumeClaim in the same namespace." } },
    },
    retrieval: {
      type: "object",
      required: ["url", "tlsSecretRef"],
      description: "Primary only: serve the files over HTTPS to authenticated secondaries that cannot mount the volume (GitLab Geo's retrieve API).",
      properties: {
        url: {
          type: "string",
          maxLength: 2048,
          "x-kubernetes-validations": matches("^https://[^\\s/]+/?$", "retrieval.url must be an https:// URL without a path, e.g. https://files.london.example:8443"),
          description: "What secondaries connect to, e.g. https://files.london.example:8443.",
        },
        port: { type: "integer", minimum: 1, maximum: 65535, default: DEFAULT_RETRIEVAL_PORT, description: `Port the server listens on (default ${DEFAULT_RETRIEVAL_PORT}).` },
        tlsSecretRef: {
          type: "object",
          required: ["name"],
          description: "kubernetes.io/tls Secret with tls.crt and tls.key (and ca.crt); secondaries read ca.crt from a Secret of the same name in their namespace.",
          properties: { name: secretName },
        },
      },
    },
    retrievalCredentialsSecretRef: secretKeyRef(
      "key",
      "Secondary only: this site's key for the primary's retrieval server (at least 32 characters); the primary's server reads a Secret of the same name in its namespace.",
    ),
  },
};

const blobTypeSettings: JSONSchema = {
  type: "object",
  description: "Where the blobs of this type are kept on each side.",
  properties: {
    primaryStore: {
      type: "string",
      enum: ["ObjectStorage", "FileStorage"],
      default: "ObjectStorage",
      description: "The primary GeoSite's store holding the blobs (objectStorage or fileStorage); source.storeColumn overrides it per record.",
    },
    secondaryStore: {
      type: "string",
      enum: ["SameAsPrimary", "ObjectStorage", "FileStorage"],
      default: "SameAsPrimary",
      description: "The secondary GeoSite's store copies go to; SameAsPrimary keeps each record in the same kind of store as on the primary.",
    },
    firstVerification: {
      type: "string",
      enum: ["StoreChecksum", "ReadBack"],
      default: "StoreChecksum",
      description:
        "How a copy in object storage is verified the first time after it was written. StoreChecksum compares the primary's checksum with the SHA-256 the secondary's store checked when the copy was uploaded (x-amz-checksum-sha256, read with a HEAD); a copy without one is read back. ReadBack always reads every byte. Re-verification always reads every byte.",
    },
  },
};

export const blobCrd: StrategyCrdFragment = {
  name: "blob",
  summary: "objects in S3-compatible storage or files on a volume",
  replicableType: {
    source: {
      objectKey: columnOrTemplate("object key (blob strategy: also the file's path under fileStorage.root)", "widgets/{id}/{file_name}"),
      storeColumn: sqlIdentifier(
        "Blob strategy: column saying where each record's blob is on the primary, GitLab's file_store (1 = fileStorage, 2 = objectStorage); overrides blob.primaryStore.",
      ),
    },
    spec: { blob: blobTypeSettings },
    rules: [
      ...sourceFieldRules("blob", "objectKey", "strategy blob needs source.objectKey (a column or template that yields each object's key)"),
      { rule: "self.strategy == 'blob' || !has(self.source.storeColumn)", message: "source.storeColumn applies to the blob strategy only" },
      { rule: "self.strategy == 'blob' || !has(self.blob)", message: "blob applies to the blob strategy only" },
    ],
  },
  geoSite: {
    spec: { objectStorage, fileStorage },
    capacities: { blobs: capacity(SYNC_CAPACITY, "Blobs copied at once by one sync Job pod") },
    rules: [
      { rule: "!has(self.fileStorage) || self.role == 'secondary' || has(self.fileStorage.root)", message: "a primary site's fileStorage needs root (where its files are)" },
      { rule: "!has(self.fileStorage) || !has(self.fileStorage.persistentVolumeClaim) || has(self.fileStorage.root)", message: "fileStorage.persistentVolumeClaim needs root (where the volume is mounted)" },
      { rule: "!has(self.fileStorage) || !has(self.fileStorage.retrieval) || self.role == 'primary'", message: "fileStorage.retrieval applies to the primary site only (it serves the primary's files)" },
      {
        rule: "!has(self.fileStorage) || !has(self.fileStorage.retrievalCredentialsSecretRef) || self.role == 'secondary'",
        message: "fileStorage.retrievalCredentialsSecretRef applies to secondary sites only (their key for the primary's retrieval server)",
      },
    ],
  },
};
