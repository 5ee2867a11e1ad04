import { describe, expect, it } from "vitest";
import type { GeoSite } from "../api/v1alpha1/resources.ts";
import type { Informer } from "../k8s/informer.ts";
import { createLogger } from "../util/log.ts";
import { GeoSiteController, type GeoSiteControllerDeps } from "./geosite-controller.ts";
import type { ServedSite, SiteServerExecutor } from "./site-servers.ts";
import type { SiteServer } from "../strategies/site-server.ts";

/** A controller whose site cache is empty (the GeoSite was deleted); nothing else is reached. */
function afterDeletion(site?: string) {
  const calls: [ServedSite, SiteServer[]][] = [];
  const servers: SiteServerExecutor = { reconcile: async (s, desired) => void calls.push([s, desired]), stopAll: async () => {} };
  const sites = { get: () => undefined, list: () => [] } as unknown as Informer<GeoSite>;
  const deps = { sites, servers, log: createLogger({ name: "test", level: "error" }), ...(site ? { site } : {}) } as unknown as GeoSiteControllerDeps;
  return { controller: new GeoSiteController(deps), calls };
}

describe("GeoSiteController", () => {
  it("stops a deleted site's servers", async () => {
    const { controller, calls } = afterDeletion();
    expect(await controller.reconcile("geo/london")).toEqual({});
    expect(calls).toEqual([[{ namespace: "geo", name: "london" }, []]]);
  });

  it("leaves another site's servers alone when it manages one site only", async () => {
    const { controller, calls } = afterDeletion("tokyo");
    expect(await controller.reconcile("geo/london")).toEqual({});
    expect(calls).toEqual([]);
  });
});
