import { ActionType, EventType } from "../../../local/durable-protocol";
import {
  applyActions,
  childOutcomeEvent,
  continueAsNewRecord,
  describeFailure,
  findMismatch,
  finishRecord,
  matchesFilter,
  parseOutOfProcData,
  recordCompletion,
  retryDelayMs,
  rpcToJsonText,
  startEpisode,
  toStatus,
} from "../../../local/history";
import {
  T0,
  activity,
  activityWithRetry,
  at,
  callHttp,
  continueAsNew,
  episode,
  eventRaised,
  record,
  retryOptions,
  subOrchestrator,
  taskCompleted,
  taskFailed,
  timer,
  timerFired,
  types,
  waitForEvent,
  whenAll,
  whenAny,
} from "./builders";

/** A record past its first episode, with the given actions recorded. */
function started(actions: Parameters<typeof episode>[1]) {
  const r = record();
  const run = episode(r, actions);
  expect(run.mismatch).toBeUndefined();
  return { r, run };
}

describe("an orchestrator's actions become history events", () => {
  it("the first episode delivers ExecutionStarted after OrchestratorStarted and closes with OrchestratorCompleted", () => {
    const { r } = started([]);
    expect(types(r.history)).toEqual(["OrchestratorStarted", "ExecutionStarted", "OrchestratorCompleted"]);
    expect(r.history.every((e) => e.IsPlayed)).toBe(true);
    expect(r.pending).toEqual([]);
    expect(r.episodes).toBe(1);
  });

  it("an activity call is recorded as TaskScheduled with its name and input, and opens an activity task to run", () => {
    const { r, run } = started([activity("ListKeys", { account: "a" })]);
    expect(run.applied?.appended).toEqual([
      {
        EventType: EventType.TaskScheduled,
        EventId: 0,
        IsPlayed: true,
        Timestamp: T0,
        Name: "ListKeys",
        Input: '{"account":"a"}',
      },
    ]);
    expect(r.open).toEqual({
      "0": { kind: "activity", name: "ListKeys", input: '{"account":"a"}', attempt: 1 },
    });
    expect(run.applied?.effects).toEqual([{ kind: "runActivity", seq: 0 }]);
    expect(r.nextSequence).toBe(1);
  });

  it("numbers new actions depth-first through WhenAll and WhenAny", () => {
    const { run } = started([
      activity("A"),
      whenAll(activity("B"), whenAny(activity("C"), timer(at(60_000)))),
      activity("D"),
    ]);
    expect(run.applied?.newActions.map((a) => [a.name ?? a.fireAt, a.seq])).toEqual([
      ["A", 0],
      ["B", 1],
      ["C", 2],
      [at(60_000), 3],
      ["D", 4],
    ]);
    expect(run.applied?.appended.map((e) => e.EventId)).toEqual([0, 1, 2, 3, 4]);
  });

  it("applies only the actions beyond the ones already recorded", () => {
    const { r } = started([activity("A")]);
    r.pending.push({ event: taskCompleted(0, "ok") });
    const second = episode(r, [activity("A"), activity("B")]);
    expect(second.applied?.newActions).toEqual([{ seq: 1, actionType: ActionType.CallActivity, name: "B" }]);
    expect(types(second.applied?.appended ?? [])).toEqual(["TaskScheduled"]);
    expect(r.actions.map((a) => a.seq)).toEqual([0, 1]);
  });

  it("a sub-orchestration gets the child id {parent}:{seq as 4 hex digits} unless the orchestrator names one", () => {
    const r = record("parent");
    r.nextSequence = 26;
    const run = episode(r, [
      subOrchestrator("Child", { n: 1 }),
      subOrchestrator("Child", undefined, "named"),
    ]);
    expect(run.applied?.appended.map((e) => [e.EventType, e.EventId, e.InstanceId, e.Input])).toEqual([
      [EventType.SubOrchestrationInstanceCreated, 26, "parent:001a", '{"n":1}'],
      [EventType.SubOrchestrationInstanceCreated, 27, "named", undefined],
    ]);
    expect(run.applied?.effects.map((e) => [e.kind, e.seq])).toEqual([
      ["startChild", 26],
      ["startChild", 27],
    ]);
  });

  it("keeps an activity's string input as the library encoded it and JSON-encodes a sub-orchestrator's", () => {
    const { run } = started([activity("A", "text"), subOrchestrator("S", "text")]);
    expect(run.applied?.newActions.map((a) => a.input)).toEqual(['"text"', '"text"']);
  });

  it("a durable timer is recorded as TimerCreated at its fireAt and armed", () => {
    const { r, run } = started([timer(at(3_600_000))]);
    expect(run.applied?.appended).toEqual([
      { EventType: EventType.TimerCreated, EventId: 0, IsPlayed: true, Timestamp: T0, FireAt: at(3_600_000) },
    ]);
    expect(r.open["0"]).toEqual({ kind: "timer", fireAt: at(3_600_000) });
    expect(run.applied?.effects).toEqual([{ kind: "armTimer", seq: 0 }]);
  });

  it("a timer the orchestrator cancels is disarmed and closed, and one created cancelled is never armed", () => {
    const { r } = started([whenAny(activity("Work"), timer(at(60_000)))]);
    recordCompletion(r, 0, taskCompleted(0, "done"));
    const run = episode(r, [whenAny(activity("Work"), timer(at(60_000), true)), timer(at(1), true)]);
    expect(run.applied?.cancelledTimers).toEqual([1, 2]);
    expect(run.applied?.effects).toEqual([]);
    expect(r.open).toEqual({});
  });

  it("waiting for an external event takes no sequence number and adds no event", () => {
    const { r, run } = started([waitForEvent("Approve"), activity("A")]);
    expect(run.applied?.newActions.map((a) => [a.actionType, a.seq])).toEqual([
      [ActionType.WaitForExternalEvent, undefined],
      [ActionType.CallActivity, 0],
    ]);
    expect(r.nextSequence).toBe(1);
  });

  it("names the first action type the local host does not support", () => {
    const { run } = started([callHttp(), callHttp()]);
    expect(run.applied?.unsupported).toBe("CallHttp");
  });

  it("the recorded actions of a continue-as-new carry its input", () => {
    const { run } = started([continueAsNew({ generation: 2 })]);
    expect(run.applied?.newActions).toEqual([
      { actionType: ActionType.ContinueAsNew, input: '{"generation":2}' },
    ]);
  });
});

