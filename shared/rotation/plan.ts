import type { Fingerprint } from "./fingerprint";
import type { AccountNode } from "./graph";
import { decideActiveKey, type KeyDecision } from "./decide";
import {
  consumerRef,
  type Consumer,
  type ConsumerKind,
  type ConsumerRef,
  type KeyName,
  type KeySnapshot,
  type StorageAccountSnapshot,
} from "./model";
import { evaluateAccountPolicy, type PolicyOptions, type PolicySkipCode } from "./policy";
import { formatDuration } from "./limits";
import {
  CONSUMER_KINDS,
  isReportOnly,
  isServiceChosen,
  isVoting,
  movedKind,
  type CheckKind,
  type MoveOperation,
} from "./kinds";

export type PlanPhase = "normalize" | "rotateStandby" | "retireActive";

/**
 * A key as a step needs it: with the fingerprint taken at the snapshot, or the one a regeneration
 * earlier in the plan produced, which is only known at run time (see `resolveKeyTarget`).
 */
export type KeyTarget =
  | { key: KeyName; source: "snapshot"; fingerprint: Fingerprint }
  | { key: KeyName; source: "regenerated"; stepId: string };

export interface ConsumerMove {
  consumer: Consumer;
  operation: MoveOperation;
  /** The consumer held a key the account no longer has: this move heals it. */
  heals: boolean;
}

export interface ConsumerCheck {
  consumer: Consumer;
  expect: CheckKind;
}

interface StepBase {
  /** Unique in the plan and stable across replays: activities and telemetry name steps by it. */
  id: string;
  phase: PlanPhase;
}

/**
 * Regenerates exactly one key (invariant I2), guarded by compare-and-swap (invariant I4): the key is
 * regenerated only while it still has `expectFingerprint`, and only while `keep`, the key consumers
 * were moved to, is unchanged. See `guardRegeneration`.
 */
export interface RegenerateKeyStep extends StepBase {
  kind: "regenerateKey";
  key: KeyName;
  expectFingerprint: Fingerprint;
  keep: KeyTarget;
}

/** Moves consumers to `to`. The moves are independent of each other and may run in parallel. */
export interface MoveConsumersStep extends StepBase {
  kind: "moveConsumers";
  to: KeyTarget;
  moves: ConsumerMove[];
}

/** Proves consumers work on `on`; any failure stops the rotation while the old key is still valid. */
export interface VerifyConsumersStep extends StepBase {
  kind: "verifyConsumers";
  on: KeyTarget;
  checks: ConsumerCheck[];
  /** The key the plan regenerates next, if any: a consumer found on it would break, so it is flagged. */
  nextRegeneration?: KeyName;
}

/** A durable timer so jobs and apps that cached the old key move on. 0 means no wait. */
export interface GraceStep extends StepBase {
  kind: "grace";
  seconds: number;
}

export type PlanStep = RegenerateKeyStep | MoveConsumersStep | VerifyConsumersStep | GraceStep;
export type StepKind = PlanStep["kind"];

export interface AccountRef {
  id: string;
  name: string;
  subscriptionId: string;
  resourceGroup: string;
}

/** A consumer keyturn reports on but never writes (SAS and identity-based datastores). */
export interface ConsumerNote extends ConsumerRef {
  reason: string;
}

export interface AccountPlan {
  account: AccountRef;
  /** Fingerprints and creation times at the snapshot: the compare-and-swap baseline. */
  keys: Record<KeyName, KeySnapshot>;
  activeKey: KeyName;
  standbyKey: KeyName;
  decision: KeyDecision;
  graceSeconds: number;
  steps: PlanStep[];
  /** Every consumer of the account, in graph order. */
  consumers: ConsumerRef[];
  notes: ConsumerNote[];
  /** Policy remarks worth reporting, such as a forced rotation of a young key. */
  policyNotes: string[];
  /**
   * Set when policy says no new rotation (the keys are too young) but consumers are broken or split:
   * the plan only moves them to the active key, regenerates nothing, and the account is reported as
   * skipped for this reason, with the consumers it healed.
   */
  heal?: { code: PolicySkipCode; reason: string };
}

