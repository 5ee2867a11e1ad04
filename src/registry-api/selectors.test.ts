import { describe, expect, it } from "vitest";
import { SyncState, VerificationState } from "../registry/states.ts";
import { parseRegistryObjectName, registryObjectName, registryResourceNames } from "./group.ts";
import { wantsTable } from "./objects.ts";
import { BadRequest, decodeContinue, encodeContinue, parseLabelSelector, parseLimit } from "./selectors.ts";

describe("registry resource names", () => {
  it("drop underscores (not allowed in resource names) and PascalCase the kind", () => {
    expect(registryResourceNames("cool_widget")).toEqual({ plural: "coolwidgetregistries", singular: "coolwidgetregistry", kind: "CoolWidgetRegistry", listKind: "CoolWidgetRegistryList" });
    expect(registryResourceNames("upload").plural).toBe("uploadregistries");
  });

  it("name rows <site>.<id> and parse them back, sites with dots included", () => {
    expect(registryObjectName("tokyo", 12)).toBe("tokyo.12");
    expect(parseRegistryObjectName("tokyo.12")).toEqual({ site: "tokyo", id: 12 });
    expect(parseRegistryObjectName("eu.west.7")).toEqual({ site: "eu.west", id: 7 });
    expect(parseRegistryObjectName("tokyo")).toBeUndefined();
    expect(parseRegistryObjectName("tokyo.0")).toBeUndefined();
  });
});

describe("label selectors", () => {
  it("map site and state names to a row filter", () => {
    expect(parseLabelSelector("site=tokyo,state=failed")).toEqual({ site: "tokyo", filter: { state: SyncState.failed } });
    expect(parseLabelSelector("verification==succeeded, mismatch=true")).toEqual({ filter: { verification: VerificationState.succeeded, mismatch: true } });
    expect(parseLabelSelector(null)).toEqual({ filter: {} });
  });

  it("refuse what the server cannot filter on, saying what it can", () => {
    expect(() => parseLabelSelector("state!=failed")).toThrow(BadRequest);
    expect(() => parseLabelSelector("colour=blue")).toThrow(/registries can be selected by site, state, verification, mismatch/);
    expect(() => parseLabelSelector("state=broken")).toThrow(/unknown sync state "broken": one of pending, started, synced, failed/);
    expect(() => parseLabelSelector("site=a,site=b")).toThrow(/given twice/);
    expect(() => parseLabelSelector("mismatch=false")).toThrow(BadRequest);
  });
});

describe("paging", () => {
  it("continue tokens round-trip and are bound to their selector", () => {
    const token = encodeContinue({ site: "tokyo", afterId: 500, selector: "site=tokyo" });
    expect(decodeContinue(token, "site=tokyo")).toEqual({ site: "tokyo", afterId: 500, selector: "site=tokyo" });
    expect(() => decodeContinue(token, "site=osaka")).toThrow(/different label selector/);
    expect(() => decodeContinue("garbage", "")).toThrow(/invalid continue token/);
  });

  it("limit 0 or absent means everything; junk is a bad request", () => {
    expect(parseLimit(null)).toBeUndefined();
    expect(parseLimit("0")).toBeUndefined();
    expect(parseLimit("25")).toBe(25);
    expect(() => parseLimit("-1")).toThrow(BadRequest);
  });
});

describe("content negotiation", () => {
  it("recognises kubectl's Table Accept header", () => {
    expect(wantsTable("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")).toBe(true);
    expect(wantsTable("application/json")).toBe(false);
    expect(wantsTable(undefined)).toBe(false);
  });
});
