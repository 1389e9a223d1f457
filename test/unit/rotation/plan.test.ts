import {
  planAccount,
  planViolations,
  type AccountNode,
  type AccountPlan,
  type Consumer,
  type RegenerateKeyStep,
  type VerifyConsumersStep,
} from "../../../shared/rotation";
import {
  DEFAULT_PLAN_OPTIONS,
  NOW,
  account,
  batch,
  datastore,
  identityDatastore,
  keyValues,
  node,
  planFor,
  prng,
  sasDatastore,
  untouchedSasDatastore,
  secret,
  workspace,
  type Holds,
} from "./builders";

const stepIds = (plan: AccountPlan) => plan.steps.map((s) => s.id);
const regenerations = (plan: AccountPlan) =>
  plan.steps.filter((s): s is RegenerateKeyStep => s.kind === "regenerateKey");

function typical() {
  const st = account();
  return node(
    st,
    workspace(st),
    batch(st),
    datastore(st, "workspaceblobstore"),
    datastore(st, "ds2"),
    secret(st, "conn"),
  );
}

describe("planAccount", () => {
  it("regenerates the standby key first", () => {
    const plan = planFor(typical());
    expect(plan.activeKey).toBe("key1");
    expect(regenerations(plan).map((s) => s.key)).toEqual(["key2", "key1"]);
    expect(plan.steps[0]).toMatchObject({ kind: "regenerateKey", key: "key2" });
  });

  it("follows the procedure step by step", () => {
    expect(stepIds(planFor(typical()))).toEqual([
      "regenerate-key2",
      "move-to-key2",
      "verify-key2",
      "grace",
      "regenerate-key1",
      "resync-after-key1",
      "verify-final",
    ]);
  });

  it("regenerates key1 first when consumers are on key2", () => {
    const st = account();
    const plan = planFor(node(st, datastore(st, "ds", "key2")));
    expect(regenerations(plan).map((s) => s.key)).toEqual(["key1", "key2"]);
  });

  it("moves each consumer with the operation its kind needs", () => {
    const move = planFor(typical()).steps.find((s) => s.id === "move-to-key2");
    if (move?.kind !== "moveConsumers") throw new Error("no move step");
    expect(move.moves.map((m) => [m.consumer.name, m.operation])).toEqual([
      ["mlw-one", "resyncKeys"],
      ["batchone", "syncAutoStorageKeys"],
      ["workspaceblobstore", "putDatastore"],
      ["ds2", "putDatastore"],
      ["conn", "setSecretVersion"],
    ]);
    expect(move.to).toEqual({ key: "key2", source: "regenerated", stepId: "regenerate-key2" });
  });

  it("resyncs the service-chosen consumers right after the old active key is regenerated", () => {
    const plan = planFor(typical());
    const index = plan.steps.findIndex((s) => s.id === "regenerate-key1");
    const next = plan.steps[index + 1];
    expect(next?.kind === "moveConsumers" && next.moves.map((m) => m.operation)).toEqual([
      "resyncKeys",
      "syncAutoStorageKeys",
    ]);
  });

  it("needs no resync step when only voting consumers use the account", () => {
    const st = account();
    expect(stepIds(planFor(node(st, datastore(st, "ds"))))).not.toContain("resync-after-key1");
  });

  it("guards each regeneration with the snapshot fingerprints", () => {
    const n = typical();
    const [first, second] = regenerations(planFor(n));
    expect(first).toMatchObject({
      expectFingerprint: n.account.keys.key2.fingerprint,
      keep: { key: "key1", source: "snapshot", fingerprint: n.account.keys.key1.fingerprint },
    });
    expect(second).toMatchObject({
      expectFingerprint: n.account.keys.key1.fingerprint,
      keep: { key: "key2", source: "regenerated", stepId: "regenerate-key2" },
    });
  });

  it("verifies each kind of consumer its own way", () => {
    const verify = planFor(typical()).steps.find((s): s is VerifyConsumersStep => s.id === "verify-key2");
    expect(verify?.checks.map((c) => [c.consumer.kind, c.expect])).toEqual([
      ["workspace", "holdsLiveKey"],
      ["batchAutoStorage", "keySynced"],
      ["datastore", "holdsKey"],
      ["datastore", "holdsKey"],
      ["keyVaultSecret", "holdsKey"],
    ]);
    expect(verify?.nextRegeneration).toBe("key1");
  });

  it("normalizes split consumers to the active key, verifies them and waits before regenerating the standby", () => {
    const st = account();
    const straggler = datastore(st, "straggler", "key2");
    const plan = planFor(node(st, datastore(st, "a"), datastore(st, "b"), straggler), { graceSeconds: 120 });
    expect(stepIds(plan).slice(0, 4)).toEqual([
      "normalize-to-key1",
      "verify-normalized-key1",
      "grace-normalized",
      "regenerate-key2",
    ]);
    const [normalize, verify, grace] = plan.steps;
    expect(normalize).toMatchObject({ to: { key: "key1", source: "snapshot" } });
    expect(normalize?.kind === "moveConsumers" && normalize.moves.map((m) => m.consumer.id)).toEqual([
      straggler.id,
    ]);
    expect(verify?.kind === "verifyConsumers" && verify.checks.map((c) => c.consumer.id)).toEqual([
      straggler.id,
    ]);
    expect(grace).toMatchObject({ kind: "grace", seconds: 120 });
  });

  it("heals a consumer holding neither key, and says so", () => {
    const st = account();
    const dead = datastore(st, "dead", "dead");
    const plan = planFor(node(st, dead, datastore(st, "ok")));
    const move = plan.steps.find((s) => s.id === "move-to-key2");
    expect(move?.kind === "moveConsumers" && move.moves.map((m) => [m.consumer.name, m.heals])).toEqual([
      ["dead", true],
      ["ok", false],
    ]);
  });

  it("re-signs SAS datastores as it moves datastores, and reports the SAS and identity-based ones it leaves", () => {
    const st = account();
    const plan = planFor(
      node(
        st,
        datastore(st, "ds"),
        sasDatastore(st, "sas-standby", "key2"),
        untouchedSasDatastore(st, "sas-delegated"),
        identityDatastore(st, "mi"),
      ),
    );
    const touched = plan.steps.flatMap((s) =>
      s.kind === "moveConsumers"
        ? s.moves.map((m) => `${m.operation} ${m.consumer.name}`)
        : s.kind === "verifyConsumers"
          ? s.checks.map((c) => `${c.expect} ${c.consumer.name}`)
          : [],
    );
    expect(touched).toEqual(expect.arrayContaining(["resignSas sas-standby", "holdsKey sas-standby"]));
    expect(touched.filter((t) => t.endsWith("sas-delegated") || t.endsWith(" mi"))).toEqual([]);
    expect(plan.notes.map((n) => [n.name, n.reason])).toEqual([
      ["sas-delegated", "a user delegation SAS: signed with an Entra ID delegation key"],
      ["mi", "identity-based access: not affected by key rotation"],
    ]);
  });

  it("uses the configured grace period", () => {
    expect(planFor(typical(), { graceSeconds: 0 }).steps.find((s) => s.kind === "grace")).toMatchObject({
      seconds: 0,
    });
  });

  it("skips an account tagged keyturn:skip", () => {
    const st = account("stskip", { tags: { "keyturn:skip": "true" } });
    expect(planAccount(node(st, datastore(st, "ds")), DEFAULT_PLAN_OPTIONS)).toMatchObject({
      action: "skip",
      code: "opted-out",
      consumers: [{ name: "ds" }],
    });
  });

  it("skips a key that is too young unless forced, and notes the force", () => {
    const st = account("st", { key1Created: "2025-05-31T00:00:00Z" });
    const n = node(st, datastore(st, "ds"));
    expect(planAccount(n, DEFAULT_PLAN_OPTIONS)).toMatchObject({ action: "skip", code: "too-young" });
    expect(planFor(n, { force: true }).policyNotes).toEqual([
      "forced: the active key key1 is 1 day old (minimum 20)",
    ]);
  });

  describe("a rerun while the keys are too young to rotate", () => {
    const young = () => account("styoung", { key1Created: "2025-05-31T00:00:00Z" });

    it("heals consumers on a dead key or on the standby key, and services holding a dead key, regenerating nothing", () => {
      const st = young();
      const n = node(
        st,
        datastore(st, "fine", "key1"),
        datastore(st, "dead", "dead"),
        datastore(st, "split", "key2"),
        workspace(st, "mlw-one", "dead"),
      );
      const result = planAccount(n, DEFAULT_PLAN_OPTIONS);
      if (result.action !== "rotate") throw new Error(`expected a heal plan, got ${result.action}`);
      const plan = result.plan;
      expect(plan.heal).toEqual({
        code: "too-young",
        reason: "the active key key1 is 1 day old (minimum 20); force to rotate anyway",
      });
      expect(stepIds(plan)).toEqual([
        "heal-to-key1",
        "verify-heal-key1",
        "resync-heal-to-key1",
        "verify-resync-heal-key1",
      ]);
      expect(regenerations(plan)).toEqual([]);
      const moved = plan.steps.flatMap((s) =>
        s.kind === "moveConsumers" ? s.moves.map((m) => m.consumer.name) : [],
      );
      expect(moved).toEqual(["dead", "split", "mlw-one"]);
      expect(planViolations(plan)).toEqual([]);
    });

    it("skips as before when every consumer holds the active key", () => {
      const st = young();
      expect(planAccount(node(st, datastore(st, "fine"), workspace(st)), DEFAULT_PLAN_OPTIONS)).toMatchObject(
        {
          action: "skip",
          code: "too-young",
        },
      );
    });

    it("does not heal an account its owner opted out", () => {
      const st = account("stskip", { key1Created: "2025-05-31T00:00:00Z", tags: { "keyturn:skip": "true" } });
      expect(planAccount(node(st, datastore(st, "dead", "dead")), DEFAULT_PLAN_OPTIONS)).toMatchObject({
        action: "skip",
        code: "opted-out",
      });
    });
  });

  it("needs no rotation for an account with shared-key access disabled, whatever holds its keys", () => {
    const st = {
      ...account("stnokeys", { tags: { "keyturn:skip": "true" } }),
      sharedKeyAccessDisabled: true as const,
    };
    expect(
      planAccount(node(st, datastore(st, "ds")), { ...DEFAULT_PLAN_OPTIONS, force: true }),
    ).toMatchObject({
      action: "skip",
      code: "shared-key-disabled",
      reason: expect.stringContaining("allowSharedKeyAccess: false") as string,
    });
  });

  it("warns when the grace is shorter than the key caching known for a consumer kind", () => {
    const st = account();
    const plan = planFor(node(st, workspace(st), secret(st, "a"), secret(st, "b"), datastore(st, "ds")), {
      graceSeconds: 30,
    });
    expect(plan.policyNotes).toEqual([
      "the grace (30s) is shorter than the 1h a workspace consumer may keep the old key: a workspace takes a new key by itself only after about an hour, and its jobs keep the key they started with",
      "the grace (30s) is shorter than the 24h 2 keyVaultSecret consumers may keep the old key: App Service and Functions Key Vault references refresh every 24 hours",
    ]);
    const long = planFor(node(st, workspace(st), secret(st, "a")), { graceSeconds: 86_400 });
    expect(long.policyNotes).toEqual([]);
  });

  it("fails an account whose two keys have the same fingerprint", () => {
    const st = account();
    const same = { ...st, keys: { key1: st.keys.key1, key2: st.keys.key1 } };
    expect(planAccount(node(same, datastore(same, "ds")), DEFAULT_PLAN_OPTIONS)).toMatchObject({
      action: "fail",
      reason: expect.stringContaining("same fingerprint") as string,
    });
  });

  it("skips an opted-out account even when its snapshot is unusable", () => {
    const st = account("stskip", { tags: { "keyturn:skip": "yes" } });
    const same = { ...st, keys: { key1: st.keys.key1, key2: st.keys.key1 } };
    expect(planAccount(node(same, datastore(same, "ds")), DEFAULT_PLAN_OPTIONS)).toMatchObject({
      action: "skip",
    });
  });

  it("is plain JSON that survives orchestration state unchanged", () => {
    const plan = planFor(typical());
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });

  it("is deterministic: the same graph always gives the same plan", () => {
    const n = typical();
    expect(planFor(n)).toEqual(planFor(structuredClone(n)));
  });

  it("never carries a key value, only fingerprints", () => {
    const n = typical();
    const json = JSON.stringify(planAccount(n, { now: NOW, graceSeconds: 60 }));
    const values = keyValues.get(n.account.id);
    expect(values).toBeDefined();
    for (const value of Object.values(values ?? {})) expect(json).not.toContain(value);
  });
});

