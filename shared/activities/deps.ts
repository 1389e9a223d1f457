import { countArmCalls, type Azure } from "../azure";
import type { KeyturnConfig } from "../config";
import type { AuditStore } from "../audit";

/**
 * The activities' work, each a few adapter calls. They read keys themselves (through
 * `storage.withKey`) and hand back fingerprints only (I3); every write is guarded by the fingerprints
 * the orchestrator passes in (I4), so a retried or replayed activity never writes twice.
 */
export interface ActivityDeps {
  azure: Azure;
  config: KeyturnConfig;
  audit: AuditStore;
  /** How long a lost ARM request may still land (default: KEYTURN_ARM_TIMEOUT_SECONDS). */
  armTimeoutMs?: () => number;
}

export async function metered<T extends object>(
  _deps: ActivityDeps,
  work: () => Promise<T>,
): Promise<T & { armCalls: number }> {
  const { result, armCalls } = await countArmCalls(work);
  return { ...result, armCalls };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
