import { describe, expect, it } from "vitest";
import { requestVerb } from "./server.ts";

describe("requestVerb", () => {
  const base = "/apis/registry.geo.replication.dev/v1alpha1";
  it("names discovery, OpenAPI and the Kubernetes verbs of registry requests", () => {
    expect(requestVerb("GET", "/apis")).toBe("discovery");
    expect(requestVerb("GET", "/apis/registry.geo.replication.dev")).toBe("discovery");
    expect(requestVerb("GET", base)).toBe("discovery");
    expect(requestVerb("GET", "/openapi/v3")).toBe("openapi");
    expect(requestVerb("GET", `${base}/namespaces/geo/coolwidgetregistries`)).toBe("list");
    expect(requestVerb("GET", `${base}/namespaces/geo/coolwidgetregistries/tokyo.3`)).toBe("get");
    expect(requestVerb("POST", `${base}/namespaces/geo/registryactions`)).toBe("create");
    expect(requestVerb("DELETE", `${base}/namespaces/geo/coolwidgetregistries/tokyo.3`)).toBe("delete");
  });
});
