/**
 * Watches the secondary: every poll it reads the registry rows of records with open changes
 * (tracking database), looks at the secondary's storage for the changes whose content is to be
 * confirmed (the object's version header, the mirror's main ref), and feeds the ledger. In event
 * mode it also samples the cursors' saved positions against the head of the primary's event log.
 *
 * Synced and verified times are the registry's own timestamps (last_synced_at, verified_at: the
 * tracking database's clock, the same machine's as the writer's), so the poll interval does not
 * add to them; removals have no timestamp and are timed by the poll that no longer finds the row.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { eventLogBounds, loadCursorPosition, readEvents } from "../../src/registry/event-log.ts";
import { SyncState, VerificationState } from "../../src/registry/states.ts";
import { findRegistryRows } from "../../src/registry/sync-state.ts";
import { typeRuntimeConfig } from "../../src/strategies/type-config.ts";
import type { ContentObservation, DataKind, Ledger, RowObservation } from "./ledger.ts";
import { VERSION_METADATA, type BlobRecord, type RepoRecord, type Workload } from "./workload.ts";
import { PRIMARY_SITE, SECONDARY_SITE } from "./world.ts";

export interface LagSample {
  at: number;
  /** Events in the primary's log the secondary's cursor has not applied. */
  behind: number;
  /** Age of the oldest event the secondary's cursor has not applied (0 when caught up). */
  lagSeconds: number;
  /** The same for the primary's own cursor (checksums). */
  primaryBehind: number;
  /** Events in the primary's log not yet replayed on its replica. */
  replicaBehind: number;
}

const LAG_SAMPLE_MS = 250;
/** How often the replica's newest event and the cursor's position are looked at (the breakdown's resolution). */
const POSITION_POLL_MS = 50;
const CONTENT_CONCURRENCY = 16;

export class Watcher {
  readonly lag: LagSample[] = [];
  /** Poll rounds, and the longest one (a slow round delays removal times). */
  rounds = 0;
  longestRoundMs = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private positions: Promise<void> | undefined;
  private readonly workload: Workload;
  private readonly ledger: Ledger;
  private readonly opts: { pollMs: number; confirmEvery: number; cursors: boolean };

  constructor(workload: Workload, ledger: Ledger, opts: { pollMs: number; confirmEvery: number; cursors: boolean }) {
    this.workload = workload;
    this.ledger = ledger;
    this.opts = opts;
  }

  start(): void {
    this.stopped = false;
    this.loop = this.run();
    if (this.opts.cursors) this.positions = this.followPositions();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await this.positions;
  }

  /** Sets how often content is confirmed (per rate). */
  confirmEvery(n: number): void {
    this.opts.confirmEvery = n;
  }

  private async run(): Promise<void> {
    let lastLag = 0;
    while (!this.stopped) {
      const began = Date.now();
      await this.poll("blob");
      await this.poll("repo");
      if (this.opts.cursors && Date.now() - lastLag >= LAG_SAMPLE_MS) {
        lastLag = Date.now();
        await this.sampleLag();
      }
      const took = Date.now() - began;
      this.rounds++;
      this.longestRoundMs = Math.max(this.longestRoundMs, took);
      if (took < this.opts.pollMs) await new Promise((r) => setTimeout(r, this.opts.pollMs - took));
    }
  }

  /** When each event reached the replica the secondary reads, and when the cursor had applied it. */
  private async followPositions(): Promise<void> {
    const world = this.workload.world;
    while (!this.stopped) {
      const began = Date.now();
      const [replica, position] = await Promise.all([eventLogBounds(world.replicaDb), loadCursorPosition(world.trackingDb, SECONDARY_SITE)]);
      const at = Date.now();
      if (replica.last) this.ledger.observeReplayed(replica.last.id, at);
      if (position) this.ledger.observeApplied(position.lastEventId, new Set(position.gaps.map((g) => g.id)), at);
      const took = Date.now() - began;
      if (took < POSITION_POLL_MS) await new Promise((r) => setTimeout(r, POSITION_POLL_MS - took));
    }
  }

