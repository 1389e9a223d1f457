import {
  creationTimesUnchanged,
  describeCommand,
  guardRegeneration,
  isServiceChosen,
  isVoting,
  next,
  startAccount,
  type AccountExecution,
  type AccountPlan,
  type AccountState,
  type Command,
  type CommandResult,
  type Consumer,
  type ConsumerMove,
  type ConsumerObservation,
  type DatastoreConsumer,
  type FindLateResult,
  type Fingerprint,
  type KeyName,
  type LateDatastore,
  type MoveAndVerifyResult,
  type MoveOutcome,
  type ProbeResult,
  type RegenerateResult,
  type StorageAccountSnapshot,
  type VerifiedDatastore,
} from "../../../shared/rotation";
import { NOW, fp, keyValues, newKeyValue } from "./builders";

/** Which key a resync or sync hands a service-chosen consumer; Microsoft does not document it. */
export type ServicePick = "key1" | "target";

type RegenerateCommand = Extract<Command, { kind: "regenerate" }>;
type MoveAndVerifyCommand = Extract<Command, { kind: "moveAndVerify" }>;
type FindLateCommand = Extract<Command, { kind: "findLateDatastores" }>;
type ActivityKind = "regenerate" | "moveAndVerify" | "findLateDatastores";

/** What a consumer holds, by key name: tests assert on this, never on key values. */
export type Holding = KeyName | "dead" | "nothing";

/** The key value of consumers the builders made with `"dead"`: a key the account no longer has. */
const DEAD_KEY = "an old key that was regenerated long ago";

/** The process running an activity died: the orchestrator gets no result at all. */
export class FakeCrash extends Error {}

export interface FakeEstateOptions {
  servicePick?: ServicePick;
  /** How long each activity takes on the fake clock. */
  activityMs?: number;
}

/**
 * One storage account and its consumers holding real (random) key values, executing the state machine's
 * commands as keyturn's activities do (shared/activities): the regeneration guarded by creation times and
 * then fingerprints, moves of written consumers before service-chosen ones, verification that reads a
 * datastore's secret only when list metadata (`modifiedAt`) shows it changed, the search for datastores
 * added during the grace. Every command, result and state that crosses the activity boundary goes
 * through JSON and is recorded, so tests can check no key value crossed it (I3); every moment a consumer
 * held a dead key is recorded too (I1).
 */
export class FakeEstate {
  readonly keys: Record<KeyName, string>;
  readonly creationTimes: Partial<Record<KeyName, string>>;
  readonly consumers: Consumer[];
  readonly servicePick: ServicePick;
  readonly activityMs: number;
  /** Key value each consumer holds, by consumer id. */
  readonly held = new Map<string, string | undefined>();
  /** Datastores of the account (planned and added later), with their `systemData.lastModifiedAt`. */
  readonly datastores: DatastoreConsumer[] = [];
  readonly modifiedAt = new Map<string, string>();
  readonly lastKeySync = new Map<string, string>();
  readonly regenerated: KeyName[] = [];
  /** Every write keyturn made: `put <datastore>`, `publish <secret>`, `resync <workspace>`, `sync <batch>`. */
  readonly writes: string[] = [];
  /** Datastore secrets read (`listSecrets`), by datastore name. */
  readonly secretReads: string[] = [];
  /** "command: consumer" for every voting consumer that held a dead key after a command (invariant I1). */
  readonly deadVoters: string[] = [];
  /** "command: consumer" for every service-chosen consumer that held a dead key after a command. */
  readonly deadFollowers: string[] = [];
  /** Commands that changed keys or consumers when executed a second time (I4). */
  readonly replayChanges: string[] = [];
  /** Everything that crossed the boundary, as JSON. */
  readonly boundary: string[] = [];
  readonly allKeyValues: string[] = [DEAD_KEY];
  now = Date.parse(NOW);
  waitedMs = 0;

  // Faults.
  /** Moves that fail, by consumer id: the activity reports the error for that consumer. */
  readonly moveErrors = new Map<string, string>();
  /** Consumers whose writes are accepted but change nothing (a stale read, a write that did not land). */
  readonly stuck = new Set<string>();
  /** The data plane refuses every probe. */
  probeDenied = false;
  /** The next moveAndVerify dies (the process, not the activity) after this many moves. */
  crashAfterMoves?: number;
  private readonly failures = new Map<ActivityKind, { reason: string; afterWork: boolean }>();
  private readonly initiallyDead = new Set<string>();
  private lastStamp = 0;

