import type { Fingerprint } from "./fingerprint";
import type { ConsumerKind, KeyName } from "./model";
import type { KeyTarget, VerifyConsumersStep } from "./plan";
import { CONSUMER_KINDS } from "./kinds";

/** Fingerprints produced by regeneration steps, by step id: what `regenerated` key targets resolve to. */
export type LearnedFingerprints = Record<string, Fingerprint>;

export function resolveKeyTarget(target: KeyTarget, learned: LearnedFingerprints): Fingerprint {
  if (target.source === "snapshot") return target.fingerprint;
  const value = learned[target.stepId];
  if (value === undefined) {
    // A plan run out of order: a programming error, never a state to recover from by guessing.
    throw new Error(`no fingerprint for ${target.key} yet: step ${target.stepId} has not completed`);
  }
  return value;
}

/**
 * A key by name and fingerprint (never its value): as an activity must find it, with the fingerprint
 * the plan expects it to have, or as a report shows the active key before and after.
 */
export interface KeyRef {
  key: KeyName;
  fingerprint: Fingerprint;
  /** `keyCreationTime` as Azure recorded it, when known: a guard that costs a read, not a write. */
  creationTime?: string;
}

export type RegenerationDecision =
  | { action: "regenerate" }
  | { action: "already-done"; reason: string }
  | { action: "refuse"; reason: string };

/**
 * What a regeneration activity does given the account's keys as it reads them now (invariant I4). A
 * key that no longer has its snapshot fingerprint has been regenerated already, most likely by this
 * very step before a crash or replay: regenerating it again would kill the key consumers were just
 * moved to. A changed `keep` key means something outside keyturn regenerated the key consumers live on;
 * regenerating the other one as well would leave them with nothing (invariant I2), so the step refuses.
 */
export function guardRegeneration(
  expect: KeyRef,
  keep: KeyRef,
  current: Record<KeyName, Fingerprint>,
): RegenerationDecision {
  if (current[keep.key] !== keep.fingerprint) {
    return {
      action: "refuse",
      reason:
        `${keep.key} changed outside keyturn (expected ${keep.fingerprint}, found ${current[keep.key]}); ` +
        `not regenerating ${expect.key}, which would leave consumers without a valid key`,
    };
  }
  if (current[expect.key] !== expect.fingerprint) {
    return {
      action: "already-done",
      reason: `${expect.key} no longer has its snapshot fingerprint ${expect.fingerprint}: already regenerated`,
    };
  }
  return { action: "regenerate" };
}

/**
 * True when Azure's `keyCreationTime` shows neither key regenerated since keyturn saw them: then the
 * regeneration may go ahead on a read (`getProperties`) instead of a `listKeys`, which ARM counts as a
 * write. Anything else (a time missing or changed) falls back to the fingerprints, which decide.
 */
export function creationTimesUnchanged(
  expect: KeyRef,
  keep: KeyRef,
  current: Partial<Record<KeyName, string>>,
): boolean {
  const same = (ref: KeyRef) =>
    ref.creationTime !== undefined &&
    current[ref.key] !== undefined &&
    Date.parse(ref.creationTime) === Date.parse(current[ref.key]!);
  return expect.key !== keep.key && same(expect) && same(keep);
}

export type ProbeResult = "ok" | "denied" | "failed" | "not-probed" | "unchanged";

/** What a verification activity saw for one consumer. Never a key value: fingerprints only (I3). */
export interface ConsumerObservation {
  consumerId: string;
  heldFingerprint?: Fingerprint;
  probe?: ProbeResult;
  /** Batch: `autoStorage.lastKeySync` moved past its value before the sync. */
  keySynced?: boolean;
  /** The consumer could not be read at all (forbidden, a failure); already free of secrets. */
  error?: string;
  /** The consumer no longer exists (its workspace lists it no more): nothing to break, nothing to verify. */
  gone?: boolean;
}

export interface VerificationProblem {
  consumerId: string;
  name: string;
  kind: ConsumerKind;
  reason: string;
  /** The key the problem is about, when it is about one (a warning about the key regenerated next). */
  key?: KeyName;
}

