import type { Fingerprint } from "./fingerprint";
import {
  evaluateVerification,
  resolveKeyTarget,
  type ConsumerObservation,
  type KeyRef,
  type LearnedFingerprints,
  type RegenerationDecision,
  type VerificationProblem,
} from "./guards";
import type { KeyName } from "./model";
import { CONSUMER_KINDS, isServiceChosen, isVoting } from "./kinds";
import type {
  AccountPlan,
  ConsumerCheck,
  ConsumerMove,
  KeyTarget,
  MoveConsumersStep,
  PlanPhase,
  PlanStep,
  RegenerateKeyStep,
  VerifyConsumersStep,
} from "./plan";
import { keyRefOf, type AccountExecution, type Outage } from "./report";

/**
 * The per-account procedure (DESIGN §2) as a pure state machine: `next(state, result, now)` takes what
 * the last command produced and gives the next command. The orchestrator only executes commands
 * (activities, a durable timer); unit tests drive the same function against fakes. Everything in the
 * state is JSON: it travels as a sub-orchestration's input and output when an account waits out its
 * grace outside its slot.
 */

/** What keyturn last saw of a datastore it verified: list metadata tells later whether it changed. */
export interface VerifiedDatastore {
  /** `systemData.lastModifiedAt` listed just before its secret was read. */
  modifiedAt: string;
  fingerprint: Fingerprint;
}

export type Command =
  | {
      kind: "regenerate";
      step: RegenerateKeyStep;
      /** The key to regenerate as the snapshot saw it, and the key consumers were moved to. */
      expect: KeyRef;
      keep: KeyRef;
    }
  | {
      /** Before the old active key dies: datastores added or changed during the grace. */
      kind: "findLateDatastores";
      workspaceIds: string[];
      known: Record<string, VerifiedDatastore>;
      newKey: KeyRef;
    }
  | {
      kind: "moveAndVerify";
      phase: PlanPhase;
      stepId: string;
      /** Written consumers first, then the ones whose key a service picks (they may follow the others). */
      moves: ConsumerMove[];
      verify: VerifyConsumersStep;
      /**
       * The checks to run now. Empty while the moves run on their own: when a grace follows, the
       * grace starts once consumers are moved and verification runs inside it (DESIGN §10).
       */
      checks: ConsumerCheck[];
      to: KeyRef;
      /** Fingerprints of the account's keys as the last regeneration left them. */
      keys: Record<KeyName, Fingerprint>;
      /** Datastores verified earlier and unchanged since need no second secret read. */
      verified: Record<string, VerifiedDatastore>;
      lastKeySyncBefore: Record<string, string>;
    }
  | { kind: "wait"; stepId: string; until: number }
  | { kind: "finish"; execution: AccountExecution };

export type CommandKind = Command["kind"];

export interface RegenerateResult {
  decision: RegenerationDecision["action"];
  reason?: string;
  keys: Record<KeyName, Fingerprint>;
  /** Creation times after the call, when Azure records them. */
  creationTimes: Partial<Record<KeyName, string>>;
  /** Set when the new key still did not work on the data plane at the deadline: why. */
  notLive?: string;
  /**
   * When the key was regenerated (ISO), before any wait for it to work: a consumer left on the dead key
   * is in its window from here.
   */
  regeneratedAt?: string;
  armCalls: number;
}

export interface LateDatastore {
  id: string;
  name: string;
  heldFingerprint?: Fingerprint;
  /** Known to the plan, changed since it was verified. */
  changed: boolean;
  /** What moving it needs (absent from results of older runs). */
  workspaceId?: string;
  datastoreType?: string;
  container?: string;
}

const GONE = "deleted during the rotation: it holds no key any more";

/**
 * How many times datastores found on the old key after a grace are moved and given a grace of their
 * own before keyturn stops instead: a service rewriting them once (a workspace's auto-sync) is healed,
 * someone re-registering them over and over is left for a person to look at.
 */
export const MAX_LATE_ROUNDS = 2;

