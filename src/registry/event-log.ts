/**
 * The change event log on the primary's main database (written by the capture triggers and
 * geo_operator_publish_event(), see change-capture.ts and side-tables.ts), and where each log
 * cursor stands (`geo_operator_event_cursors`: in a secondary's tracking database, and on the
 * primary for the primary's own cursor).
 *
 * Secondaries read the log through their read replica: every read here is a plain SELECT, and
 * no query relies on LISTEN/NOTIFY, which a physical replica does not deliver.
 */
import type { Queryable } from "./db.ts";
import { toNumber } from "./db.ts";
import { EVENT_CURSORS_TABLE, EVENTS_TABLE, PUBLISH_FUNCTION } from "./side-tables.ts";
import { EVENT_KIND_NAMES, EVENTS_CHANNEL, EventKind, type EventKindName } from "./states.ts";
import type pg from "pg";

export interface ChangeEvent {
  id: number;
  typeName: string;
  modelId: number;
  event: EventKindName;
  /** When the change was written on the primary (its clock). */
  createdAt: Date;
}

interface EventRecord {
  id: string;
  type_name: string;
  model_id: string;
  event: number;
  created_at: Date;
}

const NAME_OF = new Map<number, EventKindName>(EVENT_KIND_NAMES.map((n) => [EventKind[n], n]));

function toEvent(r: EventRecord): ChangeEvent {
  const event = NAME_OF.get(r.event);
  if (!event) throw new Error(`event ${r.id} has unknown kind ${r.event}`);
  return { id: toNumber(r.id), typeName: r.type_name, modelId: toNumber(r.model_id), event, createdAt: r.created_at };
}

const COLUMNS = "id::text, type_name, model_id::text, event, created_at";
const UNDEFINED_TABLE = "42P01";

function isUndefinedTable(err: unknown): boolean {
  return (err as { code?: string }).code === UNDEFINED_TABLE;
}

/**
 * Events after `afterId` in id order, plus the events whose ids are in `gapIds` (ids skipped
 * earlier because their transaction had not committed yet). Empty while the log does not exist
 * yet (the primary's schema manager creates it; a replica may not have it yet).
 */
export async function readEvents(db: Queryable, afterId: number, limit: number, gapIds: readonly number[] = []): Promise<ChangeEvent[]> {
  try {
    const { rows } = await db.query<EventRecord>(
      `(SELECT ${COLUMNS} FROM public.${EVENTS_TABLE} WHERE id > $1::bigint ORDER BY id LIMIT $2::integer)
       UNION
       (SELECT ${COLUMNS} FROM public.${EVENTS_TABLE} WHERE id = ANY($3::bigint[]))
       ORDER BY 1`,
      [afterId, limit, gapIds],
    );
    return rows.map(toEvent).sort((a, b) => a.id - b.id);
  } catch (err) {
    if (isUndefinedTable(err)) return [];
    throw err;
  }
}

export interface EventLogBounds {
  /** Newest event (GitLab's geo_last_event_id / _timestamp); null when the log is empty or absent. */
  last: { id: number; createdAt: Date } | null;
  /** Oldest event still in the log (pruning shows here); null when empty. */
  oldest: { id: number; createdAt: Date } | null;
}

/** The newest and oldest events, each by an index lookup. */
export async function eventLogBounds(db: Queryable): Promise<EventLogBounds> {
  try {
    const { rows } = await db.query<{ last_id: string | null; last_at: Date | null; oldest_id: string | null; oldest_at: Date | null }>(
      `SELECT l.id::text AS last_id, l.created_at AS last_at, o.id::text AS oldest_id, o.created_at AS oldest_at
       FROM (SELECT 1) AS one
       LEFT JOIN LATERAL (SELECT id, created_at FROM public.${EVENTS_TABLE} ORDER BY id DESC LIMIT 1) AS l ON true
       LEFT JOIN LATERAL (SELECT id, created_at FROM public.${EVENTS_TABLE} ORDER BY id ASC LIMIT 1) AS o ON true`,
    );
    const r = rows[0]!;
    return {
      last: r.last_id === null ? null : { id: toNumber(r.last_id), createdAt: r.last_at! },
      oldest: r.oldest_id === null ? null : { id: toNumber(r.oldest_id), createdAt: r.oldest_at! },
    };
  } catch (err) {
    if (isUndefinedTable(err)) return { last: null, oldest: null };
    throw err;
  }
}

/**
 * Deletes events older than the retention, at most `limit` per call (oldest first, by id), so a
 * large backlog is pruned in short transactions. Primary only. Returns how many went.
 */
