import {
  evaluateVerification,
  isServiceChosen,
  isVoting,
  moveGuard,
  regenerationGuard,
  resolveKeyTarget,
  type AccountPlan,
  type Consumer,
  type ConsumerObservation,
  type Fingerprint,
  type KeyName,
  type LearnedFingerprints,
  type PlanStep,
  type StorageAccountSnapshot,
  type VerificationResult,
} from "../../../shared/rotation";
import { fp, keyValues, newKeyValue } from "./builders";

/** Which key a resync or sync hands a service-chosen consumer; Microsoft does not document it. */
export type ServicePick = "key1" | "target";

/**
 * One storage account and its consumers, holding real (random) key values, with activities that do
 * what keyturn's adapters will: read keys, apply the pure guards, write. Records every input and output
 * so tests can check that no key value crossed the boundary, and every moment a consumer held a dead key.
 */
export class FakeEstate {
  keys: Record<KeyName, string>;
  readonly held = new Map<string, string | undefined>();
  readonly synced = new Set<string>();
  readonly regenerated: KeyName[] = [];
  readonly writes: string[] = [];
  /** "stepId: consumer" for every voting consumer that held a dead key after a step (invariant I1). */
  readonly deadVoters: string[] = [];
  /** Step ids after which a service-chosen consumer held a dead key. */
  readonly deadFollowers: string[] = [];
  readonly boundary: unknown[] = [];
  readonly allKeyValues: string[] = [];
  clockSeconds = 0;
  private readonly initiallyDead = new Set<string>();

  constructor(
    account: StorageAccountSnapshot,
    readonly consumers: Consumer[],
    readonly servicePick: ServicePick = "target",
  ) {
    const values = keyValues.get(account.id);
    if (!values) throw new Error(`account ${account.name} was not made by the builders`);
    this.keys = { ...values };
    this.allKeyValues.push(values.key1, values.key2);
    for (const c of consumers) {
      const value =
        c.heldFingerprint === undefined
          ? undefined
          : c.heldFingerprint === fp(values.key1)
            ? values.key1
            : c.heldFingerprint === fp(values.key2)
              ? values.key2
              : "fake-dead-key";
      this.held.set(c.id, value);
      if (value === "fake-dead-key") this.initiallyDead.add(c.id);
    }
  }

  fingerprints(): Record<KeyName, Fingerprint> {
    return { key1: fp(this.keys.key1), key2: fp(this.keys.key2) };
  }

  /** Something outside keyturn regenerating a key. */
  regenerateBehindTheBack(key: KeyName): void {
    this.keys[key] = newKeyValue();
    this.allKeyValues.push(this.keys[key]);
  }

  /** A fresh snapshot, as a resumed rotation would take it. */
  snapshot(account: StorageAccountSnapshot): { account: StorageAccountSnapshot; consumers: Consumer[] } {
    const fps = this.fingerprints();
    keyValues.set(account.id, { ...this.keys });
    const consumers = this.consumers.map((c) => {
      const value = this.held.get(c.id);
      const { heldFingerprint: _old, ...rest } = c;
      return value === undefined ? rest : { ...rest, heldFingerprint: fp(value) };
    });
    return {
      account: { ...account, keys: { key1: { fingerprint: fps.key1 }, key2: { fingerprint: fps.key2 } } },
      consumers,
    };
  }

  private live(value: string | undefined): boolean {
    return value !== undefined && (value === this.keys.key1 || value === this.keys.key2);
  }

  private valueOf(target: Fingerprint): string {
    const key = (["key1", "key2"] as const).find((k) => fp(this.keys[k]) === target);
    if (!key) throw new Error(`no key has fingerprint ${target} any more`);
    return this.keys[key];
  }

  /** Runs one step as its activity would; returns what the orchestrator would record. */
  run(
    step: PlanStep,
    learned: LearnedFingerprints,
  ): { fingerprint?: Fingerprint; verification?: VerificationResult; refused?: string } {
    this.boundary.push(step, { ...learned });
    const result = this.execute(step, learned);
    this.boundary.push(result);
    this.audit(step.id);
    return result;
  }