/**
 * How long an account's rotation may go on after any of its steps without writing again: the grace,
 * and the late rounds' graces of their own. The account lock's expiry is pushed on by this (plus the
 * activities' margins) at every step, so a holder silent for longer has died.
 */
export function lockHoldSeconds(graceSeconds: number): number {
  return graceSeconds * (MAX_LATE_ROUNDS + 2);
}

export interface FindLateResult {
  datastores: LateDatastore[];
  armCalls: number;
}

export interface MoveOutcome {
  consumerId: string;
  /** The consumer no longer exists (a datastore deleted before its move): not a failure. */
  gone?: true;
  /** Already free of key material. */
  error?: string;
  /** Batch: `autoStorage.lastKeySync` read just before the sync, so verification can see it move. */
  lastKeySyncBefore?: string;
}

export interface MoveAndVerifyResult {
  moves: MoveOutcome[];
  observations: ConsumerObservation[];
  /** The account's keys: read in this activity, or the command's when it needed no key. */
  current: Record<KeyName, Fingerprint>;
  /** Datastores verified now, for the checks after the grace. */
  verified: Record<string, VerifiedDatastore>;
  /** The account lock was let go at the end (the rotation's last phase). */
  lockReleased?: true;
  armCalls: number;
}

export type CommandResult =
  | { kind: "regenerate"; out: RegenerateResult }
  | { kind: "findLateDatastores"; out: FindLateResult }
  | { kind: "moveAndVerify"; out: MoveAndVerifyResult }
  | { kind: "wait" }
  /** The command's activity failed for good (after retries); the reason is free of key material. */
  | { kind: "error"; reason: string };

export interface AccountState {
  plan: AccountPlan;
  /** Index of the plan step the pending command belongs to. */
  cursor: number;
  pending?: CommandKind;
  startedAt: number;
  learned: LearnedFingerprints;
  learnedTimes: Record<string, string>;
  keys: Record<KeyName, Fingerprint>;
  creationTimes: Partial<Record<KeyName, string>>;
  consumerActions: NonNullable<AccountExecution["consumerActions"]>;
  lastKeySyncBefore: Record<string, string>;
  verified: Record<string, VerifiedDatastore>;
  lateChecked: boolean;
  waitUntil?: number;
  /**
   * What the pending moveAndVerify does: moves only, the verification of moves done, or both; `late`:
   * moves datastores found on the old key after a grace (`lateMoves`), then another grace follows.
   */
  part?: "move" | "verify" | "both" | "late" | "heal";
  lateMoves?: LateDatastore[];
  /** Rounds of late moves so far in this rotation (at most MAX_LATE_ROUNDS). */
  lateRounds?: number;
  /** The pending wait is the grace after late moves: the plan's cursor stays where it is. */
  lateGrace?: boolean;
  /**
   * Datastores the final verification found off the new key after the old active key died (a service
   * rewrote them just before it): registered again with the new key at once, their window reported.
   */
  heal?: { to: KeyRef; consumers: ConsumerMove["consumer"][] };
  healed?: boolean;
  /** When the moves of the current step finished: the grace that follows counts from then. */
  movedAt?: number;
  armCalls: number;
  /** Service-chosen consumers found on the key regenerated next: the service insists on it. */
  onNextKey: VerificationProblem[];
  /** Those consumers once that key is regenerated: their window runs until they are moved again. */
  inWindow: (VerificationProblem & { possible?: true })[];
  windowStart: number;
  outages: Outage[];
  keysRegenerated: KeyName[];
}

export function startAccount(plan: AccountPlan, now: number): AccountState {
  const creationTimes: Partial<Record<KeyName, string>> = {};
  for (const key of ["key1", "key2"] as const) {
    const t = plan.keys[key].creationTime;
    if (t !== undefined) creationTimes[key] = t;
  }
  return {
    plan,
    cursor: 0,
    startedAt: now,
    learned: {},
    learnedTimes: {},
    keys: { key1: plan.keys.key1.fingerprint, key2: plan.keys.key2.fingerprint },
    creationTimes,
    consumerActions: {},
    lastKeySyncBefore: {},
    verified: {},
    lateChecked: false,
    armCalls: 0,
    onNextKey: [],
    inWindow: [],
    windowStart: now,
    outages: [],
    keysRegenerated: [],
  };
}