export interface VerificationResult {
  /** True when every check passed: the rotation may go on to its next step. */
  ok: boolean;
  verified: string[];
  failures: VerificationProblem[];
  /** Passed, but worth reporting: a service-chosen consumer on the key regenerated next. */
  warnings: VerificationProblem[];
  /** Consumers deleted during the rotation: not failures, since nothing holds a key through them. */
  gone: string[];
}

/**
 * Judges a verification step from the observations an activity made (DESIGN §2 step 5). Any failure
 * stalls the rotation: the old key is still valid at that point, so stopping breaks nothing.
 */
export function evaluateVerification(
  step: VerifyConsumersStep,
  observations: readonly ConsumerObservation[],
  current: Record<KeyName, Fingerprint>,
  learned: LearnedFingerprints,
): VerificationResult {
  const target = resolveKeyTarget(step.on, learned);
  const byId = new Map(observations.map((o) => [o.consumerId, o]));
  const result: VerificationResult = { ok: true, verified: [], failures: [], warnings: [], gone: [] };
  for (const { consumer, expect } of step.checks) {
    const problem = (reason: string): VerificationProblem => ({
      consumerId: consumer.id,
      name: consumer.name,
      kind: consumer.kind,
      reason,
    });
    const seen = byId.get(consumer.id);
    let failure: string | undefined;
    if (seen?.gone === true) {
      result.gone.push(consumer.id);
      continue;
    }
    if (!seen) {
      failure = "not observed by the verification";
    } else if (seen.error !== undefined) {
      failure = seen.error;
    } else if (expect === "holdsKey") {
      failure = holdsKeyFailure(seen, step.on.key, target, current, probeRequired(consumer.kind));
    } else if (expect === "holdsLiveKey") {
      const held = describeHeld(seen.heldFingerprint, current);
      if (seen.heldFingerprint === undefined && consumer.heldFingerprint === undefined) {
        // listKeys shows no user storage key before and after (identity-based workspace storage, or a
        // service that withholds it): nothing keyturn could have broken, and nothing to prove.
        result.warnings.push(problem("listKeys shows no storage key for this workspace"));
      } else if (
        seen.heldFingerprint === undefined ||
        !Object.values(current).includes(seen.heldFingerprint)
      ) {
        failure = `holds ${held}, not a live key of the account`;
      } else if (
        step.nextRegeneration !== undefined &&
        seen.heldFingerprint === current[step.nextRegeneration]
      ) {
        result.warnings.push({
          ...problem(
            `holds ${step.nextRegeneration}, regenerated next: it breaks until the resync that follows`,
          ),
          key: step.nextRegeneration,
        });
      }
    } else if (expect === "keySynced") {
      if (seen.keySynced !== true) failure = "autoStorage.lastKeySync did not move after syncAutoStorageKeys";
    } else {
      // A new CheckKind (kinds.ts) is a compile error here until it is judged.
      failure = `unknown check ${String(expect satisfies never)}`;
    }
    if (failure === undefined) {
      result.verified.push(consumer.id);
    } else {
      result.failures.push(problem(failure));
    }
  }
  result.ok = result.failures.length === 0;
  return result;
}

/** Datastores are what jobs read through: their stored key must also have been tried on the data plane. */
function probeRequired(kind: ConsumerKind): boolean {
  const spec = CONSUMER_KINDS[kind];
  return spec.handling === "move" && spec.probeRequired;
}

function holdsKeyFailure(
  seen: ConsumerObservation,
  key: KeyName,
  target: Fingerprint,
  current: Record<KeyName, Fingerprint>,
  probeRequired: boolean,
): string | undefined {
  if (seen.heldFingerprint !== target) {
    return `holds ${describeHeld(seen.heldFingerprint, current)}, expected ${key} (${target})`;
  }
  if (seen.probe === "denied") return `the data plane refused ${key} (403)`;
  if (seen.probe === "failed") return `the data-plane probe with ${key} failed`;
  // Datastores are what jobs read through: a stored key that was never tried proves little.
  if (probeRequired && seen.probe !== "ok" && seen.probe !== "unchanged")
    return `the data plane was not probed with ${key}`;
  return undefined;
}

function describeHeld(held: Fingerprint | undefined, current: Record<KeyName, Fingerprint>): string {
  if (held === undefined) return "no key";
  if (held === current.key1) return `key1 (${held})`;
  if (held === current.key2) return `key2 (${held})`;
  return `a dead key (${held})`;
}
