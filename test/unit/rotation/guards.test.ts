import {
  evaluateVerification,
  creationTimesUnchanged,
  guardRegeneration,
  resolveKeyTarget,
  type ConsumerObservation,
  type MoveConsumersStep,
  type RegenerateKeyStep,
  type VerifyConsumersStep,
} from "../../../shared/rotation";
import { account, batch, datastore, fp, node, planFor, secret, workspace } from "./builders";

const st = account();
const keys = { key1: st.keys.key1.fingerprint, key2: st.keys.key2.fingerprint };
const newKey2 = fp("fake-new-key2");
const consumers = [workspace(st), batch(st), datastore(st, "ds"), secret(st, "conn")];
const plan = planFor(node(st, ...consumers));
const step = <K extends string>(id: string, kind: K) => {
  const found = plan.steps.find((s) => s.id === id);
  if (found?.kind !== kind) throw new Error(`no ${kind} step ${id}`);
  return found;
};
const regenerateStandby = step("regenerate-key2", "regenerateKey") as RegenerateKeyStep;
const move = step("move-to-key2", "moveConsumers") as MoveConsumersStep;
const verify = step("verify-key2", "verifyConsumers") as VerifyConsumersStep;
const learned = { "regenerate-key2": newKey2 };
const afterFirst = { key1: keys.key1, key2: newKey2 };

describe("resolveKeyTarget", () => {
  it("uses the snapshot fingerprint or the one a regeneration produced", () => {
    expect(resolveKeyTarget(regenerateStandby.keep, {})).toBe(keys.key1);
    expect(resolveKeyTarget(move.to, learned)).toBe(newKey2);
  });

  it("refuses to guess a fingerprint a regeneration has not produced yet", () => {
    expect(() => resolveKeyTarget(move.to, {})).toThrow(
      "no fingerprint for key2 yet: step regenerate-key2 has not completed",
    );
  });
});

