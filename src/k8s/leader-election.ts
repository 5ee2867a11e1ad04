/**
 * Leader election on a coordination.k8s.io/v1 Lease, following client-go's algorithm: a candidate
 * takes the Lease when it is free or when its holder has not renewed it for a whole lease
 * duration as observed by this process (clocks of different machines are never compared); the
 * leader renews every retry period and gives up when it could not renew within the renew
 * deadline. Updates carry the resourceVersion, so two candidates cannot both win a round.
 */
import { ApiException, type CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "../util/log.ts";

export interface LeaderElectionOptions {
  api: CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  onStartedLeading: () => void;
  /** Called once when leadership is lost; the process should stop acting (usually exit). */
  onStoppedLeading: () => void;
  now?: () => number;
}

const isStatus = (err: unknown, code: number) => err instanceof ApiException && err.code === code;

/** Lease times are MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export class LeaderElector {
  private readonly o: Required<Omit<LeaderElectionOptions, "now">> & { now: () => number };
  private observed: { holder: string; renewTime: string; resourceVersion: string } | undefined;
  private observedAt = 0;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The round under way, if any: stop() waits for it so it cannot take the Lease after release. */
  private round: Promise<void> | undefined;
  private stopped = false;
  leading = false;

  constructor(opts: LeaderElectionOptions) {
    this.o = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      now: Date.now,
      ...opts,
    };
  }

  start(): void {
    this.stopped = false;
    this.runRound();
  }

  /**
   * Stops campaigning; the Lease is released so a successor need not wait it out. A round that
   * was under way is awaited first: left alone it could renew (or take) the Lease after the
   * release, and the successor would wait a whole lease duration for a process that is gone.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
    this.leading = false;
    // Released even when this process did not know it led (a round that took the Lease and was
    // cut short); a conflict means the Lease changed under us, so it is read again.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const lease = await this.o.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
        if (lease.spec?.holderIdentity !== this.o.identity) return;
        lease.spec.holderIdentity = undefined;
        lease.spec.leaseDurationSeconds = 1;
        await this.o.api.replaceNamespacedLease({ name: this.o.name, namespace: this.o.namespace, body: lease });
        return;
      } catch (err) {
        if (isStatus(err, 404)) return;
        if (isStatus(err, 409) && attempt < 2) continue;
        this.o.log.warn({ err: String(err) }, "could not release the leader lease");
        return;
      }
    }
  }

  private runRound(): void {
    this.round = this.tick().finally(() => {
      this.round = undefined;
    });
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.runRound(), this.o.retryPeriodMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    let acquired = false;
    try {
      acquired = await this.tryAcquireOrRenew();
    } catch (err) {
      this.o.log.warn({ err: err instanceof Error ? err.message : String(err) }, "leader election round failed");
    }
    if (this.stopped) return;
    const now = this.o.now();
    if (acquired) {
      this.lastRenew = now;
      if (!this.leading) {
        this.leading = true;
        this.o.log.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity }, "became leader");
        this.o.onStartedLeading();
      }
    } else if (this.leading && now - this.lastRenew > this.o.renewDeadlineMs) {
      this.leading = false;
      this.stopped = true;
      this.o.log.error({ lease: `${this.o.namespace}/${this.o.name}` }, "lost leadership: could not renew the lease in time");
      this.o.onStoppedLeading();
      return;
    }
    this.schedule();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { api, name, namespace, identity } = this.o;
    const now = this.o.now();
    const nowISO = microTime(now);
    const leaseSeconds = Math.ceil(this.o.leaseDurationMs / 1000);
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      const body: V1Lease = {
        metadata: { name, namespace },
        spec: { holderIdentity: identity, leaseDurationSeconds: leaseSeconds, acquireTime: nowISO as never, renewTime: nowISO as never, leaseTransitions: 0 },
      };
      if (this.stopped) return false;
      try {
        await api.createNamespacedLease({ namespace, body });
        return true;
      } catch (createErr) {
        if (isStatus(createErr, 409)) return false;
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    const renewTime = String(spec.renewTime ?? "");
    const rv = lease.metadata?.resourceVersion ?? "";
    if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== renewTime || this.observed.resourceVersion !== rv) {
      this.observed = { holder, renewTime, resourceVersion: rv };
      this.observedAt = now;
    }
    const duration = (spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
    if (holder && holder !== identity && now - this.observedAt < duration) return false;
    if (this.stopped) return false;

    const taking = holder !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: leaseSeconds,
      renewTime: nowISO as never,
      ...(taking ? { acquireTime: nowISO as never, leaseTransitions: (spec.leaseTransitions ?? 0) + (holder ? 1 : 0) } : {}),
    };
    try {
      await api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (err) {
      if (isStatus(err, 409)) return false;
      throw err;
    }
  }
}
