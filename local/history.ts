/**
 * The replay engine's pure part: what the Durable Task host decides, without I/O, timers or host
 * state. Everything here takes an instance record (or plain values) and the host clock's "now" as
 * arguments, and either returns values or updates the record in place; the driver (`replay.ts`)
 * invokes the orchestrator, persists, arms timers, runs activities and starts child instances.
 *
 * - an instance's record, its pending events and the batch an episode delivers (`startEpisode`,
 *   `commitEpisode`);
 * - an orchestrator's actions → history events, sequence numbers, open tasks, retry state and the
 *   host work to start (`applyActions`), the retry steps included (`retryDelayMs`);
 * - matching replayed actions against the recorded ones (`findMismatch`: nondeterminism);
 * - a task's outcome → the pending event and the retry step it triggers (`recordCompletion`);
 * - finishing and continuing-as-new (`finishRecord`, `continueAsNewRecord`), status and filters.
 */
import {
  ACTION_TYPE_NAMES,
  ActionType,
  EventType,
  OUT_OF_PROC_DATA_LABEL,
  consumesSequenceNumber,
  type FailureDetailsPayload,
  type HistoryEvent,
  type OrchestratorAction,
  type OrchestratorState,
  type RetryOptionsPayload,
} from "./durable-protocol";
import type { RpcTypedData } from "./functions-core";

export type RuntimeStatus =
  "Pending" | "Running" | "Completed" | "ContinuedAsNew" | "Failed" | "Terminated" | "Suspended";

const TERMINAL: ReadonlySet<RuntimeStatus> = new Set(["Completed", "Failed", "Terminated"]);

export function isTerminal(status: RuntimeStatus): boolean {
  return TERMINAL.has(status);
}

/** An action the orchestrator has produced, as recorded for the nondeterminism check. */
export interface RecordedAction {
  seq?: number;
  actionType: number;
  name?: string;
  /** Canonical JSON text of the action's input. */
  input?: string;
  fireAt?: string;
  instanceId?: string;
}

/** A host-side step that takes a sequence number when its triggering event is delivered. */
export type AllocationPlan =
  { kind: "retryTimer"; retryKey: string } | { kind: "retryAttempt"; retryKey: string };

export interface PendingEvent {
  event: HistoryEvent;
  plan?: AllocationPlan;
}

export type OpenTask =
  | { kind: "activity"; name: string; input?: string; attempt: number; retryKey?: string }
  | { kind: "subOrchestration"; name: string; childId: string; input?: string; retryKey?: string }
  | { kind: "timer"; fireAt: string; retryKey?: string };

export interface RetryState {
  actionType: number;
  name: string;
  input?: string;
  instanceId?: string;
  options: RetryOptionsPayload;
  failures: number;
}

/** Everything persisted about one instance. */
export interface InstanceRecord {
  format: 1;
  instanceId: string;
  name: string;
  runtimeStatus: RuntimeStatus;
  input?: string;
  output?: string;
  customStatus?: string;
  createdTime: string;
  lastUpdatedTime: string;
  /** Tells runs of one instance id apart, as the Durable Task Framework's ExecutionId does. */
  executionId: string;
  parent?: { instanceId: string; executionId: string; taskScheduledId: number };
  history: HistoryEvent[];
  pending: PendingEvent[];
  actions: RecordedAction[];
  nextSequence: number;
  open: Record<string, OpenTask>;
  retries: Record<string, RetryState>;
  episodes: number;
  failure?: { message: string; details?: string };
}

/** The shape the durable client's status call returns. */
export interface InstanceStatus {
  name: string;
  instanceId: string;
  runtimeStatus: RuntimeStatus;
  input: unknown;
  output: unknown;
  customStatus: unknown;
  createdTime: string;
  lastUpdatedTime: string;
  historyEvents?: HistoryEvent[];
}

export interface ListFilter {
  createdTimeFrom?: Date;
  createdTimeTo?: Date;
  runtimeStatus?: RuntimeStatus[];
  instanceIdPrefix?: string;
}

// ---------------------------------------------------------------- records and episodes