/** The next command, given the state and the result of the command it last gave. */
export function next(
  previous: AccountState,
  result: CommandResult | undefined,
  now: number,
): { state: AccountState; command: Command } {
  const state = structuredClone(previous);
  if (result !== undefined && state.pending !== undefined) {
    const stop = apply(state, result, now);
    if (stop) return finish(state, stop.outcome, now, stop.reason);
  }
  return decide(state, now);
}

type Stop = { outcome: "stalled" | "failed"; reason: string };

function apply(state: AccountState, result: CommandResult, now: number): Stop | undefined {
  if (state.part === "heal") {
    // The heal runs after the plan's last step: it has no step of its own.
    state.pending = undefined;
    state.part = undefined;
    if (result.kind === "moveAndVerify") return applyHeal(state, result.out, now);
    state.heal = undefined;
    return {
      outcome: "failed",
      reason: `after regenerating the old active key, datastores were found off the new key and could not be healed: ${result.kind === "error" ? result.reason : result.kind}`,
    };
  }
  const step = state.plan.steps[state.cursor];
  if (!step) return undefined;
  const pending = state.pending;
  state.pending = undefined;
  if (result.kind === "error") return errorStop(step, pending, result.reason);
  switch (result.kind) {
    case "regenerate":
      return step.kind === "regenerateKey" ? applyRegeneration(state, step, result.out, now) : undefined;
    case "findLateDatastores":
      return step.kind === "regenerateKey" ? applyLate(state, step, result.out) : undefined;
    case "moveAndVerify":
      return applyMoveAndVerify(state, result.out, now);
    case "wait":
      state.waitUntil = undefined;
      state.movedAt = undefined;
      if (state.lateGrace) state.lateGrace = undefined;
      else state.cursor++;
      return undefined;
  }
}

/** An activity that failed for good: before the old active key is regenerated nothing is broken. */
function errorStop(step: PlanStep, pending: CommandKind | undefined, reason: string): Stop {
  if (pending === "findLateDatastores")
    return { outcome: "stalled", reason: `could not look for datastores added during the grace: ${reason}` };
  if (step.phase !== "retireActive") return { outcome: "stalled", reason };
  // A regeneration that failed for good may still have happened (a lost answer): never claim the key is valid.
  if (step.kind === "regenerateKey")
    return {
      outcome: "failed",
      reason: `regenerating ${step.key} failed and may have happened (its consumers were not resynced): ${reason}`,
    };
  return { outcome: "failed", reason: `after regenerating the old active key, ${reason}` };
}

function applyRegeneration(
  state: AccountState,
  step: RegenerateKeyStep,
  out: RegenerateResult,
  now: number,
): Stop | undefined {
  state.armCalls += out.armCalls;
  state.keys = out.keys;
  state.creationTimes = { ...state.creationTimes, ...out.creationTimes };
  // Refused: the key consumers hold was regenerated outside keyturn, so they may hold a dead key
  // already. keyturn writes nothing more; this is a failure to look at, not a safe stop.
  if (out.decision === "refuse") return { outcome: "failed", reason: out.reason ?? "regeneration refused" };
  // "already-done": this step regenerated it before a crash; either way the key is new.
  state.keysRegenerated.push(step.key);
  state.lateChecked = false;
  state.learned[step.id] = out.keys[step.key];
  const created = out.creationTimes[step.key];
  if (created !== undefined) state.learnedTimes[step.id] = created;
  const at = out.regeneratedAt !== undefined ? Date.parse(out.regeneratedAt) : NaN;
  state.windowStart = Number.isFinite(at) && at <= now ? at : now;
  state.inWindow = [
    ...state.onNextKey.filter((c) => c.key === step.key),
    ...unknownHolders(state.plan, step.key),
  ];
  state.onNextKey = [];
  state.cursor++;
  // Nobody is moved to a key the data plane still refuses (I1).
  if (out.notLive !== undefined)
    return step.phase === "retireActive"
      ? {
          outcome: "failed",
          reason: `${out.notLive}; the consumers on ${step.keep.key} are safe, but the services that pick their own key were not resynced: run keyturn again`,
        }
      : {
          outcome: "stalled",
          reason: `${out.notLive}; nobody was moved to it and ${step.keep.key} is still valid: run keyturn again`,
        };
  return undefined;
}

