import type { Trigger } from "../telemetry/events";
import { mapLimit } from "../concurrency";
import { telemetryFromEnv, emitAccountOutcome, emitKeyAge, emitRotationCompleted } from "../telemetry";
import type { AccountReport, RotationReport, RotationScope } from "../rotation";
import type { ActivityDeps } from "./index";
import type { Metered } from "./contracts";
import { auditRecords } from "../audit";
import { countArmCalls, unreadSnapshot } from "../azure";

export type RecordRotationInput =
  | {
      phase: "started";
      rotationId: string;
      instanceId: string;
      trigger: Trigger;
      dryRun: boolean;
      scope: RotationScope;
    }
  | {
      phase: "completed";
      rotationId: string;
      instanceId: string;
      trigger: Trigger;
      startedBy: string;
      report: RotationReport;
    };

/**
 * Telemetry is sent from an activity, never from orchestrator code: an orchestrator replays and would
 * send every item again. One place, so redaction (shared/telemetry) sees everything.
 */
export async function recordRotation(deps: ActivityDeps, input: RecordRotationInput): Promise<Metered> {
  const { armCalls } = await countArmCalls(() => record(deps, input));
  return { armCalls };
}

async function record(deps: ActivityDeps, input: RecordRotationInput): Promise<void> {
  const telemetry = telemetryFromEnv({ instanceId: input.instanceId, rotationId: input.rotationId });
  if (input.phase === "started") {
    telemetry.event("RotationStarted", {
      trigger: input.trigger,
      dryRun: input.dryRun,
      scope: JSON.stringify(input.scope),
    });
  } else {
    const now = new Date(input.report.finishedAt ?? Date.now());
    for (const account of input.report.accounts) {
      emitAccountOutcome(telemetry, account, {
        ...stalledConsumer(account),
        ...(account.keysRegenerated ? { keysRegenerated: account.keysRegenerated } : {}),
      });
    }
    // One read per account, a few at a time: at the end of a large rotation this is on the critical path.
    const aged = input.report.dryRun ? [] : input.report.accounts.filter((a) => a.outcome !== "planned");
    await mapLimit(aged, 8, (account) => emitAccountKeyAge(deps, telemetry, account, now));
    emitRotationCompleted(telemetry, input.report, input.trigger);
    if (!input.report.dryRun) {
      await deps.audit.append(
        auditRecords(input.report, {
          instanceId: input.instanceId,
          trigger: input.trigger,
          startedBy: input.startedBy,
        }),
      );
    }
  }
  await telemetry.flush();
}

function stalledConsumer(account: AccountReport) {
  if (account.outcome !== "stalled") return {};
  const consumer = account.consumers.find(
    (c) => c.action === "skipped" && c.reason !== undefined && !/SAS|identity/i.test(c.reason),
  );
  return consumer ? { stalledConsumer: { id: consumer.id, name: consumer.name, kind: consumer.kind } } : {};
}

/** Key age after the run, from the account's recorded key creation times (no key is read). */
async function emitAccountKeyAge(
  deps: ActivityDeps,
  telemetry: ReturnType<typeof telemetryFromEnv>,
  account: AccountReport,
  now: Date,
) {
  try {
    const info = await deps.azure.storage.getAccount(account.id);
    const snapshot = unreadSnapshot(info);
    emitKeyAge(telemetry, snapshot, now);
  } catch (e) {
    telemetry.trace(`KeyAgeDays not recorded for ${account.name}: ${(e as Error).message}`, "warning");
  }
}