  private execute(
    step: PlanStep,
    learned: LearnedFingerprints,
  ): { fingerprint?: Fingerprint; verification?: VerificationResult; refused?: string } {
    switch (step.kind) {
      case "regenerateKey": {
        const decision = regenerationGuard(step, this.fingerprints(), learned);
        if (decision.action === "refuse") return { refused: decision.reason };
        if (decision.action === "regenerate") {
          this.keys[step.key] = newKeyValue();
          this.allKeyValues.push(this.keys[step.key]);
          this.regenerated.push(step.key);
        }
        return { fingerprint: this.fingerprints()[step.key] };
      }
      case "moveConsumers": {
        const target = this.valueOf(resolveKeyTarget(step.to, learned));
        for (const { consumer, operation } of step.moves) {
          if (operation === "resyncKeys" || operation === "syncAutoStorageKeys") {
            this.held.set(consumer.id, this.servicePick === "key1" ? this.keys.key1 : target);
            this.synced.add(consumer.id);
            continue;
          }
          const current = this.held.get(consumer.id);
          if (moveGuard(step, current === undefined ? undefined : fp(current), learned) === "write") {
            this.held.set(consumer.id, target);
            this.writes.push(consumer.id);
          }
        }
        return {};
      }
      case "verifyConsumers": {
        const observations: ConsumerObservation[] = step.checks.map(({ consumer }) => {
          const value = this.held.get(consumer.id);
          return {
            consumerId: consumer.id,
            ...(value === undefined ? {} : { heldFingerprint: fp(value) }),
            probe: this.live(value) ? "ok" : "denied",
            keySynced: this.synced.has(consumer.id),
          };
        });
        this.boundary.push(observations);
        return { verification: evaluateVerification(step, observations, this.fingerprints(), learned) };
      }
      case "grace":
        this.clockSeconds += step.seconds;
        return {};
    }
  }

  private audit(stepId: string): void {
    for (const c of this.consumers) {
      const value = this.held.get(c.id);
      if (value === undefined || this.live(value) || this.initiallyDead.has(c.id)) continue;
      if (isVoting(c.kind)) this.deadVoters.push(`${stepId}: ${c.name}`);
      if (isServiceChosen(c.kind)) this.deadFollowers.push(stepId);
    }
    for (const c of this.consumers) if (this.live(this.held.get(c.id))) this.initiallyDead.delete(c.id);
  }
}

export interface RunOptions {
  /** Run every activity twice, as after a crash between the activity and the checkpoint (I4). */
  replay?: boolean;
  /** Called before each step, to inject faults. */
  before?: (step: PlanStep) => void;
}

export interface RunResult {
  outcome: "rotated" | "stalled" | "failed";
  reason?: string;
  learned: LearnedFingerprints;
  completed: string[];
}

/** The orchestrator's loop, minus Durable Functions: what `rotateStorageAccount` will do with a plan. */
export function runPlan(plan: AccountPlan, estate: FakeEstate, options: RunOptions = {}): RunResult {
  const learned: LearnedFingerprints = {};
  const completed: string[] = [];
  for (const step of plan.steps) {
    options.before?.(step);
    let result = estate.run(step, learned);
    if (options.replay) result = estate.run(step, learned);
    if (result.refused !== undefined)
      return { outcome: "failed", reason: result.refused, learned, completed };
    if (result.fingerprint !== undefined) learned[step.id] = result.fingerprint;
    if (result.verification && !result.verification.ok) {
      const reason = result.verification.failures.map((f) => `${f.kind} ${f.name}: ${f.reason}`).join("; ");
      return { outcome: "stalled", reason, learned, completed };
    }
    completed.push(step.id);
  }
  return { outcome: "rotated", learned, completed };
}