function applyLate(state: AccountState, step: RegenerateKeyStep, out: FindLateResult): Stop | undefined {
  state.armCalls += out.armCalls;
  const newKey = resolveKeyTarget(step.keep, state.learned);
  const onOldKey = out.datastores.filter((d) => d.heldFingerprint !== newKey);
  const movable = onOldKey.every((d) => d.workspaceId !== undefined);
  if (onOldKey.length > 0 && movable && (state.lateRounds ?? 0) < MAX_LATE_ROUNDS) {
    state.lateMoves = onOldKey;
    return undefined;
  }
  if (onOldKey.length > 0) {
    return {
      outcome: "stalled",
      reason: `stopped before regenerating ${step.key}, which is still valid: datastores added or changed during the grace do not hold ${step.keep.key} (${onOldKey.map((c) => c.name).join(", ")}); re-register them with ${step.keep.key} or run keyturn again`,
    };
  }
  for (const d of out.datastores) {
    if (d.heldFingerprint !== undefined) {
      const known = state.verified[d.id];
      if (known) state.verified[d.id] = { ...known, fingerprint: d.heldFingerprint };
    }
  }
  state.lateChecked = true;
  return undefined;
}

function applyMoveAndVerify(state: AccountState, out: MoveAndVerifyResult, now: number): Stop | undefined {
  const move = state.plan.steps[state.cursor];
  const part = state.part ?? "both";
  state.part = undefined;
  if (part === "late") return applyLateMoves(state, out, now);
  const hasMove = move?.kind === "moveConsumers" && part !== "verify";
  const verify = (
    move?.kind === "moveConsumers" ? state.plan.steps[state.cursor + 1] : move
  ) as VerifyConsumersStep;
  state.armCalls += out.armCalls;
  state.keys = out.current;
  const failures: string[] = [];
  if (hasMove) {
    const outcomes = new Map(out.moves.map((m) => [m.consumerId, m]));
    for (const m of move.moves) {
      const outcome = outcomes.get(m.consumer.id);
      const error = outcome === undefined ? "not moved" : outcome.error;
      if (outcome?.gone) {
        state.consumerActions[m.consumer.id] = {
          action: "gone",
          reason: GONE,
        };
        continue;
      }
      if (error !== undefined) {
        failures.push(`${m.consumer.name} (${m.consumer.kind}): ${error}`);
        state.consumerActions[m.consumer.id] = { action: "skipped", reason: `could not be moved: ${error}` };
        continue;
      }
      if (outcome?.lastKeySyncBefore !== undefined)
        state.lastKeySyncBefore[m.consumer.id] = outcome.lastKeySyncBefore;
      state.consumerActions[m.consumer.id] = { action: m.heals ? "healed" : "updated" };
    }
    if (failures.length > 0) {
      return move.phase === "retireActive"
        ? {
            outcome: "failed",
            reason: `after regenerating the old active key, could not move ${failures.join("; ")}`,
          }
        : {
            outcome: "stalled",
            reason: `stopped while the old key is still valid: could not move ${failures.join("; ")}`,
          };
    }
    // Consumers that held the key just regenerated are live again once moved: that was their window.
    const moved = new Set(move.moves.map((m) => m.consumer.id));
    for (const c of state.inWindow.filter((w) => moved.has(w.consumerId))) {
      state.outages.push({
        consumerId: c.consumerId,
        name: c.name,
        kind: c.kind,
        durationMs: now - state.windowStart,
        reason: c.reason,
        ...(c.possible ? { possible: true as const } : {}),
      });
    }
    state.inWindow = state.inWindow.filter((w) => !moved.has(w.consumerId));
    if (part === "move") {
      state.movedAt = now;
      return undefined;
    }
  }
  Object.assign(state.verified, out.verified);
  const verdict = evaluateVerification(verify, out.observations, out.current, state.learned);
  // After the old active key died, a consumer keyturn moved and verified on the new key before the grace,
  // and could not read again now (Key Vault down, a 5xx), is not broken by that: it is reported as not
  // re-checked, not as a failure.
  if (verify.phase === "retireActive") {
    const unreadable = verdict.failures.filter((f) => {
      const seen = out.observations.find((o) => o.consumerId === f.consumerId);
      const before = state.consumerActions[f.consumerId]?.action;
      return seen?.error !== undefined && isVoting(f.kind) && (before === "updated" || before === "verified");
    });
    for (const f of unreadable) {
      state.consumerActions[f.consumerId] = {
        action: state.consumerActions[f.consumerId]!.action,
        reason: `verified on ${verify.on.key} before the grace; not re-checked after the old active key was regenerated: ${f.reason}`,
      };
    }
    verdict.failures = verdict.failures.filter((f) => !unreadable.includes(f));
    verdict.ok = verdict.failures.length === 0;
  }
  for (const failure of verdict.failures)
    state.consumerActions[failure.consumerId] = { action: "skipped", reason: failure.reason };
  for (const id of verdict.gone)
    state.consumerActions[id] = {
      action: "gone",
      reason: GONE,
    };
  for (const id of verdict.verified) {
    const previous = state.consumerActions[id]?.action;
    state.consumerActions[id] = {
      action: previous === "healed" || previous === "updated" ? previous : "verified",
    };
  }
  state.onNextKey = verdict.warnings.filter(
    (w) => verify.nextRegeneration !== undefined && w.key === verify.nextRegeneration,
  );
  state.cursor += move?.kind === "moveConsumers" ? 2 : 1;
  const broken = verdict.failures.flatMap(
    (f) => verify.checks.find((c) => c.consumer.id === f.consumerId && c.consumer.kind === "datastore") ?? [],
  );
  if (
    !verdict.ok &&
    verify.phase === "retireActive" &&
    !state.healed &&
    broken.length === verdict.failures.length
  ) {
    state.heal = {
      to: keyRef(state, verify.on.key, resolveKeyTarget(verify.on, state.learned), verify.on),
      consumers: broken.map((c) => c.consumer),
    };
    return undefined;
  }
  if (!verdict.ok) {
    const reasons = verdict.failures.map((f) => `${f.name} (${f.kind}): ${f.reason}`).join("; ");
    return verify.phase === "retireActive"
      ? { outcome: "failed", reason: `after regenerating the old active key, ${reasons}` }
      : {
          outcome: "stalled",
          reason: `stopped before regenerating ${verify.nextRegeneration ?? "the next key"}, which is still valid: ${reasons}`,
        };
  }
  return undefined;
}

