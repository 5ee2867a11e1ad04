/**
 * RegistryAction: resync, reverify and release-deletions asked for through the Kubernetes API.
 * RBAC decides who may create one (geo-operator-admin); the manager carries it out at once on the
 * site's database, answers with how many rows it selected and changed, and records an Event on
 * the GeoSite naming the user the API server authenticated. `dryRun=All` only counts.
 */
import { lookUpSite, lookUpType, type GeoSite, type Lookup, type ReplicableType } from "../api/v1alpha1/resources.ts";
import { Reason, type ReasonValue } from "../controllers/reasons.ts";
import type { EventRecorder } from "../k8s/events.ts";
import { requestChecksum } from "../registry/checksum-state.ts";
import { deletionHold, releaseDeletionHold } from "../registry/deletions.ts";
import { requestReverification } from "../registry/reverification.ts";
import { countRows, existingModelIds, modelIdBatches, modelIdsOfRegistryIds, type RowFilter } from "../registry/row-selection.ts";
import { SyncState, VerificationState } from "../registry/states.ts";
import { requestResync } from "../registry/sync-state.ts";
import { typeRuntimeConfig } from "../strategies/type-config.ts";
import type { WorkerKind } from "../workers/kinds.ts";
import type { UserInfo } from "./front-proxy.ts";
import { ACTION_NAMES, type RegistryActionSpec, type RegistryActionStatus } from "./group.ts";
import type { SiteDatabases } from "./site-databases.ts";
import { ApiError } from "./status.ts";

export interface ActionContext {
  sites: { list(namespace?: string): GeoSite[] };
  types: { list(namespace?: string): ReplicableType[] };
  databases: SiteDatabases;
  events: EventRecorder<ReasonValue>;
  /**
   * Asks the operator to start the run that acts on changed rows now (controllers/run-requests.ts)
   * rather than at its next interval. Best effort: the rows are changed either way.
   */
  requestRun?: (type: ReplicableType, site: string, kind: WorkerKind) => Promise<void>;
}

const invalid = (message: string) => new ApiError(422, "Invalid", message);
const notFound = (message: string) => new ApiError(404, "NotFound", message);

function isIdList(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => Number.isSafeInteger(x) && (x as number) > 0);
}

/** Checks the shape of a spec sent by any client, not only the plugin. */
export function validateActionSpec(raw: unknown): RegistryActionSpec {
  const spec = (raw ?? {}) as Record<string, unknown>;
  if (!ACTION_NAMES.includes(spec.action as never)) throw invalid(`spec.action must be one of ${ACTION_NAMES.join(", ")}`);
  if (typeof spec.type !== "string" || !spec.type) throw invalid("spec.type must name a ReplicableType");
  if (typeof spec.site !== "string" || !spec.site) throw invalid("spec.site must name a GeoSite");
  for (const key of ["ids", "modelIds"] as const) {
    if (spec[key] !== undefined && !isIdList(spec[key])) throw invalid(`spec.${key} must be a non-empty list of positive integers`);
  }
  if (spec.all !== undefined && typeof spec.all !== "boolean") throw invalid("spec.all must be a boolean");
  if (spec.state !== undefined && (typeof spec.state !== "string" || !(spec.state in SyncState))) {
    throw invalid(`spec.state must be one of ${Object.keys(SyncState).join(", ")}`);
  }
  if (spec.verification !== undefined && (typeof spec.verification !== "string" || !(spec.verification in VerificationState))) {
    throw invalid(`spec.verification must be one of ${Object.keys(VerificationState).join(", ")}`);
  }
  const selectors = (["ids", "modelIds", "all", "state", "verification"] as const).filter((k) => spec[k] !== undefined && spec[k] !== false);
  if (spec.action === "release-deletions") {
    if (selectors.length) throw invalid("release-deletions takes no row selector");
  } else {
    if (spec.action === "resync" && spec.verification !== undefined) throw invalid("resync selects by spec.state, not spec.verification");
    if (spec.action === "reverify" && spec.state !== undefined) throw invalid("reverify selects by spec.verification, not spec.state");
    if (selectors.length !== 1) throw invalid(`say which rows with exactly one of spec.ids, spec.modelIds, spec.all, spec.${spec.action === "resync" ? "state" : "verification"}`);
  }
  return spec as unknown as RegistryActionSpec;
}

