/** State names as the flags and the tables spell them, from the registry's numeric values. */
import { SyncState, VerificationState } from "./states.ts";

export const SYNC_STATES = Object.keys(SyncState) as (keyof typeof SyncState)[];
export const VERIFICATION_STATES = Object.keys(VerificationState) as (keyof typeof VerificationState)[];

const nameOf = (table: Record<string, number>, value: number): string => Object.entries(table).find(([, v]) => v === value)?.[0] ?? `unknown(${value})`;

export const syncStateName = (value: number): string => nameOf(SyncState, value);
export const verificationStateName = (value: number): string => nameOf(VerificationState, value);

/** Flag values are checked by commander's `choices`, so these lookups always succeed. */
export const syncStateValue = (name: string): number => SyncState[name as keyof typeof SyncState];
export const verificationStateValue = (name: string): number => VerificationState[name as keyof typeof VerificationState];