/**
 * Datastores found on the old key after the grace were moved to the key that stays: the jobs that read
 * them meanwhile hold the old key, so they get a grace of their own before it dies.
 */
function applyLateMoves(state: AccountState, out: MoveAndVerifyResult, now: number): Stop | undefined {
  const step = state.plan.steps[state.cursor];
  const late = state.lateMoves ?? [];
  state.lateMoves = undefined;
  state.armCalls += out.armCalls;
  state.keys = out.current;
  if (step?.kind !== "regenerateKey") return undefined;
  const failed = [
    ...out.moves.filter((m) => m.error !== undefined).map((m) => m.error!),
    ...out.observations.filter((o) => o.error !== undefined).map((o) => o.error!),
  ];
  const target = resolveKeyTarget(step.keep, state.learned);
  const notMoved = late.filter((d) => {
    const seen = out.observations.find((o) => o.consumerId === d.id);
    return seen?.gone !== true && (seen?.heldFingerprint !== target || seen.probe === "denied");
  });
  if (failed.length > 0 || notMoved.length > 0)
    return {
      outcome: "stalled",
      reason: `stopped before regenerating ${step.key}, which is still valid: datastores changed during the grace hold ${step.key} and could not be moved to ${step.keep.key} (${[...notMoved.map((d) => d.name), ...failed].join("; ")}); re-register them with ${step.keep.key} or run keyturn again`,
    };
  for (const d of late)
    state.consumerActions[d.id] = {
      action: "healed",
      reason: `changed during the grace to ${step.key}, the key about to be regenerated; moved to ${step.keep.key} and given a grace of its own`,
      consumer: { kind: "datastore", id: d.id, name: d.name },
    };
  Object.assign(state.verified, out.verified);
  state.lateRounds = (state.lateRounds ?? 0) + 1;
  state.lateChecked = false;
  state.movedAt = now;
  state.lateGrace = state.plan.graceSeconds > 0 ? true : undefined;
  return undefined;
}