  constructor(account: StorageAccountSnapshot, consumers: Consumer[], options: FakeEstateOptions = {}) {
    const values = keyValues.get(account.id);
    if (!values) throw new Error(`account ${account.name} was not made by the builders`);
    this.keys = { ...values };
    this.allKeyValues.push(values.key1, values.key2);
    this.creationTimes = {};
    for (const key of ["key1", "key2"] as const) {
      const t = account.keys[key].creationTime;
      if (t !== undefined) this.creationTimes[key] = t;
    }
    this.consumers = [...consumers];
    this.servicePick = options.servicePick ?? "target";
    this.activityMs = options.activityMs ?? 1000;
    for (const c of consumers) {
      const value =
        c.heldFingerprint === undefined
          ? undefined
          : c.heldFingerprint === fp(values.key1)
            ? values.key1
            : c.heldFingerprint === fp(values.key2)
              ? values.key2
              : DEAD_KEY;
      this.held.set(c.id, value);
      if (value === DEAD_KEY) this.initiallyDead.add(c.id);
      if (c.kind === "datastore") {
        this.datastores.push(c);
        this.modifiedAt.set(c.id, this.stamp());
      }
      if (c.kind === "batchAutoStorage" && c.lastKeySync !== undefined)
        this.lastKeySync.set(c.id, c.lastKeySync);
    }
  }

  fingerprints(): Record<KeyName, Fingerprint> {
    return { key1: fp(this.keys.key1), key2: fp(this.keys.key2) };
  }

  /** Which key a consumer holds now. */
  holds(consumerId: string): Holding {
    const value = this.held.get(consumerId);
    if (value === undefined) return "nothing";
    if (value === this.keys.key1) return "key1";
    if (value === this.keys.key2) return "key2";
    return "dead";
  }

  /** Something outside keyturn regenerating a key (Azure records a new creation time). */
  regenerateBehindTheBack(key: KeyName): void {
    this.newKey(key);
  }

  /** Someone re-registering a datastore by hand (during the grace, say) with one of the account's keys. */
  reRegister(datastoreId: string, key: KeyName): void {
    this.held.set(datastoreId, this.keys[key]);
    this.modifiedAt.set(datastoreId, this.stamp());
  }

  /** A datastore added outside keyturn, with one of the account's keys: the plan does not know it. */
  addDatastore(workspaceId: string, name: string, key: KeyName): DatastoreConsumer {
    const ds: DatastoreConsumer = {
      kind: "datastore",
      id: `${workspaceId}/datastores/${name}`,
      name,
      storageAccountId: this.datastores[0]?.storageAccountId ?? "",
      workspaceId,
      datastoreType: "AzureBlob",
    };
    this.datastores.push(ds);
    this.consumers.push(ds);
    this.reRegister(ds.id, key);
    return ds;
  }

  /** The activity for `kind` fails for good (after its retries); `afterWork`: once it did what it does. */
  failNext(kind: ActivityKind, reason: string, options: { afterWork?: boolean } = {}): void {
    this.failures.set(kind, { reason, afterWork: options.afterWork ?? false });
  }

  /** A fresh snapshot, as a rotation started again would take it. */
  snapshot(account: StorageAccountSnapshot): { account: StorageAccountSnapshot; consumers: Consumer[] } {
    const fps = this.fingerprints();
    const key = (k: KeyName) => ({
      fingerprint: fps[k],
      ...(this.creationTimes[k] !== undefined ? { creationTime: this.creationTimes[k] } : {}),
    });
    const consumers = this.consumers.map((c): Consumer => {
      const value = this.held.get(c.id);
      const { heldFingerprint: _old, ...rest } = c;
      const synced = this.lastKeySync.get(c.id);
      const base = rest.kind === "batchAutoStorage" && synced ? { ...rest, lastKeySync: synced } : rest;
      return value === undefined ? base : { ...base, heldFingerprint: fp(value) };
    });
    return { account: { ...account, keys: { key1: key("key1"), key2: key("key2") } }, consumers };
  }

  /** JSON in, JSON out, recorded: what Durable Functions does to inputs, outputs and states. */
  cross<T>(value: T): T {
    const json = JSON.stringify(value);
    this.boundary.push(json);
    return JSON.parse(json) as T;
  }

  /**
   * Executes a command as the orchestrator would: its activity (a failure after retries becomes an
   * `error` result, as `rotateStorageAccount`'s `run` makes it) or the durable timer.
   */
  execute(command: Command): CommandResult {
    const result = this.executeUnaudited(command);
    this.audit(describeCommand(command));
    return result;
  }

