/**
 * The bench's book of changes: every change the writer committed on the primary, and when the
 * watcher saw it take effect on the secondary. Pure: the watcher feeds it observations (a registry
 * row, optionally the version found in the secondary's storage), and it decides.
 *
 * A create or update is synced when the record's registry row is `synced` with `last_synced_at`
 * after the change's commit and, where the content was looked at, the secondary holds this
 * version or a later one (an older one is counted as stale and the change stays open). It is
 * verified when the row's verification succeeded after the commit (the primary's checksum was
 * dropped in the change's own transaction, so only the new content can pass). A delete is done
 * when the registry row is gone. A version on the secondary lower than one seen before for the
 * same record is a change applied out of order.
 */

export type DataKind = "blob" | "repo";
export type ChangeKind = "create" | "update" | "delete";

export interface Change {
  /** Order in which the writer committed (per record, commits never overlap). */
  seq: number;
  data: DataKind;
  kind: ChangeKind;
  modelId: number;
  /** The record's version after the change; a delete carries the last version. */
  version: number;
  /** Blob size class. */
  size?: string;
  /** Epoch ms: the primary's clock_timestamp() in the statement that committed the change. */
  committedAt: number;
  /** The change's event in the primary's log (event mode). */
  eventId?: number;
  /** An update or delete of a record the secondary had synced before (a delete's removal is timed). */
  replicatedBefore?: boolean;
  /** When the watcher saw the event on the replica the secondary reads. */
  replayedAt?: number;
  /** When the watcher saw the cursor's saved position pass the event. */
  appliedAt?: number;
  syncedAt?: number;
  verifiedAt?: number;
  removedAt?: number;
  /** A create or update left unsynced because the record was deleted before it was copied. */
  superseded?: boolean;
}

export interface RowObservation {
  present: boolean;
  synced: boolean;
  lastSyncedAt: number | null;
  verified: boolean;
  verifiedAt: number | null;
}

/** What the secondary's storage holds for a record: a version, nothing (null), or not looked at (undefined). */
export type ContentObservation = number | null | undefined;

interface RecordTrack {
  open: Change[];
  maxSeen: number;
  everSynced: boolean;
  deleted: boolean;
}

const key = (data: DataKind, id: number) => `${data}:${id}`;

export class Ledger {
  readonly changes: Change[] = [];
  private readonly records = new Map<string, RecordTrack>();
  private unapplied: Change[] = [];
  private unreplayed: Change[] = [];
  /** Changes whose row looked synced while the secondary still held an older version. */
  readonly staleSeen = new Set<number>();
  /**
   * Of those, changes whose row was synced (last_synced_at) after the cursor had already applied
   * their event: the resync should have fenced that copy out, so this is a lost update.
   */
  readonly staleAfterApplied: { change: Change; lastSyncedAt: number; found: ContentObservation }[] = [];
  /** Observations of a version lower than one seen before for the same record. */
  regressions = 0;
  /** Deletes whose registry row was gone while the copy was still in storage. */
  readonly leftovers = new Set<number>();

  /** Records already on both sides before the run (replicated by the Jobs' backfill). */
  seeded(data: DataKind, modelId: number, version: number): void {
    this.records.set(key(data, modelId), { open: [], maxSeen: version, everSynced: true, deleted: false });
  }

  add(change: Change): void {
    const track = this.track(change.data, change.modelId);
    if (change.kind !== "create") change.replicatedBefore = track.everSynced;
    if (change.kind === "delete") track.deleted = true;
    this.changes.push(change);
    track.open.push(change);
    if (change.eventId !== undefined) {
      this.unapplied.push(change);
      this.unreplayed.push(change);
    }
  }

  /** Model ids with a change not yet settled (synced and verified, or removed). */
  openIds(data: DataKind): number[] {
    const ids: number[] = [];
    for (const [k, t] of this.records) if (t.open.length > 0 && k.startsWith(`${data}:`)) ids.push(Number(k.slice(data.length + 1)));
    return ids;
  }