export type AccountPlanResult =
  | { action: "rotate"; plan: AccountPlan }
  | {
      action: "skip";
      account: AccountRef;
      code: PolicySkipCode;
      reason: string;
      consumers: ConsumerRef[];
      decision?: KeyDecision;
      keys: Record<KeyName, KeySnapshot>;
    }
  | { action: "fail"; account: AccountRef; reason: string; consumers: ConsumerRef[] };

export interface PlanOptions extends PolicyOptions {
  graceSeconds: number;
}

export function accountRef(account: StorageAccountSnapshot): AccountRef {
  return {
    id: account.id,
    name: account.name,
    subscriptionId: account.subscriptionId,
    resourceGroup: account.resourceGroup,
  };
}

/** Applies policy and, if the account is to be rotated, builds its step plan. Pure and deterministic. */
export function planAccount(node: AccountNode, options: PlanOptions): AccountPlanResult {
  const { account } = node;
  const ref = accountRef(account);
  const consumers = node.consumers.map(consumerRef);
  const decision = decideActiveKey(account, node.consumers);
  const verdict = evaluateAccountPolicy(node, decision.activeKey, options);
  // A rerun heals whatever the key age: the policy decides only whether to start a fresh rotation.
  const heal =
    !verdict.rotate && verdict.code === "too-young" ? buildHealPlan(node, decision, verdict) : undefined;
  if (heal) return { action: "rotate", plan: heal };
  if (!verdict.rotate) {
    return {
      action: "skip",
      account: ref,
      code: verdict.code,
      reason: verdict.reason,
      consumers,
      decision,
      keys: account.keys,
    };
  }
  if (account.keys.key1.fingerprint === account.keys.key2.fingerprint) {
    // Either a broken snapshot or a fingerprint collision; both make every guard meaningless.
    return {
      action: "fail",
      account: ref,
      consumers,
      reason: "key1 and key2 have the same fingerprint: the snapshot cannot tell the keys apart",
    };
  }
  const notes = [
    ...verdict.notes,
    ...cacheWarnings(node.consumers, options.graceSeconds),
    ...expiryFindings(node),
  ];
  return { action: "rotate", plan: buildPlan(node, decision, options.graceSeconds, notes) };
}

/**
 * Consumers whose SAS is valid for longer than the account's SAS expiration policy allows: a finding
 * whatever keyturn does, as re-signing keeps the expiry.
 */
export function expiryFindings(node: AccountNode): string[] {
  const policy = node.account.sasExpirationPeriod;
  const maxMs = policy !== undefined ? periodMs(policy) : undefined;
  if (maxMs === undefined) return [];
  return node.consumers.flatMap((c) => {
    if (!("expiresOn" in c) || c.expiresOn === undefined || c.startsOn === undefined) return [];
    if (Date.parse(c.expiresOn) - Date.parse(c.startsOn) <= maxMs) return [];
    return [
      `${c.name}: its SAS is valid from ${c.startsOn} to ${c.expiresOn}, longer than ${node.account.name}'s SAS expiration policy (${policy}) allows: issue it again with a shorter expiry`,
    ];
  });
}

/** ARM's `sasExpirationPeriod`, "d.hh:mm:ss", in milliseconds; undefined when unreadable. */
function periodMs(period: string): number | undefined {
  const m = /^(\d+)\.(\d{2}):(\d{2}):(\d{2})$/.exec(period);
  if (!m) return undefined;
  const [d, h, min, sec] = m.slice(1).map(Number) as [number, number, number, number];
  return (((d * 24 + h) * 60 + min) * 60 + sec) * 1000;
}

