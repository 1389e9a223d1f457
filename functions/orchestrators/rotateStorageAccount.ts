import type { OrchestrationContext, OrchestrationHandler, Task } from "durable-functions";
import {
  evaluateVerification,
  isServiceChosen,
  keyState,
  resolveKeyTarget,
  type AccountExecution,
  type AccountPlan,
  type ConsumerAction,
  type Fingerprint,
  type KeyName,
  type LearnedFingerprints,
  type ConsumerMove,
  type MoveConsumersStep,
  type Outage,
  type VerificationProblem,
  type PlanStep,
  type RegenerateKeyStep,
} from "../../shared/rotation";
import {
  ACTIVITY,
  type KeyRef,
  type FindNewConsumersOutput,
  type MoveConsumerOutput,
  type RegenerateKeyOutput,
  type VerifyConsumersOutput,
} from "../../shared/activities/contracts";
import { ACTIVITY_RETRY, errorMessage, settle } from "./retry";

export interface RotateStorageAccountInput {
  plan: AccountPlan;
  rotationId: string;
}

/** What the account's sub-orchestration reports back to rotateAll (and shows as its output). */
export type RotateStorageAccountOutput = AccountExecution;

export interface AccountProgress {
  account: string;
  step: string;
  kind: PlanStep["kind"];
  index: number;
  of: number;
  graceUntil?: string;
}

type Stop = { outcome: "stalled" | "failed"; reason: string };

/**
 * The procedure of DESIGN §2 for one storage account, one plan step at a time. The decisions are
 * pure (shared/rotation); the I/O is in activities, each of which re-checks the fingerprints it was
 * given before writing (I4), so a replay or a retry after a crash never regenerates twice.
 */
