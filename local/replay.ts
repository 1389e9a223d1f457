/**
 * The replay driver: plays the Durable Task host for durable-functions 3.5.0 orchestrators.
 *
 * Each instance keeps its history. An episode appends OrchestratorStarted (stamped with the host
 * clock) and the events that arrived since the last one, invokes the orchestrator with the whole
 * history, checks that the cumulative action list still starts with the actions recorded so far
 * (anything else is nondeterminism and fails the instance), then applies only the new actions:
 * activities are invoked (bounded parallelism), sub-orchestrations become child instances, durable
 * timers are armed on the clock. The instance is written to disk after every episode and every
 * completed activity, so a new process can `resume()` without re-running finished work.
 *
 * Sequence numbers are the contract with the library: it numbers tasks in the order it first tracks
 * them, and the host must hand out the same numbers in TaskScheduled/TimerCreated/
 * SubOrchestrationInstanceCreated. New actions are numbered in depth-first order. The only numbers the
 * library takes on its own are the retry steps of `callActivityWithRetry`/`callSubOrchestratorWithRetry`
 * (a failed attempt → a timer, the fired timer → the next attempt). Where such a step falls between
 * new actions depends on the order events are processed, so an event that causes one is always
 * delivered first in an episode of its own making; the host then knows the step comes before any
 * new action of that episode.
 *
 * What the host decides without I/O (actions → history events, sequence numbers, retry steps, the
 * nondeterminism check, finishing and continuing-as-new) lives in `history.ts`; this class invokes,
 * persists, schedules and runs.
 */
import { randomUUID } from "node:crypto";
import { KeyturnError } from "../shared/errors";
import { EventEmitter } from "node:events";
import type { Clock, Cancel } from "./clock";
import { isManualClock } from "./clock";
import {
  ActionType,
  EventType,
  flattenActions,
  type HistoryEvent,
  type OrchestrationTriggerPayload,
  type OrchestratorState,
} from "./durable-protocol";
import type { Registration, RpcInvocationResponse, RpcTypedData } from "./functions-core";
import {
  applyActions,
  childOutcomeEvent,
  commitEpisode,
  continueAsNewRecord,
  describeAction,
  describeFailure,
  findMismatch,
  finishRecord,
  isRunnable,
  isTerminal,
  matchesFilter,
  newInstanceRecord,
  parseOutOfProcData,
  recordCompletion,
  rpcToJsonText,
  startEpisode,
  toJsonText,
  toStatus,
  type HostEffect,
  type InstanceRecord,
  type InstanceStatus,
  type ListFilter,
  type OpenTask,
  type RecordedAction,
  type RuntimeStatus,
} from "./history";
import { InstanceStore } from "./store";

export { isTerminal } from "./history";
export type {
  InstanceRecord,
  InstanceStatus,
  ListFilter,
  OpenTask,
  PendingEvent,
  RecordedAction,
  RuntimeStatus,
} from "./history";

export interface EpisodeInfo {
  instanceId: string;
  name: string;
  episode: number;
  delivered: HistoryEvent[];
  newActions: RecordedAction[];
  runtimeStatus: RuntimeStatus;
}

export interface ActivityInfo {
  instanceId: string;
  name: string;
  seq: number;
  attempt: number;
  input: unknown;
  phase: "started" | "completed" | "failed";
  result?: unknown;
  error?: string;
}

export interface DurableHooks {
  /** After an episode has been persisted. */
  onEpisode?: (info: EpisodeInfo) => void | Promise<void>;
  /** Before an activity runs ("started") and after its outcome has been persisted. */
  onActivity?: (info: ActivityInfo) => void | Promise<void>;
}

export type FunctionInvoker = (
  functionName: string,
  triggerData: RpcTypedData | undefined,
) => Promise<RpcInvocationResponse>;

