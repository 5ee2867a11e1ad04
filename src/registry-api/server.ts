/**
 * The aggregated registry API: an HTTPS server the Kubernetes API server proxies
 * `registry.geo.replication.dev` to (an APIService, as metrics-server is reached). It serves
 * discovery, one read-only resource per ReplicableType with its registry rows (list with label
 * selectors, paging and kubectl's Table, get by `<site>.<id>`), and `registryactions` (create only)
 * for resync, reverify and release-deletions. Every request must come through the API server's
 * front proxy (client certificate + X-Remote-* headers) and is authorized with a
 * SubjectAccessReview, so the cluster's RBAC decides who may read or act.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";
import type { OperatorMetrics } from "../metrics/metrics.ts";
import type { AuthorizationV1Api, CoreV1Api } from "@kubernetes/client-node";
import type { GeoSite, ReplicableType } from "../api/v1alpha1/resources.ts";
import type { SiteAccess } from "../controllers/site-access.ts";
import type { ReasonValue } from "../controllers/reasons.ts";
import type { EventRecorder } from "../k8s/events.ts";
import { mismatchDetails } from "../registry/replicas.ts";
import { listRegistryRows } from "../registry/row-selection.ts";
import { typeRuntimeConfig } from "../strategies/type-config.ts";
import type { Logger } from "../util/log.ts";
import type { WorkerKind } from "../workers/kinds.ts";
import { executeAction, validateActionSpec } from "./actions.ts";
import { Authorizer, type ResourceRequest } from "./authorizer.ts";
import { authenticate, loadRequestHeaderSettings, Unauthenticated, type RequestHeaderSettings, type UserInfo } from "./front-proxy.ts";
import {
  ACTION_KIND,
  ACTIONS_RESOURCE,
  REGISTRY_API_GROUP,
  REGISTRY_API_GROUP_VERSION,
  REGISTRY_API_VERSION,
  parseRegistryObjectName,
  registryResourceNames,
} from "./group.ts";
import { registryObject, registryTable, wantsTable, type RegistryObject } from "./objects.ts";
import { BadRequest, decodeContinue, encodeContinue, parseLabelSelector, parseLimit } from "./selectors.ts";
import { SiteDatabases } from "./site-databases.ts";
import { ApiError, statusBody } from "./status.ts";

export interface RegistryApiOptions {
  sites: { get(name: string, namespace?: string): GeoSite | undefined; list(namespace?: string): GeoSite[] };
  types: { list(namespace?: string): ReplicableType[] };
  core: CoreV1Api;
  /** The operator's Secret reads and database pools, shared with its controllers. */
  access: SiteAccess;
  authorization: AuthorizationV1Api;
  events: EventRecorder<ReasonValue>;
  log: Logger;
  /** PEM files of the serving certificate (SAN <service>.<namespace>.svc) and its key; re-read on each refresh. */
  certFile: string;
  keyFile: string;
  port: number;
  bindAddress?: string;
  /** How often the front-proxy CA and the serving certificate are re-read (default 60 s). */
  refreshIntervalMs?: number;
  /** Records a run asked for by an action (controllers/run-requests.ts); failures are logged, not returned. */
  requestRun?: (type: ReplicableType, site: string, kind: WorkerKind) => Promise<void>;
  /** Where request counts and durations go (the manager's /metrics). */
  metrics?: Pick<OperatorMetrics, "registryApiRequests" | "registryApiDuration">;
}

/** The verb a request is counted under: discovery and OpenAPI apart from the Kubernetes verbs. */
export function requestVerb(method: string | undefined, path: string): string {
  if (path.startsWith("/openapi")) return "openapi";
  const parts = path.split("/").filter(Boolean);
  // /apis, /apis/<group>, /apis/<group>/<version>
  if (parts[0] === "apis" && parts.length <= 3) return "discovery";
  if (method === "POST") return "create";
  if (method !== "GET") return method?.toLowerCase() ?? "unknown";
  // /apis/<group>/<version>/namespaces/<ns>/<resource>[/<name>]
  return parts.length >= 7 ? "get" : "list";
}

