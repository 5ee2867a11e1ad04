/**
 * The Grafana dashboard and the PrometheusRule query only metrics the operator exports
 * (src/metrics/metrics.ts) and its log cursors export (src/metrics/cursor-metrics.ts), so a renamed
 * metric breaks this test instead of a dashboard; the cursors' ServiceMonitor selects the Services
 * the operator renders for them.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { GeoSite, ReplicableType } from "../../../src/api/v1alpha1/resources.ts";
import { desiredSiteServers, renderServerService } from "../../../src/controllers/site-servers.ts";
import { CursorMetrics } from "../../../src/metrics/cursor-metrics.ts";
import { OperatorMetrics, TYPE_GAUGES } from "../../../src/metrics/metrics.ts";
import { CHART_DIR, get, helmTemplate } from "./render.ts";

/** Names the operator exports (histograms as their series), and the per-type gauge suffixes. */
async function exported(): Promise<{ names: Set<string>; typeSuffixes: Set<string> }> {
  const operator = new OperatorMetrics({ defaultMetrics: false });
  new CursorMetrics(operator.registry);
  const metrics = await operator.registry.getMetricsAsJSON();
  const names = new Set<string>();
  for (const m of metrics) {
    names.add(m.name);
    if (String(m.type) === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(m.name + s);
  }
  return { names, typeSuffixes: new Set(TYPE_GAUGES.map(([suffix]) => suffix).filter(Boolean)) };
}

/** Problems with the metric names an expression uses (empty when all exist). */
function unknownMetrics(expr: string, known: { names: Set<string>; typeSuffixes: Set<string> }): string[] {
  const problems: string[] = [];
  // Per-type gauges are selected by name pattern: {__name__=~"geo_.+_<suffix>"}.
  for (const m of expr.matchAll(/__name__=~"geo_\.\+(_[a-z_]+)"/g)) if (!known.typeSuffixes.has(m[1]!)) problems.push(`geo_<type>${m[1]}`);
  const withoutPatterns = expr.replace(/"[^"]*"/g, '""');
  for (const m of withoutPatterns.matchAll(/\bgeo_[a-z_]+/g)) if (!known.names.has(m[0])) problems.push(m[0]);
  return problems;
}

describe("monitoring", () => {
  const dashboard = JSON.parse(readFileSync(join(CHART_DIR, "dashboards/geo-operator.json"), "utf8"));
  const exprs: string[] = dashboard.panels.flatMap((p: { targets?: { expr: string }[] }) => (p.targets ?? []).map((t) => t.expr));

  it("the dashboard covers synced %, verified %, failures, oldest pending, reconcile errors and Job outcomes", () => {
    const titles = dashboard.panels.map((p: { title: string }) => p.title).join("\n");
    for (const t of [/synced %/i, /verified %/i, /failures/i, /oldest pending/i, /reconcile errors/i, /job outcomes/i]) expect(titles).toMatch(t);
    expect(new Set(dashboard.panels.map((p: { id: number }) => p.id)).size).toBe(dashboard.panels.length);
  });

  it("the dashboard queries only exported metrics", async () => {
    const known = await exported();
    expect(exprs.length).toBeGreaterThan(5);
    for (const e of exprs) expect(unknownMetrics(e, known), e).toEqual([]);
  });

  it("the alerts query only exported metrics and use the configured thresholds", async () => {
    const known = await exported();
    const rules = get(helmTemplate({ set: ["metrics.prometheusRule.enabled=true", "metrics.prometheusRule.oldestPendingThresholdSeconds=900"] }), "PrometheusRule").spec.groups[0].rules;
    for (const r of rules) expect(unknownMetrics(r.expr, known), r.expr).toEqual([]);
    const byName = Object.fromEntries(rules.map((r: { alert: string }) => [r.alert, r]));
    expect(byName.GeoSiteUnhealthy).toMatchObject({ expr: "geo_operator_site_healthy == 0", for: "10m" });
    expect(byName.GeoVerificationFailuresRising.expr).toContain('{__name__=~"geo_.+_verification_failed"}');
    expect(byName.GeoOldestPendingTooOld.expr).toBe("geo_operator_oldest_pending_seconds > 900");
    expect(byName.GeoEventCursorBehind).toMatchObject({ expr: "geo_cursor_event_lag_seconds > 300", for: "10m" });
    const tuned = get(helmTemplate({ set: ["metrics.prometheusRule.enabled=true", "metrics.prometheusRule.cursorLagThresholdSeconds=60", "metrics.prometheusRule.cursorLagFor=3m"] }), "PrometheusRule");
    expect(tuned.spec.groups[0].rules.find((r: { alert: string }) => r.alert === "GeoEventCursorBehind")).toMatchObject({ expr: "geo_cursor_event_lag_seconds > 60", for: "3m" });
    // Alert templates reach Prometheus unexpanded by Helm.
    expect(byName.GeoSiteUnhealthy.annotations.summary).toContain("{{ $labels.site }}");
  });

  it("the cursors' ServiceMonitor selects the Service the operator renders for a log cursor, on its port", () => {
    const site = (name: string, spec: object) => ({ metadata: { name, namespace: "geo" }, spec: { database: { secretRef: { name: `${name}-db` } }, ...spec } }) as unknown as GeoSite;
    const london = site("london", { role: "primary" });
    const tokyo = site("tokyo", { role: "secondary", database: { secretRef: { name: "tokyo-db" }, primaryReplicaSecretRef: { name: "replica" } } });
    const type = { metadata: { name: "cool-widget", namespace: "geo" }, spec: { name: "cool_widget", strategy: "blob", source: { table: "cool_widgets", objectKey: { column: "path" } } } } as unknown as ReplicableType;
    const [cursor] = desiredSiteServers(tokyo, [london, tokyo], [type]);
    const service = renderServerService(cursor!);
    const sm = get(helmTemplate({ set: ["metrics.serviceMonitor.enabled=true"] }), "ServiceMonitor", "geo-operator-cursors");
    expect(service.metadata!.labels).toMatchObject(sm.spec.selector.matchLabels);
    for (const e of sm.spec.selector.matchExpressions) expect(e.operator === "Exists" && e.key in service.metadata!.labels!, e.key).toBe(true);
    expect(service.spec!.ports!.map((p) => p.name)).toContain(sm.spec.endpoints[0].port);
  });

  it("the scanner notices an unknown metric", async () => {
    const known = await exported();
    expect(unknownMetrics('rate(geo_operator_nope_total[5m]) + {__name__=~"geo_.+_bogus"}', known)).toEqual(["geo_<type>_bogus", "geo_operator_nope_total"]);
  });
});