export const rotateStorageAccount: OrchestrationHandler = function* (context: OrchestrationContext) {
  const { plan, rotationId } = context.df.getInput<RotateStorageAccountInput>();
  const started = context.df.currentUtcDateTime.getTime();
  const learned: LearnedFingerprints = {};
  let keys: Record<KeyName, Fingerprint> = {
    key1: plan.keys.key1.fingerprint,
    key2: plan.keys.key2.fingerprint,
  };
  const consumerActions: NonNullable<AccountExecution["consumerActions"]> = {};
  const lastKeySyncBefore: Record<string, string | undefined> = {};
  let armCalls = 0;
  let stop: Stop | undefined;
  // Service-chosen consumers found on the key regenerated next (the service insists on it): their
  // window runs from that regeneration to the resync after it, and is reported (I1's one exception).
  let onNextKey: VerificationProblem[] = [];
  let inWindow: VerificationProblem[] = [];
  let windowStart = 0;
  const outages: Outage[] = [];
  const keysRegenerated: KeyName[] = [];

  const finish = (outcome: AccountExecution["outcome"], reason?: string): AccountExecution => ({
    outcome,
    ...(reason !== undefined ? { reason } : {}),
    activeKeyAfter:
      outcome === "rotated" ? keyState(withFingerprints(plan, keys), plan.standbyKey) : undefined,
    consumerActions,
    durationMs: context.df.currentUtcDateTime.getTime() - started,
    armCalls,
    outages,
    keysRegenerated,
  });

  for (const [index, step] of plan.steps.entries()) {
    const progress: AccountProgress = {
      account: plan.account.name,
      step: step.id,
      kind: step.kind,
      index: index + 1,
      of: plan.steps.length,
    };
    switch (step.kind) {
      case "regenerateKey": {
        context.df.setCustomStatus(progress);
        if (step.phase === "retireActive") {
          // A datastore registered during the grace with the key about to die would break unseen.
          const late = yield* newConsumersOnOldKey(
            context,
            plan,
            rotationId,
            resolveKeyTarget(step.keep, learned),
          );
          if ("outcome" in late)
            return finish("stalled", `could not look for datastores added during the grace: ${late.reason}`);
          armCalls += late.armCalls;
          if (late.consumers.length > 0) {
            return finish(
              "stalled",
              `stopped before regenerating ${step.key}, which is still valid: datastores added during the grace hold it (${late.consumers.map((c) => c.name).join(", ")}); re-register them with ${step.keep.key} or run keyturn again`,
            );
          }
        }
        const out = yield* call<RegenerateKeyOutput>(context, ACTIVITY.regenerateKey, {
          accountId: plan.account.id,
          step,
          // Copies: the library serializes actions late, and these objects change after the call.
          learned: { ...learned },
          salt: rotationId,
        });
        if ("outcome" in out)
          return finish(out.outcome === "failed" ? afterRegenerationOutcome(step) : "stalled", out.reason);
        armCalls += out.armCalls;
        keys = out.keys;
        // "already-done": this step regenerated it before a crash; either way the key is new.
        if (out.decision !== "refuse") keysRegenerated.push(step.key);
        // Refused: the key consumers hold was regenerated outside keyturn, so they may hold a dead key
        // already. keyturn writes nothing more; this is a failure to look at, not a safe stop.
        if (out.decision === "refuse") return finish("failed", out.reason);
        learned[step.id] = out.keys[step.key];
        windowStart = context.df.currentUtcDateTime.getTime();
        inWindow = onNextKey.filter((c) => c.reason.includes(step.key));
        onNextKey = [];
        break;
      }
      case "moveConsumers": {
        context.df.setCustomStatus(progress);
        stop = yield* moveConsumers(
          context,
          plan,
          step,
          keyRef(step.to.key, resolveKeyTarget(step.to, learned)),
          rotationId,
          {
            consumerActions,
            lastKeySyncBefore,
            addArmCalls: (n) => (armCalls += n),
          },
        );
        if (stop) return finish(stop.outcome, stop.reason);
        // Consumers that held the key just regenerated are live again once moved: that was their window.
        const moved = new Set(step.moves.map((m) => m.consumer.id));
        const durationMs = context.df.currentUtcDateTime.getTime() - windowStart;
        for (const c of inWindow.filter((w) => moved.has(w.consumerId))) {
          outages.push({
            consumerId: c.consumerId,
            name: c.name,
            kind: c.kind,
            durationMs,
            reason: c.reason,
          });
        }
        inWindow = inWindow.filter((w) => !moved.has(w.consumerId));
        break;
      }
      case "verifyConsumers": {
        context.df.setCustomStatus(progress);
        const on = keyRef(step.on.key, resolveKeyTarget(step.on, learned));
        const out = yield* call<VerifyConsumersOutput>(context, ACTIVITY.verifyConsumers, {
          accountId: plan.account.id,
          step,
          on,
          salt: rotationId,
          lastKeySyncBefore: { ...lastKeySyncBefore },
        });
        if ("outcome" in out) return finish("stalled", `verification could not run: ${out.reason}`);
        armCalls += out.armCalls;
        keys = out.current;
        const verdict = evaluateVerification(step, out.observations, out.current, learned);
        recordVerification(verdict, consumerActions);
        onNextKey = verdict.warnings.filter(
          (w) => step.nextRegeneration !== undefined && w.reason.includes(step.nextRegeneration),
        );
        if (!verdict.ok) {
          const reasons = verdict.failures.map((f) => `${f.name} (${f.kind}): ${f.reason}`).join("; ");
          return finish(
            step.phase === "retireActive" ? "failed" : "stalled",
            step.phase === "retireActive"
              ? `after regenerating the old active key, ${reasons}`
              : `stopped before regenerating ${step.nextRegeneration ?? "the next key"}, which is still valid: ${reasons}`,
          );
        }
        break;
      }
      case "grace": {
        if (step.seconds <= 0) break;
        const fireAt = new Date(context.df.currentUtcDateTime.getTime() + step.seconds * 1000);
        context.df.setCustomStatus({ ...progress, graceUntil: fireAt.toISOString() });
        yield context.df.createTimer(fireAt);
        break;
      }
    }
  }
  context.df.setCustomStatus({
    account: plan.account.name,
    step: "done",
    index: plan.steps.length,
    of: plan.steps.length,
  });
  return finish("rotated");
};

/** Calls an activity with retries; a final failure comes back as a Stop instead of failing the orchestration. */
function* call<T>(
  context: OrchestrationContext,
  name: string,
  input: unknown,
): Generator<Task, T | Stop, unknown> {
  try {
    return (yield context.df.callActivityWithRetry(name, ACTIVITY_RETRY, input)) as T;
  } catch (e) {
    return { outcome: "failed", reason: errorMessage(e) };
  }
}

