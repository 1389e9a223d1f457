import type { Emulator } from "../../emulator";
import { admin } from "./emulator";

export interface ConsumerState {
  kind: string;
  id: string;
  name: string;
  storageAccountName: string;
  heldKeyName: "key1" | "key2" | null;
}

export interface OutageEntry {
  consumerId: string;
  kind: string;
  name: string;
  start: string;
  end?: string;
  durationMs?: number;
}

export async function consumers(emulator: Emulator): Promise<ConsumerState[]> {
  return ((await admin(emulator, "GET", "/state")).body as { consumers: ConsumerState[] }).consumers;
}

export async function outages(emulator: Emulator): Promise<OutageEntry[]> {
  return ((await admin(emulator, "GET", "/outages")).body as { outages: OutageEntry[] }).outages;
}

/** How often each key of each account was regenerated, e.g. { stmlshared: { key1: 1, key2: 1 } }. */
export function regenerationCounts(emulator: Emulator): Record<string, { key1: number; key2: number }> {
  const counts: Record<string, { key1: number; key2: number }> = {};
  for (const r of emulator.ctx.regenerations) {
    counts[r.account] ??= { key1: 0, key2: 0 };
    counts[r.account]![r.key]++;
  }
  return counts;
}

/** The demo estate's account with shared-key access disabled: reported as needing no rotation. */
export const KEYLESS_ACCOUNT = "stmlgoverned";

/** Accounts (or audit records) of the demo estate that a rotation rotates: all but the keyless one. */
export function rotatable<T extends { name?: string; storageAccount?: string }>(items: readonly T[]): T[] {
  return items.filter((a) => (a.name ?? a.storageAccount) !== KEYLESS_ACCOUNT);
}
