/**
 * The CRDs against a real kube-apiserver: they install, every sample is accepted, invalid
 * manifests are refused with messages a person can act on, and kubectl prints the columns.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";
import { createNamespace, kubectl, kubectlOk } from "../support/kubectl.ts";

const samplesDir = join(REPO_ROOT, "config/samples");
let ns: string;

function sample(file: string): Record<string, any> {
  return parseAllDocuments(readFileSync(join(samplesDir, file), "utf8"))[0]!.toJS() as Record<string, any>;
}

function withSpec(base: Record<string, any>, name: string, mutate: (spec: Record<string, any>) => void): string {
  const doc = structuredClone(base);
  doc.metadata = { name };
  mutate(doc.spec);
  return stringify(doc);
}

function applyExpectingRejection(manifest: string): string {
  const res = kubectl(["apply", "-n", ns, "-f", "-"], manifest);
  expect(res.code, `expected rejection, got: ${res.stdout}`).not.toBe(0);
  return res.stderr;
}

beforeAll(() => {
  kubectlOk(["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  kubectlOk(["wait", "--for=condition=Established", "--timeout=60s", "crd/geosites.geo.replication.dev", "crd/replicabletypes.geo.replication.dev"]);
  ns = createNamespace("crds");
});

describe("CustomResourceDefinitions", () => {
  it("registers both kinds with short names and the geo category", () => {
    const out = kubectlOk(["api-resources", "--api-group=geo.replication.dev", "--no-headers"]);
    expect(out).toMatch(/^geosites\s+gsite\s+geo\.replication\.dev\/v1alpha1\s+true\s+GeoSite$/m);
    expect(out).toMatch(/^replicabletypes\s+rtype\s+geo\.replication\.dev\/v1alpha1\s+true\s+ReplicableType$/m);
    kubectlOk(["get", "geo", "-n", ns]);
  });

  it("accepts every sample in config/samples", () => {
    const files = readdirSync(samplesDir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const f of files) kubectlOk(["apply", "-n", ns, "-f", join(samplesDir, f)]);
    const sites = kubectlOk(["get", "gsite", "-n", ns, "-o", "name"]).trim().split("\n");
    expect(sites.sort()).toEqual(["geosite.geo.replication.dev/london", "geosite.geo.replication.dev/tokyo"]);
    const types = kubectlOk(["get", "rtype", "-n", ns, "-o", "name"]).trim().split("\n");
    expect(types.sort()).toEqual(["replicabletype.geo.replication.dev/cool-widget", "replicabletype.geo.replication.dev/design-repository", "replicabletype.geo.replication.dev/upload"]);
  });

  it("applies schema defaults (GitLab's capacities, Retain, intervals)", () => {
    const site = JSON.parse(kubectlOk(["get", "gsite", "london", "-n", ns, "-o", "json"]));
    expect(site.spec.capacities).toEqual({ blobs: 10, repositories: 25, verification: 100 });
    expect(site.spec.enabled).toBe(true);
    const type = JSON.parse(kubectlOk(["get", "rtype", "cool-widget", "-n", ns, "-o", "json"]));
    expect(type.spec.deletionPolicy).toBe("Retain");
    expect(type.spec.batchSizes.consistency).toBe(10000);
    expect(type.spec.verification.minimumReverificationInterval).toBe("168h");
    expect(type.spec.timeouts).toEqual({ sync: "3h", stuckStarted: "8h", missingOnPrimaryRecheck: "1h" });
    expect(type.spec.deletion).toEqual({ gracePeriod: "1h", maxPerPass: 1000, maxPercentPerPass: 10 });
  });

  it("prints NAME ROLE HEALTH SYNCED VERIFIED FAILOVER AGE for geosites", () => {
    const out = kubectlOk(["get", "geosites", "-n", ns]);
    expect(out.split("\n")[0]).toMatch(/^NAME\s+ROLE\s+HEALTH\s+SYNCED\s+VERIFIED\s+FAILOVER\s+AGE$/);
    expect(out).toMatch(/^london\s+primary\s+/m);
    expect(out).toMatch(/^tokyo\s+secondary\s+/m);
  });

  it("prints NAME STRATEGY REPLICATION VERIFICATION READY AGE for replicabletypes", () => {
    const out = kubectlOk(["get", "rtype", "-n", ns]);
    expect(out.split("\n")[0]).toMatch(/^NAME\s+STRATEGY\s+REPLICATION\s+VERIFICATION\s+READY\s+AGE$/);
    expect(out).toMatch(/^cool-widget\s+blob\s+true\s+true\s+/m);
    expect(out).toMatch(/^design-repository\s+repository\s+true\s+true\s+/m);
  });

  it("shows status written through the status subresource in the columns", () => {
    const status = { status: { health: "Healthy", synced: "97.5%", verified: "90.0%", syncedInPercentage: 97.5, verifiedInPercentage: 90 } };
    kubectlOk(["patch", "gsite", "tokyo", "-n", ns, "--subresource=status", "--type=merge", "-p", JSON.stringify(status)]);
    expect(kubectlOk(["get", "gsite", "tokyo", "-n", ns, "--no-headers"])).toMatch(/^tokyo\s+secondary\s+Healthy\s+97\.5%\s+90\.0%\s+/);
  });
});

describe("invalid manifests are rejected with a readable message", () => {
  const primary = () => sample("geosite-primary.yaml");
  const secondary = () => sample("geosite-secondary.yaml");
  const blob = () => sample("replicabletype-cool-widget.yaml");
  const repo = () => sample("replicabletype-design-repository.yaml");

  const cases: [string, () => string, RegExp][] = [
    ["unknown role", () => withSpec(primary(), "bad-role", (s) => (s.role = "tertiary")), /Unsupported value: "tertiary": supported values: "primary", "secondary"/],
    ["missing database", () => withSpec(primary(), "no-db", (s) => delete s.database), /spec\.database: Required value/],
    ["selective sync on a primary", () => withSpec(primary(), "primary-selective", (s) => (s.selectiveSync = { type: "shards", shards: ["default"] })), /selectiveSync applies to secondary sites only/],
    ["secondary without a way to read the primary DB", () => withSpec(secondary(), "no-replica", (s) => delete s.database.primaryReplicaSecretRef), /a secondary site needs database\.primaryReplicaSecretRef/],
    ["invalid bucket name", () => withSpec(primary(), "bad-bucket", (s) => (s.objectStorage.bucket = "My_Bucket")), /bucket must be a valid S3 bucket name/],
    ["unknown upload checksum", () => withSpec(secondary(), "bad-checksum", (s) => (s.objectStorage.uploadChecksum = "MD5")), /Unsupported value: "MD5": supported values: "SHA256", "None"/],
    ["object prefix escaping upwards", () => withSpec(primary(), "bad-prefix", (s) => (s.objectStorage.prefix = "uploads/../")), /prefix must not contain '\.' or '\.\.' segments/],
    ["secondary git without mirrorRoot", () => withSpec(secondary(), "no-mirror-root", (s) => (s.git = { persistentVolumeClaim: { claimName: "x" } })), /a secondary site's git section needs mirrorRoot/],
    ["namespaces selective sync without namespaces", () => withSpec(secondary(), "empty-selection", (s) => (s.selectiveSync = { type: "namespaces" })), /selectiveSync\.type 'namespaces' needs at least one entry/],
    ["zero capacity", () => withSpec(primary(), "zero-capacity", (s) => (s.capacities = { blobs: 0 })), /spec\.capacities\.blobs: Invalid value: 0: spec\.capacities\.blobs in body should be greater than or equal to 1/],
    ["type name not snake_case", () => withSpec(blob(), "camel", (s) => (s.name = "CoolWidget")), /name must be snake_case/],
    ["type name too long for PostgreSQL identifiers", () => withSpec(blob(), "long-name", (s) => (s.name = "a_very_long_widget_name")), /at most 20 characters: the registry index index_<name>_registry_on_<name>_id must fit PostgreSQL's 63-byte identifier limit/],
    ["blob type without an object key", () => withSpec(blob(), "no-key", (s) => delete s.source.objectKey), /strategy blob needs source\.objectKey/],
    ["object key with both column and template", () => withSpec(blob(), "both-key", (s) => (s.source.objectKey = { column: "path", template: "{id}" })), /set exactly one of column or template/],
    ["repository type with an object key", () => withSpec(repo(), "repo-key", (s) => (s.source.objectKey = { column: "path" })), /source\.objectKey applies to the blob strategy only/],
    ["unknown strategy", () => withSpec(blob(), "ftp", (s) => (s.strategy = "ftp")), /Unsupported value: "ftp": supported values: "blob", "repository"/],
    ["malformed interval", () => withSpec(blob(), "bad-interval", (s) => (s.intervals.sync = "5 minutes")), /must be a duration such as "30s", "10m", "1h30m" or "168h"/],
    ["hostile table name", () => withSpec(blob(), "hostile-table", (s) => (s.source.table = 'widgets"; DROP TABLE users; --')), /spec\.source\.table: Invalid value: "widgets\\"; DROP TABLE users; --": must be a lower-case SQL identifier/],
    ["retrieval server on a secondary", () => withSpec(secondary(), "secondary-retrieval", (s) => (s.fileStorage = { root: "/data", retrieval: { url: "https://files.tokyo.example", tlsSecretRef: { name: "t" } } })), /fileStorage\.retrieval applies to the primary site only/],
    ["retrieval credentials on a primary", () => withSpec(primary(), "primary-retrieval-key", (s) => (s.fileStorage = { root: "/data", retrievalCredentialsSecretRef: { name: "k" } })), /fileStorage\.retrievalCredentialsSecretRef applies to secondary sites only/],
    ["relative file root", () => withSpec(primary(), "relative-root", (s) => (s.fileStorage = { root: "data/uploads" })), /fileStorage\.root must be an absolute path/],
    ["file root with '..'", () => withSpec(secondary(), "dotdot-root", (s) => (s.fileStorage = { root: "/data/../etc" })), /fileStorage\.root must be a clean absolute path/],
    ["file root with a trailing slash", () => withSpec(secondary(), "trailing-root", (s) => (s.fileStorage = { root: "/data/" })), /fileStorage\.root must be a clean absolute path/],
    ["primary file storage without a root", () => withSpec(primary(), "rootless", (s) => (s.fileStorage = { retrieval: { url: "https://files.london.example", tlsSecretRef: { name: "t" } } })), /a primary site's fileStorage needs root/],
    ["retrieval URL over plain http", () => withSpec(primary(), "http-retrieval", (s) => (s.fileStorage = { root: "/data", retrieval: { url: "http://files.london.example", tlsSecretRef: { name: "t" } } })), /retrieval\.url must be an https:\/\/ URL/],
    ["unknown blob store", () => withSpec(blob(), "bad-store", (s) => (s.blob = { primaryStore: "Tape" })), /Unsupported value: "Tape": supported values: "ObjectStorage", "FileStorage"/],
    ["repository type with a store column", () => withSpec(repo(), "repo-store", (s) => (s.source.storeColumn = "file_store")), /source\.storeColumn applies to the blob strategy only/],
    ["repository type with blob stores", () => withSpec(repo(), "repo-blob", (s) => (s.blob = { primaryStore: "FileStorage" })), /blob applies to the blob strategy only/],
    ["namespace tree without a parent column", () => withSpec(repo(), "no-parent", (s) => delete s.source.namespaceParentColumn), /source\.namespaceTable needs both namespaceColumn and namespaceParentColumn/],
  ];

  it.each(cases)("%s", (_name, manifest, message) => {
    expect(applyExpectingRejection(manifest())).toMatch(message);
  });

  it("accepts file storage on both sides and a file-backed type with a store column, and fills defaults", () => {
    kubectlOk(["apply", "-n", ns, "-f", "-"], withSpec(primary(), "files-primary", (s) => (s.fileStorage = { root: "/var/uploads", persistentVolumeClaim: { claimName: "uploads" }, retrieval: { url: "https://files.london.example:8443", tlsSecretRef: { name: "files-tls" } } })));
    kubectlOk(["apply", "-n", ns, "-f", "-"], withSpec(secondary(), "files-secondary", (s) => (s.fileStorage = { root: "/", retrievalCredentialsSecretRef: { name: "tokyo-files-key" } })));
    kubectlOk(["apply", "-n", ns, "-f", "-"], withSpec(blob(), "files-type", (s) => {
      s.name = "upload";
      s.blob = {};
      s.source.storeColumn = "file_store";
    }));
    const site = JSON.parse(kubectlOk(["get", "gsite", "files-primary", "-n", ns, "-o", "json"]));
    expect(site.spec.fileStorage.retrieval.port).toBe(8443);
    expect(JSON.parse(kubectlOk(["get", "gsite", "files-secondary", "-n", ns, "-o", "json"])).spec.fileStorage.retrievalCredentialsSecretRef.key).toBe("key");
    expect(JSON.parse(kubectlOk(["get", "rtype", "files-type", "-n", ns, "-o", "json"])).spec.blob).toEqual({ primaryStore: "ObjectStorage", secondaryStore: "SameAsPrimary", firstVerification: "StoreChecksum" });
  });

  it("refuses to change a GeoSite's role", () => {
    kubectlOk(["apply", "-n", ns, "-f", "-"], withSpec(primary(), "immutable-role", () => undefined));
    const res = kubectl(["patch", "gsite", "immutable-role", "-n", ns, "--type=merge", "-p", '{"spec":{"role":"secondary","database":{"primaryReplicaSecretRef":{"name":"x"}}}}']);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/role is immutable; create a new GeoSite to change a site's role/);
  });

  it("refuses to rename a ReplicableType's tables", () => {
    kubectlOk(["apply", "-n", ns, "-f", "-"], withSpec(blob(), "immutable-name", () => undefined));
    const res = kubectl(["patch", "rtype", "immutable-name", "-n", ns, "--type=merge", "-p", '{"spec":{"name":"other_widget"}}']);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/name is immutable: it names the registry tables/);
  });
});
