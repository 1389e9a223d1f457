/**
 * The out-of-process orchestration protocol between the Durable Task host and durable-functions 3.5.0
 * (DESIGN.md §9). These are internal, unversioned contracts of the library: the numbers and field
 * names below are what `durable-functions/lib/src/history/HistoryEventType.js`,
 * `actions/ActionType.js` and `orchestrations/OrchestratorState.js` use.
 */

export const EventType = {
  ExecutionStarted: 0,
  ExecutionCompleted: 1,
  ExecutionFailed: 2,
  ExecutionTerminated: 3,
  TaskScheduled: 4,
  TaskCompleted: 5,
  TaskFailed: 6,
  SubOrchestrationInstanceCreated: 7,
  SubOrchestrationInstanceCompleted: 8,
  SubOrchestrationInstanceFailed: 9,
  TimerCreated: 10,
  TimerFired: 11,
  OrchestratorStarted: 12,
  OrchestratorCompleted: 13,
  EventSent: 14,
  EventRaised: 15,
  ContinueAsNew: 16,
  ExecutionSuspended: 19,
  ExecutionResumed: 20,
} as const;

export const EVENT_TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(EventType).map(([name, value]) => [value, name]),
);

/** A history event as the library reads it (PascalCase, as the .NET extension serializes it). */
export interface HistoryEvent {
  EventType: number;
  EventId: number;
  IsPlayed: boolean;
  Timestamp: string;
  Name?: string;
  Input?: string;
  Result?: string;
  TaskScheduledId?: number;
  Reason?: string;
  Details?: string;
  FailureDetails?: FailureDetailsPayload;
  InstanceId?: string;
  FireAt?: string;
  TimerId?: number;
}

export interface FailureDetailsPayload {
  ErrorType: string;
  ErrorMessage: string;
  StackTrace?: string;
  IsNonRetriable: boolean;
  Properties?: Record<string, unknown>;
}

export const ActionType = {
  CallActivity: 0,
  CallActivityWithRetry: 1,
  CallSubOrchestrator: 2,
  CallSubOrchestratorWithRetry: 3,
  ContinueAsNew: 4,
  CreateTimer: 5,
  WaitForExternalEvent: 6,
  CallEntity: 7,
  CallHttp: 8,
  SignalEntity: 9,
  WhenAny: 11,
  WhenAll: 12,
  LockEntities: 13,
  ReleaseEntities: 14,
} as const;

export const ACTION_TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(ActionType).map(([name, value]) => [value, name]),
);

export interface RetryOptionsPayload {
  firstRetryIntervalInMilliseconds: number;
  maxNumberOfAttempts: number;
  backoffCoefficient?: number;
  maxRetryIntervalInMilliseconds?: number;
  retryTimeoutInMilliseconds?: number;
}

/** One entry of the orchestrator's action list, as JSON. */
export interface OrchestratorAction {
  actionType: number;
  functionName?: string;
  input?: unknown;
  retryOptions?: RetryOptionsPayload;
  instanceId?: string;
  fireAt?: string;
  isCanceled?: boolean;
  externalEventName?: string;
  compoundActions?: OrchestratorAction[];
}

/** What an orchestrator invocation returns (or carries after `$OutOfProcData$:` when it fails). */
export interface OrchestratorState {
  isDone: boolean;
  actions: OrchestratorAction[][];
  output?: unknown;
  error?: string;
  customStatus?: unknown;
  schemaVersion: number;
}

/** The orchestration trigger's payload; field names and values as measured (§9). */
export interface OrchestrationTriggerPayload {
  history: HistoryEvent[];
  input: unknown;
  instanceId: string;
  isReplaying: boolean;
  parentInstanceId: string | undefined;
  upperSchemaVersion: number;
  upperSchemaVersionNew: number;
  longRunningTimerIntervalDuration: string;
  maximumShortTimerDuration: string;
  defaultHttpAsyncRequestSleepTimeMillseconds: number;
}

export const OUT_OF_PROC_DATA_LABEL = "$OutOfProcData$:";

/** Action types that take a sequence number from the library's counter when first yielded. */
export function consumesSequenceNumber(actionType: number): boolean {
  return (
    actionType === ActionType.CallActivity ||
    actionType === ActionType.CallActivityWithRetry ||
    actionType === ActionType.CallSubOrchestrator ||
    actionType === ActionType.CallSubOrchestratorWithRetry ||
    actionType === ActionType.CreateTimer ||
    actionType === ActionType.CallEntity ||
    actionType === ActionType.CallHttp ||
    actionType === ActionType.SignalEntity
  );
}

/**
 * Depth-first leaves of the cumulative action list. The library numbers tasks in this order (its
 * `trackOpenTask` walks compound tasks' children in order), and so does the .NET extension when it
 * replays the list into the Durable Task Framework.
 */
export function flattenActions(state: OrchestratorState): OrchestratorAction[] {
  const leaves: OrchestratorAction[] = [];
  const visit = (action: OrchestratorAction) => {
    if (action.actionType === ActionType.WhenAll || action.actionType === ActionType.WhenAny) {
      for (const child of action.compoundActions ?? []) visit(child);
    } else {
      leaves.push(action);
    }
  };
  // From schema V2 on, actions[0] holds every action so far; older schemas had one list per yield.
  for (const group of state.actions) for (const action of group) visit(action);
  return leaves;
}
