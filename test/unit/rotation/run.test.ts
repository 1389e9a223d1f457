import { planAccount, type Consumer } from "../../../shared/rotation";
import {
  DEFAULT_PLAN_OPTIONS,
  account,
  batch,
  datastore,
  node,
  planFor,
  secret,
  workspace,
} from "./builders";
import { FakeEstate, runPlan, type ServicePick } from "./fakeEstate";

function estate(
  servicePick: ServicePick = "target",
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
  return { st, n, fake: new FakeEstate(st, consumers, servicePick) };
}

describe("running a plan against a fake account", () => {
  it("rotates both keys, one at a time, and leaves every consumer on the new standby", () => {
    const { n, fake } = estate();
    const result = runPlan(planFor(n), fake);
    expect(result.outcome).toBe("rotated");
    expect(fake.regenerated).toEqual(["key2", "key1"]);
    for (const c of n.consumers) expect(fake.held.get(c.id)).toBe(fake.keys.key2);
  });

  it("never leaves a voting consumer holding a regenerated key (I1)", () => {
    const { n, fake } = estate();
    runPlan(planFor(n), fake);
    expect(fake.deadVoters).toEqual([]);
    expect(fake.deadFollowers).toEqual([]);
  });

  it("limits the workspace's dead-key window to the resync right after a regeneration when the service insists on key1", () => {
    const { n, fake } = estate("key1");
    const result = runPlan(planFor(n), fake);
    expect(result.outcome).toBe("rotated");
    expect(fake.deadVoters).toEqual([]);
    // The workspace and Batch hold the old key1 from its regeneration until the very next step resyncs them.
    expect(fake.deadFollowers).toEqual(["regenerate-key1", "regenerate-key1"]);
  });

  it("waits out the grace period", () => {
    const { n, fake } = estate();
    runPlan(planFor(n, { graceSeconds: 5400 }), fake);
    expect(fake.clockSeconds).toBe(5400);
  });

  it("does not regenerate twice when every activity is replayed after it succeeded (I4)", () => {
    const { n, fake } = estate();
    const result = runPlan(planFor(n), fake, { replay: true });
    expect(result.outcome).toBe("rotated");
    expect(fake.regenerated).toEqual(["key2", "key1"]);
    expect(fake.deadVoters).toEqual([]);
    // Replayed moves find the consumer already on the target and write nothing.
    expect(fake.writes).toHaveLength(3);
  });

  it("normalizes split consumers without ever leaving one on a dead key", () => {
    const { n, fake } = estate("target", (st) => [datastore(st, "straggler", "key2")]);
    const result = runPlan(planFor(n), fake);
    expect(result.outcome).toBe("rotated");
    expect(fake.deadVoters).toEqual([]);
    expect(new Set(n.consumers.map((c) => fake.held.get(c.id)))).toEqual(new Set([fake.keys.key2]));
  });

  it("heals a consumer that held a dead key", () => {
    const { n, fake } = estate("target", (st) => [datastore(st, "broken", "dead")]);
    expect(runPlan(planFor(n), fake).outcome).toBe("rotated");
    expect(fake.held.get(datastore(n.account, "broken").id)).toBe(fake.keys.key2);
  });

  it("stalls before touching the old active key when a consumer does not verify", () => {
    const { n, fake } = estate();
    const victim = datastore(n.account, "ds2").id;
    const result = runPlan(planFor(n), fake, {
      before: (step) => {
        if (step.id === "verify-key2") fake.held.set(victim, fake.keys.key1);
      },
    });
    expect(result).toMatchObject({ outcome: "stalled", completed: ["regenerate-key2", "move-to-key2"] });
    expect(result.reason).toMatch(
      /^datastore ds2: holds key1 \([0-9a-f]{12}\), expected key2 \([0-9a-f]{12}\)$/,
    );
    expect(fake.regenerated).toEqual(["key2"]);
    expect(fake.deadVoters).toEqual([]);
  });

  it("refuses to regenerate the old active key when the new standby changed behind its back", () => {
    const { n, fake } = estate();
    const result = runPlan(planFor(n), fake, {
      before: (step) => {
        if (step.id === "regenerate-key1") fake.regenerateBehindTheBack("key2");
      },
    });
    expect(result.outcome).toBe("failed");
    expect(result.reason).toMatch(/^key2 changed outside keyturn/);
    expect(fake.regenerated).toEqual(["key2"]);
  });

  it("converges when a crashed rotation is resumed from a fresh snapshot", () => {
    const { n, fake } = estate();
    const first = planFor(n);
    // Crash after the standby was regenerated and only the first three consumers moved.
    const move = first.steps.find((s) => s.id === "move-to-key2");
    if (move?.kind !== "moveConsumers") throw new Error("no move step");
    fake.run(first.steps[0] ?? move, {});
    const learned = { "regenerate-key2": fake.fingerprints().key2 };
    fake.run({ ...move, moves: move.moves.slice(0, 3) }, learned);
    expect(fake.deadVoters).toEqual([]);

    const resumed = fake.snapshot(n.account);
    const result = planAccount(node(resumed.account, ...resumed.consumers), {
      ...DEFAULT_PLAN_OPTIONS,
      force: true,
    });
    if (result.action !== "rotate") throw new Error(`expected a plan, got ${result.action}`);
    expect(runPlan(result.plan, fake).outcome).toBe("rotated");
    expect(fake.deadVoters).toEqual([]);
    const finalValues = new Set(n.consumers.map((c) => fake.held.get(c.id)));
    expect(finalValues.size).toBe(1);
    expect([fake.keys.key1, fake.keys.key2]).toContain([...finalValues][0]);
  });

  it("never hands a key value across the activity boundary (I3)", () => {
    const { n, fake } = estate("key1", (st) => [datastore(st, "straggler", "key2")]);
    runPlan(planFor(n), fake, { replay: true });
    const crossed = JSON.stringify(fake.boundary);
    expect(fake.allKeyValues.length).toBeGreaterThanOrEqual(4);
    for (const value of fake.allKeyValues) expect(crossed).not.toContain(value);
  });
});