/** A fresh record: Pending, with ExecutionStarted waiting to be delivered by the first episode. */
export function newInstanceRecord(
  instanceId: string,
  name: string,
  input: string | undefined,
  now: string,
  executionId: string,
): InstanceRecord {
  const started: HistoryEvent = {
    EventType: EventType.ExecutionStarted,
    EventId: -1,
    IsPlayed: false,
    Timestamp: now,
    Name: name,
  };
  if (input !== undefined) started.Input = input;
  const record: InstanceRecord = {
    format: 1,
    instanceId,
    name,
    runtimeStatus: "Pending",
    executionId,
    createdTime: now,
    lastUpdatedTime: now,
    history: [],
    pending: [{ event: started }],
    actions: [],
    nextSequence: 0,
    open: {},
    retries: {},
    episodes: 0,
  };
  if (input !== undefined) record.input = input;
  return record;
}

/** The instance id a sub-orchestration gets when the orchestrator names none: `{parentId}:{seq as 4 hex digits}`. */
export function defaultChildInstanceId(parentId: string, seq: number): string {
  return `${parentId}:${seq.toString(16).padStart(4, "0")}`;
}

export interface EpisodeStart {
  /** How many pending events the episode delivers. */
  count: number;
  /** The retry step the episode's first event triggers: it takes the episode's first sequence number. */
  plan?: AllocationPlan;
  started: HistoryEvent;
  delivered: HistoryEvent[];
  /** What the orchestrator is invoked with: the recorded history, OrchestratorStarted, the delivered events. */
  history: HistoryEvent[];
}

/**
 * The events the next episode delivers: every pending event up to (not including) the next one that
 * triggers a retry step, so such an event only ever comes first in an episode, and its step takes the
 * episode's first sequence number, before any new action.
 */
export function startEpisode(record: InstanceRecord, now: string): EpisodeStart {
  const first = record.pending[0];
  let count = first?.plan ? 1 : 0;
  while (count < record.pending.length && !record.pending[count]?.plan) count++;
  const batch = record.pending.slice(0, count);
  const started: HistoryEvent = {
    EventType: EventType.OrchestratorStarted,
    EventId: -1,
    IsPlayed: false,
    Timestamp: now,
  };
  const delivered = batch.map((p) => ({ ...p.event, IsPlayed: false }));
  const start: EpisodeStart = {
    count,
    started,
    delivered,
    history: [...record.history, started, ...delivered],
  };
  if (first?.plan && count > 0) start.plan = first.plan;
  return start;
}

/** Appends the episode to the history (played), with the events it produced, and drops what it delivered. */
export function commitEpisode(
  record: InstanceRecord,
  start: EpisodeStart,
  appended: HistoryEvent[],
  now: string,
): void {
  record.history = [
    ...record.history,
    { ...start.started, IsPlayed: true },
    ...start.delivered.map((e) => ({ ...e, IsPlayed: true })),
    ...appended,
    { EventType: EventType.OrchestratorCompleted, EventId: -1, IsPlayed: true, Timestamp: now },
  ];
  record.pending.splice(0, start.count);
  record.episodes++;
}

// ---------------------------------------------------------------- actions → history

/** Work the host starts once the episode is persisted (never when the episode ends the instance). */
export type HostEffect =
  | { kind: "runActivity"; seq: number }
  | { kind: "armTimer"; seq: number }
  | { kind: "startChild"; seq: number; task: OpenTask & { kind: "subOrchestration" } };

export interface AppliedActions {
  /** TaskScheduled, TimerCreated and SubOrchestrationInstanceCreated events, in sequence order. */
  appended: HistoryEvent[];
  /** The actions beyond the recorded ones, numbered. */
  newActions: RecordedAction[];
  nextSequence: number;
  effects: HostEffect[];
  /** Open timers the orchestrator cancelled (e.g. the loser of a Task.any): disarm them. */
  cancelledTimers: number[];
  /** The first action type the local host does not support, by name. */
  unsupported?: string;
}

/**
 * Turns an episode's retry step (if any) and the orchestrator's new actions — those beyond
 * `record.actions` in the flattened cumulative list — into history events, numbering them from
 * `record.nextSequence` depth-first. Opens a task in `record.open` for each (and retry state in
 * `record.retries` for `…WithRetry` calls) and removes cancelled timers from `record.open`; leaves
 * `record.actions`, `record.nextSequence` and the history to the caller (`commitEpisode`).
 */