export interface DurableEngineOptions {
  clock: Clock;
  invoke: FunctionInvoker;
  getFunction: (name: string) => Registration | undefined;
  /** Where instances are persisted; in memory only when omitted. */
  stateDir?: string;
  /** How many activities run at once across all instances (default 8). */
  maxActivityConcurrency?: number;
  hooks?: DurableHooks;
  log?: (level: "information" | "warning" | "error", message: string) => void;
  /** Passed to the library; §9's measured defaults ('6.00:00:00' and '3.00:00:00'). */
  maximumShortTimerDuration?: string;
  longRunningTimerIntervalDuration?: string;
}

export class InstanceExistsError extends KeyturnError {
  override name = "InstanceExistsError";
}

export class UnknownFunctionError extends KeyturnError {
  override name = "UnknownFunctionError";
}

export interface ReplayResult {
  state: OrchestratorState;
  actions: RecordedAction[];
  recorded: RecordedAction[];
  deterministic: boolean;
  mismatch?: string;
}

interface OrchestratorOutcome {
  state?: OrchestratorState;
  /** Set when the invocation failed without the library's state (infrastructure or registration). */
  failure?: { message: string; details?: string };
}

const ORCHESTRATION_TRIGGER = "orchestrationtrigger";
const ACTIVITY_TRIGGER = "activitytrigger";

export class DurableEngine {
  readonly hooks: DurableHooks;
  readonly #clock: Clock;
  readonly #invoke: FunctionInvoker;
  readonly #getFunction: (name: string) => Registration | undefined;
  readonly #store: InstanceStore<InstanceRecord> | undefined;
  readonly #evicted = new Set<string>();
  readonly #maxActivities: number;
  readonly #log: (level: "information" | "warning" | "error", message: string) => void;
  readonly #maximumShortTimerDuration: string;
  readonly #longRunningTimerIntervalDuration: string;
  readonly #instances = new Map<string, InstanceRecord>();
  readonly #timers = new Map<string, Cancel>();
  readonly #episodeRunning = new Set<string>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #queue: Array<() => Promise<void>> = [];
  readonly #changes = new EventEmitter();
  #activeActivities = 0;
  #stopped = false;
  #resumed = false;