  /** Keys and what every consumer holds, to compare before and after a replay. */
  private fingerprintOfState(): string {
    return JSON.stringify([this.fingerprints(), [...this.held.entries()].map(([id, v]) => [id, v && fp(v)])]);
  }

  /** Executes the command a second time, as after a crash between the activity and the checkpoint. */
  replay(command: Command): CommandResult {
    const before = this.fingerprintOfState();
    const result = this.execute(command);
    if (this.fingerprintOfState() !== before) this.replayChanges.push(describeCommand(command));
    return result;
  }

  private executeUnaudited(command: Command): CommandResult {
    if (command.kind === "finish") throw new Error("finish is not executed");
    if (command.kind === "wait") {
      const until = Math.max(this.now, command.until);
      this.waitedMs += until - this.now;
      this.now = until;
      return { kind: "wait" };
    }
    this.now += this.activityMs;
    const failure = this.failures.get(command.kind);
    this.failures.delete(command.kind);
    if (failure && !failure.afterWork) return { kind: "error", reason: failure.reason };
    let result: CommandResult;
    try {
      switch (command.kind) {
        case "regenerate":
          result = { kind: "regenerate", out: this.regenerate(command) };
          break;
        case "moveAndVerify":
          result = { kind: "moveAndVerify", out: this.moveAndVerify(command) };
          break;
        case "findLateDatastores":
          result = { kind: "findLateDatastores", out: this.findLate(command) };
          break;
      }
    } catch (e) {
      if (e instanceof FakeCrash) throw e;
      return { kind: "error", reason: e instanceof Error ? e.message : String(e) };
    }
    return failure ? { kind: "error", reason: failure.reason } : result;
  }

  /** shared/activities regenerateKey: creation times first (a read), fingerprints when they do not decide. */
  private regenerate(command: RegenerateCommand): RegenerateResult {
    const { expect, keep } = command;
    let armCalls = 0;
    let times: Partial<Record<KeyName, string>> = {};
    if (expect.creationTime !== undefined && keep.creationTime !== undefined) {
      armCalls++;
      times = { ...this.creationTimes };
    }
    if (!creationTimesUnchanged(expect, keep, times)) {
      armCalls++;
      const current = this.fingerprints();
      const decision = guardRegeneration(expect, keep, current);
      if (decision.action !== "regenerate")
        return {
          decision: decision.action,
          reason: decision.reason,
          keys: current,
          creationTimes: times,
          armCalls,
        };
    }
    armCalls++;
    this.newKey(expect.key);
    this.regenerated.push(expect.key);
    return {
      decision: "regenerate",
      keys: this.fingerprints(),
      creationTimes: { ...this.creationTimes },
      armCalls,
    };
  }

  /** shared/activities moveAndVerify: written consumers first, then the service-chosen ones, then verify. */
  private moveAndVerify(command: MoveAndVerifyCommand): MoveAndVerifyResult {
    let armCalls = 0;
    let keysRead = false;
    const target = (): string => {
      if (!keysRead) armCalls++;
      keysRead = true;
      const value = this.keys[command.to.key];
      if (fp(value) !== command.to.fingerprint) {
        throw new Error(
          `${command.to.key} is no longer the key this rotation moved consumers to (expected ${command.to.fingerprint}): it was regenerated outside keyturn`,
        );
      }
      return value;
    };
    const written = command.moves.filter((m) => !isServiceChosen(m.consumer.kind));
    const chosen = command.moves.filter((m) => isServiceChosen(m.consumer.kind));
    const moves: MoveOutcome[] = [];
    for (const move of [...written, ...chosen]) {
      if (this.crashAfterMoves !== undefined && moves.length >= this.crashAfterMoves) {
        this.crashAfterMoves = undefined;
        throw new FakeCrash(`crashed after ${moves.length} moves`);
      }
      const outcome = this.move(command, move, target);
      armCalls += outcome.armCalls;
      moves.push(outcome.outcome);
    }
    if (moves.some((m) => m.error !== undefined))
      return { moves, observations: [], current: command.keys, verified: {}, armCalls };
    const verification = this.verify(command, target);
    armCalls += verification.armCalls;
    return {
      moves,
      observations: verification.observations,
      current: keysRead ? this.fingerprints() : command.keys,
      verified: verification.verified,
      armCalls,
    };
  }

