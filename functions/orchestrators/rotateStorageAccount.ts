import type { OrchestrationContext, OrchestrationHandler, Task } from "durable-functions";
import {
  describeCommand,
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
  type MoveAndVerifyInput,
  type RegenerateKeyInput,
} from "../../shared/activities/contracts";
import { ACTIVITY_RETRY, errorMessage } from "./retry";

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
}

/** An account waiting out its grace outside its slot: rotateAll resumes it with `state`. */
export interface PausedAccount {
  paused: true;
  until: string;
  /** Without the plan, which rotateLane already holds: histories stay small on large estates. */
  state: Omit<AccountState, "plan">;
}

/** What the account's sub-orchestration reports back to rotateAll (and shows as its output). */
export type RotateStorageAccountOutput = AccountExecution | PausedAccount;

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
  let result: CommandResult | undefined;
  for (;;) {
    const decided = next(state, result, now());
    state = decided.state;
    const command = decided.command;
    context.df.setCustomStatus(progress(state, command));
    switch (command.kind) {
      case "finish":
        return command.execution satisfies RotateStorageAccountOutput;
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
        result = yield* run(context, "regenerate", ACTIVITY.regenerateKey, {
          accountId: state.plan.account.id,
          expect: command.expect,
          keep: command.keep,
          salt: input.rotationId,
        } satisfies RegenerateKeyInput);
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
        } satisfies MoveAndVerifyInput);
        break;
    }
  }
};

/** Calls an activity with retries; a final failure is a result the state machine judges. */
function* run<K extends "regenerate" | "findLateDatastores" | "moveAndVerify">(
  context: OrchestrationContext,
  kind: K,
  name: string,
  input: unknown,
): Generator<Task, CommandResult, unknown> {
  try {
    const out: unknown = yield context.df.callActivityWithRetry(name, ACTIVITY_RETRY, input);
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