  constructor(options: DurableEngineOptions) {
    this.#clock = options.clock;
    this.#invoke = options.invoke;
    this.#getFunction = options.getFunction;
    this.#store = options.stateDir ? new InstanceStore<InstanceRecord>(options.stateDir) : undefined;
    this.#maxActivities = Math.max(1, options.maxActivityConcurrency ?? 8);
    this.hooks = options.hooks ?? {};
    this.#log = options.log ?? (() => undefined);
    this.#maximumShortTimerDuration = options.maximumShortTimerDuration ?? "6.00:00:00";
    this.#longRunningTimerIntervalDuration = options.longRunningTimerIntervalDuration ?? "3.00:00:00";
    this.#changes.setMaxListeners(0);
    // Finished instances are visible to status queries at once; unfinished ones wait for resume().
    for (const record of this.#store?.loadAll() ?? []) {
      this.#instances.set(record.instanceId, record);
      this.#evict(record);
    }
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  // ---------------------------------------------------------------- client operations

  startNew(name: string, options: { instanceId?: string; input?: string } = {}): string {
    this.#assertRunning();
    const registration = this.#getFunction(name);
    if (!registration || registration.triggerType.toLowerCase() !== ORCHESTRATION_TRIGGER) {
      throw new UnknownFunctionError(
        `The function '${name}' doesn't exist or is not an orchestrator function.`,
      );
    }
    const instanceId = options.instanceId ?? randomInstanceId();
    const existing = this.#instances.get(instanceId);
    if (existing && !isTerminal(existing.runtimeStatus)) {
      throw new InstanceExistsError(
        `An orchestration instance with id '${instanceId}' is already ${existing.runtimeStatus}.`,
      );
    }
    if (existing) this.#forget(existing);
    const record = this.#newRecord(instanceId, name, options.input);
    this.#instances.set(instanceId, record);
    this.#save(record);
    this.#kick(record);
    return instanceId;
  }

  getStatus(instanceId: string, options: { showHistory?: boolean; showInput?: boolean } = {}) {
    const record = this.#instances.get(instanceId);
    if (!record) return undefined;
    return toStatus(options.showHistory ? this.#whole(record) : record, options);
  }

  /** The persisted record (a copy), for tests and tools. */
  getRecord(instanceId: string): InstanceRecord | undefined {
    const record = this.#instances.get(instanceId);
    return record ? structuredClone<InstanceRecord>(this.#whole(record)) : undefined;
  }

  /** A finished instance's history lives on disk only; read it back when someone asks. */
  #whole(record: InstanceRecord): InstanceRecord {
    if (!this.#evicted.has(record.instanceId)) return record;
    return this.#store?.load(record.instanceId) ?? record;
  }

  /**
   * A finished instance is never replayed again: with a state directory, its history and actions are
   * dropped from memory (they stay on disk). An estate of hundreds of accounts otherwise keeps every
   * account's history alive for the whole run.
   */
  #evict(record: InstanceRecord): void {
    if (!this.#store || !isTerminal(record.runtimeStatus)) return;
    record.history = [];
    record.actions = [];
    this.#evicted.add(record.instanceId);
  }

  list(filter: ListFilter = {}): InstanceStatus[] {
    return [...this.#instances.values()]
      .filter((r) => matchesFilter(r, filter))
      .map((r) => toStatus(r, { showInput: true }));
  }

  raiseEvent(instanceId: string, eventName: string, input: string | undefined): "ok" | "notFound" | "gone" {
    this.#assertRunning();
    const record = this.#instances.get(instanceId);
    if (!record) return "notFound";
    if (isTerminal(record.runtimeStatus)) return "gone";
    const event: HistoryEvent = {
      EventType: EventType.EventRaised,
      EventId: -1,
      IsPlayed: false,
      Timestamp: this.#now(),
      Name: eventName,
    };
    if (input !== undefined) event.Input = input;
    record.pending.push({ event });
    this.#touch(record);
    this.#save(record);
    this.#kick(record);
    return "ok";
  }

  terminate(instanceId: string, reason: string): "ok" | "notFound" | "gone" {
    this.#assertRunning();
    const record = this.#instances.get(instanceId);
    if (!record) return "notFound";
    if (isTerminal(record.runtimeStatus)) return "gone";
    this.#finish(record, "Terminated", { output: JSON.stringify(reason), failure: { message: reason } });
    return "ok";
  }

  suspendInstance(instanceId: string): "ok" | "notFound" | "gone" {
    const record = this.#instances.get(instanceId);
    if (!record) return "notFound";
    if (isTerminal(record.runtimeStatus)) return "gone";
    record.runtimeStatus = "Suspended";
    this.#touch(record);
    this.#save(record);
    return "ok";
  }

  resumeInstance(instanceId: string): "ok" | "notFound" | "gone" {
    const record = this.#instances.get(instanceId);
    if (!record) return "notFound";
    if (isTerminal(record.runtimeStatus)) return "gone";
    if (record.runtimeStatus === "Suspended")
      record.runtimeStatus = record.episodes > 0 ? "Running" : "Pending";
    this.#touch(record);
    this.#save(record);
    this.#kick(record);
    return "ok";
  }

  /** Deletes finished instances; running ones are left alone. Returns how many were deleted. */
  purge(instanceId: string): number {
    const record = this.#instances.get(instanceId);
    if (!record || !isTerminal(record.runtimeStatus)) return 0;
    this.#forget(record);
    return 1;
  }

  purgeBy(filter: ListFilter): number {
    let deleted = 0;
    for (const record of [...this.#instances.values()]) {
      if (isTerminal(record.runtimeStatus) && matchesFilter(record, filter)) {
        this.#forget(record);
        deleted++;
      }
    }
    return deleted;
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Continues every unfinished instance found in the state directory: re-runs activities whose
   * outcome was not recorded, re-arms timers, re-creates missing child instances and re-delivers
   * finished children's results. Returns the ids it resumed.
   */
  resume(): string[] {
    this.#assertRunning();
    if (this.#resumed) return [];
    this.#resumed = true;
    for (const record of this.#store?.loadAll() ?? []) {
      if (this.#instances.has(record.instanceId)) continue;
      this.#instances.set(record.instanceId, record);
      this.#evict(record);
    }
    const resumed: string[] = [];
    for (const record of [...this.#instances.values()]) {
      if (isTerminal(record.runtimeStatus)) continue;
      resumed.push(record.instanceId);
      for (const [key, task] of Object.entries(record.open)) {
        const seq = Number(key);
        if (task.kind === "activity") this.#enqueueActivity(record.instanceId, seq);
        else if (task.kind === "timer") this.#armTimer(record, seq);
        else this.#ensureChild(record, seq, task);
      }
      this.#kick(record);
    }
    return resumed;
  }

  /**
   * Stops all processing at once, as a killed process would: timers are cancelled and outcomes of
   * invocations still running are discarded, so nothing more is written. Safe to call from a hook.
   */
  stop(): void {
    this.#stopped = true;
    for (const cancel of this.#timers.values()) cancel();
    this.#timers.clear();
    this.#queue.length = 0;
    this.#changes.emit("change");
  }

  /** Resolves when no episode or activity is running or queued. */
  async idle(): Promise<void> {
    for (;;) {
      if (this.#inflight.size === 0) {
        // Let callbacks scheduled with setImmediate (due timers) start before declaring idle.
        await new Promise((resolve) => setImmediate(resolve));
        if (this.#inflight.size === 0) return;
      }
      await Promise.allSettled([...this.#inflight]);
    }
  }

  /** When the earliest armed durable timer is due. */
  nextTimerDue(): Date | undefined {
    let earliest: number | undefined;
    for (const record of this.#instances.values()) {
      if (isTerminal(record.runtimeStatus)) continue;
      for (const [key, task] of Object.entries(record.open)) {
        if (task.kind !== "timer" || !this.#timers.has(timerKey(record.instanceId, Number(key)))) continue;
        const at = Date.parse(task.fireAt);
        if (earliest === undefined || at < earliest) earliest = at;
      }
    }
    return earliest === undefined ? undefined : new Date(earliest);
  }

  /**
   * Waits until the instance reaches a terminal state. With a ManualClock and `advanceClock` (the
   * default), whenever nothing else can make progress the clock jumps to the next durable timer, so
   * grace periods and retry delays take no real time.
   */
  async waitForCompletion(
    instanceId: string,
    options: { timeoutMs?: number; advanceClock?: boolean } = {},
  ): Promise<InstanceStatus> {
    const deadline = Date.now() + (options.timeoutMs ?? 15_000);
    const advance = options.advanceClock ?? true;
    for (;;) {
      await this.idle();
      const status = this.getStatus(instanceId);
      if (status && isTerminal(status.runtimeStatus)) return status;
      if (this.#stopped) throw new Error(`The host was stopped before instance '${instanceId}' completed.`);
      if (advance && isManualClock(this.#clock)) {
        const due = this.nextTimerDue();
        if (due) {
          this.#clock.advanceTo(due > this.#clock.now() ? due : this.#clock.now());
          continue;
        }
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new Error(
          `Instance '${instanceId}' did not complete in time (status: ${status?.runtimeStatus ?? "unknown"}).`,
        );
      }
      await this.#nextChange(Math.min(remaining, 250));
    }
  }

  /**
   * Replays an instance's recorded history through its orchestrator without changing anything and
   * reports whether it produces the recorded actions.
   */
  async replay(instanceId: string): Promise<ReplayResult> {
    const held = this.#instances.get(instanceId);
    if (!held) throw new Error(`No instance '${instanceId}'.`);
    const record = this.#whole(held);
    const outcome = await this.#invokeOrchestrator(record, record.history, false);
    if (!outcome.state) throw new Error(outcome.failure?.message ?? "The orchestrator returned no state.");
    const flat = flattenActions(outcome.state);
    const actions = flat.map((action, i) => describeAction(action, record.actions[i]?.seq));
    const mismatch = findMismatch(record, flat);
    return { state: outcome.state, actions, recorded: record.actions, deterministic: !mismatch, mismatch };
  }

  // ---------------------------------------------------------------- episodes

  #kick(record: InstanceRecord): void {
    if (this.#stopped || this.#episodeRunning.has(record.instanceId)) return;
    if (!isRunnable(record) || record.pending.length === 0) return;
    this.#episodeRunning.add(record.instanceId);
    this.#track(this.#episodeLoop(record));
  }

  async #episodeLoop(record: InstanceRecord): Promise<void> {
    try {
      while (
        !this.#stopped &&
        this.#instances.get(record.instanceId) === record &&
        isRunnable(record) &&
        record.pending.length > 0
      ) {
        try {
          await this.#runEpisode(record);
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err));
          this.#log(
            "error",
            `Local host error in instance '${record.instanceId}': ${error.stack ?? error.message}`,
          );
          if (!this.#stopped && !isTerminal(record.runtimeStatus)) {
            this.#finish(record, "Failed", {
              failure: { message: `Local host error: ${error.message}`, details: error.stack },
            });
          }
        }
      }
    } finally {
      // In the same synchronous step as the loop's last check, so an event queued right after
      // cannot find the loop "running" and be left undelivered.
      this.#episodeRunning.delete(record.instanceId);
    }
  }

  async #runEpisode(record: InstanceRecord): Promise<void> {
    const now = this.#now();
    const start = startEpisode(record, now);
    const { delivered } = start;

    const outcome = await this.#invokeOrchestrator(record, start.history, record.episodes > 0);
    // Terminated, purged, restarted or stopped while the orchestrator ran: its result is moot.
    if (this.#stopped || this.#instances.get(record.instanceId) !== record || !isRunnable(record)) return;

    const state = outcome.state;
    if (!state) {
      commitEpisode(record, start, [], now);
      this.#finish(record, "Failed", { failure: outcome.failure ?? { message: "The orchestrator failed." } });
      await this.#afterEpisode(record, delivered, []);
      return;
    }

    const flat = flattenActions(state);
    const mismatch = findMismatch(record, flat, state.error !== undefined);
    if (mismatch) {
      this.#log("error", mismatch);
      this.#finish(record, "Failed", { failure: { message: mismatch } });
      await this.#afterEpisode(record, delivered, []);
      return;
    }

    const applied = applyActions(record, flat, start.plan, now);
    for (const seq of applied.cancelledTimers) this.#cancelTimer(record.instanceId, seq);
    const { newActions, unsupported } = applied;

    commitEpisode(record, start, applied.appended, now);
    record.actions = [...record.actions, ...newActions];
    record.nextSequence = applied.nextSequence;
    if (state.customStatus !== undefined) record.customStatus = JSON.stringify(state.customStatus);
    if (record.runtimeStatus === "Pending") record.runtimeStatus = "Running";
    this.#touch(record);

    if (unsupported) {
      this.#finish(record, "Failed", {
        failure: {
          message: `Orchestrator '${record.name}' used ${unsupported}, which the local host does not support.`,
        },
      });
    } else if (state.error !== undefined) {
      this.#log(
        "warning",
        `Orchestrator '${record.name}' (instance '${record.instanceId}') failed: ${state.error}`,
      );
      this.#finish(record, "Failed", {
        output: JSON.stringify(`Orchestrator function '${record.name}' failed: ${state.error}`),
        failure: { message: state.error, details: outcome.failure?.details },
      });
    } else if (state.isDone) {
      const continueAsNew = newActions.find((a) => a.actionType === ActionType.ContinueAsNew);
      if (continueAsNew) this.#continueAsNew(record, continueAsNew.input);
      else this.#finish(record, "Completed", { output: toJsonText(state.output) });
    } else {
      this.#save(record);
      for (const effect of applied.effects) this.#start(record, effect);
    }
    await this.#afterEpisode(record, delivered, newActions);
  }

  /** Starts the host work an episode's actions call for. */
  #start(record: InstanceRecord, effect: HostEffect): void {
    if (effect.kind === "runActivity") this.#enqueueActivity(record.instanceId, effect.seq);
    else if (effect.kind === "armTimer") this.#armTimer(record, effect.seq);
    else this.#ensureChild(record, effect.seq, effect.task);
  }

  async #afterEpisode(record: InstanceRecord, delivered: HistoryEvent[], newActions: RecordedAction[]) {
    this.#changes.emit("change");
    await this.#callHook("onEpisode", {
      instanceId: record.instanceId,
      name: record.name,
      episode: record.episodes,
      delivered,
      newActions,
      runtimeStatus: record.runtimeStatus,
    });
  }

  async #invokeOrchestrator(
    record: InstanceRecord,
    history: HistoryEvent[],
    isReplaying: boolean,
  ): Promise<OrchestratorOutcome> {
    const registration = this.#getFunction(record.name);
    if (!registration || registration.triggerType.toLowerCase() !== ORCHESTRATION_TRIGGER) {
      return {
        failure: {
          message: `The function '${record.name}' doesn't exist or is not an orchestrator function.`,
        },
      };
    }
    const payload: OrchestrationTriggerPayload = {
      history,
      input: record.input === undefined ? undefined : (JSON.parse(record.input) as unknown),
      instanceId: record.instanceId,
      isReplaying,
      parentInstanceId: record.parent?.instanceId,
      upperSchemaVersion: 2,
      upperSchemaVersionNew: 3,
      longRunningTimerIntervalDuration: this.#longRunningTimerIntervalDuration,
      maximumShortTimerDuration: this.#maximumShortTimerDuration,
      defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
    };
    try {
      const response = await this.#invoke(record.name, { json: JSON.stringify(payload) });
      const data = response.returnValue;
      const state = (data?.json ? JSON.parse(data.json) : undefined) as OrchestratorState | undefined;
      if (!state || !Array.isArray(state.actions)) {
        return { failure: { message: `Orchestrator '${record.name}' returned no orchestration state.` } };
      }
      return { state };
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      const state = parseOutOfProcData(error.message);
      if (state) return { state, failure: { message: state.error ?? error.message, details: error.stack } };
      return { failure: { message: error.message, details: error.stack } };
    }
  }