  private move(
    command: MoveAndVerifyCommand,
    { consumer, operation }: ConsumerMove,
    target: () => string,
  ): { outcome: MoveOutcome; armCalls: number } {
    const error = this.moveErrors.get(consumer.id);
    if (error !== undefined) return { outcome: { consumerId: consumer.id, error }, armCalls: 1 };
    const hold = (value: string) => {
      if (!this.stuck.has(consumer.id)) this.held.set(consumer.id, value);
    };
    try {
      switch (operation) {
        case "putDatastore":
          hold(target());
          this.modifiedAt.set(consumer.id, this.stamp());
          this.writes.push(`put ${consumer.name}`);
          return { outcome: { consumerId: consumer.id }, armCalls: 1 };
        case "setSecretVersion": {
          const current = this.held.get(consumer.id);
          if (current === undefined || fp(current) !== command.to.fingerprint) {
            hold(target());
            this.writes.push(`publish ${consumer.name}`);
          }
          return { outcome: { consumerId: consumer.id }, armCalls: 0 };
        }
        case "resignSas":
          // listSecrets, GET, PUT: the SAS signed with the target key.
          hold(target());
          this.writes.push(`resign ${consumer.name}`);
          return { outcome: { consumerId: consumer.id }, armCalls: 3 };
        case "syncAutoStorageKeys": {
          const before = this.lastKeySync.get(consumer.id);
          hold(this.servicePicks(command.to.key));
          this.lastKeySync.set(consumer.id, this.stamp());
          this.writes.push(`sync ${consumer.name}`);
          return {
            outcome: { consumerId: consumer.id, ...(before ? { lastKeySyncBefore: before } : {}) },
            armCalls: 2,
          };
        }
        case "resyncKeys":
          hold(this.servicePicks(command.to.key));
          this.writes.push(`resync ${consumer.name}`);
          return { outcome: { consumerId: consumer.id }, armCalls: 1 };
      }
    } catch (e) {
      return { outcome: { consumerId: consumer.id, error: (e as Error).message }, armCalls: 0 };
    }
  }

  private verify(
    command: MoveAndVerifyCommand,
    target: () => string,
  ): { observations: ConsumerObservation[]; verified: Record<string, VerifiedDatastore>; armCalls: number } {
    let armCalls = 0;
    // Listed before any secret is read.
    const listed = new Map<string, string | undefined>();
    const workspaceIds = new Set(
      command.checks.flatMap((c) => (c.consumer.kind === "datastore" ? [c.consumer.workspaceId] : [])),
    );
    for (const workspaceId of workspaceIds) {
      armCalls++;
      for (const ds of this.datastores.filter((d) => d.workspaceId === workspaceId))
        listed.set(ds.id, this.modifiedAt.get(ds.id));
    }
    let probed = false;
    const probe = (): ProbeResult => {
      if (!probed) armCalls++;
      probed = true;
      return !this.probeDenied && this.live(target()) ? "ok" : "denied";
    };
    const heldFp = (id: string): { heldFingerprint?: Fingerprint } => {
      const value = this.held.get(id);
      return value === undefined ? {} : { heldFingerprint: fp(value) };
    };
    const verified: Record<string, VerifiedDatastore> = {};
    const observations = command.checks.map(({ consumer }): ConsumerObservation => {
      switch (consumer.kind) {
        case "datastore": {
          const modifiedAt = listed.get(consumer.id);
          const before = command.verified[consumer.id];
          if (
            before &&
            modifiedAt !== undefined &&
            before.modifiedAt === modifiedAt &&
            before.fingerprint === command.to.fingerprint
          )
            return { consumerId: consumer.id, heldFingerprint: before.fingerprint, probe: "unchanged" };
          armCalls++;
          this.secretReads.push(consumer.name);
          const held = heldFp(consumer.id);
          const observed: ConsumerObservation = {
            consumerId: consumer.id,
            ...held,
            ...(held.heldFingerprint === command.to.fingerprint ? { probe: probe() } : {}),
          };
          if (held.heldFingerprint !== undefined && modifiedAt !== undefined && observed.probe === "ok")
            verified[consumer.id] = { modifiedAt, fingerprint: held.heldFingerprint };
          return observed;
        }
        case "keyVaultSecret": {
          const held = heldFp(consumer.id);
          return {
            consumerId: consumer.id,
            ...held,
            ...(held.heldFingerprint === command.to.fingerprint && command.phase !== "retireActive"
              ? { probe: probe() }
              : {}),
          };
        }
        case "sasDatastore": {
          armCalls++;
          const held = heldFp(consumer.id);
          return {
            consumerId: consumer.id,
            ...held,
            ...(held.heldFingerprint === command.to.fingerprint ? { probe: probe() } : {}),
          };
        }
        case "workspace":
          armCalls++;
          return { consumerId: consumer.id, ...heldFp(consumer.id) };
        case "batchAutoStorage": {
          armCalls++;
          const after = this.lastKeySync.get(consumer.id);
          const before = command.lastKeySyncBefore[consumer.id] ?? consumer.lastKeySync;
          const moved =
            after !== undefined && (before === undefined || Date.parse(after) > Date.parse(before));
          return { consumerId: consumer.id, keySynced: moved };
        }
        default:
          return { consumerId: consumer.id, error: `${consumer.kind} consumers are not verified` };
      }
    });
    return { observations, verified, armCalls };
  }