/** Datastores healed after the old active key died: each was down from its regeneration until now. */
function applyHeal(state: AccountState, out: MoveAndVerifyResult, now: number): Stop | undefined {
  const heal = state.heal;
  state.heal = undefined;
  state.healed = true;
  state.armCalls += out.armCalls;
  state.keys = out.current;
  if (!heal) return undefined;
  const problems = [
    ...out.moves.filter((m) => m.error !== undefined).map((m) => m.error!),
    ...heal.consumers.flatMap((c) => {
      const seen = out.observations.find((o) => o.consumerId === c.id);
      if (seen?.gone === true) return [];
      if (seen?.error !== undefined) return [`${c.name}: ${seen.error}`];
      return seen?.heldFingerprint === heal.to.fingerprint && seen.probe !== "denied"
        ? []
        : [`${c.name}: still not on ${heal.to.key}`];
    }),
  ];
  if (problems.length > 0)
    return {
      outcome: "failed",
      reason: `after regenerating the old active key, datastores were found off ${heal.to.key} and could not be healed: ${problems.join("; ")}`,
    };
  for (const c of heal.consumers) {
    const reason = `found off ${heal.to.key} after the old active key was regenerated (something rewrote it just before); registered again with ${heal.to.key}`;
    state.consumerActions[c.id] = { action: "healed", reason };
    state.outages.push({
      consumerId: c.id,
      name: c.name,
      kind: c.kind,
      durationMs: now - state.windowStart,
      reason,
    });
  }
  return undefined;
}

function lateDatastoreConsumer(state: AccountState, d: LateDatastore): ConsumerMove {
  return {
    consumer: {
      kind: "datastore",
      id: d.id,
      name: d.name,
      storageAccountId: state.plan.account.id,
      workspaceId: d.workspaceId ?? "",
      ...(d.datastoreType !== undefined ? { datastoreType: d.datastoreType } : {}),
      ...(d.container !== undefined ? { container: d.container } : {}),
    },
    operation: "putDatastore",
    heals: true,
  };
}

