import type { OrchestrationContext, OrchestrationHandler, Task } from "durable-functions";
import {
  accountInstanceId,
  accountReport,
  inProgressReport,
  type AccountExecution,
  type AccountPlanResult,
  type AccountReport,
} from "../../shared/rotation";
import { ORCHESTRATOR } from "../../shared/activities/contracts";
import {
  isHeld,
  isPaused,
  type RotateStorageAccountInput,
  type RotateStorageAccountOutput,
} from "./rotateStorageAccount";
import { errorMessage } from "./retry";

type ToRotate = Extract<AccountPlanResult, { action: "rotate" }>;

export interface RotateLaneInput {
  rotationId: string;
  accounts: ToRotate[];
  armTimeoutSeconds?: number;
  /** When each account's lock, taken by its snapshot, runs out (by account id). */
  lockedUntil?: Record<string, string>;
}

/**
 * One lane of rotateAll's window: its accounts' ARM work one after another, while each account's grace
 * runs beside the next account's work. An account's first run returns at its grace; its second run,
 * under the same instance id (I5), waits the grace out and retires the old key, and the lane goes on.
 *
 * Lanes are sub-orchestrations, not a Task.any over a changing set of accounts in rotateAll, because
 * durable-functions schedules a task again when it is part of a second Task.any
 * (Azure/azure-functions-durable-js#574): every compound task here holds only tasks never yielded before.
 */
export const rotateLane: OrchestrationHandler = function* (context: OrchestrationContext) {
  const { rotationId, accounts, armTimeoutSeconds, lockedUntil } = context.df.getInput<RotateLaneInput>();
  const timeout = armTimeoutSeconds !== undefined ? { armTimeoutSeconds } : {};
  const reports: AccountReport[] = [];
  const inGrace: { r: ToRotate; task: Task; scheduled: boolean }[] = [];
  const start = (r: ToRotate, input: RotateStorageAccountInput) =>
    context.df.callSubOrchestrator(
      ORCHESTRATOR.rotateStorageAccount,
      input,
      accountInstanceId(r.plan.account.id),
    );

  for (const r of accounts) {
    const until = lockedUntil?.[r.plan.account.id];
    const work = start(r, {
      plan: r.plan,
      rotationId,
      yieldAtGrace: true,
      ...timeout,
      ...(until !== undefined ? { lockedUntil: until } : {}),
    });
    // The previous account's grace run is scheduled together with this account's work: both new tasks.
    const unscheduled = inGrace.find((g) => !g.scheduled);
    if (unscheduled) {
      unscheduled.scheduled = true;
      yield* quietly(context.df.Task.any([unscheduled.task, work]));
    }
    yield* quietly(work);
    const output = outcomeOf(work);
    if ("busy" in output) {
      reports.push(
        inProgressReport(
          r.plan.account,
          `another rotation of this account is running (${accountInstanceId(r.plan.account.id)})`,
        ),
      );
    } else if (isHeld(output)) {
      reports.push(inProgressReport(r.plan.account, output.reason, output.armCalls));
    } else if (isPaused(output)) {
      inGrace.push({
        r,
        task: start(r, { plan: r.plan, rotationId, resume: output.state, ...timeout }),
        scheduled: false,
      });
    } else {
      reports.push(accountReport(r, output));
    }
  }
  for (const g of inGrace) {
    yield* quietly(g.task);
    const output = outcomeOf(g.task);
    reports.push(
      "busy" in output || isPaused(output) || isHeld(output)
        ? accountReport(g.r, {
            outcome: "failed",
            reason: "its grace run did not finish",
            durationMs: 0,
            armCalls: 0,
          })
        : accountReport(g.r, output),
    );
  }
  return reports;
};

/** Waits for a task; a failure is read from the task afterwards. */
function* quietly(task: Task): Generator<Task, void, unknown> {
  try {
    yield task;
  } catch {
    // inspected by the caller
  }
}

function outcomeOf(task: Task): RotateStorageAccountOutput | { busy: true } {
  if (task.isFaulted) {
    // Another rotation holds this account (I5): not ours to touch, and not a failure of it.
    if (/already (Running|Pending)/i.test(errorMessage(task.result))) return { busy: true };
    return {
      outcome: "failed",
      reason: errorMessage(task.result),
      durationMs: 0,
      armCalls: 0,
    } satisfies AccountExecution;
  }
  if (!task.isCompleted) return { outcome: "failed", reason: "did not finish", durationMs: 0, armCalls: 0 };
  return task.result as RotateStorageAccountOutput;
}

/**
 * Splits accounts over at most `parallelism` lanes so each lane has about the same ARM work: largest
 * accounts first, each to the lane with the least work so far (consumers are the cost of an account).
 */
export function assignLanes(accounts: readonly ToRotate[], parallelism: number): ToRotate[][] {
  const count = Math.max(1, Math.min(parallelism, accounts.length));
  const lanes: { load: number; accounts: ToRotate[] }[] = Array.from({ length: count }, () => ({
    load: 0,
    accounts: [],
  }));
  const bySize = [...accounts].sort(
    (a, b) =>
      b.plan.consumers.length - a.plan.consumers.length || a.plan.account.id.localeCompare(b.plan.account.id),
  );
  for (const r of bySize) {
    const lane = lanes.reduce((min, l) => (l.load < min.load ? l : min), lanes[0]!);
    lane.accounts.push(r);
    lane.load += 2 + r.plan.consumers.length;
  }
  return lanes.filter((l) => l.accounts.length > 0).map((l) => l.accounts);
}