/** One warning per consumer kind whose known key caching outlasts the grace. */
export function cacheWarnings(consumers: readonly Consumer[], graceSeconds: number): string[] {
  const kinds = [...new Set(consumers.map((c) => c.kind))];
  return kinds.flatMap((kind) => {
    const { knownKeyCache: cache, reportName } = CONSUMER_KINDS[kind];
    if (cache === undefined || graceSeconds >= cache.seconds) return [];
    const count = consumers.filter((c) => c.kind === kind).length;
    return [
      `the grace (${formatDuration(graceSeconds)}) is shorter than the ${formatDuration(cache.seconds)} ${count === 1 ? "a" : count} ${reportName} consumer${count === 1 ? "" : "s"} may keep the old key: ${cache.why}`,
    ];
  });
}

/**
 * Moves broken consumers (on a key the account no longer has) and voters on the standby key to the
 * active key, and resyncs services holding a dead key: nothing is regenerated, so nothing needs a
 * grace. Undefined when there is nothing to heal.
 */
export function buildHealPlan(
  node: AccountNode,
  decision: KeyDecision,
  skip: { code: PolicySkipCode; reason: string },
): AccountPlan | undefined {
  const { account } = node;
  const broken = new Set(decision.broken);
  const normalizing = new Set(decision.normalize);
  const voters = node.consumers.filter(
    (c) => isVoting(c.kind) && (broken.has(c.id) || normalizing.has(c.id)),
  );
  const followers = node.consumers.filter((c) => isServiceChosen(c.kind) && broken.has(c.id));
  if (voters.length === 0 && followers.length === 0) return undefined;
  const active: KeyTarget = {
    key: decision.activeKey,
    source: "snapshot",
    fingerprint: account.keys[decision.activeKey].fingerprint,
  };
  const steps: PlanStep[] = [];
  const add = (id: string, consumers: Consumer[]) =>
    steps.push(
      {
        id: `${id}-to-${decision.activeKey}`,
        phase: "normalize",
        kind: "moveConsumers",
        to: active,
        moves: consumers.map((consumer) => ({
          consumer,
          operation: operationFor(consumer.kind),
          heals: true,
        })),
      },
      {
        id: `verify-${id}-${decision.activeKey}`,
        phase: "normalize",
        kind: "verifyConsumers",
        on: active,
        checks: consumers.map((consumer) => ({ consumer, expect: checkFor(consumer.kind) })),
      },
    );
  if (voters.length > 0) add("heal", voters);
  if (followers.length > 0) add("resync-heal", followers);
  return {
    account: accountRef(account),
    keys: account.keys,
    activeKey: decision.activeKey,
    standbyKey: decision.standbyKey,
    decision,
    graceSeconds: 0,
    steps,
    consumers: node.consumers.map(consumerRef),
    notes: node.consumers.filter((c) => isReportOnly(c.kind)).map(noteFor),
    policyNotes: [],
    heal: { code: skip.code, reason: skip.reason },
  };
}

/**
 * The procedure of DESIGN §2 as data:
 * (normalize → verify → grace) → regenerate standby → move → verify → grace → regenerate old active →
 * resync the service-chosen consumers → verify everything again.
 *
 * Normalizing gets its own grace: moving a consumer's stored key does not move the jobs that cached the
 * old one, and the old one (the standby) is about to be regenerated.
 */
