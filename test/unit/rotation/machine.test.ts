import {
  MAX_LATE_ROUNDS,
  describeCommand,
  next,
  startAccount,
  type AccountExecution,
  type AccountPlan,
  type AccountState,
  type Command,
  type CommandResult,
  type ConsumerObservation,
  type Fingerprint,
  type KeyName,
  type LateDatastore,
  type MoveAndVerifyResult,
  type VerifiedDatastore,
} from "../../../shared/rotation";
import { LONG_AGO, NOW, account, batch, datastore, fp, node, planFor, secret, workspace } from "./builders";

/**
 * The per-account state machine driven by hand-made results: no fake estate, no I/O. The machine only
 * ever sees fingerprints, so the keys here are fingerprints of made-up names, never key values.
 */

const T0 = Date.parse(NOW);
const VERIFIED_AT = "2025-06-01T03:00:30.000Z";
const iso = (ms: number) => new Date(ms).toISOString();

function typical() {
  const st = account();
  const ws = workspace(st);
  const bt = batch(st);
  const blob = datastore(st, "workspaceblobstore");
  const ds2 = datastore(st, "ds2");
  const conn = secret(st, "conn");
  return { st, ws, bt, blob, ds2, conn, plan: planFor(node(st, ws, bt, blob, ds2, conn)) };
}

/** Answers every command as if all went well; the keys it hands out are fingerprints only. */
class Script {
  readonly keys: Record<KeyName, Fingerprint>;
  private regenerations = 0;

  constructor(plan: AccountPlan) {
    this.keys = { key1: plan.keys.key1.fingerprint, key2: plan.keys.key2.fingerprint };
  }

  ok(command: Command, now: number): CommandResult {
    switch (command.kind) {
      case "regenerate": {
        const key = command.expect.key;
        this.keys[key] = fp(`regenerated ${key} #${++this.regenerations}`);
        return {
          kind: "regenerate",
          out: {
            decision: "regenerate",
            keys: { ...this.keys },
            creationTimes: { [key]: iso(now) },
            armCalls: 2,
          },
        };
      }
      case "findLateDatastores":
        return { kind: "findLateDatastores", out: { datastores: [], armCalls: 1 } };
      case "moveAndVerify": {
        const to = command.to.fingerprint;
        const verified: Record<string, VerifiedDatastore> = {};
        const observations = command.verify.checks.map(({ consumer, expect }): ConsumerObservation => {
          const before = command.verified[consumer.id];
          if (before && before.fingerprint === to)
            return { consumerId: consumer.id, heldFingerprint: to, probe: "unchanged" };
          if (consumer.kind === "datastore")
            verified[consumer.id] = { modifiedAt: VERIFIED_AT, fingerprint: to };
          if (expect === "holdsKey") return { consumerId: consumer.id, heldFingerprint: to, probe: "ok" };
          if (expect === "holdsLiveKey") return { consumerId: consumer.id, heldFingerprint: to };
          return { consumerId: consumer.id, keySynced: true };
        });
        const out: MoveAndVerifyResult = {
          moves: command.moves.map((m) => ({ consumerId: m.consumer.id })),
          observations,
          current: { ...this.keys },
          verified,
          armCalls: 3,
        };
        return { kind: "moveAndVerify", out };
      }
      case "wait":
        return { kind: "wait" };
      case "finish":
        throw new Error("finish is not executed");
    }
  }
}

interface DriveOptions {
  /** Replaces the result of a command; `ok` is what the script would answer. */
  respond?: (command: Command, ok: CommandResult, script: Script) => CommandResult;
  /** How long a command's activity takes, in ms (default 1 s). */
  took?: (command: Command) => number;
}

interface Drive {
  commands: Command[];
  execution: AccountExecution;
  script: Script;
  /** Every call made to `next`, to replay it. */
  calls: { state: AccountState; result: CommandResult | undefined; now: number }[];
}

/** The orchestrator's loop with a scripted world: start, answer each command, until finish. */
function drive(plan: AccountPlan, options: DriveOptions = {}): Drive {
  const script = new Script(plan);
  let now = T0;
  let state = startAccount(plan, now);
  let result: CommandResult | undefined;
  const commands: Command[] = [];
  const calls: Drive["calls"] = [];
  for (;;) {
    calls.push({ state, result, now });
    const decided = next(state, result, now);
    state = decided.state;
    const command = decided.command;
    commands.push(command);
    if (command.kind === "finish") return { commands, execution: command.execution, script, calls };
    if (commands.length > 50) throw new Error("no finish after 50 commands");
    now = command.kind === "wait" ? command.until : now + (options.took?.(command) ?? 1000);
    const ok = script.ok(command, now);
    result = options.respond ? options.respond(command, ok, script) : ok;
  }
}

