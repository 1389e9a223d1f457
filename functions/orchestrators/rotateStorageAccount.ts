import type { OrchestrationContext, OrchestrationHandler, Task } from "durable-functions";
import {
  describeCommand,
  lockHoldSeconds,
  next,
  startAccount,
  type AccountExecution,
  type AccountPlan,
  type AccountState,
  type Command,
  type CommandResult,
  type PlanStep,
} from "../../shared/rotation";
import {
  ACTIVITY,
  type FindLateDatastoresInput,
  type LockAccountInput,
  type LockAccountOutput,
  type MoveAndVerifyInput,
  type RegenerateKeyInput,
  type UnlockAccountInput,
  type UnlockAccountOutput,
} from "../../shared/activities/contracts";
import { ACTIVITY_RETRY, errorMessage, regenerateRetry } from "./retry";

export interface RotateStorageAccountInput {
  plan: AccountPlan;
  rotationId: string;
  /**
   * Return at the first grace instead of waiting it out, so rotateAll can give the account's slot to
   * another account; rotateAll then starts the account again under the same instance id with `resume`.
   */
  yieldAtGrace?: boolean;
  /** The state an earlier run of this account returned at its grace (the plan travels once, above). */
  resume?: Omit<AccountState, "plan">;
  /** KEYTURN_ARM_TIMEOUT_SECONDS of the starter (see regenerateRetry). */
  armTimeoutSeconds?: number;
  /** When the account lock the snapshot took runs out; absent: no lock was taken for this account yet. */
  lockedUntil?: string;
}

/** An account whose lock runs out sooner than this after it starts takes it again first. */
const LOCK_RENEW_MARGIN_MS = 10 * 60_000;

/** An account waiting out its grace outside its slot: rotateAll resumes it with `state`. */
export interface PausedAccount {
  paused: true;
  until: string;
  /** Without the plan, which rotateLane already holds: histories stay small on large estates. */
  state: Omit<AccountState, "plan">;
}

/**
 * An account another rotation holds through the account lock (another process or machine), or one
 * another rotation finished after this one read its keys: nothing was written.
 */
export interface HeldAccount {
  held: true;
  holder: string;
  reason: string;
  armCalls: number;
}

/** What the account's sub-orchestration reports back to rotateAll (and shows as its output). */
export type RotateStorageAccountOutput = AccountExecution | PausedAccount | HeldAccount;

export function isHeld(output: RotateStorageAccountOutput): output is HeldAccount {
  return "held" in output && output.held;
}

export function isPaused(output: RotateStorageAccountOutput): output is PausedAccount {
  return "paused" in output && output.paused;
}

export interface AccountProgress {
  account: string;
  step: string;
  kind: PlanStep["kind"] | Command["kind"];
  index: number;
  of: number;
  graceUntil?: string;
}

/**
 * The procedure of DESIGN §2 for one storage account: the pure state machine (`next`) decides, this
 * loop executes its commands. Activities re-check the fingerprints they are given before writing (I4),
 * so a replay or a retry after a crash never regenerates twice.
 */