function decide(state: AccountState, now: number): { state: AccountState; command: Command } {
  if (state.heal) {
    const { to, consumers } = state.heal;
    const moves = consumers.map((consumer): ConsumerMove => ({
      consumer,
      operation: "putDatastore",
      heals: true,
    }));
    const checks = consumers.map((consumer) => ({ consumer, expect: "holdsKey" as const }));
    state.part = "heal";
    return issue(state, {
      kind: "moveAndVerify",
      phase: "retireActive",
      stepId: `heal-to-${to.key}`,
      moves,
      verify: {
        id: `verify-healed-${to.key}`,
        phase: "retireActive",
        kind: "verifyConsumers",
        on: { key: to.key, source: "snapshot", fingerprint: to.fingerprint },
        checks,
      },
      checks,
      to,
      keys: state.keys,
      verified: state.verified,
      lastKeySyncBefore: state.lastKeySyncBefore,
    });
  }
  for (;;) {
    const step = state.plan.steps[state.cursor];
    if (!step) return finish(state, "rotated", now);
    switch (step.kind) {
      case "grace": {
        if (step.seconds <= 0) {
          state.cursor++;
          continue;
        }
        state.waitUntil ??= (state.movedAt ?? now) + step.seconds * 1000;
        return issue(state, { kind: "wait", stepId: step.id, until: state.waitUntil });
      }
      case "regenerateKey": {
        const keep = keyRef(state, step.keep.key, resolveKeyTarget(step.keep, state.learned), step.keep);
        if (state.lateGrace) {
          state.waitUntil ??= (state.movedAt ?? now) + state.plan.graceSeconds * 1000;
          return issue(state, {
            kind: "wait",
            stepId: `grace-after-late-${step.key}`,
            until: state.waitUntil,
          });
        }
        if (state.lateMoves !== undefined) {
          const moves = state.lateMoves.map((d) => lateDatastoreConsumer(state, d));
          state.part = "late";
          return issue(state, {
            kind: "moveAndVerify",
            phase: step.phase,
            stepId: `move-late-to-${step.keep.key}`,
            moves,
            verify: {
              id: `verify-late-${step.keep.key}`,
              phase: step.phase,
              kind: "verifyConsumers",
              on: step.keep,
              checks: moves.map((m) => ({ consumer: m.consumer, expect: "holdsKey" })),
              nextRegeneration: step.key,
            },
            checks: moves.map((m) => ({ consumer: m.consumer, expect: "holdsKey" })),
            to: keep,
            keys: state.keys,
            verified: state.verified,
            lastKeySyncBefore: state.lastKeySyncBefore,
          });
        }
        // After any grace, a datastore may have been added or re-registered with the key about to die.
        if (!state.lateChecked && (step.phase === "retireActive" || graceBefore(state.plan, state.cursor))) {
          const workspaceIds = workspacesOf(state.plan);
          if (workspaceIds.length > 0) {
            return issue(state, {
              kind: "findLateDatastores",
              workspaceIds,
              known: state.verified,
              newKey: keep,
            });
          }
        }
        const expect: KeyRef = {
          key: step.key,
          fingerprint: step.expectFingerprint,
          ...(state.plan.keys[step.key].creationTime !== undefined
            ? { creationTime: state.plan.keys[step.key].creationTime }
            : {}),
        };
        return issue(state, { kind: "regenerate", step, expect, keep });
      }
      case "moveConsumers":
      case "verifyConsumers": {
        const move = step.kind === "moveConsumers" ? step : undefined;
        const verify = move ? state.plan.steps[state.cursor + 1] : step;
        if (verify?.kind !== "verifyConsumers")
          throw new Error(`plan step ${step.id} is a move not followed by a verification`);
        const target = move ? move.to : verify.on;
        const after = state.plan.steps[state.cursor + (move ? 2 : 1)];
        const graceFollows = after?.kind === "grace" && after.seconds > 0;
        state.part = !move ? "both" : state.movedAt !== undefined ? "verify" : graceFollows ? "move" : "both";
        return issue(state, {
          kind: "moveAndVerify",
          phase: step.phase,
          stepId: step.id,
          moves: move && state.part !== "verify" ? orderMoves(move) : [],
          verify,
          checks: state.part === "move" ? [] : verify.checks,
          to: keyRef(state, target.key, resolveKeyTarget(target, state.learned), target),
          keys: state.keys,
          verified: state.verified,
          lastKeySyncBefore: state.lastKeySyncBefore,
        });
      }
    }
  }
}

function issue(state: AccountState, command: Command): { state: AccountState; command: Command } {
  state.pending = command.kind;
  return { state, command };
}

