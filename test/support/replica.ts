/**
 * The primary's read replica in tests: the hot standby the local environment streams from the
 * primary PostgreSQL server (GEO_TEST_PRIMARY_REPLICA_URL), reached by URL like the other servers.
 * Pausing replay affects every test reading through the standby: resume it in a `finally`.
 */
import { pauseReplay, resumeReplay, waitForCatchUp } from "../../hack/localenv/postgres.ts";

export interface ReplicaControl {
  /** Returns once replay has stopped: WAL keeps streaming in, nothing new becomes visible. */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** Resolves once everything committed on the primary before the call is visible on the standby. */
  waitForCatchUp(timeoutMs?: number): Promise<void>;
}

function serverURL(variable: "GEO_TEST_PRIMARY_DB_URL" | "GEO_TEST_PRIMARY_REPLICA_URL"): URL {
  const value = process.env[variable];
  if (!value) throw new Error(`${variable} is not set; the primary's read replica comes from test/global-setup.ts`);
  return new URL(value);
}

/** The same database as `primaryDatabaseURL` (a database on the primary server), on the standby. */
export function replicaURLFor(primaryDatabaseURL: string): string {
  const primary = serverURL("GEO_TEST_PRIMARY_DB_URL");
  const url = new URL(primaryDatabaseURL);
  if (url.host !== primary.host) throw new Error(`${primaryDatabaseURL} is not a database on the primary server (${primary.host})`);
  url.host = serverURL("GEO_TEST_PRIMARY_REPLICA_URL").host;
  return url.toString();
}

export function replicaControl(): ReplicaControl {
  const primary = serverURL("GEO_TEST_PRIMARY_DB_URL").toString();
  const standby = serverURL("GEO_TEST_PRIMARY_REPLICA_URL").toString();
  return {
    pauseReplay: () => pauseReplay(standby),
    resumeReplay: () => resumeReplay(standby),
    waitForCatchUp: (timeoutMs) => waitForCatchUp(primary, standby, timeoutMs),
  };
}
