/**
 * The safety rails as a person sees them through the API: held deletions as a condition, an
 * Event, a metric and GeoSite health, released by the annotation; the replication lag from the
 * primary's heartbeat; a Job-creation failure in status; a type deletion that cannot reach a site
 * says so and can be forced. The manager runs in this process with the Jobs executor and the test
 * kubelet, against the real API server, PostgreSQL and MinIO.
 */
import { randomBytes } from "node:crypto";
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { stringify } from "yaml";
import type { Manager } from "../../src/manager.ts";
import { startTestOperator, type TestOperator } from "../support/test-manager.ts";
import { conditionOf, createNamespace, installCrdsAsync, kubectlAsync, kubectlAsyncOk as kubectlOk, metricLine as metricAt } from "../support/kubectl.ts";
import { createBlobWorld, type World } from "../support/worker-world.ts";
import { until } from "../support/until.ts";

const env = inject("env");
let ns: string;
let world: World;
let manager: Manager;
let operator: TestOperator;
const ids: number[] = [];

const getJSON = async (kind: string, name: string) => JSON.parse(await kubectlOk(["get", kind, name, "-n", ns, "-o", "json"]));
const metricLine = (name: string, labels: string) => metricAt(manager.metricsURL!, name, labels);

async function secondaryHas(id: number): Promise<boolean> {
  try {
    await world.secondaryS3.send(new HeadObjectCommand({ Bucket: env.s3!.secondary.bucket, Key: `${world.prefix}cool_widgets/${id}/f${id}.bin` }));
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  await installCrdsAsync();
  ns = createNamespace("safety");
  world = await createBlobWorld(env);
  for (let i = 0; i < 12; i++) {
    const { rows } = await world.dbs.primary.query<{ id: string }>(`INSERT INTO cool_widgets (namespace_id, file_name) VALUES (1, 'x') RETURNING id`);
    const id = Number(rows[0]!.id);
    await world.dbs.primary.query(`UPDATE cool_widgets SET file_name = $2 WHERE id = $1`, [id, `f${id}.bin`]);
    await world.primaryS3.send(new PutObjectCommand({ Bucket: env.s3!.primary.bucket, Key: `${world.prefix}cool_widgets/${id}/f${id}.bin`, Body: randomBytes(2048) }));
    ids.push(id);
  }
  const docs: object[] = [
    ...world.secrets(),
    { apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name: "london" }, spec: { ...world.primarySite, statusInterval: "2s" } },
    { apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name: "tokyo" }, spec: { ...world.secondarySite, statusInterval: "2s" } },
    {
      apiVersion: "geo.replication.dev/v1alpha1",
      kind: "ReplicableType",
      metadata: { name: "cool-widget" },
      spec: {
        ...world.type,
        intervals: { sync: "2s", verification: "2s", primaryVerification: "2s", consistency: "2s" },
        deletion: { gracePeriod: "0s" },
      },
    },
  ];
  await kubectlOk(["apply", "-n", ns, "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));
  operator = await startTestOperator({ namespace: ns, identity: "safety", logName: "safety-manager", maxRunSeconds: 30 });
  manager = operator.manager;
}, 300_000);

afterAll(async () => {
  await operator?.stop();
  await world?.close();
});

