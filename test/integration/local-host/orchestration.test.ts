// Jest resolves modules itself, so the worker-injected module is provided here; outside Jest,
// LocalHost.load installs it through Node's resolver.
jest.mock(
  "@azure/functions-core",
  () => jest.requireActual<typeof import("../../../local/functions-core")>("../../../local/functions-core"),
  { virtual: true },
);

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalHost, ManualClock, type InstanceRecord, type LocalHostOptions } from "../../../local";
import { ActionType, EventType } from "../../../local/durable-protocol";
import { calls, flaky, resetFixture } from "./fixtures/app";

const FIXTURE = join(__dirname, "fixtures", "app.ts");
const START = "2030-01-15T12:00:00.000Z";

let stateDir: string;

function newHost(options: LocalHostOptions = {}): LocalHost {
  const host = new LocalHost({
    stateDir,
    clock: new ManualClock(START),
    settings: { FIXTURE_SCHEDULE: "0 0 0 1 * *" },
    logger: () => undefined,
    ...options,
  });
  host.load(FIXTURE);
  return host;
}

function eventTypes(record: InstanceRecord | undefined): number[] {
  return (record?.history ?? []).map((e) => e.EventType);
}

/** Lets the host run, jumping the clock to each durable timer, until `done` holds. */
async function runUntil(host: LocalHost, clock: ManualClock, done: () => boolean): Promise<void> {
  for (let i = 0; i < 100; i++) {
    await host.idle();
    if (done()) return;
    const due = host.durable.nextTimerDue();
    if (!due) throw new Error("Nothing left to run, and the condition does not hold.");
    clock.advanceTo(due);
  }
  throw new Error("Condition not reached.");
}

beforeEach(() => {
  resetFixture();
  stateDir = mkdtempSync(join(tmpdir(), "keyturn-local-host-"));
});

afterEach(() => {
  rmSync(stateDir, { recursive: true, force: true });
});

