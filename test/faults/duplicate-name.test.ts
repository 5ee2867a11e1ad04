/**
 * Two ReplicableTypes with the same spec.name in one namespace share one registry: if both ran,
 * each would delete the other's copies. The operator runs against the test API server with the
 * fake kubelet (as in test/integration/operator.test.ts); the later object must be refused in
 * status and get no Jobs, while the first one replicates as usual.
 */
import { afterAll, describe, expect, inject, it } from "vitest";
import { stringify } from "yaml";
import { startTestOperator, type TestOperator } from "../support/test-manager.ts";
import { createNamespace, installCrdsAsync, kubectlAsyncOk } from "../support/kubectl.ts";
import type { World } from "../support/worker-world.ts";
import { expectInvariants } from "./invariants.ts";
import { scenario } from "./report.ts";
import { addBlobs, createFaultBlobWorld, sleep, stateCounts, until } from "./world.ts";

const env = inject("env");
let operator: TestOperator | undefined;
let world: World | undefined;

afterAll(async () => {
  await operator?.stop();
  await world?.close();
});

describe("fault suite: duplicate spec.name", () => {
  it("14 duplicate spec.name", () =>
    scenario(
      "14 duplicate spec.name",
      {
        done: "operator running; ReplicableType widgets-a (spec.name cool_widget) with 6 objects; a second later widgets-b with the same spec.name and source.table pointing at an empty table",
        expected: "widgets-b Ready=False reason DuplicateName and no Jobs for it; widgets-a replicates and verifies all 6",
      },
      async (o) => {
        const w = await createFaultBlobWorld(env);
        world = w;
        await addBlobs(w, 6);
        await w.dbs.primary.query(`CREATE TABLE cool_widgets_b (id bigserial PRIMARY KEY, namespace_id bigint, file_name text NOT NULL)`);
        await installCrdsAsync();
        const ns = createNamespace("faults-dup");
        const docs: object[] = [
          ...w.secrets(),
          { apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name: "london" }, spec: { ...w.primarySite, statusInterval: "2s" } },
          { apiVersion: "geo.replication.dev/v1alpha1", kind: "GeoSite", metadata: { name: "tokyo" }, spec: { ...w.secondarySite, statusInterval: "2s" } },
        ];
        await kubectlAsyncOk(["apply", "-n", ns, "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));
        const fast = { sync: "2s", verification: "2s", primaryVerification: "2s", consistency: "3s" };
        const rtype = (name: string, table: string) => ({
          apiVersion: "geo.replication.dev/v1alpha1",
          kind: "ReplicableType",
          metadata: { name },
          spec: { ...w.type, source: { ...w.type.source, table }, intervals: fast },
        });
        operator = await startTestOperator({ namespace: ns, identity: "faults", logName: "faults-manager", maxRunSeconds: 30 });

        await kubectlAsyncOk(["apply", "-n", ns, "-f", "-"], stringify(rtype("widgets-a", "cool_widgets")));
        await sleep(1500); // creationTimestamp has one-second resolution: b is unmistakably later
        await kubectlAsyncOk(["apply", "-n", ns, "-f", "-"], stringify(rtype("widgets-b", "cool_widgets_b")));

        await until("widgets-a to replicate and verify all 6", async () => (await stateCounts(w)).verified === 6 || undefined, 90_000, 500).catch(async (err) => {
          o.note(`widgets-a: ${JSON.stringify(await stateCounts(w))}`);
          throw err;
        });
        const get = async (name: string) => JSON.parse(await kubectlAsyncOk(["get", "rtype", name, "-n", ns, "-o", "json"]));
        const b = await get("widgets-b");
        const a = await get("widgets-a");
        const readyOf = (x: any) => x.status?.conditions?.find((c: any) => c.type === "Ready");
        const jobsOf = async (name: string) => JSON.parse(await kubectlAsyncOk(["get", "jobs", "-n", ns, "-l", `geo.replication.dev/type=${name}`, "-o", "json"])).items.length as number;
        const [jobsA, jobsB] = [await jobsOf("widgets-a"), await jobsOf("widgets-b")];
        const rb = readyOf(b);
        o.note(`widgets-a Ready=${readyOf(a)?.status}, ${jobsA} Jobs; widgets-b Ready=${rb?.status ?? "unset"} reason=${rb?.reason ?? "-"}, ${jobsB} Jobs`);
        const counts = await stateCounts(w);
        o.note(`registry: ${counts.rows} rows, ${counts.verified} verified`);
        expect(rb).toMatchObject({ status: "False", reason: "DuplicateName" });
        expect(jobsB).toBe(0);
        await expectInvariants(env, w, o);
      },
    ));
});