export function applyActions(
  record: InstanceRecord,
  flat: OrchestratorAction[],
  plan: AllocationPlan | undefined,
  now: string,
): AppliedActions {
  let nextSeq = record.nextSequence;
  const appended: HistoryEvent[] = [];
  const effects: HostEffect[] = [];
  const newActions: RecordedAction[] = [];

  if (plan) {
    const seq = nextSeq++;
    applyPlan(record, plan, seq, now, appended, effects);
  }

  let unsupported: string | undefined;
  for (const action of flat.slice(record.actions.length)) {
    const seq = consumesSequenceNumber(action.actionType) ? nextSeq++ : undefined;
    const recorded = describeAction(action, seq);
    newActions.push(recorded);
    if (seq === undefined) continue;
    switch (action.actionType) {
      case ActionType.CallActivity:
      case ActionType.CallActivityWithRetry:
      case ActionType.CallSubOrchestrator:
      case ActionType.CallSubOrchestratorWithRetry: {
        let retryKey: string | undefined;
        if (action.retryOptions) {
          retryKey = String(seq);
          record.retries[retryKey] = {
            actionType: action.actionType,
            name: recorded.name ?? "",
            input: recorded.input,
            instanceId: action.instanceId,
            options: action.retryOptions,
            failures: 0,
          };
        }
        schedule(record, seq, action.actionType, recorded.name ?? "", recorded.input, action.instanceId, {
          now,
          retryKey,
          appended,
          effects,
        });
        break;
      }
      case ActionType.CreateTimer: {
        const fireAt = recorded.fireAt ?? now;
        appended.push({
          EventType: EventType.TimerCreated,
          EventId: seq,
          IsPlayed: true,
          Timestamp: now,
          FireAt: fireAt,
        });
        record.open[String(seq)] = { kind: "timer", fireAt };
        if (!action.isCanceled) effects.push({ kind: "armTimer", seq });
        break;
      }
      default:
        unsupported ??= ACTION_TYPE_NAMES[action.actionType] ?? `action type ${action.actionType}`;
    }
  }

  // A timer the orchestrator cancelled (e.g. the loser of a Task.any) must not fire later.
  const cancelledTimers: number[] = [];
  flat.forEach((action, i) => {
    const seq =
      i < record.actions.length ? record.actions[i]?.seq : newActions[i - record.actions.length]?.seq;
    if (action.actionType === ActionType.CreateTimer && action.isCanceled && seq !== undefined) {
      const task = record.open[String(seq)];
      if (task?.kind === "timer") {
        delete record.open[String(seq)];
        cancelledTimers.push(seq);
      }
    }
  });

  const applied: AppliedActions = { appended, newActions, nextSequence: nextSeq, effects, cancelledTimers };
  if (unsupported !== undefined) applied.unsupported = unsupported;
  return applied;
}

/**
 * The delay before a retry's next attempt: the first interval × backoff^(failures−1), capped by
 * `maxRetryIntervalInMilliseconds` when that is positive.
 */
export function retryDelayMs(options: RetryOptionsPayload, failures: number): number {
  let delay = options.firstRetryIntervalInMilliseconds * (options.backoffCoefficient ?? 1) ** (failures - 1);
  if (options.maxRetryIntervalInMilliseconds && options.maxRetryIntervalInMilliseconds > 0) {
    delay = Math.min(delay, options.maxRetryIntervalInMilliseconds);
  }
  return delay;
}

function applyPlan(
  record: InstanceRecord,
  plan: AllocationPlan,
  seq: number,
  now: string,
  appended: HistoryEvent[],
  effects: HostEffect[],
): void {
  const retry = record.retries[plan.retryKey];
  if (!retry) throw new Error(`Retry state ${plan.retryKey} is missing.`);
  if (plan.kind === "retryTimer") {
    const fireAt = new Date(Date.parse(now) + retryDelayMs(retry.options, retry.failures)).toISOString();
    appended.push({
      EventType: EventType.TimerCreated,
      EventId: seq,
      IsPlayed: true,
      Timestamp: now,
      FireAt: fireAt,
    });
    record.open[String(seq)] = { kind: "timer", fireAt, retryKey: plan.retryKey };
    effects.push({ kind: "armTimer", seq });
  } else {
    schedule(record, seq, retry.actionType, retry.name, retry.input, retry.instanceId, {
      now,
      retryKey: plan.retryKey,
      appended,
      effects,
    });
  }
}