describe("safety rails in status", () => {
  it("replicates, and reports the replication lag read from the primary's heartbeat", async () => {
    await until("tokyo synced and verified", async () => {
      const t = await getJSON("geosite", "tokyo");
      return t.status?.synced === "100.0%" && t.status?.verified === "100.0%" && t.status?.health === "Healthy" ? t : undefined;
    });
    const tokyo = await until("a replication lag in tokyo's status", async () => {
      const t = await getJSON("geosite", "tokyo");
      return typeof t.status?.replicationLagSeconds === "number" ? t : undefined;
    });
    // The primary's operator beats every status interval (2 s here): the lag is small.
    expect(tokyo.status.replicationLagSeconds).toBeLessThan(60);
    expect(await until("the lag metric", () => metricLine("geo_db_replication_lag_seconds", 'site="tokyo"'))).toMatch(/ \d/);
  });

  it("distrusts a replica that shows the primary's name from another database until that identity is accepted on the GeoSite", async () => {
    // What a replica URL pointed at another environment's database (same GeoSite names) looks like.
    const { rows } = await world.dbs.primary.query<{ identity: string }>(
      `UPDATE geo_operator_primary_heartbeat SET identity = gen_random_uuid() WHERE site_name = 'london' RETURNING identity::text`,
    );
    const other = rows[0]!.identity;
    const unproven = await until("tokyo unhealthy with ReplicaUnproven", async () => {
      const t = await getJSON("geosite", "tokyo");
      return (t.status?.healthReasons ?? []).find((r: string) => r.startsWith("ReplicaUnproven"));
    });
    expect(unproven).toContain(`identity ${other}`);
    expect(unproven).toContain(`kubectl annotate geosite tokyo geo.replication.dev/accept-primary-identity=${other} --overwrite`);

    // An identity other than the one shown accepts nothing.
    await kubectlOk(["annotate", "geosite", "tokyo", "-n", ns, "geo.replication.dev/accept-primary-identity=00000000-0000-4000-8000-000000000000", "--overwrite"]);
    await new Promise((r) => setTimeout(r, 5000));
    expect(((await getJSON("geosite", "tokyo")).status?.healthReasons ?? []).some((r: string) => r.startsWith("ReplicaUnproven"))).toBe(true);

    await kubectlOk(["annotate", "geosite", "tokyo", "-n", ns, `geo.replication.dev/accept-primary-identity=${other}`, "--overwrite"]);
    await until("tokyo healthy again", async () => {
      const t = await getJSON("geosite", "tokyo");
      return t.status?.health === "Healthy" || undefined;
    });
    const events = JSON.parse(await kubectlOk(["get", "events", "-n", ns, "--field-selector", "reason=PrimaryIdentityAccepted", "-o", "json"]));
    expect(events.items.map((e: any) => e.message)).toContainEqual(expect.stringContaining(`accepted the primary database identity ${other} of london`));
  });

  it("holds the deletions of an empty primary, shows them everywhere, and deletes them once released", async () => {
    await world.dbs.primary.query(`DELETE FROM cool_widgets`);
    const rt = await until("DeletionsHeld on the type", async () => {
      const r = await getJSON("rtype", "cool-widget");
      return conditionOf(r, "DeletionsHeld")?.status === "True" ? r : undefined;
    });
    expect(conditionOf(rt, "DeletionsHeld")).toMatchObject({ reason: "PrimaryEmpty" });
    expect(conditionOf(rt, "DeletionsHeld").message).toMatch(/release-deletions/);
    expect(rt.status.sites.find((s: any) => s.name === "tokyo")).toMatchObject({ heldDeletions: 12, holdReason: "PrimaryEmpty" });
    const events = JSON.parse(await kubectlOk(["get", "events", "-n", ns, "--field-selector", "reason=DeletionsHeld", "-o", "json"]));
    expect(events.items.length).toBeGreaterThan(0);
    expect(await until("the held-deletions metric", () => metricLine("geo_operator_deletions_held", 'site="tokyo"'))).toMatch(/ 12$/);
    await until("tokyo unhealthy with DeletionsHeld", async () => {
      const t = await getJSON("geosite", "tokyo");
      return (t.status?.healthReasons ?? []).some((r: string) => r.startsWith("DeletionsHeld")) || undefined;
    });
    // Held: nothing is lost, whatever time passes.
    for (const id of ids) expect(await secondaryHas(id)).toBe(true);

    await kubectlOk(["annotate", "rtype", "cool-widget", "-n", ns, "geo.replication.dev/release-deletions=now", "--overwrite"]);
    await until("the copies deleted after the release", async () => {
      for (const id of ids) if (await secondaryHas(id)) return undefined;
      return true;
    });
    const after = await until("DeletionsHeld cleared", async () => {
      const r = await getJSON("rtype", "cool-widget");
      return conditionOf(r, "DeletionsHeld")?.status === "False" ? r : undefined;
    });
    expect(after.status.lastDeletionRelease).toBe("now");
    const { rows } = await world.dbs.tracking.query(`SELECT count(*)::int AS n FROM cool_widget_registry`);
    expect(rows[0].n).toBe(0);
  });

  it("says so in status when worker Jobs cannot be created", async () => {
    // An admission policy that refuses every Job in this namespace, as a webhook or policy engine might.
    const policy = `deny-jobs-${ns}`;
    const docs = [
      {
        apiVersion: "admissionregistration.k8s.io/v1",
        kind: "ValidatingAdmissionPolicy",
        metadata: { name: policy },
        spec: {
          failurePolicy: "Fail",
          matchConstraints: { resourceRules: [{ apiGroups: ["batch"], apiVersions: ["v1"], operations: ["CREATE"], resources: ["jobs"] }] },
          validations: [{ expression: "false", message: "Jobs are not allowed in this namespace (test policy)" }],
        },
      },
      {
        apiVersion: "admissionregistration.k8s.io/v1",
        kind: "ValidatingAdmissionPolicyBinding",
        metadata: { name: policy },
        spec: { policyName: policy, validationActions: ["Deny"], matchResources: { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": ns } } } },
      },
    ];
    await kubectlOk(["apply", "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));
    try {
      let n = 0;
      const rt = await until("Ready=False JobsNotCreated", async () => {
        // Each new trigger value starts every kind that is not running.
        await kubectlOk(["annotate", "rtype", "cool-widget", "-n", ns, `geo.replication.dev/trigger=policy-${n++}`, "--overwrite"]);
        const r = await getJSON("rtype", "cool-widget");
        return conditionOf(r, "Ready")?.reason === "JobsNotCreated" ? r : undefined;
      }, 90_000);
      expect(conditionOf(rt, "Ready")).toMatchObject({ status: "False" });
      expect(conditionOf(rt, "Ready").message).toMatch(/worker Jobs could not be created: .*not allowed in this namespace/);
    } finally {
      await kubectlOk(["delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", policy]);
    }
    await until("Ready again once Jobs can be created", async () => conditionOf(await getJSON("rtype", "cool-widget"), "Ready")?.status === "True" || undefined);
  });

  it("names a type whose registry table is missing on a secondary in the GeoSite's health, rather than dropping it from status", async () => {
    // What a restored or hand-edited tracking database looks like to the operator (42P01). The
    // table is set aside by renaming, not dropped, so it can come back for the tests that follow.
    await world.dbs.tracking.query(`ALTER TABLE cool_widget_registry RENAME TO cool_widget_registry_set_aside`);
    try {
      const tokyo = await until("tokyo unhealthy with TablesMissing", async () => {
        const t = await getJSON("geosite", "tokyo");
        return (t.status?.healthReasons ?? []).some((r: string) => r.startsWith("TablesMissing")) ? t : undefined;
      }, 60_000);
      const missing = tokyo.status.healthReasons.find((r: string) => r.startsWith("TablesMissing"));
      expect(missing).toMatch(/^TablesMissing: cool_widget: .*cool_widget_registry.*SchemaReady/);
      expect(tokyo.status.health).toBe("Unhealthy");
      expect(conditionOf(tokyo, "Healthy")).toMatchObject({ status: "False" });
      expect(conditionOf(tokyo, "Healthy").message).toContain("TablesMissing: cool_widget:");
    } finally {
      await world.dbs.tracking.query(`ALTER TABLE cool_widget_registry_set_aside RENAME TO cool_widget_registry`);
    }
    await until("TablesMissing gone once the table is back", async () => {
      const t = await getJSON("geosite", "tokyo");
      return (t.status?.healthReasons ?? []).some((r: string) => r.startsWith("TablesMissing")) ? undefined : true;
    });
  });

  it("names the site a Delete-policy deletion waits for, and lets a person force it", async () => {
    await kubectlOk(["patch", "rtype", "cool-widget", "-n", ns, "--type=merge", "-p", JSON.stringify({ spec: { deletionPolicy: "Delete" } })]);
    await kubectlOk(["patch", "geosite", "tokyo", "-n", ns, "--type=merge", "-p", JSON.stringify({ spec: { enabled: false } })]);
    await kubectlOk(["delete", "rtype", "cool-widget", "-n", ns, "--wait=false"]);
    const rt = await until("DeletionBlocked", async () => {
      const r = await getJSON("rtype", "cool-widget");
      return conditionOf(r, "DeletionBlocked")?.status === "True" ? r : undefined;
    });
    expect(conditionOf(rt, "DeletionBlocked").message).toMatch(/tokyo: the site is disabled/);
    expect(conditionOf(rt, "DeletionBlocked").message).toMatch(/geo\.replication\.dev\/force-delete=true/);
    await kubectlOk(["annotate", "rtype", "cool-widget", "-n", ns, "geo.replication.dev/force-delete=true"]);
    await until("the type gone", async () => ((await kubectlAsync(["get", "rtype", "cool-widget", "-n", ns])).code !== 0 ? true : undefined));
    // The disabled site's registry was left in place, as the Event says.
    const { rows } = await world.dbs.tracking.query(`SELECT to_regclass('public.cool_widget_registry') IS NOT NULL AS present`);
    expect(rows[0].present).toBe(true);
  });
});