export function buildPlan(
  node: AccountNode,
  decision: KeyDecision,
  graceSeconds: number,
  policyNotes: string[] = [],
): AccountPlan {
  const { account } = node;
  const { activeKey, standbyKey } = decision;
  const broken = new Set(decision.broken);
  const voters = node.consumers.filter((c) => isVoting(c.kind));
  const followers = node.consumers.filter((c) => isServiceChosen(c.kind));
  const normalizing = new Set(decision.normalize);

  const active: KeyTarget = {
    key: activeKey,
    source: "snapshot",
    fingerprint: account.keys[activeKey].fingerprint,
  };
  const regenerateStandbyId = `regenerate-${standbyKey}`;
  const newStandby: KeyTarget = { key: standbyKey, source: "regenerated", stepId: regenerateStandbyId };
  const move = (consumer: Consumer): ConsumerMove => ({
    consumer,
    operation: operationFor(consumer.kind),
    heals: broken.has(consumer.id),
  });
  const check = (consumer: Consumer): ConsumerCheck => ({ consumer, expect: checkFor(consumer.kind) });

  const steps: PlanStep[] = [];
  const toNormalize = voters.filter((c) => normalizing.has(c.id));
  if (toNormalize.length > 0) {
    steps.push(
      {
        id: `normalize-to-${activeKey}`,
        phase: "normalize",
        kind: "moveConsumers",
        to: active,
        moves: toNormalize.map(move),
      },
      {
        id: `verify-normalized-${activeKey}`,
        phase: "normalize",
        kind: "verifyConsumers",
        on: active,
        checks: toNormalize.map(check),
        nextRegeneration: standbyKey,
      },
      { id: "grace-normalized", phase: "normalize", kind: "grace", seconds: graceSeconds },
    );
  }
  // A service-chosen consumer left on the standby key (a resync that insisted on it last time) would
  // die with the standby's regeneration: resync it first, so it moves if the service lets it.
  const standbyFingerprint = account.keys[standbyKey].fingerprint;
  const followersOnStandby = followers.filter(
    (c) => c.heldFingerprint !== undefined && c.heldFingerprint === standbyFingerprint,
  );
  if (followersOnStandby.length > 0) {
    steps.push(
      {
        id: `resync-before-${standbyKey}`,
        phase: "normalize",
        kind: "moveConsumers",
        to: active,
        moves: followersOnStandby.map(move),
      },
      {
        id: `verify-resynced-before-${standbyKey}`,
        phase: "normalize",
        kind: "verifyConsumers",
        on: active,
        checks: followersOnStandby.map(check),
        nextRegeneration: standbyKey,
      },
    );
  }
  steps.push(
    {
      id: regenerateStandbyId,
      phase: "rotateStandby",
      kind: "regenerateKey",
      key: standbyKey,
      expectFingerprint: account.keys[standbyKey].fingerprint,
      keep: active,
    },
    // The service-chosen consumers go first: if the service insists on the key just regenerated, they
    // are the ones holding a dead key, and every second counts (invariant I1).
    {
      id: `move-to-${standbyKey}`,
      phase: "rotateStandby",
      kind: "moveConsumers",
      to: newStandby,
      moves: [...followers, ...voters].map(move),
    },
    {
      id: `verify-${standbyKey}`,
      phase: "rotateStandby",
      kind: "verifyConsumers",
      on: newStandby,
      checks: [...followers, ...voters].map(check),
      nextRegeneration: activeKey,
    },
    { id: "grace", phase: "rotateStandby", kind: "grace", seconds: graceSeconds },
    {
      id: `regenerate-${activeKey}`,
      phase: "retireActive",
      kind: "regenerateKey",
      key: activeKey,
      expectFingerprint: account.keys[activeKey].fingerprint,
      keep: newStandby,
    },
  );
  if (followers.length > 0) {
    steps.push({
      id: `resync-after-${activeKey}`,
      phase: "retireActive",
      kind: "moveConsumers",
      to: newStandby,
      moves: followers.map(move),
    });
  }
  // Everyone again, not only the followers: a datastore re-registered by hand during the grace with
  // the old key is dead now, and the report should say so rather than claim success.
  steps.push({
    id: "verify-final",
    phase: "retireActive",
    kind: "verifyConsumers",
    on: newStandby,
    checks: [...followers, ...voters].map(check),
  });

  return {
    account: accountRef(account),
    keys: account.keys,
    activeKey,
    standbyKey,
    decision,
    graceSeconds,
    steps,
    consumers: node.consumers.map(consumerRef),
    notes: node.consumers.filter((c) => isReportOnly(c.kind)).map(noteFor),
    policyNotes,
  };
}

function operationFor(kind: ConsumerKind): MoveOperation {
  return movedKind(kind).operation;
}

function checkFor(kind: ConsumerKind): CheckKind {
  const spec = CONSUMER_KINDS[kind];
  if (spec.handling !== "move") throw new Error(`consumer kind ${kind} holds no key keyturn can verify`);
  return spec.check;
}