/** A command in a few words, to compare sequences. */
function summary(command: Command): string {
  switch (command.kind) {
    case "regenerate":
      return `regenerate ${command.expect.key}`;
    case "moveAndVerify":
      // Before a grace the moves run alone and the verification runs inside the grace.
      return command.moves.length > 0 && command.checks.length === 0
        ? `move ${command.stepId}`
        : command.moves.length === 0 && command.stepId !== command.verify.id && command.checks.length > 0
          ? `verify ${command.verify.id}`
          : `moveAndVerify ${command.stepId} + ${command.verify.id}`;
    case "wait":
      return `wait ${command.stepId}`;
    case "findLateDatastores":
      return "findLateDatastores";
    case "finish":
      return `finish ${command.execution.outcome}`;
  }
}

/** The outages keyturn measured, without Batch's possible windows (it cannot tell which key Batch holds). */
const measured = (execution: AccountExecution) => (execution.outages ?? []).filter((o) => !o.possible);

const named = (command: Command, name: string) => describeCommand(command) === name;

const regenerated = (commands: Command[]) =>
  commands.flatMap((c) => (c.kind === "regenerate" ? [c.expect.key] : []));

function withObservation(
  result: CommandResult,
  consumerId: string,
  observation: Omit<ConsumerObservation, "consumerId">,
): CommandResult {
  if (result.kind !== "moveAndVerify") throw new Error(`not a moveAndVerify result: ${result.kind}`);
  const observations = result.out.observations.map((o) =>
    o.consumerId === consumerId ? { consumerId, ...observation } : o,
  );
  return { kind: "moveAndVerify", out: { ...result.out, observations } };
}

function withMoveError(result: CommandResult, consumerId: string, error: string): CommandResult {
  if (result.kind !== "moveAndVerify") throw new Error(`not a moveAndVerify result: ${result.kind}`);
  const moves = result.out.moves.map((m) => (m.consumerId === consumerId ? { consumerId, error } : m));
  return { kind: "moveAndVerify", out: { ...result.out, moves, observations: [], verified: {} } };
}

const late = (d: Partial<LateDatastore> & Pick<LateDatastore, "name">): CommandResult => ({
  kind: "findLateDatastores",
  out: { datastores: [{ id: `late/${d.name}`, changed: false, ...d }], armCalls: 2 },
});

