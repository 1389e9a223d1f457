import type {
  AccountReport,
  ConsumerRef,
  KeyName,
  RotationReport,
  StorageAccountSnapshot,
} from "../rotation";
import {
  EXIT_OK,
  EXIT_STALLED,
  exitCode,
  otherKey,
  parseArmId,
  resourceNameOf,
  summarize,
} from "../rotation";
import type { AccountProperties, RotationOutcome, Trigger } from "./events";
import type { Telemetry } from "./telemetry";

/**
 * Turns keyturn's own models (reports, snapshots) into catalogue events, so activities emit the
 * same items whichever entry point ran them.
 */

const DAY_MS = 24 * 60 * 60 * 1000;

export function accountProperties(storageAccountId: string, name?: string): AccountProperties {
  return {
    storageAccount: name ?? resourceNameOf(storageAccountId),
    storageAccountId,
    subscriptionId: parseArmId(storageAccountId).subscriptionId ?? "",
  };
}

/** The CLI's exit code in words: what `RotationCompleted.outcome` and the alerts use. */
export function rotationOutcome(report: RotationReport): RotationOutcome {
  const code = exitCode(report);
  return code === EXIT_OK ? "success" : code === EXIT_STALLED ? "stalled" : "failed";
}

export interface AccountOutcomeDetails {
  /** What the execution regenerated, in order; by default inferred from the outcome. */
  keysRegenerated?: readonly KeyName[];
  /** The consumer that did not verify, for a stall. */
  stalledConsumer?: ConsumerRef;
}

/**
 * The account's outcome event (`AccountRotated`, `AccountSkipped`, `AccountStalled` or
 * `AccountFailed`) and its `ArmCalls`. A dry run's planned accounts emit nothing: nothing happened.
 */
export function emitAccountOutcome(
  telemetry: Telemetry,
  account: AccountReport,
  details: AccountOutcomeDetails = {},
): void {
  if (account.outcome === "planned") return;
  const where = accountProperties(account.id, account.name);
  const before = account.activeKeyBefore?.key;
  const regenerated = (inferred: readonly KeyName[]): string => {
    const keys = details.keysRegenerated ?? inferred;
    return keys.length > 0 ? keys.join(",") : "none";
  };
  const cost = { durationMs: account.durationMs, armCalls: account.armCalls };
  switch (account.outcome) {
    case "rotated":
      telemetry.event(
        "AccountRotated",
        {
          ...where,
          // Standby first (step 3), then the old active key (step 7): invariant I2's order.
          keyRegenerated: regenerated(before ? [otherKey(before), before] : []),
          activeKey: account.activeKeyAfter?.key ?? (before ? otherKey(before) : "unknown"),
        },
        { ...cost, consumers: account.consumers.length, graceSeconds: account.graceSeconds },
      );
      break;
    case "skipped":
      telemetry.event(
        "AccountSkipped",
        { ...where, skipCode: account.skipCode ?? "unknown", reason: account.reason ?? "" },
        { consumers: account.consumers.length },
      );
      break;
    case "stalled": {
      const consumer = details.stalledConsumer;
      telemetry.event(
        "AccountStalled",
        {
          ...where,
          consumer: consumer?.name ?? "unknown",
          consumerId: consumer?.id,
          consumerKind: consumer?.kind,
          error: account.reason ?? "stalled",
          // A stall stops before the old active key is touched (step 5), so at most the standby was.
          keyRegenerated: regenerated(before ? [otherKey(before)] : []),
        },
        cost,
      );
      break;
    }
    case "failed":
      telemetry.event(
        "AccountFailed",
        {
          ...where,
          error: account.reason ?? "failed",
          keyRegenerated: details.keysRegenerated ? regenerated([]) : undefined,
        },
        cost,
      );
      break;
  }
  telemetry.metric("ArmCalls", account.armCalls, where);
}

/** `RotationCompleted` and `RotationDurationMs` for a finished rotation. */
export function emitRotationCompleted(
  telemetry: Telemetry,
  report: RotationReport,
  trigger: Trigger,
  durationMs?: number,
): void {
  const counts = summarize(report);
  const outcome = rotationOutcome(report);
  const elapsed =
    durationMs ??
    (report.finishedAt ? Math.max(0, Date.parse(report.finishedAt) - Date.parse(report.startedAt)) : 0);
  telemetry.event(
    "RotationCompleted",
    { trigger, dryRun: report.dryRun, outcome },
    {
      accounts: report.accounts.length,
      rotated: counts.rotated,
      skipped: counts.skipped,
      stalled: counts.stalled,
      failed: counts.failed,
      durationMs: elapsed,
    },
  );
  telemetry.metric("RotationDurationMs", elapsed, { trigger, dryRun: report.dryRun, outcome });
}

/**
 * `KeyAgeDays` for the older of the account's keys, which is the one a keyPolicy expires first.
 * Keys without a recorded creation time (older than Azure's tracking of it) give no value rather
 * than a guess, and neither do accounts with shared-key access disabled.
 */
export function emitKeyAge(telemetry: Telemetry, account: StorageAccountSnapshot, now: Date): void {
  // Shared-key access disabled: no key authorizes anything, so its age should not raise an alert.
  if (account.sharedKeyAccessDisabled) return;
  let oldest: { key: KeyName; created: number } | undefined;
  for (const key of ["key1", "key2"] as const) {
    const created = Date.parse(account.keys[key].creationTime ?? "");
    if (Number.isFinite(created) && (!oldest || created < oldest.created)) oldest = { key, created };
  }
  if (!oldest) return;
  const days = Math.max(0, Math.round(((now.getTime() - oldest.created) / DAY_MS) * 100) / 100);
  telemetry.metric("KeyAgeDays", days, {
    ...accountProperties(account.id, account.name),
    keyName: oldest.key,
    keyExpirationPeriodInDays: account.keyExpirationPeriodInDays,
  });
}

/**
 * The daily `Heartbeat`. With no successful rotation yet, the age counts from `neverSince` (e.g.
 * when keyturn was deployed), or is 0: a fresh install is not overdue before its first schedule.
 */
export function emitHeartbeat(
  telemetry: Telemetry,
  state: { lastSuccessAt?: string; neverSince?: string; now: Date },
): void {
  const from = Date.parse(state.lastSuccessAt ?? state.neverSince ?? "");
  const days = Number.isFinite(from) ? Math.max(0, (state.now.getTime() - from) / DAY_MS) : 0;
  telemetry.event(
    "Heartbeat",
    { lastSuccessAt: state.lastSuccessAt ?? "never" },
    { daysSinceLastSuccess: Math.round(days * 100) / 100 },
  );
}
