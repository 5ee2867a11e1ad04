import type { V1PodSpec } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { isOptedIn, SecretNotOptedInError, secretsReferencedBy } from "./secrets.ts";

describe("secretsReferencedBy", () => {
  it("finds env, envFrom, secret volumes and projected sources in every kind of container", () => {
    const pod: V1PodSpec = {
      initContainers: [{ name: "init", env: [{ name: "A", valueFrom: { secretKeyRef: { name: "init-env", key: "k" } } }] }],
      containers: [
        {
          name: "main",
          env: [
            { name: "PLAIN", value: "x" },
            { name: "CM", valueFrom: { configMapKeyRef: { name: "not-a-secret", key: "k" } } },
            { name: "B", valueFrom: { secretKeyRef: { name: "env-ref", key: "k" } } },
          ],
          envFrom: [{ secretRef: { name: "env-from" } }, { configMapRef: { name: "cm-from" } }],
        },
      ],
      ephemeralContainers: [{ name: "debug", envFrom: [{ secretRef: { name: "ephemeral" } }] }],
      volumes: [
        { name: "v1", secret: { secretName: "volume" } },
        { name: "v2", projected: { sources: [{ secret: { name: "projected" } }, { configMap: { name: "cm" } }] } },
        { name: "v3", emptyDir: {} },
      ],
      imagePullSecrets: [{ name: "pull-only" }],
    };
    expect(secretsReferencedBy(pod).map((r) => r.name)).toEqual(["env-from", "env-ref", "ephemeral", "init-env", "projected", "volume"]);
  });

  it("calls a Secret optional only when every reference to it is", () => {
    const pod: V1PodSpec = {
      containers: [
        {
          name: "main",
          env: [
            { name: "A", valueFrom: { secretKeyRef: { name: "both", key: "a", optional: true } } },
            { name: "B", valueFrom: { secretKeyRef: { name: "both", key: "b" } } },
            { name: "C", valueFrom: { secretKeyRef: { name: "only-optional", key: "c", optional: true } } },
          ],
        },
      ],
      volumes: [{ name: "v", secret: { secretName: "optional-volume", optional: true } }],
    };
    expect(secretsReferencedBy(pod)).toEqual([
      { name: "both", optional: false },
      { name: "only-optional", optional: true },
      { name: "optional-volume", optional: true },
    ]);
  });
});

describe("the opt-in label", () => {
  it('is geo.replication.dev/credentials: "true", nothing else', () => {
    expect(isOptedIn({ metadata: { labels: { "geo.replication.dev/credentials": "true" } } })).toBe(true);
    expect(isOptedIn({ metadata: { labels: { "geo.replication.dev/credentials": "yes" } } })).toBe(false);
    expect(isOptedIn({ metadata: {} })).toBe(false);
  });

  it("is named in the refusal together with the command that adds it", () => {
    const err = new SecretNotOptedInError("apps", "gitlab-token");
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain("Secret apps/gitlab-token");
    expect(err.message).toContain("kubectl label secret gitlab-token -n apps geo.replication.dev/credentials=true");
  });
});