describe("the account state machine", () => {
  describe("a clean run", () => {
    it("regenerates the standby, moves and verifies, waits, looks for late datastores, regenerates the old active key, resyncs and verifies, and finishes rotated", () => {
      const { plan } = typical();
      const { commands, execution } = drive(plan);
      expect(commands.map(summary)).toEqual([
        "regenerate key2",
        "move move-to-key2",
        "verify verify-key2",
        "wait grace",
        "findLateDatastores",
        "regenerate key1",
        "moveAndVerify resync-after-key1 + verify-final",
        "finish rotated",
      ]);
      expect(execution).toMatchObject({ outcome: "rotated", keysRegenerated: ["key2", "key1"] });
      expect(measured(execution)).toEqual([]);
    });

    it("reports Batch's possible window after each regeneration, from the regeneration to its sync: Batch does not say which key it holds", () => {
      const { plan, bt } = typical();
      const { execution } = drive(plan, {
        took: (command) => (command.kind === "moveAndVerify" && command.moves.length > 0 ? 7_000 : 1000),
      });
      expect(execution.outages).toEqual([
        expect.objectContaining({
          consumerId: bt.id,
          kind: "batchAutoStorage",
          durationMs: 7_000,
          possible: true,
        }),
        expect.objectContaining({
          consumerId: bt.id,
          kind: "batchAutoStorage",
          durationMs: 7_000,
          possible: true,
        }),
      ]);
      expect((execution.outages ?? []).map((o) => o.reason)).toEqual([
        expect.stringContaining("if its last sync picked key2"),
        expect.stringContaining("if its last sync picked key1"),
      ]);
    });

    it("guards each regeneration with the key it kills and the key consumers live on", () => {
      const { plan } = typical();
      const { commands, script } = drive(plan);
      const [standby, active] = commands.filter((c) => c.kind === "regenerate");
      expect(standby).toMatchObject({
        expect: { key: "key2", fingerprint: plan.keys.key2.fingerprint, creationTime: LONG_AGO },
        keep: { key: "key1", fingerprint: plan.keys.key1.fingerprint, creationTime: LONG_AGO },
      });
      // The old active key is regenerated only while key2 is the key the first regeneration produced.
      expect(active).toMatchObject({
        expect: { key: "key1", fingerprint: plan.keys.key1.fingerprint, creationTime: LONG_AGO },
        keep: { key: "key2", fingerprint: script.keys.key2, creationTime: iso(T0 + 1000) },
      });
    });

    it("moves every consumer to the key the standby's regeneration produced and reports it as the new active key", () => {
      const { plan, ws, bt, blob, ds2, conn } = typical();
      const { commands, execution, script } = drive(plan);
      const moves = commands.filter((c) => c.kind === "moveAndVerify");
      for (const m of moves) expect(m.to).toMatchObject({ key: "key2", fingerprint: script.keys.key2 });
      expect(execution.activeKeyAfter).toEqual({ key: "key2", fingerprint: script.keys.key2 });
      for (const c of [ws, bt, blob, ds2, conn])
        expect(execution.consumerActions?.[c.id]).toEqual({ action: "updated" });
    });

    it("moves consumers whose key keyturn writes before those whose key a service picks", () => {
      const { plan } = typical();
      const { commands } = drive(plan);
      const moved = commands.flatMap((c) =>
        c.kind === "moveAndVerify" ? [c.moves.map((m) => m.consumer.name)] : [],
      );
      expect(moved).toEqual([
        ["workspaceblobstore", "ds2", "conn", "mlw-one", "batchone"],
        [], // the verification, inside the grace
        ["mlw-one", "batchone"],
      ]);
    });

    it("normalizes split consumers, with a grace of their own, before regenerating the standby", () => {
      const st = account();
      const plan = planFor(
        node(st, datastore(st, "a"), datastore(st, "b"), datastore(st, "straggler", "key2")),
      );
      const { commands, execution } = drive(plan);
      expect(commands.map(summary)).toEqual([
        "move normalize-to-key1",
        "verify verify-normalized-key1",
        "wait grace-normalized",
        "findLateDatastores",
        "regenerate key2",
        "move move-to-key2",
        "verify verify-key2",
        "wait grace",
        "findLateDatastores",
        "regenerate key1",
        "moveAndVerify verify-final + verify-final",
        "finish rotated",
      ]);
      expect(execution.outcome).toBe("rotated");
    });

    it("skips a grace of zero seconds", () => {
      const { st, ws, ds2 } = typical();
      const { commands } = drive(planFor(node(st, ws, ds2), { graceSeconds: 0 }));
      expect(commands.map((c) => c.kind)).not.toContain("wait");
      expect(commands.map(summary).slice(1, 4)).toEqual([
        "moveAndVerify move-to-key2 + verify-key2",
        "findLateDatastores",
        "regenerate key1",
      ]);
    });
  });

  describe("stalled or failed", () => {
    const failing = "ARM answered 503 until the deadline";

    it.each([
      ["regenerate-key2", []],
      ["move-to-key2", ["key2"]],
      ["find-late-datastores", ["key2"]],
    ])(
      "stalls, with the old key still valid and no further regeneration, when %s fails for good",
      (name, keysRegenerated) => {
        const { plan } = typical();
        const { commands, execution } = drive(plan, {
          respond: (command, ok) => (named(command, name) ? { kind: "error", reason: failing } : ok),
        });
        expect(execution.outcome).toBe("stalled");
        expect(execution.reason).toContain(failing);
        expect(execution.keysRegenerated).toEqual(keysRegenerated);
        expect(regenerated(commands)).not.toContain("key1");
        // The failed command is the last one before finish.
        expect(commands.map(describeCommand).slice(-2)).toEqual([name, "done"]);
      },
    );

    it("fails when an activity fails for good after the old active key was regenerated", () => {
      const { plan } = typical();
      const { execution } = drive(plan, {
        respond: (command, ok) =>
          named(command, "resync-after-key1") ? { kind: "error", reason: failing } : ok,
      });
      expect(execution).toMatchObject({
        outcome: "failed",
        reason: `after regenerating the old active key, ${failing}`,
        keysRegenerated: ["key2", "key1"],
      });
    });

    it("does not claim the old active key is still valid when its own regeneration failed for good (it may have happened)", () => {
      // Known bug (see the report): a regenerateKey activity can fail after Azure regenerated the key (the
      // POST's answer lost, or the getProperties read after it failing until the deadline). The machine
      // then reports "stalled ... still valid" although key1 may be dead and the workspace not resynced.
      const { plan } = typical();
      const { execution } = drive(plan, {
        respond: (command, ok) =>
          named(command, "regenerate-key1") ? { kind: "error", reason: failing } : ok,
      });
      expect(execution.outcome).toBe("failed");
      expect(execution.reason).not.toContain("still valid");
    });

    it.each(["regenerate-key2", "regenerate-key1"])(
      "fails, and regenerates nothing more, when %s is refused",
      (name) => {
        const { plan } = typical();
        const reason = "key1 changed outside keyturn (expected aaaa, found bbbb); not regenerating key2";
        const { commands, execution } = drive(plan, {
          respond: (command, ok, script) =>
            named(command, name)
              ? {
                  kind: "regenerate",
                  out: {
                    decision: "refuse",
                    reason,
                    keys: { ...script.keys },
                    creationTimes: {},
                    armCalls: 2,
                  },
                }
              : ok,
        });
        expect(execution).toMatchObject({ outcome: "failed", reason });
        expect(commands.at(-2)).toMatchObject({ kind: "regenerate", step: { id: name } });
        expect(execution.keysRegenerated).toEqual(name === "regenerate-key2" ? [] : ["key2"]);
      },
    );

    it("stalls when a consumer cannot be moved to the new standby, naming it", () => {
      const { plan, ds2 } = typical();
      const { commands, execution } = drive(plan, {
        respond: (command, ok) =>
          named(command, "move-to-key2") ? withMoveError(ok, ds2.id, "the PUT was rejected (400)") : ok,
      });
      expect(execution).toMatchObject({
        outcome: "stalled",
        reason:
          "stopped while the old key is still valid: could not move ds2 (datastore): the PUT was rejected (400)",
      });
      expect(execution.consumerActions?.[ds2.id]).toEqual({
        action: "skipped",
        reason: "could not be moved: the PUT was rejected (400)",
      });
      expect(regenerated(commands)).toEqual(["key2"]);
    });

    it("fails when a consumer cannot be moved after the old active key was regenerated, naming it", () => {
      const { plan, ws } = typical();
      const { execution } = drive(plan, {
        respond: (command, ok) =>
          named(command, "resync-after-key1") ? withMoveError(ok, ws.id, "resync timed out") : ok,
      });
      expect(execution).toMatchObject({
        outcome: "failed",
        reason: "after regenerating the old active key, could not move mlw-one (workspace): resync timed out",
      });
    });

    it("counts a move the activity did not report on as not moved", () => {
      const { plan, conn } = typical();
      const { execution } = drive(plan, {
        respond: (command, ok) => {
          if (!named(command, "move-to-key2") || ok.kind !== "moveAndVerify") return ok;
          return { ...ok, out: { ...ok.out, moves: ok.out.moves.filter((m) => m.consumerId !== conn.id) } };
        },
      });
      expect(execution).toMatchObject({
        outcome: "stalled",
        reason: "stopped while the old key is still valid: could not move conn (keyVaultSecret): not moved",
      });
    });

    it("stalls before the old active key is regenerated when a consumer does not verify, naming it and both keys", () => {
      const { plan, ds2 } = typical();
      const { commands, execution, script } = drive(plan, {
        respond: (command, ok) =>
          named(command, "move-to-key2")
            ? withObservation(ok, ds2.id, { heldFingerprint: plan.keys.key1.fingerprint, probe: "ok" })
            : ok,
      });
      const reason = `ds2 (datastore): holds key1 (${plan.keys.key1.fingerprint}), expected key2 (${script.keys.key2})`;
      expect(execution).toMatchObject({
        outcome: "stalled",
        reason: `stopped before regenerating key1, which is still valid: ${reason}`,
      });
      expect(execution.consumerActions?.[ds2.id]).toMatchObject({ action: "skipped" });
      expect(regenerated(commands)).toEqual(["key2"]);
    });

    it("fails when a consumer does not verify after the old active key was regenerated, naming it", () => {
      const { plan, ws } = typical();
      const { execution } = drive(plan, {
        respond: (command, ok) =>
          named(command, "resync-after-key1")
            ? withObservation(ok, ws.id, { error: "listKeys answered 500" })
            : ok,
      });
      expect(execution).toMatchObject({
        outcome: "failed",
        reason: "after regenerating the old active key, mlw-one (workspace): listKeys answered 500",
      });
    });

    it("does not fail a Key Vault secret it verified before the grace and cannot read again afterwards", () => {
      const { plan, conn } = typical();
      const { execution } = drive(plan, {
        respond: (command, ok) =>
          named(command, "resync-after-key1")
            ? withObservation(ok, conn.id, {
                error: "secrets.getSecret failed (503): the vault is unavailable",
              })
            : ok,
      });
      expect(execution.outcome).toBe("rotated");
      expect(execution.consumerActions?.[conn.id]).toEqual({
        action: "updated",
        reason:
          "verified on key2 before the grace; not re-checked after the old active key was regenerated: secrets.getSecret failed (503): the vault is unavailable",
      });
    });

    it("reports a datastore deleted before its move as gone, not as a failed move, and goes on", () => {
      const { plan, ds2 } = typical();
      const { execution } = drive(plan, {
        respond: (command, ok) => {
          if (command.kind !== "moveAndVerify" || ok.kind !== "moveAndVerify") return ok;
          const moves = ok.out.moves.map((m) =>
            m.consumerId === ds2.id ? { consumerId: ds2.id, gone: true as const } : m,
          );
          const observations = ok.out.observations.map((o) =>
            o.consumerId === ds2.id ? { consumerId: ds2.id, gone: true } : o,
          );
          return { kind: "moveAndVerify", out: { ...ok.out, moves, observations } };
        },
      });
      expect(execution.outcome).toBe("rotated");
      expect(execution.consumerActions?.[ds2.id]?.action).toBe("gone");
    });

    it("heals at once a datastore found on the dead key after the old active key was regenerated, and reports its window", () => {
      const { plan, blob } = typical();
      const { commands, execution } = drive(plan, {
        respond: (command, ok) =>
          named(command, "resync-after-key1")
            ? withObservation(ok, blob.id, { heldFingerprint: plan.keys.key1.fingerprint })
            : ok,
        took: (command) =>
          command.kind === "moveAndVerify" && command.stepId === "heal-to-key2" ? 3_000 : 1000,
      });
      const heal = commands.find((c) => c.kind === "moveAndVerify" && c.stepId === "heal-to-key2");
      if (heal?.kind !== "moveAndVerify") throw new Error("no heal");
      expect(heal.moves.map((m) => [m.consumer.id, m.operation])).toEqual([[blob.id, "putDatastore"]]);
      expect(heal.checks.map((c) => c.consumer.id)).toEqual([blob.id]);
      expect(execution.outcome).toBe("rotated");
      expect(execution.consumerActions?.[blob.id]?.action).toBe("healed");
      // From the regeneration of key1 (then 1 s of resync) to the end of the heal (3 s).
      expect(measured(execution)).toEqual([
        expect.objectContaining({ consumerId: blob.id, kind: "datastore", durationMs: 4_000 }),
      ]);
      expect(regenerated(commands)).toEqual(["key2", "key1"]);
    });

    it("fails, naming the datastore, when one found on the dead key cannot be healed", () => {
      const { plan, blob } = typical();
      const { execution } = drive(plan, {
        respond: (command, ok) =>
          named(command, "resync-after-key1") ||
          (command.kind === "moveAndVerify" && command.stepId === "heal-to-key2")
            ? withObservation(ok, blob.id, { heldFingerprint: plan.keys.key1.fingerprint })
            : ok,
      });
      expect(execution.outcome).toBe("failed");
      expect(execution.reason).toContain("could not be healed: workspaceblobstore: still not on key2");
    });
  });

  describe("the window of a consumer whose key a service picks", () => {
    const heldKey = "holds key1, regenerated next: it breaks until the resync that follows";

    it("measures the workspace's outage from the regeneration of the key it was left on to the resync that moves it", () => {
      const { plan, ws } = typical();
      const { commands, execution } = drive(plan, {
        // The service insisted on key1 at the resync: verification warns about key1, regenerated next.
        respond: (command, ok, script) =>
          named(command, "move-to-key2")
            ? withObservation(ok, ws.id, { heldFingerprint: script.keys.key1 })
            : ok,
        took: (command) => (named(command, "resync-after-key1") ? 42_000 : 1000),
      });
      expect(commands.map(summary)).toContain("wait grace");
      expect(execution.outcome).toBe("rotated");
      expect(measured(execution)).toEqual([
        { consumerId: ws.id, name: "mlw-one", kind: "workspace", durationMs: 42_000, reason: heldKey },
      ]);
    });

    it("reports a window still open when the resync after the regeneration fails, with how long it lasted so far", () => {
      const { plan, ws } = typical();
      const { execution } = drive(plan, {
        respond: (command, ok, script) =>
          named(command, "move-to-key2")
            ? withObservation(ok, ws.id, { heldFingerprint: script.keys.key1 })
            : named(command, "resync-after-key1")
              ? withMoveError(ok, ws.id, "resyncKeys ended Failed")
              : ok,
        took: (command) => (named(command, "resync-after-key1") ? 7_000 : 1000),
      });
      expect(execution.outcome).toBe("failed");
      expect(measured(execution)).toEqual([
        expect.objectContaining({
          consumerId: ws.id,
          durationMs: 7_000,
          reason: expect.stringContaining("still open when keyturn stopped") as string,
        }),
      ]);
    });

    it("counts the window from the moment the key was regenerated, not from when the new key began to work", () => {
      const { plan, ws } = typical();
      const { execution } = drive(plan, {
        respond: (command, ok, script) => {
          if (named(command, "move-to-key2"))
            return withObservation(ok, ws.id, { heldFingerprint: script.keys.key1 });
          // The activity waited 9 s for the new key1 to work after regenerating it.
          if (command.kind === "regenerate" && command.expect.key === "key1" && ok.kind === "regenerate")
            return {
              kind: "regenerate",
              out: { ...ok.out, regeneratedAt: iso(Date.parse(ok.out.creationTimes.key1!) - 9_000) },
            };
          return ok;
        },
      });
      expect(measured(execution)).toEqual([
        expect.objectContaining({ consumerId: ws.id, durationMs: 9_000 + 1000 }),
      ]);
    });

    it("measures the window of a workspace the standby's regeneration catches on the standby", () => {
      const st = account();
      const ws = workspace(st, "mlw-one", "key2");
      const plan = planFor(node(st, ws, datastore(st, "ds")));
      const { commands, execution } = drive(plan, {
        respond: (command, ok, script) =>
          named(command, "resync-before-key2")
            ? withObservation(ok, ws.id, { heldFingerprint: script.keys.key2 })
            : ok,
        took: (command) => (named(command, "move-to-key2") ? 5_000 : 1000),
      });
      expect(commands.map(summary).slice(0, 3)).toEqual([
        "moveAndVerify resync-before-key2 + verify-resynced-before-key2",
        "regenerate key2",
        "move move-to-key2",
      ]);
      expect(execution.outages).toEqual([
        {
          consumerId: ws.id,
          name: "mlw-one",
          kind: "workspace",
          durationMs: 5_000,
          reason: "holds key2, regenerated next: it breaks until the resync that follows",
        },
      ]);
    });

    it("reports no outage for a warning that is not about a key", () => {
      const st = account();
      const ws = workspace(st, "mlw-one", "nothing");
      const plan = planFor(node(st, ws, datastore(st, "ds")));
      // listKeys shows no storage key before and after: a warning, but about no key.
      const { execution } = drive(plan, {
        respond: (command, ok) =>
          command.kind === "moveAndVerify" ? withObservation(ok, ws.id, { probe: "not-probed" }) : ok,
      });
      expect(execution.outcome).toBe("rotated");
      expect(measured(execution)).toEqual([]);
    });

    it("reports no outage when the workspace is on the key that is not regenerated next", () => {
      const { plan, ws } = typical();
      const { execution } = drive(plan, {
        took: (command) => (named(command, "resync-after-key1") ? 42_000 : 1000),
      });
      expect(measured(execution)).toEqual([]);
      expect(execution.consumerActions?.[ws.id]).toEqual({ action: "updated" });
    });
  });

  describe("datastores added or changed during the grace", () => {
    it.each([
      ["holds the old active key", (plan: AccountPlan) => plan.keys.key1.fingerprint],
      ["holds a dead key", () => fp("some other key")],
      ["holds no key", () => undefined],
    ])("stops before regenerating the old active key, naming a datastore that %s", (_, held) => {
      const { plan } = typical();
      const heldFingerprint = held(plan);
      const { commands, execution } = drive(plan, {
        respond: (command, ok) =>
          command.kind === "findLateDatastores"
            ? late({ name: "mlw-one/late", ...(heldFingerprint ? { heldFingerprint } : {}) })
            : ok,
      });
      expect(execution.outcome).toBe("stalled");
      expect(execution.reason).toMatch(/^stopped before regenerating key1, which is still valid: /);
      expect(execution.reason).toContain("do not hold key2 (mlw-one/late)");
      expect(regenerated(commands)).toEqual(["key2"]);
    });

    it("goes on when the datastores it finds hold the new key", () => {
      const { plan, ds2 } = typical();
      const { commands, execution } = drive(plan, {
        respond: (command, ok, script) =>
          command.kind === "findLateDatastores"
            ? {
                kind: "findLateDatastores",
                out: {
                  datastores: [
                    {
                      id: "late/new",
                      name: "mlw-one/new",
                      changed: false,
                      heldFingerprint: script.keys.key2,
                    },
                    { id: ds2.id, name: "mlw-one/ds2", changed: true, heldFingerprint: script.keys.key2 },
                  ],
                  armCalls: 3,
                },
              }
            : ok,
      });
      expect(execution.outcome).toBe("rotated");
      expect(regenerated(commands)).toEqual(["key2", "key1"]);
    });

    it("looks in the workspaces that use the account, passing what it verified", () => {
      const { plan, blob, ds2 } = typical();
      const { commands, script } = drive(plan);
      const find = commands.find((c) => c.kind === "findLateDatastores");
      const verified = { modifiedAt: VERIFIED_AT, fingerprint: script.keys.key2 };
      expect(find).toEqual({
        kind: "findLateDatastores",
        workspaceIds: [workspace(account()).id],
        known: { [blob.id]: verified, [ds2.id]: verified },
        newKey: { key: "key2", fingerprint: script.keys.key2, creationTime: iso(T0 + 1000) },
      });
    });

    it("passes datastores unchanged since verification as verified to the final move and verify", () => {
      const { plan, blob, ds2 } = typical();
      const { commands, script } = drive(plan);
      const final = commands.filter((c) => c.kind === "moveAndVerify").at(-1);
      const verified = { modifiedAt: VERIFIED_AT, fingerprint: script.keys.key2 };
      expect(final).toMatchObject({
        verify: { id: "verify-final" },
        verified: { [blob.id]: verified, [ds2.id]: verified },
      });
    });

    it("moves a datastore found on the old active key after the grace, gives it a grace of its own, looks again, then regenerates", () => {
      const { plan } = typical();
      const wsId = workspace(account()).id;
      let finds = 0;
      const { commands, execution } = drive(plan, {
        respond: (command, ok) => {
          if (command.kind !== "findLateDatastores") return ok;
          finds++;
          return finds === 1
            ? late({
                name: "mlw-one/workspaceblobstore",
                workspaceId: wsId,
                heldFingerprint: plan.keys.key1.fingerprint,
              })
            : ok;
        },
      });
      expect(execution.outcome).toBe("rotated");
      expect(regenerated(commands)).toEqual(["key2", "key1"]);
      const order = commands.map(summary);
      const lateMove = order.indexOf("moveAndVerify move-late-to-key2 + verify-late-key2");
      expect(lateMove).toBeGreaterThan(order.indexOf("wait grace"));
      expect(order.slice(lateMove + 1, lateMove + 4)).toEqual([
        "wait grace-after-late-key1",
        "findLateDatastores",
        "regenerate key1",
      ]);
      const move = commands[lateMove];
      const wait = commands[lateMove + 1];
      if (move?.kind !== "moveAndVerify" || wait?.kind !== "wait") throw new Error("unexpected commands");
      expect(move.moves.map((m) => [m.consumer.id, m.operation])).toEqual([
        ["late/mlw-one/workspaceblobstore", "putDatastore"],
      ]);
      expect(move.to.key).toBe("key2");
      expect(execution.consumerActions?.["late/mlw-one/workspaceblobstore"]?.action).toBe("healed");
    });

    it("stops, with the old active key still valid, when datastores go back to it after every late move", () => {
      const { plan } = typical();
      const wsId = workspace(account()).id;
      const { commands, execution } = drive(plan, {
        respond: (command, ok) =>
          command.kind === "findLateDatastores"
            ? late({
                name: "mlw-one/flapping",
                workspaceId: wsId,
                heldFingerprint: plan.keys.key1.fingerprint,
              })
            : ok,
      });
      expect(execution.outcome).toBe("stalled");
      expect(execution.reason).toContain("do not hold key2 (mlw-one/flapping)");
      expect(
        commands.filter((c) => c.kind === "moveAndVerify" && c.stepId === "move-late-to-key2"),
      ).toHaveLength(MAX_LATE_ROUNDS);
      expect(regenerated(commands)).toEqual(["key2"]);
    });

    it("stops when a datastore found after the grace cannot be moved to the new key", () => {
      const { plan } = typical();
      const wsId = workspace(account()).id;
      const { commands, execution } = drive(plan, {
        respond: (command, ok) => {
          if (command.kind === "findLateDatastores")
            return late({
              name: "mlw-one/locked",
              workspaceId: wsId,
              heldFingerprint: plan.keys.key1.fingerprint,
            });
          if (command.kind === "moveAndVerify" && command.stepId === "move-late-to-key2")
            return withMoveError(ok, "late/mlw-one/locked", "403 the datastore is locked");
          return ok;
        },
      });
      expect(execution.outcome).toBe("stalled");
      expect(execution.reason).toMatch(/^stopped before regenerating key1, which is still valid: /);
      expect(execution.reason).toContain("403 the datastore is locked");
      expect(regenerated(commands)).toEqual(["key2"]);
    });

    it("does not look for late datastores when no workspace uses the account", () => {
      const st = account();
      const { commands, execution } = drive(planFor(node(st, secret(st, "only"))));
      expect(commands.map((c) => c.kind)).not.toContain("findLateDatastores");
      expect(execution.outcome).toBe("rotated");
    });
  });

  describe("a new key the data plane does not accept yet", () => {
    const notLive = (key: KeyName) => (command: Command, ok: CommandResult) =>
      command.kind === "regenerate" && command.expect.key === key && ok.kind === "regenerate"
        ? { kind: "regenerate" as const, out: { ...ok.out, notLive: `the new ${key} was still refused` } }
        : ok;

    it("moves nobody to a new standby key that still does not work at the deadline, and stops with the active key valid", () => {
      const { plan } = typical();
      const { commands, execution } = drive(plan, { respond: notLive("key2") });
      expect(execution.outcome).toBe("stalled");
      expect(execution.reason).toBe(
        "the new key2 was still refused; nobody was moved to it and key1 is still valid: run keyturn again",
      );
      expect(commands.filter((c) => c.kind === "moveAndVerify")).toEqual([]);
      expect(regenerated(commands)).toEqual(["key2"]);
    });

    it("does not resync the services onto a new old-active key that does not work yet, and says so", () => {
      const { plan } = typical();
      const { commands, execution } = drive(plan, { respond: notLive("key1") });
      expect(execution.outcome).toBe("failed");
      expect(execution.reason).toContain("the services that pick their own key were not resynced");
      expect(commands.map(summary).at(-2)).toBe("regenerate key1");
    });
  });

  describe("the grace", () => {
    it("counts from when consumers were moved: the verification runs inside it, however long it takes", () => {
      const { plan } = typical();
      const { commands } = drive(plan, {
        took: (command) => (command.kind === "moveAndVerify" && command.moves.length === 0 ? 30_000 : 1000),
      });
      const moved = commands.findIndex((c) => c.kind === "moveAndVerify" && c.checks.length === 0);
      const wait = commands.find((c) => c.kind === "wait");
      if (wait?.kind !== "wait") throw new Error("no wait");
      // regenerate (1 s) + moves (1 s), then the grace; the 30 s verification is inside it.
      expect(moved).toBe(1);
      expect(wait.until).toBe(T0 + 2000 + plan.graceSeconds * 1000);
      expect(commands.map(summary).slice(0, 4)).toEqual([
        "regenerate key2",
        "move move-to-key2",
        "verify verify-key2",
        "wait grace",
      ]);
    });
  });

  describe("the state as JSON", () => {
    it("computes the wait's end once: the state resumed from JSON, later, waits until the same moment", () => {
      const { plan } = typical();
      const { calls, commands } = drive(plan);
      const index = commands.findIndex((c) => c.kind === "wait");
      const wait = commands[index];
      if (wait?.kind !== "wait") throw new Error("no wait");
      expect(wait.until).toBe(T0 + 2000 + plan.graceSeconds * 1000);
      // The state the account paused with (the input of the call after the wait was issued).
      const paused = calls[index + 1]?.state;
      const resumed = JSON.parse(JSON.stringify(paused)) as AccountState;
      const again = next(resumed, undefined, wait.until - 5 * 60_000);
      expect(again.command).toEqual(wait);
      const afterTimer = next(
        JSON.parse(JSON.stringify(again.state)) as AccountState,
        { kind: "wait" },
        wait.until,
      );
      expect(afterTimer.command.kind).toBe("findLateDatastores");
    });

    it.each([
      ["a clean run", {}],
      [
        "a run with a window",
        {
          respond: (command: Command, ok: CommandResult, script: Script) =>
            named(command, "move-to-key2")
              ? withObservation(ok, workspace(account()).id, { heldFingerprint: script.keys.key1 })
              : ok,
        },
      ],
      [
        "a run that stalls",
        {
          respond: (command: Command, ok: CommandResult) =>
            command.kind === "findLateDatastores" ? late({ name: "mlw-one/late" }) : ok,
        },
      ],
    ] as [string, DriveOptions][])(
      "gives the same command from a JSON round-trip of the state at every step of %s",
      (_, options) => {
        const { calls } = drive(typical().plan, options);
        for (const { state, result, now } of calls) {
          const direct = next(state, result, now);
          const viaJson = next(JSON.parse(JSON.stringify(state)) as AccountState, result, now);
          expect(viaJson.command).toEqual(direct.command);
          expect(JSON.parse(JSON.stringify(viaJson.state))).toEqual(JSON.parse(JSON.stringify(direct.state)));
        }
      },
    );

    it("never changes the state it is given", () => {
      const { calls } = drive(typical().plan);
      for (const { state, result, now } of calls) {
        const before = JSON.stringify(state);
        next(state, result, now);
        expect(JSON.stringify(state)).toBe(before);
      }
    });
  });
});
