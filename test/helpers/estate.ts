import type { Emulator } from "../../emulator";
import { admin } from "./emulator";

export interface ConsumerState {
  kind: string;
  id: string;
  name: string;
  /** The resource whose keys it holds: `storageAccountName` names a storage account, Batch account or registry. */
  resource: "storageAccount" | "batchAccount" | "containerRegistry";
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

/** How often each key of each storage account was regenerated, e.g. { stmlshared: { key1: 1, key2: 1 } }. */
export function regenerationCounts(emulator: Emulator): Record<string, { key1: number; key2: number }> {
  return countRegenerations(emulator, false);
}

/** The same for container registries' admin passwords (key1 = password, key2 = password2). */
export function registryRegenerationCounts(
  emulator: Emulator,
): Record<string, { key1: number; key2: number }> {
  const counts: Record<string, { key1: number; key2: number }> = {};
  for (const r of emulator.ctx.registryRegenerations) {
    counts[r.registry] ??= { key1: 0, key2: 0 };
    counts[r.registry]![r.password === "password" ? "key1" : "key2"]++;
  }
  return counts;
}

/** The same for Batch accounts' shared keys (key1 = Primary, key2 = Secondary). */
export function batchRegenerationCounts(emulator: Emulator): Record<string, { key1: number; key2: number }> {
  return countRegenerations(emulator, true);
}

function countRegenerations(
  emulator: Emulator,
  batch: boolean,
): Record<string, { key1: number; key2: number }> {
  const counts: Record<string, { key1: number; key2: number }> = {};
  for (const r of emulator.ctx.regenerations) {
    if ((r.batch === true) !== batch) continue;
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

/** The demo estate's Batch account: shared keys allowed, auto-storage on stmlbatch. */
export const DEMO_BATCH_ACCOUNT = "batchmltrain";

/**
 * Runs `fn` while a Batch account allows Entra ID only (allowedAuthenticationModes ["AAD"], through the
 * admin API), then gives it back every mode.
 */
export async function whileEntraIdOnly<T>(
  emulator: Emulator,
  batchAccount: string,
  fn: () => Promise<T>,
): Promise<T> {
  const set = async (modes: string[]) => {
    const answer = await admin(emulator, "PATCH", `/batchAccounts/${batchAccount}`, {
      allowedAuthenticationModes: modes,
    });
    if (answer.status !== 200)
      throw new Error(`PATCH /_admin/batchAccounts/${batchAccount}: ${answer.status}`);
  };
  await set(["AAD"]);
  try {
    return await fn();
  } finally {
    await set(["SharedKey", "AAD", "TaskAuthenticationToken"]);
  }
}
