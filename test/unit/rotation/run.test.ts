import { planAccount, type AccountNode, type Command, type Consumer } from "../../../shared/rotation";
import {
  DEFAULT_PLAN_OPTIONS,
  account,
  batch,
  datastore,
  node,
  planFor,
  secret,
  workspace,
  workspaceId,
} from "./builders";
import { FakeCrash, FakeEstate, runAccount, type FakeEstateOptions, type RunOptions } from "./fakeEstate";

function estate(
  options: FakeEstateOptions = {},
  extra: (st: ReturnType<typeof account>) => Consumer[] = () => [],
) {
  const st = account();
  const consumers = [
    workspace(st),
    batch(st),
    datastore(st, "workspaceblobstore"),
    datastore(st, "ds2"),
    secret(st, "conn"),
    ...extra(st),
  ];
  const n = node(st, ...consumers);
  return { st, n, fake: new FakeEstate(st, consumers, options) };
}

const isStep = (command: Command, id: string) =>
  (command.kind === "regenerate" && command.step.id === id) ||
  (command.kind === "moveAndVerify" && command.stepId === id);

const kinds = (commands: Command[]) => commands.map((c) => c.kind);

describe("running an account's state machine against a fake account", () => {
  it("rotates both keys, one at a time, and leaves every consumer on the new standby", () => {
    const { n, fake } = estate();
    const { execution } = runAccount(planFor(n), fake);
    expect(execution.outcome).toBe("rotated");
    expect(fake.regenerated).toEqual(["key2", "key1"]);
    expect(execution.keysRegenerated).toEqual(["key2", "key1"]);
    for (const c of n.consumers) expect(fake.holds(c.id)).toBe("key2");
    expect(execution.activeKeyAfter).toEqual({ key: "key2", fingerprint: fake.fingerprints().key2 });
  });

  it("never leaves a consumer holding a regenerated key when the service follows the move (I1)", () => {
    const { n, fake } = estate();
    const { execution } = runAccount(planFor(n), fake);
    expect(fake.deadVoters).toEqual([]);
    expect(fake.deadFollowers).toEqual([]);
    // Batch cannot say which key it holds: only its possible windows are reported, none measured.
    expect((execution.outages ?? []).filter((o) => !o.possible)).toEqual([]);
    expect(new Set((execution.outages ?? []).map((o) => o.kind))).toEqual(new Set(["batchAutoStorage"]));
  });

  it("limits the workspace's dead-key window to the resync right after a regeneration, and reports it, when the service insists on key1", () => {
    const { n, fake } = estate({ servicePick: "key1" });
    const { execution } = runAccount(planFor(n), fake);
    expect(execution.outcome).toBe("rotated");
    expect(fake.deadVoters).toEqual([]);
    // The workspace and Batch hold the old key1 from its regeneration until the very next command resyncs them.
    expect(fake.deadFollowers).toEqual(["regenerate-key1: mlw-one", "regenerate-key1: batchone"]);
    expect(fake.holds(workspace(n.account).id)).toBe("key1");
    // Only the workspace shows which key it holds: its window is measured. Batch's is reported as
    // possible, and bounds the time it really held the dead key1.
    expect((execution.outages ?? []).filter((o) => !o.possible)).toEqual([
      expect.objectContaining({ name: "mlw-one", kind: "workspace", durationMs: fake.activityMs }),
    ]);
    expect((execution.outages ?? []).filter((o) => o.possible && o.reason.includes("picked key1"))).toEqual([
      expect.objectContaining({ name: "batchone", kind: "batchAutoStorage", durationMs: fake.activityMs }),
    ]);
  });

  it("waits out the grace period on the durable timer, counted from when consumers were moved", () => {
    const { n, fake } = estate();
    const { commands } = runAccount(planFor(n, { graceSeconds: 5400 }), fake);
    // The verification runs inside the grace: the timer waits the rest.
    expect(fake.waitedMs + fake.activityMs).toBe(5400 * 1000);
    expect(commands.filter((c) => c.kind === "wait")).toHaveLength(1);
  });

  it("changes nothing when every command is executed twice, as after a crash before the checkpoint (I4)", () => {
    const { n, fake } = estate({ servicePick: "key1" }, (st) => [datastore(st, "straggler", "key2")]);
    const { execution } = runAccount(planFor(n), fake, { replay: true });
    expect(execution.outcome).toBe("rotated");
    expect(fake.replayChanges).toEqual([]);
    expect(fake.regenerated).toEqual(["key2", "key1"]);
    expect(fake.deadVoters).toEqual([]);
    // A replayed move publishes no second secret version.
    expect(fake.writes.filter((w) => w.startsWith("publish"))).toEqual(["publish conn"]);
  });

  it("normalizes split consumers without ever leaving one on a dead key", () => {
    const { n, fake } = estate({}, (st) => [datastore(st, "straggler", "key2")]);
    const { execution, commands } = runAccount(planFor(n), fake);
    expect(execution.outcome).toBe("rotated");
    expect(kinds(commands).slice(0, 5)).toEqual([
      "moveAndVerify",
      "moveAndVerify",
      "wait",
      "findLateDatastores",
      "regenerate",
    ]);
    expect(fake.deadVoters).toEqual([]);
    expect(new Set(n.consumers.map((c) => fake.holds(c.id)))).toEqual(new Set(["key2"]));
  });

  it("heals a consumer that held a dead key", () => {
    const { n, fake } = estate({}, (st) => [datastore(st, "broken", "dead")]);
    const broken = datastore(n.account, "broken").id;
    const { execution } = runAccount(planFor(n), fake);
    expect(execution.outcome).toBe("rotated");
    expect(fake.holds(broken)).toBe("key2");
    expect(execution.consumerActions?.[broken]).toEqual({ action: "healed" });
  });

  it("stalls before touching the old active key when a consumer does not verify", () => {
    const { n, fake } = estate();
    fake.stuck.add(datastore(n.account, "ds2").id);
    const { execution, commands } = runAccount(planFor(n), fake);
    expect(execution.outcome).toBe("stalled");
    expect(execution.reason).toMatch(
      /^stopped before regenerating key1, which is still valid: ds2 \(datastore\): holds key1 \([0-9a-f]{12}\), expected key2 \([0-9a-f]{12}\)$/,
    );
    // The moves, then their verification (inside the grace), then the stop: no second regeneration.
    expect(kinds(commands)).toEqual(["regenerate", "moveAndVerify", "moveAndVerify", "finish"]);
    expect(fake.regenerated).toEqual(["key2"]);
    expect(fake.deadVoters).toEqual([]);
  });

  it("stalls, with the old key still valid, when an activity fails for good before the old key is regenerated", () => {
    const { n, fake } = estate();
    fake.failNext("moveAndVerify", "ARM kept answering 500");
    const { execution } = runAccount(planFor(n), fake);
    expect(execution).toMatchObject({ outcome: "stalled", reason: "ARM kept answering 500" });
    expect(fake.regenerated).toEqual(["key2"]);
    expect(fake.holds(datastore(n.account, "ds2").id)).toBe("key1");
    expect(fake.deadVoters).toEqual([]);
  });

  it("fails when the resync after the old active key's regeneration fails for good", () => {
    const { n, fake } = estate();
    const { execution } = runAccount(planFor(n), fake, {
      before: (command) => {
        if (isStep(command, "resync-after-key1"))
          fake.moveErrors.set(workspace(n.account).id, "resync timed out");
      },
    });
    expect(execution.outcome).toBe("failed");
    expect(execution.reason).toBe(
      "after regenerating the old active key, could not move mlw-one (workspace): resync timed out",
    );
  });

  it("refuses to regenerate the old active key when the new standby changed behind its back", () => {
    const { n, fake } = estate();
    const { execution } = runAccount(planFor(n), fake, {
      before: (command) => {
        if (isStep(command, "regenerate-key1")) fake.regenerateBehindTheBack("key2");
      },
    });
    expect(execution.outcome).toBe("failed");
    expect(execution.reason).toMatch(/^key2 changed outside keyturn/);
    expect(fake.regenerated).toEqual(["key2"]);
  });

  it("stops before regenerating the old key when a datastore is re-registered with it during the grace", () => {
    const { n, fake } = estate();
    const ds2 = datastore(n.account, "ds2").id;
    const { execution, commands } = runAccount(planFor(n), fake, {
      before: (command) => {
        if (command.kind === "wait") fake.reRegister(ds2, "key1");
      },
    });
    expect(execution.outcome).toBe("stalled");
    expect(execution.reason).toContain("stopped before regenerating key1, which is still valid");
    expect(execution.reason).toContain("(mlw-one/ds2)");
    expect(kinds(commands).slice(-2)).toEqual(["findLateDatastores", "finish"]);
    expect(fake.regenerated).toEqual(["key2"]);
    expect(fake.deadVoters).toEqual([]);
  });

  it("goes on when a datastore added during the grace already holds the new key", () => {
    const { n, fake } = estate();
    let late = "";
    const { execution } = runAccount(planFor(n), fake, {
      before: (command) => {
        if (command.kind === "wait") late = fake.addDatastore(workspaceId("mlw-one"), "late", "key2").id;
      },
    });
    expect(execution.outcome).toBe("rotated");
    expect(fake.holds(late)).toBe("key2");
    expect(fake.deadVoters).toEqual([]);
  });

  it("reads each datastore's secret once: list metadata shows it unchanged after the grace", () => {
    const { n, fake } = estate();
    const { execution } = runAccount(planFor(n), fake);
    expect(execution.outcome).toBe("rotated");
    expect(fake.secretReads).toEqual(["workspaceblobstore", "ds2"]);
    expect(execution.armCalls).toBeGreaterThan(0);
  });

  it("converges when a rotation that crashed mid-move is started again from a fresh snapshot", () => {
    const { n, fake } = estate();
    // Crash after the standby was regenerated and only the three written consumers moved.
    expect(() =>
      runAccount(planFor(n), fake, {
        before: (command) => {
          if (isStep(command, "move-to-key2")) fake.crashAfterMoves = 3;
        },
      }),
    ).toThrow(FakeCrash);
    expect(fake.deadVoters).toEqual([]);

    const resumed = fake.snapshot(n.account);
    const result = planAccount(node(resumed.account, ...resumed.consumers), {
      ...DEFAULT_PLAN_OPTIONS,
      force: true,
    });
    if (result.action !== "rotate") throw new Error(`expected a plan, got ${result.action}`);
    expect(runAccount(result.plan, fake).execution.outcome).toBe("rotated");
    expect(fake.deadVoters).toEqual([]);
    expect(fake.deadFollowers).toEqual([]);
    const final = new Set(n.consumers.map((c) => fake.holds(c.id)));
    expect(final.size).toBe(1);
    expect(["key1", "key2"]).toContain([...final][0]);
  });

  // Known bug (see the report): the regeneration of the old active key can fail for good after Azure
  // regenerated it (the POST's answer lost, the read after it throttled past the deadline); the account is
  // then reported "stalled ... still valid" while the workspace holds the dead key and is never resynced.
  it("does not report the old key as still valid when its regeneration failed after it happened", () => {
    const { n, fake } = estate({ servicePick: "key1" });
    const { execution } = runAccount(planFor(n), fake, {
      before: (command) => {
        if (isStep(command, "regenerate-key1"))
          fake.failNext("regenerate", "the answer to regenerateKey was lost", { afterWork: true });
      },
    });
    expect(fake.regenerated).toEqual(["key2", "key1"]);
    expect(fake.deadFollowers).toContain("regenerate-key1: mlw-one");
    expect(execution.outcome).toBe("failed");
  });

  // Known gap (see the report): only the old active key's regeneration is preceded by a search for
  // datastores changed during a grace; the standby's regeneration after the normalization grace is not.
  it("stops before regenerating the standby when a datastore is re-registered with it during the normalization grace", () => {
    const { n, fake } = estate({}, (st) => [datastore(st, "straggler", "key2")]);
    const { execution } = runAccount(planFor(n), fake, {
      before: (command) => {
        if (command.kind === "wait" && command.stepId === "grace-normalized")
          fake.reRegister(datastore(n.account, "ds2").id, "key2");
      },
    });
    expect(fake.deadVoters).toEqual([]);
    expect(execution.outcome).toBe("stalled");
    expect(fake.regenerated).toEqual([]);
  });

  it("never hands a key value across the activity boundary, whatever the outcome (I3)", () => {
    const scenarios: FakeEstate[] = [];
    const outcomes: string[] = [];
    const run = (options: FakeEstateOptions, fault: (fake: FakeEstate, n: AccountNode) => RunOptions) => {
      const { n, fake } = estate(options, (st) => [datastore(st, "straggler", "key2")]);
      outcomes.push(runAccount(planFor(n), fake, fault(fake, n)).execution.outcome);
      scenarios.push(fake);
    };
    run({ servicePick: "key1" }, () => ({ replay: true }));
    run({}, (fake, n) => {
      fake.stuck.add(datastore(n.account, "ds2").id);
      return {};
    });
    run({}, (fake) => ({
      before: (command) => {
        if (isStep(command, "regenerate-key1")) fake.regenerateBehindTheBack("key2");
      },
    }));
    run({}, (fake, n) => ({
      before: (command) => {
        if (isStep(command, "move-to-key2")) fake.regenerateBehindTheBack("key2");
        if (command.kind === "wait") fake.reRegister(datastore(n.account, "ds2").id, "key1");
      },
    }));
    for (const fake of scenarios) {
      const crossed = fake.boundary.join("\n");
      expect(fake.allKeyValues.length).toBeGreaterThanOrEqual(3);
      for (const value of fake.allKeyValues) expect(crossed).not.toContain(value);
    }
    expect(outcomes).toEqual(["rotated", "stalled", "failed", "stalled"]);
  });
});