function found<T>(lookup: Lookup<T>): T {
  if ("notFound" in lookup) throw notFound(lookup.notFound);
  return lookup.found;
}

export async function executeAction(ctx: ActionContext, namespace: string, spec: RegistryActionSpec, user: UserInfo, dryRun: boolean): Promise<RegistryActionStatus> {
  const site = found(lookUpSite(ctx.sites.list(namespace), spec.site, namespace));
  const primary = site.spec.role === "primary";
  if (primary && spec.action !== "reverify") {
    throw invalid(`GeoSite ${site.metadata.name} is the primary: ${spec.action} works on secondary sites, which keep the registries`);
  }
  const type = found(lookUpType(ctx.types.list(namespace), spec.type, namespace));
  const config = typeRuntimeConfig(type.spec).schema;
  const db = await ctx.databases.openSide(site, type, config);
  const done = (s: Omit<RegistryActionStatus, "requestedBy" | "completionTime">): RegistryActionStatus => ({
    requestedBy: user.username,
    ...s,
    ...(dryRun ? { dryRun: true } : {}),
    completionTime: new Date().toISOString(),
  });

  if (spec.action === "release-deletions") {
    const hold = await deletionHold(db.pool, config.name);
    if (!hold) throw notFound(`no deletions of ${config.name} are held on GeoSite ${site.metadata.name}`);
    if (!dryRun) {
      await releaseDeletionHold(db.pool, config.name, `${user.username} (registry API)`);
      await ctx.events.record(site, "Normal", Reason.DeletionsReleased, `${user.username} released ${hold.pending} held ${config.name} deletion(s) (${hold.reason}) through the registry API`);
      // The next complete consistency pass carries out what it still confirms: start one.
      await ctx.requestRun?.(type, site.metadata.name, "consistency");
    }
    return done({ selected: hold.pending, changed: dryRun ? 0 : hold.pending, reason: hold.reason, pending: hold.pending });
  }

  const apply = (modelIds: number[]): Promise<number> =>
    spec.action === "resync"
      ? requestResync(db.pool, config, modelIds)
      : primary
        ? requestChecksum(db.pool, config, modelIds)
        : requestReverification(db.pool, config, modelIds);
  let selected = 0;
  let changed = 0;
  if (spec.ids) {
    if (primary) throw invalid(`GeoSite ${site.metadata.name} is the primary, which has no registry ids: select rows with --model-id`);
    const ids = [...new Set(spec.ids)];
    const found = await modelIdsOfRegistryIds(db.pool, config, ids);
    const missing = ids.filter((id) => !found.has(id));
    if (missing.length) throw notFound(`no ${config.name} registry row with id ${missing.join(", ")} on GeoSite ${site.metadata.name}; nothing changed`);
    selected = ids.length;
    if (!dryRun) changed = await apply([...found.values()]);
  } else if (spec.modelIds) {
    const ids = [...new Set(spec.modelIds)];
    const found = await existingModelIds(db.pool, db.side, ids);
    const missing = ids.filter((id) => !found.has(id));
    if (missing.length) throw notFound(`no ${config.name} row for model id ${missing.join(", ")} on GeoSite ${site.metadata.name}; nothing changed`);
    selected = ids.length;
    if (!dryRun) changed = await apply(ids);
  } else {
    const filter: RowFilter = spec.state
      ? { state: SyncState[spec.state as keyof typeof SyncState] }
      : spec.verification
        ? { verification: VerificationState[spec.verification as keyof typeof VerificationState] }
        : {};
    if (dryRun) selected = await countRows(db.pool, db.side, filter);
    else {
      for await (const batch of modelIdBatches(db.pool, db.side, filter)) {
        selected += batch.length;
        changed += await apply(batch);
      }
    }
  }
  if (!dryRun) {
    const rows = primary ? `${config.name}_states rows` : `${config.name} registry rows`;
    const verb = spec.action === "resync" ? "marked for resync" : primary ? "marked for re-checksumming" : "marked for reverification";
    await ctx.events.record(
      site,
      "Normal",
      spec.action === "resync" ? Reason.ResyncRequested : Reason.ReverifyRequested,
      `${user.username}: ${changed} of ${selected} selected ${rows} ${verb} through the registry API`,
    );
    if (changed > 0) await ctx.requestRun?.(type, site.metadata.name, spec.action === "resync" ? "sync" : primary ? "verify-primary" : "verify");
  }
  return done({ selected, changed });
}