function schedule(
  record: InstanceRecord,
  seq: number,
  actionType: number,
  name: string,
  input: string | undefined,
  explicitChildId: string | undefined,
  ctx: { now: string; retryKey?: string; appended: HistoryEvent[]; effects: HostEffect[] },
): void {
  const isActivity =
    actionType === ActionType.CallActivity || actionType === ActionType.CallActivityWithRetry;
  if (isActivity) {
    const attempt = ctx.retryKey !== undefined ? (record.retries[ctx.retryKey]?.failures ?? 0) + 1 : 1;
    const event: HistoryEvent = {
      EventType: EventType.TaskScheduled,
      EventId: seq,
      IsPlayed: true,
      Timestamp: ctx.now,
      Name: name,
    };
    if (input !== undefined) event.Input = input;
    ctx.appended.push(event);
    record.open[String(seq)] = { kind: "activity", name, input, attempt, retryKey: ctx.retryKey };
    ctx.effects.push({ kind: "runActivity", seq });
  } else {
    const childId = explicitChildId ?? defaultChildInstanceId(record.instanceId, seq);
    const event: HistoryEvent = {
      EventType: EventType.SubOrchestrationInstanceCreated,
      EventId: seq,
      IsPlayed: true,
      Timestamp: ctx.now,
      Name: name,
      InstanceId: childId,
    };
    if (input !== undefined) event.Input = input;
    ctx.appended.push(event);
    const task: OpenTask & { kind: "subOrchestration" } = {
      kind: "subOrchestration",
      name,
      childId,
      input,
      retryKey: ctx.retryKey,
    };
    record.open[String(seq)] = task;
    ctx.effects.push({ kind: "startChild", seq, task });
  }
}

// ---------------------------------------------------------------- outcomes

/**
 * Closes the task numbered `seq` with its outcome and queues the event. A failed attempt of a retried
 * call triggers a retry timer; that timer firing triggers the next attempt while attempts remain
 * (after the last one the timer still fires and the task fails). Returns the queued entry.
 */
export function recordCompletion(record: InstanceRecord, seq: number, event: HistoryEvent): PendingEvent {
  const task = record.open[String(seq)];
  delete record.open[String(seq)];
  let plan: AllocationPlan | undefined;
  if (task?.retryKey !== undefined) {
    const retry = record.retries[task.retryKey];
    const failed =
      event.EventType === EventType.TaskFailed ||
      event.EventType === EventType.SubOrchestrationInstanceFailed;
    if (retry && failed) {
      retry.failures++;
      plan = { kind: "retryTimer", retryKey: task.retryKey };
    } else if (task.kind === "timer" && retry) {
      // The library schedules another attempt only while attempts remain; after the last one the
      // timer still fires and the task fails.
      if (retry.failures < retry.options.maxNumberOfAttempts)
        plan = { kind: "retryAttempt", retryKey: task.retryKey };
      else delete record.retries[task.retryKey];
    } else {
      delete record.retries[task.retryKey];
    }
  }
  const pending: PendingEvent = plan ? { event, plan } : { event };
  record.pending.push(pending);
  return pending;
}

/** The event a finished child instance delivers to its parent's task `seq`. */
export function childOutcomeEvent(child: InstanceRecord, seq: number, now: string): HistoryEvent {
  const base = { EventId: -1, IsPlayed: false, Timestamp: now, TaskScheduledId: seq };
  return child.runtimeStatus === "Completed"
    ? { ...base, EventType: EventType.SubOrchestrationInstanceCompleted, Result: child.output ?? "null" }
    : {
        ...base,
        EventType: EventType.SubOrchestrationInstanceFailed,
        Reason: `Orchestrator function '${child.name}' failed: ${child.failure?.message ?? child.runtimeStatus}`,
        Details: child.failure?.details ?? "",
      };
}

/**
 * Marks the instance finished: nothing open, pending or retried any more. A failure without an output
 * records its message as the output. The caller disarms the open timers first.
 */
