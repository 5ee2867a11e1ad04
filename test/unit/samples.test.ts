/**
 * The sample Secrets are what a user applies first: every Secret a sample GeoSite names must be in
 * config/samples/secrets.yaml, opted in with the credentials label (the operator reads no other
 * Secret), with the key the reference names. The e2e writes its own Secrets (its endpoints are
 * the node's), so without this a broken sample file would fail no test.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { REPO_ROOT } from "../../hack/localenv/tools.ts";

const SAMPLES = join(REPO_ROOT, "config/samples");
const CREDENTIALS_LABEL = "geo.replication.dev/credentials";

interface SecretDoc {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  stringData?: Record<string, string>;
  data?: Record<string, string>;
}

/** Every `…SecretRef` / `secretRef` in a spec, with the path it was found at. */
function secretRefs(value: unknown, path: string, out: { path: string; name: string; key?: string }[]): void {
  if (!value || typeof value !== "object") return;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if ((k === "secretRef" || k.endsWith("SecretRef")) && v && typeof v === "object") {
      const ref = v as { name: string; key?: string };
      out.push({ path: `${path}.${k}`, name: ref.name, ...(ref.key ? { key: ref.key } : {}) });
    } else secretRefs(v, `${path}.${k}`, out);
  }
}

describe("config/samples", () => {
  const secrets = new Map(
    parseAllDocuments(readFileSync(join(SAMPLES, "secrets.yaml"), "utf8"))
      .map((d) => d.toJS() as SecretDoc)
      .filter((d) => d?.kind === "Secret")
      .map((d) => [d.metadata.name, d]),
  );
  const sites = readdirSync(SAMPLES)
    .filter((f) => f.startsWith("geosite-") && f.endsWith(".yaml"))
    .map((f) => ({ file: f, doc: parseAllDocuments(readFileSync(join(SAMPLES, f), "utf8"))[0]!.toJS() as { spec: unknown } }));

  it("has GeoSites that name Secrets", () => {
    expect(sites.length).toBeGreaterThanOrEqual(2);
  });

  it("define every Secret a sample GeoSite names, opted in with the credentials label, with the key it names", () => {
    const refs: { path: string; name: string; key?: string }[] = [];
    for (const s of sites) secretRefs(s.doc.spec, s.file, refs);
    expect(refs.length).toBeGreaterThan(4);
    for (const ref of refs) {
      const secret = secrets.get(ref.name);
      expect(secret, `${ref.path} names Secret ${ref.name}, which secrets.yaml does not define`).toBeDefined();
      expect(secret!.metadata.labels?.[CREDENTIALS_LABEL], `Secret ${ref.name} lacks the ${CREDENTIALS_LABEL}: "true" label`).toBe("true");
      if (ref.key) expect(Object.keys({ ...secret!.stringData, ...secret!.data }), `${ref.path}: key ${ref.key}`).toContain(ref.key);
    }
  });
});