describe("retries", () => {
  it("the delay is the first interval × backoff^(attempt−1), capped by maxRetryIntervalInMilliseconds", () => {
    const options = retryOptions({ firstRetryIntervalInMilliseconds: 1000, backoffCoefficient: 2 });
    expect([1, 2, 3, 4].map((failures) => retryDelayMs(options, failures))).toEqual([1000, 2000, 4000, 8000]);
    const capped = { ...options, maxRetryIntervalInMilliseconds: 3000 };
    expect([1, 2, 3].map((failures) => retryDelayMs(capped, failures))).toEqual([1000, 2000, 3000]);
    expect(retryDelayMs(retryOptions(), 5)).toBe(1000);
  });

  it("a failed attempt opens an episode whose retry timer takes the first sequence number", () => {
    const { r } = started([activityWithRetry("Flaky", retryOptions({ backoffCoefficient: 2 }))]);
    expect(r.retries["0"]).toMatchObject({ name: "Flaky", failures: 0 });
    const queued = recordCompletion(r, 0, taskFailed(0));
    expect(queued.plan).toEqual({ kind: "retryTimer", retryKey: "0" });
    r.pending.push({ event: eventRaised("later") });

    const start = startEpisode(r, at(5000));
    expect(start.plan).toEqual({ kind: "retryTimer", retryKey: "0" });
    expect(types(start.delivered)).toEqual(["TaskFailed", "EventRaised"]);
    const run = episode(
      r,
      [activityWithRetry("Flaky", retryOptions({ backoffCoefficient: 2 })), waitForEvent("x")],
      at(5000),
    );
    expect(run.applied?.appended).toEqual([
      {
        EventType: EventType.TimerCreated,
        EventId: 1,
        IsPlayed: true,
        Timestamp: at(5000),
        FireAt: at(6000),
      },
    ]);
    expect(r.open["1"]).toEqual({ kind: "timer", fireAt: at(6000), retryKey: "0" });
    expect(r.pending).toEqual([]);
  });

  it("the fired retry timer schedules the next attempt while attempts remain", () => {
    const { r } = started([activityWithRetry("Flaky", retryOptions(), "in")]);
    recordCompletion(r, 0, taskFailed(0));
    episode(r, [activityWithRetry("Flaky", retryOptions(), "in")]);
    expect(recordCompletion(r, 1, timerFired(1, at(1000))).plan).toEqual({
      kind: "retryAttempt",
      retryKey: "0",
    });
    const run = episode(r, [activityWithRetry("Flaky", retryOptions(), "in")]);
    expect(run.applied?.appended).toEqual([
      {
        EventType: EventType.TaskScheduled,
        EventId: 2,
        IsPlayed: true,
        Timestamp: T0,
        Name: "Flaky",
        Input: '"in"',
      },
    ]);
    expect(r.open["2"]).toEqual({
      kind: "activity",
      name: "Flaky",
      input: '"in"',
      attempt: 2,
      retryKey: "0",
    });
    expect(run.applied?.effects).toEqual([{ kind: "runActivity", seq: 2 }]);
  });

  it("after the last attempt the retry timer still fires, schedules nothing and the retry state is dropped", () => {
    const options = retryOptions({ maxNumberOfAttempts: 1 });
    const { r } = started([activityWithRetry("Flaky", options)]);
    recordCompletion(r, 0, taskFailed(0));
    episode(r, [activityWithRetry("Flaky", options)]);
    expect(recordCompletion(r, 1, timerFired(1, at(1000))).plan).toBeUndefined();
    expect(r.retries).toEqual({});
  });

  it("a successful attempt drops the retry state", () => {
    const { r } = started([activityWithRetry("Flaky")]);
    expect(recordCompletion(r, 0, taskCompleted(0, 1)).plan).toBeUndefined();
    expect(r.retries).toEqual({});
    expect(r.open).toEqual({});
  });

  it("a retry step whose state is missing is a host error", () => {
    const r = record();
    expect(() => applyActions(r, [], { kind: "retryTimer", retryKey: "9" }, T0)).toThrow(
      "Retry state 9 is missing.",
    );
  });
});