  /** Whether `row` would settle a change whose content is to be confirmed (every `every`-th change). */
  wantsContent(data: DataKind, modelId: number, row: RowObservation, every: number): boolean {
    const track = this.records.get(key(data, modelId));
    if (!track) return false;
    return track.open.some((c) => c.seq % every === 0 && (c.kind === "delete" ? !row.present : c.syncedAt === undefined && syncedAfter(row, c)));
  }

  observeRow(data: DataKind, modelId: number, row: RowObservation, content: ContentObservation, at: number): void {
    const track = this.records.get(key(data, modelId));
    if (!track) return;
    if (typeof content === "number") {
      if (content < track.maxSeen) this.regressions++;
      track.maxSeen = Math.max(track.maxSeen, content);
    }
    for (const c of track.open) {
      if (c.kind === "delete") {
        if (!row.present) {
          c.removedAt = at;
          if (typeof content === "number") this.leftovers.add(c.seq);
        }
        continue;
      }
      if (c.syncedAt === undefined && syncedAfter(row, c)) {
        // No copy of a record whose delete is already committed: the delete removed it between the
        // registry read and the storage read (copies go before rows), not a stale sync.
        const removedSince = content === null && track.deleted;
        if (content === undefined || removedSince || (content !== null && content >= c.version)) c.syncedAt = row.lastSyncedAt!;
        else {
          this.staleSeen.add(c.seq);
          const lost = c.appliedAt !== undefined && row.lastSyncedAt! > c.appliedAt;
          if (lost && !this.staleAfterApplied.some((s) => s.change === c)) this.staleAfterApplied.push({ change: c, lastSyncedAt: row.lastSyncedAt!, found: content });
        }
      }
      if (c.syncedAt !== undefined) track.everSynced = true;
      if (c.verifiedAt === undefined && row.verified && row.verifiedAt! > c.committedAt && syncedAfter(row, c)) c.verifiedAt = row.verifiedAt!;
    }
    for (const c of track.open) if (track.deleted && !row.present && c.kind !== "delete" && !settled(c)) c.superseded = true;
    track.open = track.open.filter((c) => !settled(c) && !c.superseded);
  }

  /** The secondary cursor's saved position: every event up to it, except the gaps, is applied. */
  observeApplied(lastEventId: number, gaps: ReadonlySet<number>, at: number): void {
    if (this.unapplied.length === 0) return;
    for (const c of this.unapplied) if (c.eventId! <= lastEventId && !gaps.has(c.eventId!)) c.appliedAt = at;
    this.unapplied = this.unapplied.filter((c) => c.appliedAt === undefined);
  }

  private track(data: DataKind, modelId: number): RecordTrack {
    let t = this.records.get(key(data, modelId));
    if (!t) {
      t = { open: [], maxSeen: 0, everSynced: false, deleted: false };
      this.records.set(key(data, modelId), t);
    }
    return t;
  }

  /** The newest event id on the secondary's replica of the primary (ids commit nearly in order). */
  observeReplayed(lastEventId: number, at: number): void {
    for (const c of this.unreplayed) if (c.eventId! <= lastEventId) c.replayedAt = at;
    this.unreplayed = this.unreplayed.filter((c) => c.replayedAt === undefined);
  }

  /** Changes still open: creates/updates never synced (or never verified), deletes never removed. */
  unsettled(): Change[] {
    return [...this.records.values()].flatMap((t) => t.open);
  }
}

function syncedAfter(row: RowObservation, c: Change): boolean {
  return row.present && row.synced && row.lastSyncedAt !== null && row.lastSyncedAt > c.committedAt;
}

function settled(c: Change): boolean {
  return c.kind === "delete" ? c.removedAt !== undefined : c.syncedAt !== undefined && c.verifiedAt !== undefined;
}

/** Nearest-rank percentile of `values` (any order); NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