  private async poll(data: DataKind): Promise<void> {
    const ids = this.ledger.openIds(data);
    if (ids.length === 0) return;
    const type = data === "blob" ? this.workload.world.blobType : this.workload.world.repoType;
    const rows = new Map((await findRegistryRows(this.workload.world.trackingDb, typeRuntimeConfig(type).schema, ids)).map((r) => [r.modelId, r]));
    const at = Date.now();
    const observations = ids.map((id): [number, RowObservation] => {
      const r = rows.get(id);
      return [
        id,
        r
          ? { present: true, synced: r.state === SyncState.synced, lastSyncedAt: r.lastSyncedAt?.getTime() ?? null, verified: r.verificationState === VerificationState.succeeded, verifiedAt: r.verifiedAt?.getTime() ?? null }
          : { present: false, synced: false, lastSyncedAt: null, verified: false, verifiedAt: null },
      ];
    });
    const wanted = observations.filter(([id, row]) => this.ledger.wantsContent(data, id, row, this.opts.confirmEvery));
    const contents = new Map<number, ContentObservation>();
    for (let i = 0; i < wanted.length; i += CONTENT_CONCURRENCY) {
      await Promise.all(wanted.slice(i, i + CONTENT_CONCURRENCY).map(async ([id]) => contents.set(id, await this.contentOf(data, id))));
    }
    for (const [id, row] of observations) this.ledger.observeRow(data, id, row, contents.get(id), at);
  }

  /** The version the secondary's storage holds for a record (null: nothing there). */
  async contentOf(data: DataKind, id: number): Promise<ContentObservation> {
    const record = this.workload.record(data, id);
    if (!record) return undefined;
    if (record.data === "blob") return this.blobVersion(record);
    return repoVersion(record, this.workload.mirrorPath(record));
  }

  private async blobVersion(r: BlobRecord): Promise<ContentObservation> {
    const world = this.workload.world;
    try {
      const head = await world.secondaryS3.send(new HeadObjectCommand({ Bucket: world.buckets.secondary, Key: world.prefix + this.workload.blobKey(r) }));
      return Number(head.Metadata?.[VERSION_METADATA] ?? 0);
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return null;
      throw err;
    }
  }

  private async sampleLag(): Promise<void> {
    const world = this.workload.world;
    const [bounds, secondary, primary, replica] = await Promise.all([
      eventLogBounds(world.primaryDb),
      loadCursorPosition(world.trackingDb, SECONDARY_SITE),
      loadCursorPosition(world.primaryDb, PRIMARY_SITE),
      eventLogBounds(world.replicaDb),
    ]);
    if (!bounds.last || !secondary) return;
    const behind = Math.max(0, bounds.last.id - secondary.lastEventId);
    // The age of the oldest event it has not applied. (Newest minus newest applied, GitLab's
    // definition, counts the quiet time before a burst as lag.)
    const [oldestUnapplied] = behind > 0 ? await readEvents(world.primaryDb, secondary.lastEventId, 1) : [];
    const lagSeconds = oldestUnapplied ? Math.max(0, (Date.now() - oldestUnapplied.createdAt.getTime()) / 1000) : 0;
    this.lag.push({ at: Date.now(), behind, lagSeconds, primaryBehind: primary ? Math.max(0, bounds.last.id - primary.lastEventId) : Number.NaN,
      replicaBehind: Math.max(0, bounds.last.id - (replica.last?.id ?? 0)),
    });
  }
}

/** Version of the commit a mirror's main points at (0: unknown commit, null: no mirror). */
export function repoVersion(r: RepoRecord, mirror: string): ContentObservation {
  const sha = readRef(mirror, "refs/heads/main");
  if (sha === null) return null;
  return r.shas.indexOf(sha) + 1;
}

/** A ref of a repository with the files backend: the loose ref, else packed-refs; null when neither. */
export function readRef(gitDir: string, ref: string): string | null {
  try {
    return readFileSync(join(gitDir, ref), "utf8").trim();
  } catch {
    if (!existsSync(gitDir)) return null;
  }
  try {
    for (const line of readFileSync(join(gitDir, "packed-refs"), "utf8").split("\n")) {
      const [sha, name] = line.split(" ");
      if (name === ref) return sha!;
    }
  } catch {
    // no packed-refs
  }
  return null;
}