describe("episodes", () => {
  it("an episode delivers the pending events up to the next one that triggers a retry step", () => {
    const { r } = started([activityWithRetry("A"), activity("B")]);
    recordCompletion(r, 1, taskCompleted(1, "b"));
    recordCompletion(r, 0, taskFailed(0));
    r.pending.push({ event: eventRaised("e") });
    const start = startEpisode(r, at(10));
    expect(start.count).toBe(1);
    expect(types(start.delivered)).toEqual(["TaskCompleted"]);
    expect(start.plan).toBeUndefined();
    expect(types(start.history.slice(-2))).toEqual(["OrchestratorStarted", "TaskCompleted"]);
    expect(start.history.slice(-2).every((e) => !e.IsPlayed)).toBe(true);
    expect(start.started.Timestamp).toBe(at(10));
  });
});

describe("nondeterminism", () => {
  it("a replay that extends the recorded actions is deterministic", () => {
    const { r } = started([activity("A", 1)]);
    expect(findMismatch(r, [activity("A", 1), activity("B")])).toBeUndefined();
  });

  it("a replay that calls another activity names the index, both actions and the instance", () => {
    const { r } = started([activity("A", 1)]);
    r.pending.push({ event: taskCompleted(0, null) });
    const history = [...r.history];
    const run = episode(r, [activity("B", 1)]);
    expect(run.mismatch).toBe(
      "Non-deterministic orchestrator 'orchestrator' (instance 'i1'): on replay, action #0 is CallActivity 'B' " +
        "input 1 but the recorded history has CallActivity 'A' input 1. Orchestrator code must make the same calls " +
        "in the same order on every replay: no Date.now(), Math.random(), environment reads, I/O or module-level state.",
    );
    expect(r.history).toEqual(history);
  });

  it("a different input, timer fireAt or child id counts", () => {
    const { r } = started([activity("A", 1), timer(at(1)), subOrchestrator("S", undefined, "c1")]);
    expect(
      findMismatch(r, [activity("A", 2), timer(at(1)), subOrchestrator("S", undefined, "c1")]),
    ).toContain("action #0");
    expect(
      findMismatch(r, [activity("A", 1), timer(at(2)), subOrchestrator("S", undefined, "c1")]),
    ).toContain("action #1");
    expect(
      findMismatch(r, [activity("A", 1), timer(at(1)), subOrchestrator("S", undefined, "c2")]),
    ).toContain("action #2");
  });

  it("fewer actions than recorded is nondeterminism, unless the orchestrator failed and stopped yielding", () => {
    const { r } = started([activity("A"), activity("B")]);
    expect(findMismatch(r, [activity("A")])).toContain(
      "action #1 is nothing but the recorded history has CallActivity 'B'",
    );
    expect(findMismatch(r, [activity("A")], true)).toBeUndefined();
  });

  it("long inputs are truncated in the message", () => {
    const { r } = started([activity("A", "x".repeat(200))]);
    const message = findMismatch(r, [activity("B")]) ?? "";
    expect(message).toContain(`input "${"x".repeat(116)}.... Orchestrator code`);
  });
});