  /** shared/activities findLateDatastores: a secret is read only when list metadata shows a change. */
  private findLate(command: FindLateCommand): FindLateResult {
    let armCalls = 0;
    const datastores: LateDatastore[] = [];
    for (const workspaceId of command.workspaceIds) {
      armCalls++;
      for (const ds of this.datastores.filter((d) => d.workspaceId === workspaceId)) {
        const known = command.known[ds.id];
        const modifiedAt = this.modifiedAt.get(ds.id);
        if (known && modifiedAt !== undefined && known.modifiedAt === modifiedAt) continue;
        armCalls++;
        this.secretReads.push(ds.name);
        const value = this.held.get(ds.id);
        datastores.push({
          id: ds.id,
          name: `${workspaceId.split("/").pop() ?? ""}/${ds.name}`,
          changed: known !== undefined,
          ...(value === undefined ? {} : { heldFingerprint: fp(value) }),
        });
      }
    }
    return { datastores, armCalls };
  }

  /** The key a resync or sync picks: the service decides. */
  private servicePicks(to: KeyName): string {
    return this.servicePick === "key1" ? this.keys.key1 : this.keys[to];
  }

  private newKey(key: KeyName): void {
    this.keys[key] = newKeyValue();
    this.allKeyValues.push(this.keys[key]);
    this.creationTimes[key] = this.stamp();
  }

  /** A distinct timestamp on the fake clock, as Azure's `lastModifiedAt`, `lastKeySync`, `keyCreationTime`. */
  private stamp(): string {
    this.lastStamp = Math.max(this.now, this.lastStamp + 1);
    return new Date(this.lastStamp).toISOString();
  }

  private live(value: string | undefined): boolean {
    return value !== undefined && (value === this.keys.key1 || value === this.keys.key2);
  }

  private audit(label: string): void {
    for (const c of this.consumers) {
      const value = this.held.get(c.id);
      if (value === undefined || this.live(value) || this.initiallyDead.has(c.id)) continue;
      if (isVoting(c.kind)) this.deadVoters.push(`${label}: ${c.name}`);
      if (isServiceChosen(c.kind)) this.deadFollowers.push(`${label}: ${c.name}`);
    }
    for (const c of this.consumers) if (this.live(this.held.get(c.id))) this.initiallyDead.delete(c.id);
  }
}

export interface RunOptions {
  /** Execute every command twice and keep the second result, as after a crash before the checkpoint (I4). */
  replay?: boolean;
  /** Called before each command is executed, to inject faults. */
  before?: (command: Command) => void;
}

export interface RunResult {
  execution: AccountExecution;
  /** Every command the state machine gave, `finish` last. */
  commands: Command[];
  state: AccountState;
}

/**
 * `rotateStorageAccount` without Durable Functions: start, execute each command, feed its result back,
 * until `finish`. States, commands and results cross the boundary as JSON, as they do through the
 * orchestration history and a paused account's sub-orchestration output.
 */
export function runAccount(plan: AccountPlan, fake: FakeEstate, options: RunOptions = {}): RunResult {
  let state = fake.cross(startAccount(plan, fake.now));
  let result: CommandResult | undefined;
  const commands: Command[] = [];
  for (;;) {
    const decided = next(state, result, fake.now);
    state = fake.cross(decided.state);
    const command = fake.cross(decided.command);
    commands.push(command);
    if (command.kind === "finish") return { execution: command.execution, commands, state };
    if (commands.length > 100) throw new Error("the state machine gave 100 commands without finishing");
    options.before?.(command);
    result = fake.execute(command);
    if (options.replay) result = fake.replay(command);
    result = fake.cross(result);
  }
}