function noteFor(consumer: Consumer): ConsumerNote {
  const spec = CONSUMER_KINDS[consumer.kind];
  if (spec.handling !== "reportOnly") throw new Error(`consumer kind ${consumer.kind} is not report-only`);
  // A consumer may say more than its kind (which SAS, and why keyturn leaves it).
  return { ...consumerRef(consumer), reason: "why" in consumer ? consumer.why : spec.reason };
}

// ---------------------------------------------------------------------------------------------
// Plan invariants

/**
 * Checks a plan against invariant I2 and the shape the orchestrator relies on; returns what is wrong,
 * empty when nothing is. The orchestrator can refuse to run a plan with violations; tests prove the
 * builder never makes one.
 */
export function planViolations(plan: AccountPlan): string[] {
  const problems: string[] = [];
  const ids = new Set<string>();
  for (const step of plan.steps) {
    if (ids.has(step.id)) problems.push(`step id ${step.id} is used twice`);
    ids.add(step.id);
  }
  if (plan.heal) {
    if (plan.steps.some((s) => s.kind === "regenerateKey")) problems.push("a heal plan regenerates a key");
    return problems;
  }
  const regenerations = plan.steps
    .map((step, index) => ({ step, index }))
    .filter((e): e is { step: RegenerateKeyStep; index: number } => e.step.kind === "regenerateKey");
  const [first, second, ...more] = regenerations;
  if (!first || !second || more.length > 0) {
    problems.push(`expected exactly two regenerations, found ${regenerations.length}`);
    return problems;
  }
  if (first.step.key !== plan.standbyKey)
    problems.push(`the first regeneration is ${first.step.key}, not the standby key`);
  if (second.step.key !== plan.activeKey)
    problems.push(`the second regeneration is ${second.step.key}, not the active key`);
  if (first.step.key === second.step.key) problems.push(`both regenerations are of ${first.step.key}`);
  if (first.step.expectFingerprint !== plan.keys[first.step.key].fingerprint) {
    problems.push(`${first.step.id} is not guarded by the snapshot fingerprint`);
  }
  if (second.step.expectFingerprint !== plan.keys[second.step.key].fingerprint) {
    problems.push(`${second.step.id} is not guarded by the snapshot fingerprint`);
  }
  if (second.step.keep.source !== "regenerated" || second.step.keep.stepId !== first.step.id) {
    problems.push(`${second.step.id} does not keep the key ${first.step.id} produced`);
  }

  const between = plan.steps.slice(first.index + 1, second.index);
  const keyed = plan.decision.holdings.filter((h) => isVoting(h.kind) || isServiceChosen(h.kind));
  for (const holding of keyed) {
    const movedAt = between.findIndex(
      (s) => s.kind === "moveConsumers" && s.moves.some((m) => m.consumer.id === holding.id),
    );
    const verifiedAt = between.findIndex(
      (s) =>
        s.kind === "verifyConsumers" &&
        s.on.key === first.step.key &&
        s.checks.some((c) => c.consumer.id === holding.id),
    );
    if (movedAt < 0) problems.push(`${holding.kind} ${holding.name} is not moved to ${first.step.key}`);
    if (verifiedAt < 0) {
      problems.push(
        `${holding.kind} ${holding.name} is not verified on ${first.step.key} before ${second.step.id}`,
      );
    } else if (movedAt > verifiedAt) {
      problems.push(`${holding.kind} ${holding.name} is verified before it is moved`);
    }
  }
  const lastVerify = between.map((s) => s.kind).lastIndexOf("verifyConsumers");
  const grace = between.findIndex((s) => s.kind === "grace");
  if (grace < 0 || grace < lastVerify)
    problems.push(`no grace period between verification and ${second.step.id}`);

  const before = plan.steps.slice(0, first.index);
  for (const id of plan.decision.normalize) {
    const verified = before.some(
      (s) =>
        s.kind === "verifyConsumers" &&
        s.on.key === plan.activeKey &&
        s.checks.some((c) => c.consumer.id === id),
    );
    if (!verified)
      problems.push(`consumer ${id} on the standby key is not normalized before ${first.step.id}`);
  }
  return problems;
}