describe("replay driver", () => {
  it("runs activities, a fan-out, a sub-orchestration, a retry and a durable timer to completion", async () => {
    flaky.failuresLeft = 2;
    const clock = new ManualClock(START);
    const host = newHost({ clock });
    await host.start({ timers: false });
    try {
      const client = await host.durableClient();
      const id = await client.startNew("main", { instanceId: "main-1", input: { n: 1 } });

      // Custom status is visible through the library's client while the grace timer is pending.
      await runUntil(host, clock, () => host.durable.getRecord(id)?.customStatus === '{"stage":"grace"}');
      const waiting = await client.getStatus(id);
      expect(waiting.runtimeStatus).toBe("Running");
      expect(waiting.customStatus).toEqual({ stage: "grace" });

      const started = Date.now();
      const status = await host.waitForCompletion(id);
      expect(Date.now() - started).toBeLessThan(2000);
      expect(status.runtimeStatus).toBe("Completed");
      expect(status.output).toEqual({
        doubled: [2, 4, 6],
        child: 21,
        retried: { recovered: "x" },
        greeting: "hello world",
      });
      expect(status.customStatus).toEqual({ stage: "done" });
      expect(clock.now().getTime() - Date.parse(START)).toBeGreaterThanOrEqual(60 * 60_000);
      expect(calls.filter((c) => c.name === "flaky")).toHaveLength(3);

      const child = host.durable.getStatus(`${id}:0003`);
      expect(child).toMatchObject({ name: "child", runtimeStatus: "Completed", input: 10, output: 21 });
    } finally {
      await host.stop();
    }
  });

  it("records retries as the library expects: TaskFailed, then a timer, then a new TaskScheduled", async () => {
    flaky.failuresLeft = 2;
    const host = newHost();
    const id = host.startNew("main");
    await host.waitForCompletion(id);
    const history = host.durable.getRecord(id)?.history ?? [];
    const flakyEvents = history.filter(
      (e) =>
        (e.EventType === EventType.TaskScheduled && e.Name === "flaky") ||
        e.EventType === EventType.TaskFailed ||
        (e.EventType === EventType.TimerCreated && e.EventId >= 4 && e.EventId <= 8),
    );
    expect(flakyEvents.map((e) => [e.EventType, e.EventId === -1 ? e.TaskScheduledId : e.EventId])).toEqual([
      [EventType.TaskScheduled, 4],
      [EventType.TaskFailed, 4],
      [EventType.TimerCreated, 5],
      [EventType.TaskScheduled, 6],
      [EventType.TaskFailed, 6],
      [EventType.TimerCreated, 7],
      [EventType.TaskScheduled, 8],
    ]);
    const timers = history.filter((e) => e.EventType === EventType.TimerCreated);
    const failures = history.filter((e) => e.EventType === EventType.TaskFailed);
    // First interval × backoff^(attempt−1) with the default backoff of 1: one second each time.
    expect(Date.parse(timers[0]?.FireAt ?? "") - Date.parse(failures[0]?.Timestamp ?? "")).toBe(1000);
    expect(failures[0]?.Reason).toBe("transient fault");
  });

  it("fails the task after the last attempt, still after a retry timer", async () => {
    flaky.failuresLeft = 5;
    const host = newHost();
    const id = host.startNew("retryExhausted");
    const status = await host.waitForCompletion(id);
    expect(status.output).toBe("gave up: transient fault ");
    expect(calls.filter((c) => c.name === "flaky")).toHaveLength(2);
    const types = eventTypes(host.durable.getRecord(id));
    expect(types.filter((t) => t === EventType.TimerFired)).toHaveLength(2);
  });

  it.each([
    ["one at a time", 1, undefined],
    ["in parallel", 4, undefined],
    ["the plain result and the retry's failure delivered together", 4, "p"],
    ["the retry's failure and the plain result delivered together", 4, "r"],
  ])(
    "numbers retry steps racing other tasks the way the library does (%s)",
    async (_label, concurrency, first) => {
      flaky.failuresLeft = 2;
      let armedWhenZScheduled: Date | undefined | "unset" = "unset";
      const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      const host: LocalHost = newHost({
        maxActivityConcurrency: concurrency,
        hooks: {
          onActivity: async (info) => {
            if (first === undefined || (info.input !== "p" && info.input !== "r") || info.attempt > 1) return;
            // `first` finishes first; its outcome is queued before this hook runs and the episode is
            // only kicked after it, so the other outcome lands in the same batch, after it.
            if (info.phase === "started" && info.input !== first) await sleep(5);
            if (info.phase !== "started" && info.input === first) await sleep(30);
          },
          onEpisode: (info) => {
            if (info.newActions.some((a) => a.input === '"z"'))
              armedWhenZScheduled = host.durable.nextTimerDue();
          },
        },
      });
      const id = host.startNew("race");
      const status = await host.waitForCompletion(id);
      expect(status.runtimeStatus).toBe("Completed");
      expect(status.output).toEqual({
        plainWon: true,
        after: "hello after",
        recovered: { recovered: "r" },
        timerWon: false,
      });
      expect((await host.durable.replay(id)).deterministic).toBe(true);
      // The orchestrator cancelled the losing timer: it was disarmed at once, not left to fire.
      expect(armedWhenZScheduled).toBeUndefined();
    },
  );

  it("retries a failed sub-orchestration as a new child and reports a child's failure to its parent", async () => {
    flaky.failuresLeft = 1;
    const host = newHost();
    const id = host.startNew("parentOfFlaky");
    const status = await host.waitForCompletion(id);
    flaky.failuresLeft = 0;
    expect(status.output).toEqual({
      retried: { recovered: "c" },
      second: "Orchestrator function 'brokenChild' failed: broken on purpose ",
    });
    // Attempt one is child 0, its retry timer takes 1, attempt two is child 2.
    expect(host.durable.getStatus(`${id}:0000`)?.runtimeStatus).toBe("Failed");
    expect(host.durable.getStatus(`${id}:0002`)?.output).toEqual({ recovered: "c" });
    expect(host.durable.getStatus("explicit-child")).toMatchObject({
      runtimeStatus: "Failed",
      output: "Orchestrator function 'brokenChild' failed: broken on purpose",
    });
  });

  it("restarts an instance that continues as new, with the new input", async () => {
    const host = newHost();
    const id = host.startNew("countdown", 2);
    const status = await host.waitForCompletion(id);
    expect(status.output).toBe("liftoff");
    expect(status.input).toBe(0);
    expect(calls.map((c) => c.input)).toEqual([2, 1, 0]);
  });

  it("replays a recorded history to the same actions", async () => {
    const host = newHost();
    const id = host.startNew("main");
    await host.waitForCompletion(id);
    const replay = await host.durable.replay(id);
    expect(replay.deterministic).toBe(true);
    expect(replay.actions).toEqual(replay.recorded);
    expect(replay.state.isDone).toBe(true);
    expect(replay.state.output).toEqual(host.durable.getStatus(id)?.output);
    // Fan-out of three, the child, the retried activity, the timer, the last activity.
    expect(replay.actions.map((a) => a.seq)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it("fails a nondeterministic orchestrator loudly, naming both actions", async () => {
    const logged: string[] = [];
    const host = newHost({ logger: (e) => void logged.push(e.message) });
    const id = host.startNew("nondeterministic");
    const status = await host.waitForCompletion(id);
    expect(status.runtimeStatus).toBe("Failed");
    const message = String(status.output);
    expect(message).toMatch(/Non-deterministic orchestrator 'nondeterministic'/);
    expect(message).toMatch(
      /action #0 is CallActivity 'double' input 1 but the recorded history has CallActivity 'step' input 1/,
    );
    expect(logged.some((m) => m.includes("Non-deterministic"))).toBe(true);
    // The second activity was never scheduled.
    expect(calls.map((c) => c.name)).toEqual(["step"]);
  });

  it("runs activities with bounded parallelism", async () => {
    let running = 0;
    let peak = 0;
    const host = newHost({
      maxActivityConcurrency: 2,
      hooks: {
        onActivity: async (info) => {
          if (info.phase !== "started") return;
          running++;
          peak = Math.max(peak, running);
          await new Promise((resolve) => setTimeout(resolve, 5));
          running--;
        },
      },
    });
    const id = host.startNew("main");
    await host.waitForCompletion(id);
    expect(peak).toBe(2);
  });
});

describe("persistence", () => {
  it("resumes from disk after a crash without re-running finished activities", async () => {
    const clock = new ManualClock(START);
    const first: LocalHost = newHost({
      clock,
      hooks: {
        onActivity: (info) => {
          // "Crash" once the second activity's outcome is on disk, before the orchestrator sees it.
          if (info.phase === "completed" && info.input === 2) void first.stop();
        },
      },
    });
    const id = first.startNew("sequence", undefined, "crashy");
    await first.idle();
    expect(first.durable.stopped).toBe(true);
    expect(calls.map((c) => c.input)).toEqual([1, 2]);
    expect(readdirSync(stateDir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    const onDisk = JSON.parse(readFileSync(join(stateDir, "crashy.json"), "utf8")) as InstanceRecord;
    expect(onDisk.runtimeStatus).toBe("Running");
    expect(onDisk.pending.map((p) => p.event.EventType)).toEqual([EventType.TaskCompleted]);

    const second = newHost({ clock });
    expect(second.durable.getStatus(id)?.runtimeStatus).toBe("Running");
    expect(second.resume()).toEqual([id]);
    const status = await second.waitForCompletion(id);
    expect(status.output).toEqual(["step-1", "step-2", "step-3", "step-4"]);
    expect(calls.map((c) => c.input)).toEqual([1, 2, 3, 4]);
    await second.stop();
  });

  it("re-runs an activity that was running when the process died", async () => {
    flaky.failuresLeft = 1;
    const clock = new ManualClock(START);
    let stopAt: string | undefined;
    const first: LocalHost = newHost({
      clock,
      hooks: {
        onActivity: (info) => {
          // Crash while "greet" runs: started, never finished.
          if (info.phase === "started" && info.name === "greet") {
            stopAt = info.name;
            void first.stop();
          }
        },
      },
    });
    const id = first.startNew("main");
    await runUntil(first, clock, () => first.durable.stopped);
    expect(stopAt).toBe("greet");
    const before = calls.length;

    const second = newHost({ clock });
    second.resume();
    const status = await second.waitForCompletion(id);
    expect(status.runtimeStatus).toBe("Completed");
    expect(calls.slice(before).map((c) => c.name)).toEqual(["greet"]);
    await second.stop();
  });

  it("resumes a sub-orchestration that was running when the process died", async () => {
    const clock = new ManualClock(START);
    const first: LocalHost = newHost({
      clock,
      hooks: {
        onActivity: (info) => {
          if (info.phase === "started" && info.instanceId.endsWith(":0003")) void first.stop();
        },
      },
    });
    const id = first.startNew("main");
    await first.idle();
    expect(first.durable.stopped).toBe(true);
    expect(calls.map((c) => c.input)).toEqual([1, 2, 3]);

    const second = newHost({ clock });
    expect(second.resume().sort()).toEqual([id, `${id}:0003`].sort());
    const status = await second.waitForCompletion(id);
    expect(status.output).toMatchObject({ doubled: [2, 4, 6], child: 21 });
    expect(calls.map((c) => c.input)).toEqual([1, 2, 3, 10, "x", "world"]);
    await second.stop();
  });

  it("re-arms a durable timer that was pending when the process died", async () => {
    const clock = new ManualClock(START);
    const first: LocalHost = newHost({
      clock,
      hooks: {
        onEpisode: (info) => {
          if (info.newActions.some((a) => a.actionType === ActionType.CreateTimer)) void first.stop();
        },
      },
    });
    const id = first.startNew("main");
    await first.idle();
    expect(first.durable.getStatus(id)?.customStatus).toEqual({ stage: "grace" });
    const fireAt = first.durable
      .getRecord(id)
      ?.history.find((e) => e.EventType === EventType.TimerCreated)?.FireAt;
    expect(fireAt).toBe("2030-01-15T13:00:00.000Z");

    const second = newHost({ clock });
    second.resume();
    await second.idle();
    expect(second.durable.nextTimerDue()?.toISOString()).toBe(fireAt);
    clock.advanceTo("2030-01-15T12:59:59Z");
    await second.idle();
    expect(second.durable.getStatus(id)?.runtimeStatus).toBe("Running");
    const status = await second.waitForCompletion(id);
    expect(status.output).toMatchObject({ greeting: "hello world" });
    expect(calls.filter((c) => c.name === "greet")).toHaveLength(1);
    await second.stop();
  });

  it("persists every episode atomically as JSON", async () => {
    const episodes: number[] = [];
    const host = newHost({ hooks: { onEpisode: (info) => void episodes.push(info.episode) } });
    const id = host.startNew("sequence", { from: "test" });
    await host.waitForCompletion(id);
    expect(episodes).toEqual([1, 2, 3, 4, 5]);
    const onDisk = JSON.parse(readFileSync(join(stateDir, `${id}.json`), "utf8")) as InstanceRecord;
    expect(onDisk.runtimeStatus).toBe("Completed");
    expect(onDisk.input).toBe('{"from":"test"}');
    expect(onDisk.history.filter((e) => e.EventType === EventType.OrchestratorStarted)).toHaveLength(5);
  });
});
