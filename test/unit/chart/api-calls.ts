/**
 * The Kubernetes API permissions the operator's code needs, derived from its source by scanning
 * every module the manager process loads (the import graph from cmd/commands/manager.ts; worker
 * pods get no token and the kubectl plugin runs as its user) for the calls it makes:
 *
 * - @kubernetes/client-node methods, named <verb><Namespaced|Cluster|><Kind><ForAllNamespaces|Status|>
 *   (readNamespacedSecret → secrets get, replaceNamespacedLease → leases update, ...);
 * - custom object methods (patchNamespacedCustomObjectStatus, ...), whose plural is an argument:
 *   it is read from the call sites of the function that wraps the call (PLURALS.X arguments);
 * - informers (`new Informer({ path })`): list through their `list` callback, watch on `path`;
 * - owner references with blockOwnerDeletion, which need `update` on <owner>/finalizers.
 *
 * A client method this file cannot map throws: add it here, then to the chart's ClusterRole.
 */
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { GROUP, PLURALS } from "../../../src/api/v1alpha1/resources.ts";
import { REPO_ROOT } from "../../../hack/localenv/tools.ts";

export interface ApiUse {
  /** "group|resource|verb", e.g. "batch|jobs|create". */
  permission: string;
  /** file:line of the call that needs it. */
  where: string;
}

/** Kinds of the built-in APIs the operator calls, with their API group. */
const BUILTIN_KINDS: Record<string, { group: string; resource: string }> = {
  Secret: { group: "", resource: "secrets" },
  Event: { group: "", resource: "events" },
  Job: { group: "batch", resource: "jobs" },
  Deployment: { group: "apps", resource: "deployments" },
  Service: { group: "", resource: "services" },
  Lease: { group: "coordination.k8s.io", resource: "leases" },
  Pod: { group: "", resource: "pods" },
  ConfigMap: { group: "", resource: "configmaps" },
  Namespace: { group: "", resource: "namespaces" },
  SubjectAccessReview: { group: "authorization.k8s.io", resource: "subjectaccessreviews" },
};

const VERB_OF_PREFIX: Record<string, string> = {
  list: "list",
  read: "get",
  create: "create",
  get: "get",
  replace: "update",
  patch: "patch",
  delete: "delete",
  deleteCollection: "deletecollection",
};

const CLIENT_METHOD = /\.(list|read|get|create|replace|patch|deleteCollection|delete)(Namespaced|Cluster)?([A-Z][A-Za-z]*?)(ForAllNamespaces)?(Status)?\(/g;

/** Repository-relative paths of the modules `entry` loads at run time (type-only imports skipped). */
export function moduleGraph(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(join(REPO_ROOT, file), "utf8");
    for (const m of text.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+"(\.{1,2}\/[^"]+\.ts)";/gm)) {
      if (!m[2]) visit(relative(REPO_ROOT, resolve(dirname(join(REPO_ROOT, file)), m[3]!)));
    }
    // Modules a command loads when it runs (`await import("...")`): as much part of the program.
    for (const m of text.matchAll(/\bimport\(\s*"(\.{1,2}\/[^"]+\.ts)"\s*\)/g)) visit(relative(REPO_ROOT, resolve(dirname(join(REPO_ROOT, file)), m[1]!)));
  };
  visit(entry);
  return [...seen].sort();
}

const lineOf = (text: string, index: number) => text.slice(0, index).split("\n").length;

/** Name of the function or arrow function whose body holds text[index]. */
function enclosingFunction(text: string, index: number): string {
  const re = /(?:function\s+(\w+)\s*[<(]|(?:const|let)\s+(\w+)\s*=\s*(?:async\s*)?(?:<[^>]*>)?\s*\()/g;
  let name = "";
  for (const m of text.slice(0, index).matchAll(re)) name = m[1] ?? m[2] ?? name;
  if (!name) throw new Error(`no enclosing function at ${index}`);
  return name;
}

/** The argument text of the call whose "(" is at text[open]. */
function callArguments(text: string, open: number): string {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "(") depth++;
    else if (text[i] === ")" && --depth === 0) return text.slice(open + 1, i);
  }
  throw new Error("unbalanced parentheses");
}

/** Plurals (PLURALS.X) passed by every call of `fn` in the sources. */
function pluralsPassedTo(fn: string, sources: Map<string, string>): string[] {
  const plurals = new Set<string>();
  const call = new RegExp(`(?<![\\w.])${fn}\\s*(?:<[^>()]*>)?\\(`, "g");
  for (const text of sources.values()) {
    for (const m of text.matchAll(call)) {
      const before = text.slice(Math.max(0, m.index - 20), m.index);
      if (/function\s+$|const\s+$/.test(before)) continue; // the definition
      for (const p of callArguments(text, m.index + m[0].length - 1).matchAll(/PLURALS\.(\w+)/g)) {
        const plural = PLURALS[p[1] as keyof typeof PLURALS];
        if (!plural) throw new Error(`PLURALS.${p[1]} is unknown`);
        plurals.add(plural);
      }
    }
  }
  if (plurals.size === 0) throw new Error(`cannot tell which custom resources ${fn}() is called for: no PLURALS.X argument at its call sites`);
  return [...plurals];
}