export function finishRecord(
  record: InstanceRecord,
  status: "Completed" | "Failed" | "Terminated",
  result: { output?: string; failure?: { message: string; details?: string } },
  now: string,
): void {
  record.open = {};
  record.retries = {};
  record.pending = [];
  record.runtimeStatus = status;
  if (result.output !== undefined) record.output = result.output;
  else if (status === "Failed" && result.failure) record.output = JSON.stringify(result.failure.message);
  if (result.failure) record.failure = result.failure;
  record.lastUpdatedTime = now;
}

/**
 * Starts the instance over as `fresh` (a new record for the same id), keeping its creation time,
 * parent and custom status, and the raised events not yet delivered (the extension's default).
 */
export function continueAsNewRecord(record: InstanceRecord, fresh: InstanceRecord): void {
  const carried = record.pending.filter((p) => p.event.EventType === EventType.EventRaised);
  Object.assign(record, {
    ...fresh,
    createdTime: record.createdTime,
    parent: record.parent,
    customStatus: record.customStatus,
    runtimeStatus: "Running",
    pending: [...fresh.pending, ...carried],
  });
}

// ---------------------------------------------------------------- helpers

export function isRunnable(record: InstanceRecord): boolean {
  return record.runtimeStatus === "Pending" || record.runtimeStatus === "Running";
}

/**
 * Canonical JSON text of an action's input. Activity (and continue-as-new) inputs that are strings
 * arrive already JSON-encoded (the library's `Utils.processInput`); sub-orchestrator inputs do not.
 */
export function actionInputText(action: OrchestratorAction): string | undefined {
  if (action.input === undefined || action.input === null) return action.input === null ? "null" : undefined;
  const preEncoded =
    action.actionType === ActionType.CallActivity ||
    action.actionType === ActionType.CallActivityWithRetry ||
    action.actionType === ActionType.ContinueAsNew;
  if (preEncoded && typeof action.input === "string") return action.input;
  return JSON.stringify(action.input);
}

export function describeAction(action: OrchestratorAction, seq: number | undefined): RecordedAction {
  const recorded: RecordedAction = { actionType: action.actionType };
  if (seq !== undefined) recorded.seq = seq;
  const name = action.functionName ?? action.externalEventName;
  if (name !== undefined) recorded.name = name;
  const input = actionInputText(action);
  if (input !== undefined) recorded.input = input;
  if (action.fireAt !== undefined) recorded.fireAt = action.fireAt;
  if (action.instanceId !== undefined) recorded.instanceId = action.instanceId;
  return recorded;
}

export function sameAction(recorded: RecordedAction, action: OrchestratorAction): boolean {
  const now = describeAction(action, recorded.seq);
  return (
    now.actionType === recorded.actionType &&
    now.name === recorded.name &&
    now.input === recorded.input &&
    now.fireAt === recorded.fireAt &&
    now.instanceId === recorded.instanceId
  );
}

function showAction(action: RecordedAction | undefined): string {
  if (!action) return "nothing";
  const type = ACTION_TYPE_NAMES[action.actionType] ?? `action type ${action.actionType}`;
  const parts = [type];
  if (action.name !== undefined) parts.push(`'${action.name}'`);
  if (action.input !== undefined) parts.push(`input ${truncate(action.input)}`);
  if (action.fireAt !== undefined) parts.push(`fireAt ${action.fireAt}`);
  return parts.join(" ");
}

