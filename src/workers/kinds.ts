/** The four worker passes. verify-primary runs on the primary; the others on each secondary. */
export const WORKER_KINDS = ["verify-primary", "sync", "verify", "consistency"] as const;
export type WorkerKind = (typeof WORKER_KINDS)[number];

export const PRIMARY_KINDS: readonly WorkerKind[] = ["verify-primary"];
export const SECONDARY_KINDS: readonly WorkerKind[] = ["sync", "verify", "consistency"];