describe("outcomes", () => {
  it("a completed child delivers its output to the parent's task; a failed one its failure", () => {
    const child = record("c");
    finishRecord(child, "Completed", { output: '{"ok":true}' }, at(5));
    expect(childOutcomeEvent(child, 3, at(6))).toEqual({
      EventType: EventType.SubOrchestrationInstanceCompleted,
      EventId: -1,
      IsPlayed: false,
      Timestamp: at(6),
      TaskScheduledId: 3,
      Result: '{"ok":true}',
    });
    const failed = record("c", "Child");
    finishRecord(failed, "Failed", { failure: { message: "no", details: "stack" } }, at(5));
    expect(childOutcomeEvent(failed, 3, at(6))).toMatchObject({
      EventType: EventType.SubOrchestrationInstanceFailed,
      Reason: "Orchestrator function 'Child' failed: no",
      Details: "stack",
    });
  });

  it("finishing closes every task and pending event, and a failure without output records its message", () => {
    const { r } = started([activityWithRetry("A"), timer(at(1))]);
    r.pending.push({ event: eventRaised("e") });
    finishRecord(r, "Failed", { failure: { message: "broken" } }, at(9));
    expect(r).toMatchObject({
      runtimeStatus: "Failed",
      open: {},
      retries: {},
      pending: [],
      output: '"broken"',
      failure: { message: "broken" },
      lastUpdatedTime: at(9),
    });
  });

  it("continue-as-new starts a fresh history, keeping creation time, parent, custom status and undelivered raised events", () => {
    const { r } = started([activity("A")]);
    r.parent = { instanceId: "p", executionId: "pe", taskScheduledId: 4 };
    r.customStatus = '"busy"';
    r.pending.push({ event: taskCompleted(0, 1) }, { event: eventRaised("next", 2) });
    const fresh = record("i1", "orchestrator", '{"generation":2}');
    fresh.executionId = "execution-2";
    fresh.createdTime = at(100);
    continueAsNewRecord(r, fresh);
    expect(r).toMatchObject({
      runtimeStatus: "Running",
      executionId: "execution-2",
      createdTime: T0,
      parent: { instanceId: "p" },
      customStatus: '"busy"',
      history: [],
      actions: [],
      nextSequence: 0,
      open: {},
      input: '{"generation":2}',
    });
    expect(types(r.pending.map((p) => p.event))).toEqual(["ExecutionStarted", "EventRaised"]);
  });
});

describe("values in the extension's shapes", () => {
  it("an activity's return value becomes TaskCompleted.Result JSON text", () => {
    expect(rpcToJsonText(undefined)).toBe("null");
    expect(rpcToJsonText({ json: '{"a":1}' })).toBe('{"a":1}');
    expect(rpcToJsonText({ string: "s" })).toBe('"s"');
    expect(rpcToJsonText({ int: 3 })).toBe("3");
    expect(rpcToJsonText({ bytes: new Uint8Array([1, 2]) })).toBe('"AQI="');
  });

  it("an error carrying the library's failure-details document becomes FailureDetails", () => {
    const document = JSON.stringify({
      errorType: "E",
      errorMessage: "m",
      isNonRetriable: true,
      stackTrace: "st",
    });
    expect(describeFailure(new Error(document))).toMatchObject({
      reason: "m",
      failureDetails: { ErrorType: "E", ErrorMessage: "m", IsNonRetriable: true, StackTrace: "st" },
    });
    expect(describeFailure("plain")).toMatchObject({ reason: "plain" });
    expect(describeFailure(new Error("plain")).failureDetails).toBeUndefined();
  });

  it("the orchestrator's state is read after the first $OutOfProcData$ label whose rest parses", () => {
    const state = { isDone: false, actions: [[]], error: "x", schemaVersion: 2 };
    expect(
      parseOutOfProcData(`failed: $OutOfProcData$: in text $OutOfProcData$:${JSON.stringify(state)}`),
    ).toEqual(state);
    expect(parseOutOfProcData("no label")).toBeUndefined();
  });

  it("status shows parsed input, output and custom status, and history only when asked", () => {
    const { r } = started([]);
    r.input = '{"a":1}';
    expect(toStatus(r, {})).toMatchObject({ input: { a: 1 }, output: null, customStatus: null });
    expect(toStatus(r, { showInput: false }).input).toBeNull();
    expect(toStatus(r, {}).historyEvents).toBeUndefined();
    expect(toStatus(r, { showHistory: true }).historyEvents).toHaveLength(3);
  });

  it("list filters match on creation time, status and id prefix", () => {
    const r = record("rotation-1");
    expect(matchesFilter(r, {})).toBe(true);
    expect(matchesFilter(r, { instanceIdPrefix: "rotation-" })).toBe(true);
    expect(matchesFilter(r, { instanceIdPrefix: "other" })).toBe(false);
    expect(matchesFilter(r, { runtimeStatus: ["Completed"] })).toBe(false);
    expect(matchesFilter(r, { runtimeStatus: [] })).toBe(true);
    expect(matchesFilter(r, { createdTimeFrom: new Date(at(1)) })).toBe(false);
    expect(matchesFilter(r, { createdTimeTo: new Date(at(1)) })).toBe(true);
  });
});