/** Rows per page when a list asks for no limit (kubectl sends --chunk-size, 500 by default). */
const MAX_PAGE = 5000;
const MAX_BODY = 1 << 20;

export class RegistryApiServer {
  private server?: Server;
  private settings?: RequestHeaderSettings;
  private refreshTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private readonly authorizer: Authorizer;
  private readonly databases: SiteDatabases;
  url?: string;

  private readonly o: RegistryApiOptions;

  constructor(o: RegistryApiOptions) {
    this.o = o;
    this.authorizer = new Authorizer(o.authorization);
    this.databases = new SiteDatabases(o.access);
  }

  private secureContext(): { cert: Buffer; key: Buffer; ca: string } {
    return { cert: readFileSync(this.o.certFile), key: readFileSync(this.o.keyFile), ca: this.settings!.clientCA };
  }

  /**
   * Serves once the front-proxy settings can be read. A cluster without the aggregation layer (or
   * a moment when the API server is unreachable) must not stop the operator: it logs why and tries
   * again every 30 s; the URL is undefined until then.
   */
  async start(): Promise<string | undefined> {
    try {
      return await this.listen();
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, "registry API not served yet (kubectl geo registries/resync/reverify need it); retrying in 30 s");
      this.retryTimer = setTimeout(() => void this.start(), 30_000);
      this.retryTimer.unref();
      return undefined;
    }
  }

  private async listen(): Promise<string> {
    this.settings = await loadRequestHeaderSettings(this.o.core);
    const server = createServer({ ...this.secureContext(), requestCert: true, rejectUnauthorized: false }, (req, res) => void this.handle(req, res));
    this.server = server;
    const host = this.o.bindAddress ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.o.port, host, () => resolve());
    });
    const addr = server.address();
    this.url = `https://${host.includes(":") ? `[${host}]` : host}:${typeof addr === "object" && addr ? addr.port : this.o.port}`;
    this.refreshTimer = setInterval(() => void this.refresh(), this.o.refreshIntervalMs ?? 60_000);
    this.refreshTimer.unref();
    this.o.log.info({ url: this.url }, "registry API serving");
    return this.url;
  }

  /** Picks up a rotated front-proxy CA or serving certificate without a restart. */
  private async refresh(): Promise<void> {
    try {
      this.settings = await loadRequestHeaderSettings(this.o.core);
      this.server?.setSecureContext(this.secureContext());
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, "registry API: could not refresh the front-proxy settings or certificate; keeping the current ones");
    }
  }

  async stop(): Promise<void> {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const server = this.server;
    this.server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }

  private send(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    let path = "";
    let user: UserInfo | undefined;
    let code = 200;
    try {
      const url = new URL(req.url ?? "/", "https://registry-api");
      path = url.pathname.replace(/\/+$/, "");
      try {
        user = authenticate(req, this.settings!);
      } catch (err) {
        if (err instanceof Unauthenticated) throw new ApiError(401, "Unauthorized", `Unauthorized: ${err.message}`);
        throw err;
      }
      const body = await this.route(req, url, path, user);
      code = body.code;
      this.send(res, body.code, body.body);
    } catch (err) {
      const e =
        err instanceof ApiError
          ? err
          : err instanceof BadRequest
            ? new ApiError(400, "BadRequest", err.message)
            : new ApiError(500, "InternalError", `internal error: ${(err as Error).message}`);
      code = e.code;
      if (e.code >= 500) this.o.log.warn({ path: req.url, user: user?.username, err: e.message }, "registry API request failed");
      this.send(res, e.code, statusBody(e.code, e.reason, e.message));
    } finally {
      const ms = Date.now() - started;
      const verb = requestVerb(req.method, path);
      this.o.metrics?.registryApiRequests.inc({ verb, code: String(code) });
      this.o.metrics?.registryApiDuration.observe({ verb }, ms / 1000);
      this.o.log.debug({ method: req.method, path: req.url, user: user?.username, code, ms }, "registry API request");
    }
  }

  private async authorize(user: UserInfo, request: ResourceRequest): Promise<void> {
    const decision = await this.authorizer.authorize(user, request);
    if (!decision.allowed) {
      const what = `${request.resource}.${REGISTRY_API_GROUP}${request.name ? ` "${request.name}"` : ""}`;
      throw new ApiError(
        403,
        "Forbidden",
        `${what} is forbidden: User "${user.username}" cannot ${request.verb} resource "${request.resource}" in API group "${REGISTRY_API_GROUP}" in the namespace "${request.namespace}"` +
          (decision.reason ? `: ${decision.reason}` : ""),
      );
    }
  }

  /** Every ReplicableType's resource (across namespaces: discovery is cluster-wide) plus registryactions. */
  private resourceList(): Record<string, unknown> {
    const seen = new Map<string, ReturnType<typeof registryResourceNames>>();
    for (const t of this.o.types.list()) {
      const names = registryResourceNames(t.spec.name);
      seen.set(names.plural, names);
    }
    const resources = [...seen.values()]
      .sort((a, b) => a.plural.localeCompare(b.plural))
      // No category: `kubectl get geo` lists the custom resources, never every registry row.
      .map((n) => ({ name: n.plural, singularName: n.singular, namespaced: true, kind: n.kind, verbs: ["get", "list"] }));
    resources.push({ name: ACTIONS_RESOURCE, singularName: "registryaction", namespaced: true, kind: ACTION_KIND, verbs: ["create"] });
    return { kind: "APIResourceList", apiVersion: "v1", groupVersion: REGISTRY_API_GROUP_VERSION, resources };
  }

  private async route(req: IncomingMessage, url: URL, path: string, user: UserInfo): Promise<{ code: number; body: unknown }> {
    const group = { name: REGISTRY_API_GROUP, versions: [{ groupVersion: REGISTRY_API_GROUP_VERSION, version: REGISTRY_API_VERSION }], preferredVersion: { groupVersion: REGISTRY_API_GROUP_VERSION, version: REGISTRY_API_VERSION } };
    if (req.method === "GET" && path === "/apis") return { code: 200, body: { kind: "APIGroupList", apiVersion: "v1", groups: [group] } };
    if (req.method === "GET" && path === `/apis/${REGISTRY_API_GROUP}`) return { code: 200, body: { kind: "APIGroup", apiVersion: "v1", ...group } };
    if (req.method === "GET" && path === `/apis/${REGISTRY_API_GROUP_VERSION}`) return { code: 200, body: this.resourceList() };
    // The API server merges every APIService's OpenAPI; an empty document keeps it from retrying
    // (and logging) every minute. The objects are described in docs/kubectl-geo.md.
    if (req.method === "GET" && path === "/openapi/v2") return { code: 200, body: { swagger: "2.0", info: { title: "geo-operator registry API", version: REGISTRY_API_VERSION }, paths: {} } };
    if (req.method === "GET" && path === "/openapi/v3") return { code: 200, body: { paths: {} } };

    const m = new RegExp(`^/apis/${REGISTRY_API_GROUP_VERSION.replaceAll(".", "\\.")}/namespaces/([^/]+)/([^/]+)(?:/([^/]+))?$`).exec(path);
    if (!m) {
      if (path.startsWith(`/apis/${REGISTRY_API_GROUP_VERSION}/`)) throw new ApiError(405, "MethodNotAllowed", "registries are listed per namespace: add -n <namespace>");
      throw new ApiError(404, "NotFound", `the server could not find the requested resource (${path})`);
    }
    const namespace = decodeURIComponent(m[1]!);
    const resource = m[2]!;
    const name = m[3] ? decodeURIComponent(m[3]) : undefined;

    if (resource === ACTIONS_RESOURCE) {
      if (req.method !== "POST" || name) throw new ApiError(405, "MethodNotAllowed", `${ACTIONS_RESOURCE} can only be created (kubectl create -f, or kubectl geo resync/reverify/release-deletions)`);
      await this.authorize(user, { verb: "create", resource, namespace });
      return this.createAction(req, url, namespace, user);
    }
    const type = this.o.types.list(namespace).find((t) => registryResourceNames(t.spec.name).plural === resource);
    if (req.method !== "GET") throw new ApiError(405, "MethodNotAllowed", `${resource} are read-only: change rows with registryactions (kubectl geo resync/reverify)`);
    if (url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1") throw new ApiError(405, "MethodNotAllowed", `watch is not supported on ${resource}`);
    await this.authorize(user, { verb: name ? "get" : "list", resource, namespace, ...(name ? { name } : {}) });
    if (!type) {
      // The resource exists (discovery is cluster-wide); a namespace without the type has no rows.
      if (!this.o.types.list().some((t) => registryResourceNames(t.spec.name).plural === resource)) {
        throw new ApiError(404, "NotFound", `the server could not find the requested resource (${resource})`);
      }
      if (name) throw new ApiError(404, "NotFound", `${resource}.${REGISTRY_API_GROUP} "${name}" not found (no ReplicableType in namespace ${namespace} keeps ${resource})`);
      const listMeta = { resourceVersion: "" };
      if (wantsTable(req.headers.accept)) return { code: 200, body: registryTable([], listMeta, url.searchParams.get("includeObject")) };
      return { code: 200, body: { apiVersion: REGISTRY_API_GROUP_VERSION, kind: "List", metadata: listMeta, items: [] } };
    }
    return name ? this.getRow(namespace, type, name) : this.listRows(req, url, namespace, type);
  }

  private secondaries(namespace: string): GeoSite[] {
    return this.o.sites
      .list(namespace)
      .filter((s) => s.spec.role === "secondary")
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  }

  private async getRow(namespace: string, type: ReplicableType, name: string): Promise<{ code: number; body: unknown }> {
    const names = registryResourceNames(type.spec.name);
    const parsed = parseRegistryObjectName(name);
    const site = parsed && this.o.sites.get(parsed.site, namespace);
    const gone = new ApiError(404, "NotFound", `${names.plural}.${REGISTRY_API_GROUP} "${name}" not found`);
    if (!parsed || !site || site.spec.role !== "secondary") throw gone;
    const config = typeRuntimeConfig(type.spec).schema;
    const db = await this.databases.openSide(site, type, config);
    const [row] = await listRegistryRows(db.pool, config, {}, 1, parsed.id - 1);
    if (!row || row.id !== parsed.id) throw gone;
    const mismatch = await mismatchDetails(db.pool, config.name, [row.modelId]);
    return { code: 200, body: registryObject(names, namespace, site.metadata.name, config.name, row, mismatch.get(row.modelId)) };
  }

  private async listRows(req: IncomingMessage, url: URL, namespace: string, type: ReplicableType): Promise<{ code: number; body: unknown }> {
    const names = registryResourceNames(type.spec.name);
    const selectorText = url.searchParams.get("labelSelector") ?? "";
    const selector = parseLabelSelector(selectorText);
    if (url.searchParams.get("fieldSelector")) throw new BadRequest("field selectors are not supported on registries: use label selectors (site, state, verification, mismatch)");
    const limit = parseLimit(url.searchParams.get("limit"));
    const token = url.searchParams.get("continue");
    const position = token ? decodeContinue(token, selectorText) : undefined;
    const config = typeRuntimeConfig(type.spec).schema;

    let sites = this.secondaries(namespace);
    if (selector.site !== undefined) {
      const site = this.o.sites.get(selector.site, namespace);
      if (!site) throw new ApiError(404, "NotFound", `GeoSite "${selector.site}" not found in namespace ${namespace}`);
      if (site.spec.role !== "secondary") throw new ApiError(400, "BadRequest", `GeoSite ${selector.site} is the primary: registries are kept on secondary sites`);
      sites = [site];
    }
    if (position) sites = sites.filter((s) => s.metadata.name >= position.site);

    const pageSize = Math.min(limit ?? MAX_PAGE, MAX_PAGE);
    const items: RegistryObject[] = [];
    let next: string | undefined;
    for (const site of sites) {
      const afterId = position && site.metadata.name === position.site ? position.afterId : 0;
      let db;
      try {
        db = await this.databases.openSide(site, type, config);
      } catch (err) {
        // Listing every secondary: one where the type has no table yet has no rows to show.
        if (selector.site === undefined && err instanceof ApiError && err.code === 404) continue;
        throw err;
      }
      const want = pageSize - items.length;
      const rows = await listRegistryRows(db.pool, config, selector.filter, want + 1, afterId);
      const page = rows.slice(0, want);
      const mismatches = await mismatchDetails(db.pool, config.name, page.filter((r) => r.checksumMismatch).map((r) => r.modelId));
      for (const r of page) items.push(registryObject(names, namespace, site.metadata.name, config.name, r, mismatches.get(r.modelId)));
      if (rows.length > want) {
        next = encodeContinue({ site: site.metadata.name, afterId: page[page.length - 1]!.id, selector: selectorText });
        break;
      }
      if (items.length >= pageSize) {
        // The page is full at a site boundary: continue from the following site, if any.
        const following = sites[sites.indexOf(site) + 1];
        if (following) next = encodeContinue({ site: following.metadata.name, afterId: 0, selector: selectorText });
        break;
      }
    }
    const listMeta = { resourceVersion: "", ...(next ? { continue: next } : {}) };
    if (wantsTable(req.headers.accept)) return { code: 200, body: registryTable(items, listMeta, url.searchParams.get("includeObject")) };
    return { code: 200, body: { apiVersion: REGISTRY_API_GROUP_VERSION, kind: names.listKind, metadata: listMeta, items } };
  }

  private async createAction(req: IncomingMessage, url: URL, namespace: string, user: UserInfo): Promise<{ code: number; body: unknown }> {
    const raw = await readBody(req);
    let doc: { apiVersion?: string; kind?: string; metadata?: Record<string, unknown>; spec?: unknown };
    try {
      doc = JSON.parse(raw) as typeof doc;
    } catch {
      throw new BadRequest("the request body is not JSON");
    }
    if (doc.kind !== undefined && doc.kind !== ACTION_KIND) throw new BadRequest(`expected kind ${ACTION_KIND}, got ${doc.kind}`);
    const spec = validateActionSpec(doc.spec);
    const dryRun = url.searchParams.getAll("dryRun").includes("All");
    const ask = this.o.requestRun;
    const requestRun = ask
      ? (type: ReplicableType, site: string, kind: WorkerKind) =>
          ask(type, site, kind).catch((err: unknown) =>
            this.o.log.warn({ type: type.metadata.name, site, kind, err: err instanceof Error ? err.message : String(err) }, "could not ask for the run now; it comes at its interval"),
          )
      : undefined;
    const status = await executeAction({ sites: this.o.sites, types: this.o.types, databases: this.databases, events: this.o.events, ...(requestRun ? { requestRun } : {}) }, namespace, spec, user, dryRun);
    const name = (typeof doc.metadata?.name === "string" && doc.metadata.name) || `${spec.action}-${randomBytes(4).toString("hex")}`;
    this.o.log.info({ namespace, user: user.username, action: spec.action, type: spec.type, site: spec.site, selected: status.selected, changed: status.changed, dryRun }, "registry action");
    return {
      code: 201,
      body: { apiVersion: REGISTRY_API_GROUP_VERSION, kind: ACTION_KIND, metadata: { name, namespace, creationTimestamp: status.completionTime.replace(/\.\d{3}Z$/, "Z") }, spec, status },
    };
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new ApiError(413, "RequestEntityTooLarge", "request body too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
