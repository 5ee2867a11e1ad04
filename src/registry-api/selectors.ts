/**
 * List parameters of the registry resources: equality label selectors on site, state,
 * verification and mismatch, and opaque continue tokens for keyset paging across sites.
 */
import { SyncState, VerificationState } from "../registry/states.ts";
import type { RowFilter } from "../registry/row-selection.ts";
import { SELECTOR_KEYS, type SelectorKey } from "./group.ts";

export class BadRequest extends Error {}

export interface RegistrySelector {
  site?: string;
  filter: RowFilter;
}

/** Parses `site=tokyo,state=failed` (also `==`); anything else is a BadRequest naming what is supported. */
export function parseLabelSelector(selector: string | null): RegistrySelector {
  const out: RegistrySelector = { filter: {} };
  if (!selector) return out;
  const seen = new Set<string>();
  for (const term of selector.split(",").map((t) => t.trim()).filter(Boolean)) {
    const m = /^([a-z]+)\s*==?\s*([A-Za-z0-9_.-]+)$/.exec(term);
    if (!m) throw new BadRequest(`unsupported label selector "${term}": use key=value terms with keys ${SELECTOR_KEYS.join(", ")}`);
    const key = m[1] as SelectorKey;
    const value = m[2]!;
    if (!SELECTOR_KEYS.includes(key)) throw new BadRequest(`unknown label selector key "${m[1]}": registries can be selected by ${SELECTOR_KEYS.join(", ")}`);
    if (seen.has(key)) throw new BadRequest(`label selector key "${key}" given twice`);
    seen.add(key);
    if (key === "site") out.site = value;
    else if (key === "state") {
      const v = SyncState[value as keyof typeof SyncState];
      if (v === undefined) throw new BadRequest(`unknown sync state "${value}": one of ${Object.keys(SyncState).join(", ")}`);
      out.filter.state = v;
    } else if (key === "verification") {
      const v = VerificationState[value as keyof typeof VerificationState];
      if (v === undefined) throw new BadRequest(`unknown verification state "${value}": one of ${Object.keys(VerificationState).join(", ")}`);
      out.filter.verification = v;
    } else if (key === "mismatch") {
      if (value !== "true" && value !== "false") throw new BadRequest(`mismatch must be true or false, not "${value}"`);
      if (value === "true") out.filter.mismatch = true;
      else throw new BadRequest("mismatch=false is not supported: select mismatch=true or leave it out");
    }
  }
  return out;
}

/** Where the next page starts: the site being listed and the last registry id returned. */
export interface ContinuePosition {
  site: string;
  afterId: number;
  /** The selector the token was issued for: a different one makes the token invalid. */
  selector: string;
}

export function encodeContinue(pos: ContinuePosition): string {
  return Buffer.from(JSON.stringify([pos.site, pos.afterId, pos.selector])).toString("base64url");
}

export function decodeContinue(token: string, selector: string): ContinuePosition {
  try {
    const [site, afterId, issuedFor] = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as [unknown, unknown, unknown];
    if (typeof site !== "string" || typeof afterId !== "number" || !Number.isSafeInteger(afterId) || afterId < 0) throw new Error("shape");
    if (issuedFor !== selector) throw new BadRequest("the continue token was issued for a different label selector");
    return { site, afterId, selector };
  } catch (err) {
    if (err instanceof BadRequest) throw err;
    throw new BadRequest("invalid continue token");
  }
}

/** `limit` as Kubernetes reads it: absent or 0 means everything. */
export function parseLimit(value: string | null): number | undefined {
  if (value === null || value === "" || value === "0") return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new BadRequest(`limit must be a non-negative integer, not "${value}"`);
  return n;
}