export const rotateStorageAccount: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput<RotateStorageAccountInput>();
  const now = () => context.df.currentUtcDateTime.getTime();
  let state: AccountState = input.resume
    ? { ...input.resume, plan: input.plan }
    : startAccount(input.plan, now());
  const holdSeconds = lockHoldSeconds(input.plan.graceSeconds);
  const lockKey = { accountId: input.plan.account.id, rotationId: input.rotationId };
  // The snapshot took the lock; an account that waited long in its lane makes sure it still has it.
  const lockedUntil = input.lockedUntil ? Date.parse(input.lockedUntil) : 0;
  if (!input.resume && now() >= lockedUntil - LOCK_RENEW_MARGIN_MS) {
    const held = yield* lockAccount(context, { ...lockKey, key: input.plan.activeKey, holdSeconds });
    state.armCalls += held.armCalls;
    if (held.stop) return held.stop;
  }
  let result: CommandResult | undefined;
  // Let go by the last phase's moveAndVerify (it read the keys anyway), or else at finish.
  let lockReleased = false;
  for (;;) {
    const decided = next(state, result, now());
    state = decided.state;
    const command = decided.command;
    context.df.setCustomStatus(progress(state, command));
    switch (command.kind) {
      case "finish":
        if (lockReleased) return command.execution satisfies RotateStorageAccountOutput;
        return {
          ...command.execution,
          armCalls:
            command.execution.armCalls +
            (yield* unlockAccount(context, { ...lockKey, key: state.plan.standbyKey })),
        } satisfies RotateStorageAccountOutput;
      case "wait":
        if (input.yieldAtGrace && !input.resume) {
          const { plan: _plan, ...rest } = state;
          return {
            paused: true,
            until: new Date(command.until).toISOString(),
            state: rest,
          } satisfies PausedAccount;
        }
        yield context.df.createTimer(new Date(command.until));
        result = { kind: "wait" };
        break;
      case "regenerate":
        result = yield* run(
          context,
          "regenerate",
          ACTIVITY.regenerateKey,
          {
            accountId: state.plan.account.id,
            expect: command.expect,
            keep: command.keep,
            salt: input.rotationId,
          } satisfies RegenerateKeyInput,
          regenerateRetry(input.armTimeoutSeconds),
        );
        break;
      case "findLateDatastores":
        result = yield* run(context, "findLateDatastores", ACTIVITY.findLateDatastores, {
          accountName: state.plan.account.name,
          workspaceIds: command.workspaceIds,
          known: command.known,
          salt: input.rotationId,
        } satisfies FindLateDatastoresInput);
        break;
      case "moveAndVerify":
        result = yield* run(context, "moveAndVerify", ACTIVITY.moveAndVerify, {
          accountId: state.plan.account.id,
          phase: command.phase,
          moves: command.moves,
          checks: command.checks,
          to: command.to,
          keys: command.keys,
          verified: command.verified,
          lastKeySyncBefore: command.lastKeySyncBefore,
          salt: input.rotationId,
          rotationId: input.rotationId,
          holdSeconds,
          ...(command.phase === "retireActive" ? { releaseLock: true } : {}),
        } satisfies MoveAndVerifyInput);
        if (result.kind === "moveAndVerify" && result.out.lockReleased) lockReleased = true;
        else if (result.kind === "moveAndVerify" && command.moves.length > 0) lockReleased = false;
        break;
    }
  }
};

/**
 * Takes the account lock again before anything is written. Returns why the account is not this
 * rotation's to touch, or no `stop` once it holds the lock. A lock that cannot be taken at all (the
 * blob service unreachable) stops the account here, with nothing written.
 */
function* lockAccount(
  context: OrchestrationContext,
  input: LockAccountInput,
): Generator<Task, { stop?: HeldAccount | AccountExecution; armCalls: number }, unknown> {
  let lock: LockAccountOutput;
  try {
    lock = (yield context.df.callActivityWithRetry(
      ACTIVITY.lockAccount,
      ACTIVITY_RETRY,
      input,
    )) as LockAccountOutput;
  } catch (e) {
    const reason = `nothing was written: ${errorMessage(e)}`;
    return { stop: { outcome: "failed", reason, durationMs: 0, armCalls: 0 }, armCalls: 0 };
  }
  const armCalls = lock.armCalls;
  if (!lock.acquired) {
    return { stop: { held: true, holder: lock.holder, reason: heldReason(lock), armCalls }, armCalls };
  }
  return { armCalls };
}

/** Why an account is another rotation's: its holder, and when its hold runs out if it has died. */
export function heldReason(lock: { holder: string; since?: string; expiresAt?: string }): string {
  return `another rotation holds this account's lock: ${lock.holder}${lock.since ? ` since ${lock.since}` : ""}${lock.expiresAt ? `; if it has died, its lock expires at ${lock.expiresAt} (resume it with keyturn resume to finish it sooner)` : ""}`;
}

/** Lets the account lock go; best effort, as an unreleased lock only expires later. Returns its ARM calls. */
function* unlockAccount(
  context: OrchestrationContext,
  input: UnlockAccountInput,
): Generator<Task, number, unknown> {
  try {
    return ((yield context.df.callActivity(ACTIVITY.unlockAccount, input)) as UnlockAccountOutput).armCalls;
  } catch {
    return 0; // the lock expires on its own
  }
}

/** Calls an activity with retries; a final failure is a result the state machine judges. */
function* run<K extends "regenerate" | "findLateDatastores" | "moveAndVerify">(
  context: OrchestrationContext,
  kind: K,
  name: string,
  input: unknown,
  retry = ACTIVITY_RETRY,
): Generator<Task, CommandResult, unknown> {
  try {
    const out: unknown = yield context.df.callActivityWithRetry(name, retry, input);
    return { kind, out } as CommandResult;
  } catch (e) {
    return { kind: "error", reason: errorMessage(e) };
  }
}

function progress(state: AccountState, command: Command): AccountProgress {
  const of = state.plan.steps.length;
  return {
    account: state.plan.account.name,
    step: describeCommand(command),
    kind: state.plan.steps[state.cursor]?.kind ?? command.kind,
    index: Math.min(state.cursor + 1, of),
    of,
    ...(command.kind === "wait" ? { graceUntil: new Date(command.until).toISOString() } : {}),
  };
}