describe("invariant I2: never both keys", () => {
  const HOLDS: Holds[] = ["key1", "key2", "dead", "nothing"];

  function randomNode(seed: number): AccountNode {
    const random = prng(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const st = account(`st${seed}`, {
      key1Created: pick([undefined, "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"]),
      key2Created: pick([undefined, "2024-06-01T00:00:00Z"]),
    });
    const consumers: Consumer[] = [];
    const count = 1 + Math.floor(random() * 8);
    for (let i = 0; i < count; i++) {
      const kind = pick([
        "datastore",
        "secret",
        "workspace",
        "batch",
        "sas",
        "untouchedSas",
        "identity",
      ] as const);
      const holds = pick(HOLDS);
      if (kind === "datastore") consumers.push(datastore(st, `ds${i}`, holds));
      if (kind === "secret") consumers.push(secret(st, `s${i}`, holds));
      if (kind === "workspace") consumers.push(workspace(st, `mlw-${i}`, holds));
      if (kind === "batch") consumers.push(batch(st, `batch${i}`));
      if (kind === "sas") consumers.push(sasDatastore(st, `sas${i}`, holds));
      if (kind === "untouchedSas") consumers.push(untouchedSasDatastore(st, `usas${i}`));
      if (kind === "identity") consumers.push(identityDatastore(st, `mi${i}`));
    }
    return node(st, ...consumers);
  }

  const plans = Array.from({ length: 300 }, (_, i) =>
    planAccount(randomNode(i + 1), { ...DEFAULT_PLAN_OPTIONS, force: true }),
  ).flatMap((r) => (r.action === "rotate" ? [r.plan] : []));

  it("has generated enough rotatable estates to mean something", () => {
    expect(plans.length).toBeGreaterThan(200);
  });

  it("regenerates exactly one key per step, each key once, the standby first", () => {
    for (const plan of plans) {
      expect(regenerations(plan).map((s) => s.key)).toEqual([plan.standbyKey, plan.activeKey]);
    }
  });

  it("regenerates the old active key only after every consumer with a key verified on the other one", () => {
    for (const plan of plans) {
      const first = plan.steps.findIndex((s) => s.kind === "regenerateKey");
      const second = plan.steps.findIndex((s, i) => i > first && s.kind === "regenerateKey");
      const verified = new Set(
        plan.steps
          .slice(first + 1, second)
          .flatMap((s) => (s.kind === "verifyConsumers" && s.on.key === plan.standbyKey ? s.checks : []))
          .map((c) => c.consumer.id),
      );
      const keyed = plan.decision.holdings.filter(
        (h) => !["untouchedSasDatastore", "identityDatastore"].includes(h.kind),
      );
      expect(keyed.filter((h) => !verified.has(h.id))).toEqual([]);
    }
  });

  it("waits out the grace period between the last verification and the second regeneration", () => {
    for (const plan of plans) {
      const second = plan.steps.map((s) => s.kind).lastIndexOf("regenerateKey");
      expect(plan.steps[second - 1]).toMatchObject({ kind: "grace", seconds: 3600 });
      expect(plan.steps[second - 2]?.kind).toBe("verifyConsumers");
    }
  });

  it("moves every consumer on the standby key off it before the standby is regenerated", () => {
    for (const plan of plans) {
      const first = plan.steps.findIndex((s) => s.kind === "regenerateKey");
      const normalized = plan.steps
        .slice(0, first)
        .flatMap((s) => (s.kind === "verifyConsumers" ? s.checks.map((c) => c.consumer.id) : []));
      // Voters are normalized; service-chosen consumers on the standby are resynced first.
      const followersOnStandby = plan.decision.holdings
        .filter((h) => ["workspace", "batchAutoStorage"].includes(h.kind) && h.holds === plan.standbyKey)
        .map((h) => h.id);
      expect(normalized.sort()).toEqual([...plan.decision.normalize, ...followersOnStandby].sort());
    }
  });

  it("finds no violations in any generated plan", () => {
    for (const plan of plans) expect(planViolations(plan)).toEqual([]);
  });
});

describe("planViolations", () => {
  const plan = () => planFor(typical());
  const without = (p: AccountPlan, id: string): AccountPlan => ({
    ...p,
    steps: p.steps.filter((s) => s.id !== id),
  });

  it("catches both keys regenerated back to back", () => {
    const p = plan();
    const [first, second] = regenerations(p);
    if (!first || !second) throw new Error("expected two regenerations");
    const bad = { ...p, steps: [first, second, ...p.steps.filter((s) => s.kind !== "regenerateKey")] };
    expect(planViolations(bad)).toEqual(
      expect.arrayContaining(["datastore ds2 is not verified on key2 before regenerate-key1"]),
    );
  });

  it("catches a missing grace period", () => {
    expect(planViolations(without(plan(), "grace"))).toEqual([
      "no grace period between verification and regenerate-key1",
    ]);
  });

  it("catches a consumer left out of verification", () => {
    const p = plan();
    const steps = p.steps.map((s) =>
      s.id === "verify-key2" && s.kind === "verifyConsumers" ? { ...s, checks: s.checks.slice(1) } : s,
    );
    expect(planViolations({ ...p, steps })).toEqual([
      "workspace mlw-one is not verified on key2 before regenerate-key1",
    ]);
  });

  it("catches the same key regenerated twice and a wrong compare-and-swap baseline", () => {
    const p = plan();
    const steps = p.steps.map((s) =>
      s.id === "regenerate-key1" && s.kind === "regenerateKey"
        ? { ...s, key: "key2" as const, expectFingerprint: "0" }
        : s,
    );
    expect(planViolations({ ...p, steps })).toEqual(
      expect.arrayContaining([
        "the second regeneration is key2, not the active key",
        "both regenerations are of key2",
        "regenerate-key1 is not guarded by the snapshot fingerprint",
      ]),
    );
  });

  it("catches a plan with one regeneration", () => {
    expect(planViolations(without(plan(), "regenerate-key1"))).toEqual([
      "expected exactly two regenerations, found 1",
    ]);
  });

  it("catches a missing normalization", () => {
    const st = account();
    const p = planFor(node(st, datastore(st, "a"), datastore(st, "b"), datastore(st, "c", "key2")));
    expect(planViolations(without(p, "verify-normalized-key1"))).toEqual([
      `consumer ${datastore(st, "c").id} on the standby key is not normalized before regenerate-key2`,
    ]);
  });
});
