import * as df from "durable-functions";
import type { OrchestrationContext, Task } from "durable-functions";
import { DEFAULT_ARM_TIMEOUT_SECONDS } from "../../shared/azure/pacing";

/**
 * The SDKs already retry throttling and 5xx three times; an activity that still fails gets one more
 * try 5 s later (a dropped connection, a restarted worker). Not more: durable-functions cannot tell a
 * 403 from a blip, and a missing permission should fail fast. Activities are safe to retry: each
 * re-checks fingerprints before writing.
 */
export const ACTIVITY_RETRY = (() => {
  const options = new df.RetryOptions(5000, 2);
  options.backoffCoefficient = 2;
  return options;
})();

/**
 * A regeneration whose activity failed may have a request still on its way (the worker died with it in
 * flight, I4): the one retry waits until that request can no longer land, so the retry's read of the
 * keys sees whatever it did.
 */
export function regenerateRetry(armTimeoutSeconds = DEFAULT_ARM_TIMEOUT_SECONDS): df.RetryOptions {
  return new df.RetryOptions((armTimeoutSeconds + 5) * 1000, 2);
}

/** The message of a failed task, which the Durable runtime may wrap; never includes key values (activities redact). */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return stripRuntimeNoise(error.message);
  if (typeof error === "string") return stripRuntimeNoise(error);
  return "unknown error";
}

function stripRuntimeNoise(message: string): string {
  // durable-functions prefixes activity failures with the function name and the exception type.
  return message
    .replace(/^Activity function '[^']+' failed:\s*/i, "")
    .split("\n")[0]!
    .trim();
}

/** Task.all that accepts no tasks (durable-functions throws on an empty compound task). */
export function* all<T>(context: OrchestrationContext, tasks: Task[]): Generator<Task, T[], unknown> {
  if (tasks.length === 0) return [];
  return (yield context.df.Task.all(tasks)) as T[];
}

/**
 * Waits for every task, failed or not; callers inspect each one. Task.all fails at the first failure
 * while the others still run, so the rest are awaited one by one: they are already scheduled, and
 * durable-functions adds no action for a task yielded again (`alreadyScheduled`).
 */
export function* settle(context: OrchestrationContext, tasks: Task[]): Generator<Task, void, unknown> {
  if (tasks.length === 0) return;
  try {
    yield context.df.Task.all(tasks);
  } catch {
    for (const task of tasks) {
      if (task.isCompleted || task.isFaulted) continue;
      try {
        yield task;
      } catch {
        // inspected per task by the caller
      }
    }
  }
}