describe("guardRegeneration", () => {
  // The key references the state machine hands the regeneration activity.
  const standby = { key: "key2" as const, fingerprint: keys.key2 };
  const active = { key: "key1" as const, fingerprint: keys.key1 };
  const newStandby = { key: "key2" as const, fingerprint: newKey2 };

  it("regenerates a key that still has its snapshot fingerprint", () => {
    expect(guardRegeneration(standby, active, keys)).toEqual({ action: "regenerate" });
  });

  it("does not regenerate a key again after a replay", () => {
    expect(guardRegeneration(standby, active, afterFirst)).toMatchObject({ action: "already-done" });
  });

  it("regenerates the old active key while the new standby is the one consumers verified on", () => {
    expect(guardRegeneration(active, newStandby, afterFirst)).toEqual({ action: "regenerate" });
  });

  it("refuses when the key consumers live on changed outside keyturn", () => {
    const decision = guardRegeneration(active, newStandby, { key1: keys.key1, key2: fp("fake-surprise") });
    expect(decision).toMatchObject({ action: "refuse" });
    expect(decision.action === "refuse" && decision.reason).toMatch(
      /^key2 changed outside keyturn \(expected/,
    );
  });

  it("refuses to regenerate the standby when the active key changed since the snapshot", () => {
    expect(guardRegeneration(standby, active, { key1: fp("fake-surprise"), key2: keys.key2 })).toMatchObject({
      action: "refuse",
    });
  });
});

describe("creationTimesUnchanged", () => {
  const t1 = "2026-11-01T03:00:00.000Z";
  const t2 = "2026-11-02T03:00:00.000Z";
  const standby = { key: "key2" as const, fingerprint: keys.key2, creationTime: t2 };
  const active = { key: "key1" as const, fingerprint: keys.key1, creationTime: t1 };

  it("lets a regeneration go ahead on a read when Azure's creation times are the ones keyturn saw", () => {
    expect(creationTimesUnchanged(standby, active, { key1: t1, key2: t2 })).toBe(true);
  });

  it("falls back to the fingerprints when a key was regenerated since, or a time is unknown", () => {
    expect(creationTimesUnchanged(standby, active, { key1: t1, key2: "2026-12-01T03:00:00.000Z" })).toBe(
      false,
    );
    expect(creationTimesUnchanged(standby, active, { key1: t1 })).toBe(false);
    expect(
      creationTimesUnchanged({ ...standby, creationTime: undefined }, active, { key1: t1, key2: t2 }),
    ).toBe(false);
  });
});

describe("evaluateVerification", () => {
  const [ws, bat, ds, kv] = consumers.map((c) => c.id) as [string, string, string, string];
  const good: ConsumerObservation[] = [
    { consumerId: ws, heldFingerprint: newKey2 },
    { consumerId: bat, keySynced: true },
    { consumerId: ds, heldFingerprint: newKey2, probe: "ok" },
    { consumerId: kv, heldFingerprint: newKey2 },
  ];
  const evaluate = (observations: ConsumerObservation[]) =>
    evaluateVerification(verify, observations, afterFirst, learned);
  const replace = (id: string, o: Omit<ConsumerObservation, "consumerId">) =>
    good.map((g) => (g.consumerId === id ? { consumerId: id, ...o } : g));

  it("counts a consumer deleted during the rotation as gone, not as a failure", () => {
    const observations = good.map((o) => (o.consumerId === ds ? { consumerId: ds, gone: true } : o));
    const verdict = evaluateVerification(verify, observations, afterFirst, learned);
    expect(verdict.ok).toBe(true);
    expect(verdict.gone).toEqual([ds]);
    expect(verdict.verified).not.toContain(ds);
  });

  it("passes when every consumer is on the new key", () => {
    expect(evaluate(good)).toEqual({
      ok: true,
      verified: [ws, bat, ds, kv],
      failures: [],
      warnings: [],
      gone: [],
    });
  });

  it("fails a datastore still on the old key, naming both fingerprints", () => {
    const result = evaluate(replace(ds, { heldFingerprint: keys.key1, probe: "ok" }));
    expect(result.ok).toBe(false);
    expect(result.failures).toEqual([
      {
        consumerId: ds,
        name: "ds",
        kind: "datastore",
        reason: `holds key1 (${keys.key1}), expected key2 (${newKey2})`,
      },
    ]);
  });

  it("fails a datastore the data plane refused", () => {
    expect(evaluate(replace(ds, { heldFingerprint: newKey2, probe: "denied" })).failures[0]?.reason).toBe(
      "the data plane refused key2 (403)",
    );
  });

  it("fails a datastore that was never probed", () => {
    expect(evaluate(replace(ds, { heldFingerprint: newKey2 })).failures[0]?.reason).toBe(
      "the data plane was not probed with key2",
    );
  });

  it("fails a consumer the verification did not report on, or could not read", () => {
    const result = evaluate(
      [...good.filter((g) => g.consumerId !== kv)].map((g) =>
        g.consumerId === ds ? { consumerId: ds, error: "datastore ds was deleted" } : g,
      ),
    );
    expect(result.failures.map((f) => f.reason)).toEqual([
      "datastore ds was deleted",
      "not observed by the verification",
    ]);
  });

  it("accepts a workspace on either live key but warns when it is on the key regenerated next", () => {
    const result = evaluate(replace(ws, { heldFingerprint: keys.key1 }));
    expect(result.ok).toBe(true);
    expect(result.warnings).toEqual([
      {
        consumerId: ws,
        name: "mlw-one",
        kind: "workspace",
        reason: "holds key1, regenerated next: it breaks until the resync that follows",
        // The fact travels as data: the state machine measures the window of the key regenerated next.
        key: "key1",
      },
    ]);
  });

  it("fails a workspace on a dead key", () => {
    expect(evaluate(replace(ws, { heldFingerprint: keys.key2 })).failures[0]?.reason).toBe(
      `holds a dead key (${keys.key2}), not a live key of the account`,
    );
  });

  it("fails a workspace that showed a key at the snapshot and shows none now", () => {
    expect(evaluate(replace(ws, {})).failures[0]?.reason).toBe("holds no key, not a live key of the account");
  });

  it("passes, with a warning, a workspace whose listKeys never showed a storage key", () => {
    const keyless = workspace(st, "mlw-keyless", "nothing");
    const p = planFor(node(st, keyless, datastore(st, "ds")));
    const check = p.steps.find((s): s is VerifyConsumersStep => s.id === "verify-key2");
    if (!check) throw new Error("no verify step");
    const result = evaluateVerification(
      check,
      [
        { consumerId: keyless.id },
        { consumerId: datastore(st, "ds").id, heldFingerprint: newKey2, probe: "ok" },
      ],
      afterFirst,
      learned,
    );
    expect(result).toMatchObject({
      ok: true,
      warnings: [{ name: "mlw-keyless", reason: "listKeys shows no storage key for this workspace" }],
    });
  });

  it("fails a Batch account whose last key sync did not move", () => {
    expect(evaluate(replace(bat, { keySynced: false })).failures[0]?.reason).toBe(
      "autoStorage.lastKeySync did not move after syncAutoStorageKeys",
    );
  });
});