/** group/resource of a watch path: a literal /api(s)/... or a template over a plural parameter. */
function resourcesOfPath(pathExpr: string, text: string, index: number, sources: Map<string, string>): { group: string; resource: string }[] {
  // `${scope}` is "" or "/namespaces/<ns>" (a manager watching one namespace): same resource.
  const path = pathExpr.trim().replace("${scope}", "");
  const literal = /^["'`]\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/([a-z]+)["'`]$/.exec(path);
  if (literal) return [{ group: literal[1] ?? "", resource: literal[2]! }];
  if (/^`\/apis\/\$\{GROUP\}\/\$\{VERSION\}\/\$\{plural\}`$/.test(path)) {
    return pluralsPassedTo(enclosingFunction(text, index), sources).map((resource) => ({ group: GROUP, resource }));
  }
  throw new Error(`cannot read the watch path ${pathExpr}`);
}

export const MANAGER_ENTRY = "cmd/commands/manager.ts";

export function apiUses(entry = MANAGER_ENTRY): ApiUse[] {
  const sources = new Map<string, string>();
  for (const file of moduleGraph(entry)) sources.set(file, readFileSync(join(REPO_ROOT, file), "utf8"));
  const uses: ApiUse[] = [];
  const add = (group: string, resource: string, verb: string, file: string, text: string, index: number) =>
    uses.push({ permission: `${group}|${resource}|${verb}`, where: `${file}:${lineOf(text, index)}` });

  for (const [file, text] of sources) {
    for (const m of text.matchAll(CLIENT_METHOD)) {
      const [, prefix, scope, kindName, , status] = m;
      const verb = VERB_OF_PREFIX[prefix!]!;
      if (kindName === "CustomObject") {
        // The plural is an argument: read it from the callers of the function that makes this call.
        for (const plural of pluralsPassedTo(enclosingFunction(text, m.index), sources)) {
          add(GROUP, status ? `${plural}/status` : plural, verb, file, text, m.index);
        }
        continue;
      }
      // Only calls on API clients: receivers named after one (core, batch, api, ...) or typed as one.
      const receiver = /([\w.]+)$/.exec(text.slice(Math.max(0, m.index - 60), m.index))?.[1] ?? "";
      const kind = BUILTIN_KINDS[kindName!];
      if (!kind) {
        if (scope || status || m[4]) throw new Error(`${file}:${lineOf(text, m.index)}: ${m[0]} looks like a Kubernetes API call on an unmapped kind; add ${kindName} to BUILTIN_KINDS`);
        continue; // e.g. .replaceAll(, .createArgument(: not an API call
      }
      // CoreV1Api and EventsV1Api both have createNamespacedEvent; only the receiver tells them apart.
      const group = kindName === "Event" && /events$/i.test(receiver) && !/core/i.test(receiver) ? "events.k8s.io" : kind.group;
      add(group, status ? `${kind.resource}/status` : kind.resource, verb, file, text, m.index);
    }
    // Informers watch their path (their list goes through a client method, counted above).
    for (const m of text.matchAll(/new Informer<[^>]*>\(\{/g)) {
      const path = /path:\s*([^,\n]+),/.exec(text.slice(m.index, m.index + 600));
      if (!path) throw new Error(`${file}:${lineOf(text, m.index)}: an Informer without a path`);
      for (const r of resourcesOfPath(path[1]!, text, m.index, sources)) add(r.group, r.resource, "watch", file, text, m.index);
    }
    // Owner references that block owner deletion need update on the owner's finalizers.
    for (const m of text.matchAll(/\{[^{}]*blockOwnerDeletion:\s*true[^{}]*\}/g)) {
      const kind = /kind:\s*"(\w+)"/.exec(m[0])?.[1];
      const plural = kind ? PLURALS[kind as keyof typeof PLURALS] : undefined;
      if (!plural) throw new Error(`${file}:${lineOf(text, m.index)}: blockOwnerDeletion on an owner kind this test cannot map`);
      add(GROUP, `${plural}/finalizers`, "update", file, text, m.index);
    }
  }
  return uses;
}

/** The permissions in apiUses(), sorted and without duplicates. */
/**
 * Permissions the code needs. The registry API's (src/registry-api/) are needed only where it is
 * served: the chart with registryApi.enabled, not config/ (kustomize) nor namespaced installs.
 */
export function requiredPermissions(uses = apiUses(), opts: { registryApi?: boolean } = {}): string[] {
  const used = opts.registryApi === false ? uses.filter((u) => !u.where.startsWith("src/registry-api/")) : uses;
  return [...new Set(used.map((u) => u.permission))].sort();
}
