/**
 * Renders the chart and the kustomize config with the real helm and kubectl binaries (no cluster
 * needed), for the chart tests. Shared by test/unit/chart and test/integration/chart.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { ensureTools, REPO_ROOT } from "../../../hack/localenv/tools.ts";

export const CHART_DIR = join(REPO_ROOT, "charts/geo-operator");
export const KUSTOMIZE_DEFAULT = join(REPO_ROOT, "config/default");
/** config/default with a namespace-scoped operator (the chart's rbac.namespaced=true). */
export const KUSTOMIZE_NAMESPACED = join(REPO_ROOT, "config/namespaced");
/** helm template assumes Kubernetes 1.20 without a cluster; the chart needs >= 1.30. */
export const KUBE_VERSION = "1.35.0";

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

let tools: { helm: string; kubectl: string } | undefined;
/** Paths of helm and kubectl: the env vars the integration setup sets, else hack/tools/ensure.sh. */
export function binaries(): { helm: string; kubectl: string } {
  if (!tools) {
    const { GEO_TEST_HELM: helm, GEO_TEST_KUBECTL: kubectl } = process.env;
    tools = helm && kubectl ? { helm, kubectl } : ensureTools(["helm", "kubectl"]);
  }
  return tools;
}

export function run(binary: string, args: string[], input?: string): RunResult {
  const res = spawnSync(binary, args, { encoding: "utf8", input, timeout: 120_000, cwd: REPO_ROOT });
  return { code: res.status ?? -1, stdout: res.stdout ?? "", stderr: res.stderr ?? "" };
}

export function helm(args: string[]): RunResult {
  return run(binaries().helm, args);
}

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => !!m && typeof m === "object" && "kind" in m);
}

/** `helm template` of the chart; `set` holds --set expressions. Throws with helm's stderr on failure. */
export function helmTemplate(opts: { release?: string; namespace?: string; set?: string[]; includeCrds?: boolean } = {}): Manifest[] {
  const res = helmTemplateRaw(opts);
  if (res.code !== 0) throw new Error(`helm template failed (${res.code}): ${res.stderr}`);
  return parseManifests(res.stdout);
}

export function helmTemplateRaw(opts: { release?: string; namespace?: string; set?: string[]; includeCrds?: boolean } = {}): RunResult {
  const args = ["template", opts.release ?? "geo-operator", CHART_DIR, "--namespace", opts.namespace ?? "geo-operator-system", "--kube-version", KUBE_VERSION];
  if (opts.includeCrds) args.push("--include-crds");
  for (const s of opts.set ?? []) args.push("--set", s);
  return helm(args);
}

/** `kubectl kustomize <dir>`. */
export function kustomize(dir = KUSTOMIZE_DEFAULT): Manifest[] {
  const res = run(binaries().kubectl, ["kustomize", dir]);
  if (res.code !== 0) throw new Error(`kubectl kustomize ${dir} failed (${res.code}): ${res.stderr}`);
  return parseManifests(res.stdout);
}

export function find(manifests: Manifest[], kind: string, name?: string): Manifest | undefined {
  return manifests.find((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
}

export function get(manifests: Manifest[], kind: string, name?: string): Manifest {
  const m = find(manifests, kind, name);
  if (!m) throw new Error(`no ${kind}${name ? ` ${name}` : ""} among ${manifests.map((x) => `${x.kind}/${x.metadata.name}`).join(", ")}`);
  return m;
}

export interface RbacRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

/** Rules flattened to "group|resource|verb" strings, sorted (resourceNames are not used). */
export function flattenRules(rules: RbacRule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    if (r.nonResourceURLs?.length) throw new Error("nonResourceURLs are not expected in geo-operator's roles");
    // A rule confined to named objects still grants its verb; the name is checked where it matters.
    for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs) out.add(`${g}|${res}|${v}`);
  }
  return [...out].sort();
}