function truncate(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** Describes the first place where the replayed actions stop extending the recorded ones. */
export function findMismatch(
  record: InstanceRecord,
  flat: OrchestratorAction[],
  failed = false,
): string | undefined {
  const recorded = record.actions;
  for (let i = 0; i < recorded.length; i++) {
    const before = recorded[i];
    const now = flat[i];
    if (!before) continue;
    if (!now) {
      // An orchestrator that throws stops yielding; that is a failure, not nondeterminism.
      if (failed) return undefined;
      return nondeterminism(record, i, before, undefined);
    }
    if (!sameAction(before, now)) return nondeterminism(record, i, before, describeAction(now, before.seq));
  }
  return undefined;
}

function nondeterminism(
  record: InstanceRecord,
  index: number,
  before: RecordedAction,
  now: RecordedAction | undefined,
): string {
  return (
    `Non-deterministic orchestrator '${record.name}' (instance '${record.instanceId}'): on replay, ` +
    `action #${index} is ${showAction(now)} but the recorded history has ${showAction(before)}. ` +
    "Orchestrator code must make the same calls in the same order on every replay: no Date.now(), " +
    "Math.random(), environment reads, I/O or module-level state."
  );
}

export function parseOutOfProcData(message: string): OrchestratorState | undefined {
  let from = 0;
  for (;;) {
    const index = message.indexOf(OUT_OF_PROC_DATA_LABEL, from);
    if (index < 0) return undefined;
    try {
      const state = JSON.parse(message.slice(index + OUT_OF_PROC_DATA_LABEL.length)) as OrchestratorState;
      if (state && Array.isArray(state.actions)) return state;
    } catch {
      // The label appeared inside the error text itself; look further.
    }
    from = index + 1;
  }
}

export function toJsonText(value: unknown): string {
  return value === undefined ? "null" : JSON.stringify(value);
}

/** JSON text of an activity's return value as the extension would record it in TaskCompleted.Result. */
export function rpcToJsonText(data: RpcTypedData | null | undefined): string {
  if (!data) return "null";
  if (data.json !== undefined && data.json !== null) return data.json;
  if (data.string !== undefined && data.string !== null) return JSON.stringify(data.string);
  if (data.int !== undefined && data.int !== null) return JSON.stringify(data.int);
  if (data.double !== undefined && data.double !== null) return JSON.stringify(data.double);
  if (data.bytes !== undefined && data.bytes !== null)
    return JSON.stringify(Buffer.from(data.bytes).toString("base64"));
  return "null";
}

export function describeFailure(err: unknown): {
  reason: string;
  details: string;
  failureDetails?: FailureDetailsPayload;
} {
  const error = err instanceof Error ? err : new Error(String(err));
  const result: { reason: string; details: string; failureDetails?: FailureDetailsPayload } = {
    reason: error.message,
    details: error.stack ?? "",
  };
  // With an exception-properties provider registered, the library turns the error message into a
  // failure-details JSON document; the extension passes it on as FailureDetails.
  try {
    const parsed = JSON.parse(error.message) as Record<string, unknown>;
    if (parsed && typeof parsed.errorType === "string" && typeof parsed.errorMessage === "string") {
      result.reason = parsed.errorMessage;
      result.failureDetails = {
        ErrorType: parsed.errorType,
        ErrorMessage: parsed.errorMessage,
        IsNonRetriable: parsed.isNonRetriable === true,
      };
      if (typeof parsed.stackTrace === "string") result.failureDetails.StackTrace = parsed.stackTrace;
      if (parsed.properties && typeof parsed.properties === "object") {
        result.failureDetails.Properties = parsed.properties as Record<string, unknown>;
      }
    }
  } catch {
    // A plain message.
  }
  return result;
}

export function toStatus(
  record: InstanceRecord,
  options: { showHistory?: boolean; showInput?: boolean },
): InstanceStatus {
  const parse = (text: string | undefined): unknown =>
    text === undefined ? null : (JSON.parse(text) as unknown);
  const status: InstanceStatus = {
    name: record.name,
    instanceId: record.instanceId,
    runtimeStatus: record.runtimeStatus,
    input: options.showInput === false ? null : parse(record.input),
    output: parse(record.output),
    customStatus: parse(record.customStatus),
    createdTime: record.createdTime,
    lastUpdatedTime: record.lastUpdatedTime,
  };
  if (options.showHistory) status.historyEvents = record.history;
  return status;
}

export function matchesFilter(record: InstanceRecord, filter: ListFilter): boolean {
  const created = Date.parse(record.createdTime);
  if (filter.createdTimeFrom && created < filter.createdTimeFrom.getTime()) return false;
  if (filter.createdTimeTo && created > filter.createdTimeTo.getTime()) return false;
  if (
    filter.runtimeStatus &&
    filter.runtimeStatus.length > 0 &&
    !filter.runtimeStatus.includes(record.runtimeStatus)
  ) {
    return false;
  }
  if (filter.instanceIdPrefix && !record.instanceId.startsWith(filter.instanceIdPrefix)) return false;
  return true;
}
