/**
 * Kubernetes Events for notable transitions (`kubectl describe` shows them). Best effort: a
 * failure to record an event is logged, never fatal to a reconcile.
 */
import type { CoreV1Api, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "../util/log.ts";

/** `Reasons` narrows what a caller may pass as a reason (the controllers pass their `ReasonValue`). */
export class EventRecorder<Reasons extends string = string> {
  private readonly core: CoreV1Api;
  private readonly component: string;
  private readonly log: Logger;

  constructor(core: CoreV1Api, component: string, log: Logger) {
    this.core = core;
    this.component = component;
    this.log = log;
  }

  async record(obj: KubernetesObject, type: "Normal" | "Warning", reason: Reasons, message: string): Promise<void> {
    const namespace = obj.metadata?.namespace ?? "default";
    const now = new Date();
    try {
      await this.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${obj.metadata?.name ?? "object"}.`, namespace },
          involvedObject: {
            apiVersion: obj.apiVersion,
            kind: obj.kind,
            name: obj.metadata?.name,
            namespace,
            uid: obj.metadata?.uid,
            resourceVersion: obj.metadata?.resourceVersion,
          },
          reason,
          message,
          type,
          source: { component: this.component },
          firstTimestamp: now as never,
          lastTimestamp: now as never,
          count: 1,
        },
      });
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err), reason }, "could not record event");
    }
  }
}