function* moveConsumers(
  context: OrchestrationContext,
  plan: AccountPlan,
  step: MoveConsumersStep,
  to: KeyRef,
  rotationId: string,
  sink: {
    consumerActions: NonNullable<AccountExecution["consumerActions"]>;
    lastKeySyncBefore: Record<string, string | undefined>;
    addArmCalls: (n: number) => void;
  },
): Generator<Task, Stop | undefined, unknown> {
  const schedule = (move: ConsumerMove) =>
    context.df.callActivityWithRetry(ACTIVITY.moveConsumer, ACTIVITY_RETRY, {
      accountId: plan.account.id,
      move,
      to,
      salt: rotationId,
      rotationId,
    });
  // Consumers whose key keyturn writes go first: a service that picks its key on a resync or sync
  // may follow what the account's other consumers hold, so they must already hold the new key.
  const written = step.moves.filter((m) => !isServiceChosen(m.consumer.kind));
  const chosen = step.moves.filter((m) => isServiceChosen(m.consumer.kind));
  const writtenTasks = written.map(schedule);
  yield* settle(context, writtenTasks);
  const chosenTasks = chosen.map(schedule);
  yield* settle(context, chosenTasks);
  const moves = [...written, ...chosen];
  const tasks = [...writtenTasks, ...chosenTasks];
  const failures: string[] = [];
  moves.forEach((move, i) => {
    const task = tasks[i]!;
    if (task.isFaulted || !task.isCompleted) {
      const reason = task.isFaulted ? errorMessage(task.result) : "did not finish";
      failures.push(`${move.consumer.name} (${move.consumer.kind}): ${reason}`);
      sink.consumerActions[move.consumer.id] = { action: "skipped", reason: `could not be moved: ${reason}` };
      return;
    }
    const out = task.result as MoveConsumerOutput;
    sink.addArmCalls(out.armCalls);
    if (out.lastKeySyncBefore !== undefined) sink.lastKeySyncBefore[move.consumer.id] = out.lastKeySyncBefore;
    sink.consumerActions[move.consumer.id] = { action: move.heals ? "healed" : "updated" };
  });
  if (failures.length === 0) return undefined;
  return step.phase === "retireActive"
    ? {
        outcome: "failed",
        reason: `after regenerating the old active key, could not move ${failures.join("; ")}`,
      }
    : {
        outcome: "stalled",
        reason: `stopped while the old key is still valid: could not move ${failures.join("; ")}`,
      };
}

function recordVerification(
  verdict: ReturnType<typeof evaluateVerification>,
  actions: NonNullable<AccountExecution["consumerActions"]>,
): void {
  for (const failure of verdict.failures)
    actions[failure.consumerId] = { action: "skipped", reason: failure.reason };
  for (const id of verdict.verified) {
    const previous = actions[id];
    const action: ConsumerAction =
      previous?.action === "healed" || previous?.action === "updated" ? previous.action : "verified";
    actions[id] = { action };
  }
}

/** A failed regeneration of the standby key breaks nothing; of the old active key, it may. */
function afterRegenerationOutcome(step: RegenerateKeyStep): "stalled" | "failed" {
  return step.phase === "retireActive" ? "failed" : "stalled";
}

function keyRef(key: KeyName, fingerprint: Fingerprint): KeyRef {
  return { key, fingerprint };
}

function withFingerprints(plan: AccountPlan, keys: Record<KeyName, Fingerprint>) {
  return {
    key1: { ...plan.keys.key1, fingerprint: keys.key1 },
    key2: { ...plan.keys.key2, fingerprint: keys.key2 },
  };
}

/** Datastores on the account that the plan does not know and that do not hold the new key. */
function* newConsumersOnOldKey(
  context: OrchestrationContext,
  plan: AccountPlan,
  rotationId: string,
  newKey: Fingerprint,
): Generator<Task, FindNewConsumersOutput | Stop, unknown> {
  const workspaceIds = [
    ...new Set(
      plan.consumers
        .map((c) =>
          c.kind === "workspace"
            ? c.id
            : c.id.includes("/datastores/")
              ? c.id.slice(0, c.id.indexOf("/datastores/"))
              : "",
        )
        .filter((id) => id !== ""),
    ),
  ].sort();
  if (workspaceIds.length === 0) return { consumers: [], armCalls: 0 };
  const out = yield* call<FindNewConsumersOutput>(context, ACTIVITY.findNewConsumers, {
    accountName: plan.account.name,
    workspaceIds,
    known: plan.consumers.map((c) => c.id),
    salt: rotationId,
  });
  if ("outcome" in out) return out;
  return { ...out, consumers: out.consumers.filter((c) => c.heldFingerprint !== newKey) };
}