function finish(
  state: AccountState,
  outcome: AccountExecution["outcome"],
  now: number,
  reason?: string,
): { state: AccountState; command: Command } {
  const { plan } = state;
  // A window still open when the rotation stops is an outage that goes on: report how long so far.
  for (const c of state.inWindow) {
    state.outages.push({
      consumerId: c.consumerId,
      name: c.name,
      kind: c.kind,
      durationMs: now - state.windowStart,
      reason: `${c.reason}; still open when keyturn stopped: it holds a dead key until it is resynced`,
      ...(c.possible ? { possible: true as const } : {}),
    });
  }
  state.inWindow = [];
  const keys = {
    key1: { ...plan.keys.key1, fingerprint: state.keys.key1 },
    key2: { ...plan.keys.key2, fingerprint: state.keys.key2 },
  };
  const execution: AccountExecution = {
    outcome,
    ...(reason !== undefined ? { reason } : {}),
    activeKeyAfter: outcome === "rotated" ? keyRefOf(keys, plan.standbyKey) : undefined,
    consumerActions: state.consumerActions,
    durationMs: now - state.startedAt,
    armCalls: state.armCalls,
    outages: state.outages,
    keysRegenerated: state.keysRegenerated,
  };
  state.pending = "finish";
  return { state, command: { kind: "finish", execution } };
}

/**
 * Batch auto-storage does not say which key a sync picked, so after every regeneration it may hold the
 * dead key until keyturn syncs it again: that possible window is reported as such, never left out.
 */
function unknownHolders(plan: AccountPlan, key: KeyName): (VerificationProblem & { possible: true })[] {
  return plan.consumers.flatMap((c) => {
    const spec = CONSUMER_KINDS[c.kind];
    const why = spec.handling === "move" ? spec.possibleWindow?.(key) : undefined;
    if (why === undefined) return [];
    return [{ consumerId: c.id, name: c.name, kind: c.kind, key, possible: true as const, reason: why }];
  });
}

/** Consumers whose key keyturn writes go first: a service that picks its key may follow them. */
function orderMoves(step: MoveConsumersStep): ConsumerMove[] {
  return [
    ...step.moves.filter((m) => !isServiceChosen(m.consumer.kind)),
    ...step.moves.filter((m) => isServiceChosen(m.consumer.kind)),
  ];
}

function keyRef(state: AccountState, key: KeyName, fingerprint: Fingerprint, target: KeyTarget): KeyRef {
  const creationTime =
    target.source === "regenerated" ? state.learnedTimes[target.stepId] : state.plan.keys[key].creationTime;
  return { key, fingerprint, ...(creationTime !== undefined ? { creationTime } : {}) };
}

/** Whether a grace with a wait lies between the last regeneration (or the start) and this step. */
function graceBefore(plan: AccountPlan, cursor: number): boolean {
  for (let i = cursor - 1; i >= 0; i--) {
    const step = plan.steps[i]!;
    if (step.kind === "regenerateKey") return false;
    if (step.kind === "grace" && step.seconds > 0) return true;
  }
  return false;
}

/** Workspaces whose datastores use the account: where a datastore added during the grace most likely is. */
export function workspacesOf(plan: AccountPlan): string[] {
  const ids = plan.consumers.map((c) =>
    c.kind === "workspace"
      ? c.id
      : c.id.toLowerCase().includes("/datastores/")
        ? c.id.slice(0, c.id.toLowerCase().indexOf("/datastores/"))
        : "",
  );
  return [...new Set(ids.filter((id) => id !== ""))].sort();
}

/** What the orchestrator shows as custom status while a command runs. */
export function describeCommand(command: Command): string {
  switch (command.kind) {
    case "regenerate":
      return command.step.id;
    case "findLateDatastores":
      return "find-late-datastores";
    case "moveAndVerify":
      return command.stepId;
    case "wait":
      return command.stepId;
    case "finish":
      return "done";
  }
}