  #continueAsNew(record: InstanceRecord, input: string | undefined): void {
    for (const [key, task] of Object.entries(record.open)) {
      if (task.kind === "timer") this.#cancelTimer(record.instanceId, Number(key));
    }
    continueAsNewRecord(record, this.#newRecord(record.instanceId, record.name, input));
    this.#save(record);
  }

  #finish(
    record: InstanceRecord,
    status: "Completed" | "Failed" | "Terminated",
    result: { output?: string; failure?: { message: string; details?: string } },
  ): void {
    for (const [key, task] of Object.entries(record.open)) {
      if (task.kind === "timer") this.#cancelTimer(record.instanceId, Number(key));
    }
    finishRecord(record, status, result, this.#now());
    this.#save(record);
    this.#evict(record);
    this.#notifyParent(record);
  }

  // ---------------------------------------------------------------- activities

  #enqueueActivity(instanceId: string, seq: number): void {
    this.#queue.push(() => this.#runActivity(instanceId, seq));
    this.#pump();
  }

  #pump(): void {
    while (!this.#stopped && this.#activeActivities < this.#maxActivities && this.#queue.length > 0) {
      const job = this.#queue.shift();
      if (!job) break;
      this.#activeActivities++;
      this.#track(
        job()
          .catch((err: unknown) => this.#log("error", `Local host activity error: ${String(err)}`))
          .finally(() => {
            this.#activeActivities--;
            this.#pump();
          }),
      );
    }
  }

  async #runActivity(instanceId: string, seq: number): Promise<void> {
    const record = this.#instances.get(instanceId);
    const task = record?.open[String(seq)];
    // A suspended instance's scheduled activities still run, as in the extension; only episodes wait.
    if (this.#stopped || !record || !task || task.kind !== "activity" || isTerminal(record.runtimeStatus))
      return;
    const info = {
      instanceId,
      name: task.name,
      seq,
      attempt: task.attempt,
      input: task.input === undefined ? undefined : (JSON.parse(task.input) as unknown),
    };
    await this.#callHook("onActivity", { ...info, phase: "started" });
    if (this.#stopped) return;

    let event: HistoryEvent;
    let result: unknown;
    let errorMessage: string | undefined;
    const registration = this.#getFunction(task.name);
    try {
      if (!registration || registration.triggerType.toLowerCase() !== ACTIVITY_TRIGGER) {
        throw new UnknownFunctionError(
          `The function '${task.name}' doesn't exist, is disabled, or is not an activity function.`,
        );
      }
      const response = await this.#invoke(
        task.name,
        task.input === undefined ? undefined : { json: task.input },
      );
      const text = rpcToJsonText(response.returnValue);
      result = JSON.parse(text) as unknown;
      event = {
        EventType: EventType.TaskCompleted,
        EventId: -1,
        IsPlayed: false,
        Timestamp: this.#now(),
        TaskScheduledId: seq,
        Result: text,
      };
    } catch (err) {
      const failure = describeFailure(err);
      errorMessage = failure.reason;
      event = {
        EventType: EventType.TaskFailed,
        EventId: -1,
        IsPlayed: false,
        Timestamp: this.#now(),
        TaskScheduledId: seq,
        Reason: failure.reason,
        Details: failure.details,
      };
      if (failure.failureDetails) event.FailureDetails = failure.failureDetails;
    }
    // A stale outcome (host stopped, instance finished, purged or restarted) is dropped.
    if (this.#stopped || this.#instances.get(instanceId) !== record || record.open[String(seq)] !== task)
      return;
    this.#queueCompletion(record, seq, event);
    await this.#callHook(
      "onActivity",
      errorMessage === undefined
        ? { ...info, phase: "completed", result }
        : { ...info, phase: "failed", error: errorMessage },
    );
    this.#kick(record);
  }

  /** Records a task's outcome as a pending event and persists it; the caller kicks the episode. */
  #queueCompletion(record: InstanceRecord, seq: number, event: HistoryEvent): void {
    recordCompletion(record, seq, event);
    this.#touch(record);
    this.#save(record);
    this.#changes.emit("change");
  }

  // ---------------------------------------------------------------- timers

  #armTimer(record: InstanceRecord, seq: number): void {
    const task = record.open[String(seq)];
    if (this.#stopped || !task || task.kind !== "timer") return;
    this.#cancelTimer(record.instanceId, seq);
    const key = timerKey(record.instanceId, seq);
    const cancel = this.#clock.schedule(new Date(task.fireAt), () => {
      this.#timers.delete(key);
      this.#onTimer(record, seq, task);
    });
    this.#timers.set(key, cancel);
  }

  #cancelTimer(instanceId: string, seq: number): void {
    const key = timerKey(instanceId, seq);
    this.#timers.get(key)?.();
    this.#timers.delete(key);
  }

  #onTimer(record: InstanceRecord, seq: number, task: OpenTask & { kind: "timer" }): void {
    if (this.#stopped || this.#instances.get(record.instanceId) !== record) return;
    if (record.open[String(seq)] !== task || isTerminal(record.runtimeStatus)) return;
    this.#queueCompletion(record, seq, {
      EventType: EventType.TimerFired,
      EventId: -1,
      IsPlayed: false,
      Timestamp: this.#now(),
      TimerId: seq,
      FireAt: task.fireAt,
    });
    this.#kick(record);
  }

  // ---------------------------------------------------------------- sub-orchestrations

  #ensureChild(parent: InstanceRecord, seq: number, task: OpenTask & { kind: "subOrchestration" }): void {
    if (this.#stopped) return;
    const existing = this.#instances.get(task.childId);
    // Same parent run and the same task: a child that finished while the parent's process was down.
    // A child of an earlier run under the same instance id is not ours, even at the same sequence.
    const mine =
      existing?.parent?.instanceId === parent.instanceId &&
      existing.parent.executionId === parent.executionId &&
      existing.parent.taskScheduledId === seq;
    if (existing && mine) {
      // Resumed after a crash between the child finishing and the parent hearing of it.
      if (isTerminal(existing.runtimeStatus)) this.#notifyParent(existing);
      return;
    }
    if (existing && !isTerminal(existing.runtimeStatus)) {
      this.#queueCompletion(parent, seq, {
        EventType: EventType.SubOrchestrationInstanceFailed,
        EventId: -1,
        IsPlayed: false,
        Timestamp: this.#now(),
        TaskScheduledId: seq,
        Reason: `An orchestration instance with id '${task.childId}' is already ${existing.runtimeStatus}.`,
        Details: "",
      });
      this.#kick(parent);
      return;
    }
    if (existing) this.#forget(existing);
    const child = this.#newRecord(task.childId, task.name, task.input);
    child.parent = { instanceId: parent.instanceId, executionId: parent.executionId, taskScheduledId: seq };
    this.#instances.set(child.instanceId, child);
    this.#save(child);
    this.#kick(child);
  }

  #notifyParent(child: InstanceRecord): void {
    if (!child.parent || this.#stopped) return;
    const parent = this.#instances.get(child.parent.instanceId);
    const seq = child.parent.taskScheduledId;
    const task = parent?.open[String(seq)];
    if (!parent || isTerminal(parent.runtimeStatus) || task?.kind !== "subOrchestration") return;
    if (child.parent.executionId !== parent.executionId) return;
    if (task.childId !== child.instanceId) return;
    const event = childOutcomeEvent(child, seq, this.#now());
    this.#queueCompletion(parent, seq, event);
    this.#kick(parent);
  }

  // ---------------------------------------------------------------- helpers

  #newRecord(instanceId: string, name: string, input: string | undefined): InstanceRecord {
    return newInstanceRecord(instanceId, name, input, this.#now(), randomUUID());
  }

  #forget(record: InstanceRecord): void {
    this.#evicted.delete(record.instanceId);
    for (const [key, task] of Object.entries(record.open)) {
      if (task.kind === "timer") this.#cancelTimer(record.instanceId, Number(key));
    }
    this.#instances.delete(record.instanceId);
    this.#store?.delete(record.instanceId);
  }

  #save(record: InstanceRecord): void {
    if (this.#stopped || this.#evicted.has(record.instanceId)) return;
    this.#store?.save(record);
  }

  #touch(record: InstanceRecord): void {
    record.lastUpdatedTime = this.#now();
  }

  #now(): string {
    return this.#clock.now().toISOString();
  }

  #track(promise: Promise<unknown>): void {
    const tracked = promise
      .catch((err: unknown) => this.#log("error", `Local host error: ${String(err)}`))
      .finally(() => {
        this.#inflight.delete(tracked);
        this.#changes.emit("change");
      });
    this.#inflight.add(tracked);
  }

  #nextChange(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#changes.off("change", done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#changes.on("change", done);
    });
  }

  async #callHook<K extends keyof DurableHooks>(
    name: K,
    info: Parameters<NonNullable<DurableHooks[K]>>[0],
  ): Promise<void> {
    const hook = this.hooks[name] as ((i: typeof info) => void | Promise<void>) | undefined;
    if (!hook) return;
    try {
      await hook(info);
    } catch (err) {
      this.#log("error", `${name} hook failed: ${String(err)}`);
    }
  }

  #assertRunning(): void {
    if (this.#stopped) throw new Error("The local host has been stopped.");
  }
}

function timerKey(instanceId: string, seq: number): string {
  return `${instanceId}#${seq}`;
}

function randomInstanceId(): string {
  return globalThis.crypto.randomUUID().replace(/-/g, "");
}
