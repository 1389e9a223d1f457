/**
 * Small builders for the replay engine's pure part (local/history.ts): orchestrator actions as the
 * durable-functions library yields them, the events the host delivers, and an episode run the way the
 * driver runs one — without a host, an orchestrator or the emulator.
 */
import {
  ActionType,
  EventType,
  flattenActions,
  type HistoryEvent,
  type OrchestratorAction,
  type OrchestratorState,
  type RetryOptionsPayload,
} from "../../../local/durable-protocol";
import {
  applyActions,
  commitEpisode,
  findMismatch,
  newInstanceRecord,
  startEpisode,
  type AppliedActions,
  type EpisodeStart,
  type InstanceRecord,
} from "../../../local/history";

export const T0 = "2026-01-01T00:00:00.000Z";

/** `T0` plus `ms`. */
export function at(ms: number): string {
  return new Date(Date.parse(T0) + ms).toISOString();
}

// ---------------------------------------------------------------- actions

/** callActivity; a string input arrives JSON-encoded, as the library's processInput leaves it. */
export function activity(name: string, input?: unknown): OrchestratorAction {
  const action: OrchestratorAction = { actionType: ActionType.CallActivity, functionName: name };
  if (input !== undefined) action.input = JSON.stringify(input);
  return action;
}

export function retryOptions(overrides: Partial<RetryOptionsPayload> = {}): RetryOptionsPayload {
  return { firstRetryIntervalInMilliseconds: 1000, maxNumberOfAttempts: 3, ...overrides };
}

export function activityWithRetry(
  name: string,
  options: RetryOptionsPayload = retryOptions(),
  input?: unknown,
): OrchestratorAction {
  return { ...activity(name, input), actionType: ActionType.CallActivityWithRetry, retryOptions: options };
}

export function subOrchestrator(name: string, input?: unknown, instanceId?: string): OrchestratorAction {
  const action: OrchestratorAction = { actionType: ActionType.CallSubOrchestrator, functionName: name };
  if (input !== undefined) action.input = input;
  if (instanceId !== undefined) action.instanceId = instanceId;
  return action;
}

export function timer(fireAt: string, isCanceled = false): OrchestratorAction {
  return { actionType: ActionType.CreateTimer, fireAt, isCanceled };
}

export function waitForEvent(name: string): OrchestratorAction {
  return { actionType: ActionType.WaitForExternalEvent, externalEventName: name };
}

export function continueAsNew(input: unknown): OrchestratorAction {
  return { actionType: ActionType.ContinueAsNew, input: JSON.stringify(input) };
}

export function callHttp(): OrchestratorAction {
  return { actionType: ActionType.CallHttp };
}

export function whenAll(...children: OrchestratorAction[]): OrchestratorAction {
  return { actionType: ActionType.WhenAll, compoundActions: children };
}

export function whenAny(...children: OrchestratorAction[]): OrchestratorAction {
  return { actionType: ActionType.WhenAny, compoundActions: children };
}

/** The library's state after a yield: schema V2 keeps every action so far in actions[0]. */
export function state(
  actions: OrchestratorAction[],
  extra: Partial<OrchestratorState> = {},
): OrchestratorState {
  return { isDone: false, actions: [actions], schemaVersion: 2, ...extra };
}

// ---------------------------------------------------------------- records and events

export function record(instanceId = "i1", name = "orchestrator", input?: string): InstanceRecord {
  return newInstanceRecord(instanceId, name, input, T0, "execution-1");
}

function delivered(fields: Partial<HistoryEvent> & { EventType: number }): HistoryEvent {
  return { EventId: -1, IsPlayed: false, Timestamp: T0, ...fields };
}

export function taskCompleted(seq: number, result: unknown): HistoryEvent {
  return delivered({
    EventType: EventType.TaskCompleted,
    TaskScheduledId: seq,
    Result: JSON.stringify(result),
  });
}

export function taskFailed(seq: number, reason = "boom"): HistoryEvent {
  return delivered({ EventType: EventType.TaskFailed, TaskScheduledId: seq, Reason: reason, Details: "" });
}

export function timerFired(seq: number, fireAt: string): HistoryEvent {
  return delivered({ EventType: EventType.TimerFired, TimerId: seq, FireAt: fireAt });
}

export function eventRaised(name: string, input?: unknown): HistoryEvent {
  const event = delivered({ EventType: EventType.EventRaised, Name: name });
  if (input !== undefined) event.Input = JSON.stringify(input);
  return event;
}

/** Event type names of a history, for readable expectations. */
export function types(history: HistoryEvent[]): string[] {
  return history.map((e) => Object.entries(EventType).find(([, v]) => v === e.EventType)?.[0] ?? "?");
}

// ---------------------------------------------------------------- an episode, as the driver runs one

export interface EpisodeRun {
  start: EpisodeStart;
  mismatch?: string;
  applied?: AppliedActions;
}

/**
 * One episode of `target` whose orchestrator, given the delivered events, yields `actions` (the
 * cumulative list): the pure steps of DurableEngine's episode, in its order.
 */
export function episode(target: InstanceRecord, actions: OrchestratorAction[], now = T0): EpisodeRun {
  const start = startEpisode(target, now);
  const flat = flattenActions(state(actions));
  const mismatch = findMismatch(target, flat);
  if (mismatch) return { start, mismatch };
  const applied = applyActions(target, flat, start.plan, now);
  commitEpisode(target, start, applied.appended, now);
  target.actions = [...target.actions, ...applied.newActions];
  target.nextSequence = applied.nextSequence;
  return { start, applied };
}