export async function pruneEvents(primary: Queryable, retentionSeconds: number, limit = 10_000): Promise<number> {
  try {
    const result = await primary.query(
      `DELETE FROM public.${EVENTS_TABLE} WHERE id IN (
         SELECT id FROM public.${EVENTS_TABLE} WHERE created_at < now() - make_interval(secs => $1::double precision) ORDER BY id LIMIT $2::integer)`,
      [retentionSeconds, limit],
    );
    return result.rowCount ?? 0;
  } catch (err) {
    if (isUndefinedTable(err)) return 0;
    throw err;
  }
}

/**
 * Publishes a change the database cannot see through geo_operator_publish_event() (which also
 * drops the primary checksum of an updated record). Primary only. Returns the event's id.
 */
export async function publishEvent(primary: Queryable, typeName: string, modelId: number, event: EventKindName): Promise<number> {
  const { rows } = await primary.query<{ id: string }>(`SELECT public.${PUBLISH_FUNCTION}($1::text, $2::bigint, $3::text)::text AS id`, [typeName, modelId, event]);
  return toNumber(rows[0]!.id);
}

/** An event id the cursor skipped because it was not visible yet, and since when (epoch ms). */
export interface CursorGap {
  id: number;
  since: number;
}

export interface CursorPosition {
  /** Every event up to here has been applied, except the gaps. */
  lastEventId: number;
  /** created_at of the newest applied event (GitLab's geo_cursor_last_event_timestamp). */
  lastEventAt: Date | null;
  gaps: CursorGap[];
}

/** The cursor's saved position; null when it never ran against this database. */
export async function loadCursorPosition(db: Queryable, cursorName: string): Promise<CursorPosition | null> {
  const { rows } = await db.query<{ last_event_id: string; last_event_at: Date | null; gaps: CursorGap[] }>(
    `SELECT last_event_id::text, last_event_at, gaps FROM public.${EVENT_CURSORS_TABLE} WHERE cursor_name = $1::text`,
    [cursorName],
  );
  const r = rows[0];
  return r ? { lastEventId: toNumber(r.last_event_id), lastEventAt: r.last_event_at, gaps: r.gaps } : null;
}

/** Saves the position (after the events up to it were applied). */
export async function saveCursorPosition(db: Queryable, cursorName: string, position: CursorPosition): Promise<void> {
  await db.query(
    `INSERT INTO public.${EVENT_CURSORS_TABLE} (cursor_name, last_event_id, last_event_at, gaps, updated_at)
     VALUES ($1::text, $2::bigint, $3::timestamptz, $4::jsonb, now())
     ON CONFLICT (cursor_name) DO UPDATE SET last_event_id = EXCLUDED.last_event_id, last_event_at = EXCLUDED.last_event_at,
       gaps = EXCLUDED.gaps, updated_at = now()`,
    [cursorName, position.lastEventId, position.lastEventAt, JSON.stringify(position.gaps)],
  );
}

/** Positions of every cursor in this database (status and metrics); empty when none ran yet. */
export async function cursorPositions(db: Queryable): Promise<Map<string, CursorPosition & { updatedAt: Date }>> {
  try {
    const { rows } = await db.query<{ cursor_name: string; last_event_id: string; last_event_at: Date | null; gaps: CursorGap[]; updated_at: Date }>(
      `SELECT cursor_name, last_event_id::text, last_event_at, gaps, updated_at FROM public.${EVENT_CURSORS_TABLE}`,
    );
    return new Map(rows.map((r) => [r.cursor_name, { lastEventId: toNumber(r.last_event_id), lastEventAt: r.last_event_at, gaps: r.gaps, updatedAt: r.updated_at }]));
  } catch (err) {
    if (isUndefinedTable(err)) return new Map();
    throw err;
  }
}

/** Whether this connection is to a server that can deliver NOTIFY from the primary (not a hot standby). */
export async function isPrimaryServer(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ recovery: boolean }>(`SELECT pg_is_in_recovery() AS recovery`);
  return rows[0]?.recovery === false;
}

/**
 * Subscribes a dedicated connection to the capture triggers' NOTIFY (only a connection to the
 * primary itself receives it). `onEvent` is called, without payload, after events commit.
 */
export async function listenForEvents(client: pg.Client, onEvent: () => void): Promise<void> {
  client.on("notification", (n) => {
    if (n.channel === EVENTS_CHANNEL) onEvent();
  });
  await client.query(`LISTEN ${EVENTS_CHANNEL}`);
}
