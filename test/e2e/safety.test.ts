import { readFileSync } from "node:fs";
import { join } from "node:path";
import { filesUnder } from "../helpers/leaks";
import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { admin, clientsFor } from "../helpers/emulator";
import { outages, regenerationCounts } from "../helpers/estate";
import { exitCode, MAX_LATE_ROUNDS, scopeInstanceId, type RotationReport } from "../../shared/rotation";
import { InstanceExistsError } from "../../local";

let rig: RotationRig;

beforeAll(async () => {
  rig = await startRotationRig({ emulator: { settings: { resyncPolicy: "consumers" } } });
});
afterAll(async () => {
  await rig?.stop();
});

describe("one rotation per account at a time (I5)", () => {
  it("refuses a second rotation of the same scope while one runs", async () => {
    const scope = { storageAccounts: ["stmlresearch"] };
    const id = rig.start(scope, { force: true });
    expect(() => rig.start(scope, { force: true })).toThrow(InstanceExistsError);
    const status = await rig.host.waitForCompletion(id);
    expect((status.output as RotationReport).accounts[0]?.outcome).toBe("rotated");
    expect(regenerationCounts(rig.emulator).stmlresearch).toEqual({ key1: 1, key2: 1 });
  });

  it("lets exactly one of two overlapping rotations touch a shared account", async () => {
    const byAccount = rig.start({ storageAccounts: ["stmlshared"] }, { force: true });
    const byGroup = rig.start({ resourceGroups: ["rg-ml-prod"] }, { force: true });
    const [a, b] = await Promise.all([
      rig.host.waitForCompletion(byAccount),
      rig.host.waitForCompletion(byGroup),
    ]);
    const outcomes = [a, b].map((s) =>
      (s.output as RotationReport).accounts.find((x) => x.name === "stmlshared"),
    );
    expect(outcomes.map((o) => o?.outcome).sort()).toEqual(["rotated", "skipped"]);
    expect(outcomes.find((o) => o?.outcome === "skipped")).toMatchObject({ skipCode: "in-progress" });
    expect(regenerationCounts(rig.emulator).stmlshared).toEqual({ key1: 1, key2: 1 });
    // The account busy elsewhere does not spoil the rest of its batch: stmlbatch is reported as it ended.
    const group = (b.output as RotationReport).accounts.find((x) => x.name === "stmlbatch");
    expect(group).toMatchObject({ outcome: "rotated", keysRegenerated: ["key2", "key1"] });
    expect(regenerationCounts(rig.emulator).stmlbatch).toEqual({ key1: 1, key2: 1 });
  });
});

describe("a consumer that cannot be moved", () => {
  it("stalls the account while its old key still works, and says why", async () => {
    await admin(rig.emulator, "POST", "/faults", {
      operation: "datastores.createOrUpdate",
      path: "/datastores/raw_lake$",
      action: {
        type: "status",
        status: 400,
        code: "UserError",
        message: "Datastore validation failed (injected).",
      },
      count: 100,
    });
    const before = regenerationCounts(rig.emulator).stmllake ?? { key1: 0, key2: 0 };
    const { report } = await rig.rotate({ storageAccounts: ["stmllake"] }, { force: true });
    await admin(rig.emulator, "DELETE", "/faults");
    const lake = report.accounts[0]!;
    expect(lake.outcome).toBe("stalled");
    expect(lake.reason).toMatch(/raw_lake/);
    expect(lake.reason).toMatch(/still valid/);
    expect(exitCode(report)).not.toBe(0);
    // Only the standby was regenerated; the active key every consumer still uses is untouched.
    expect(regenerationCounts(rig.emulator).stmllake).toEqual({ key1: before.key1, key2: before.key2 + 1 });
    const state = (await admin(rig.emulator, "GET", "/state")).body as {
      consumers: { storageAccountName: string; heldKeyName: string | null }[];
    };
    expect(
      state.consumers.filter((c) => c.storageAccountName === "stmllake" && c.heldKeyName === null),
    ).toEqual([]);
  });
});

describe("an account whose keys cannot be read", () => {
  it("fails alone; the other accounts still rotate", async () => {
    await admin(rig.emulator, "POST", "/faults", {
      operation: "storageAccounts.listKeys",
      path: "/storageAccounts/stmlresearch/",
      action: {
        type: "status",
        status: 409,
        code: "ScopeLocked",
        message: "The scope is locked (injected).",
      },
      count: 100,
    });
    const before = regenerationCounts(rig.emulator).stmlresearch;
    const { report } = await rig.rotate({ resourceGroups: ["rg-ml-research"] }, { force: true });
    await admin(rig.emulator, "DELETE", "/faults");
    const research = report.accounts.find((a) => a.name === "stmlresearch");
    expect(research?.outcome).toBe("failed");
    expect(research?.reason).toMatch(/keys could not be read.*ScopeLocked|ScopeLocked/);
    expect(report.accounts.find((a) => a.name === "stmllake")?.outcome).toBe("rotated");
    expect(regenerationCounts(rig.emulator).stmlresearch).toEqual(before);
  });
});

describe("a datastore added during the grace period with the old key", () => {
  it("is moved to the new key and given a grace of its own before the old key is regenerated", async () => {
    let added = false;
    const ml = clientsFor(rig.emulator).ml;
    const storage = clientsFor(rig.emulator).storage;
    rig.restart({
      onActivity: async (info) => {
        if (added || info.name !== "moveAndVerify" || info.phase !== "completed") return;
        if (!info.instanceId.startsWith("keyturn-account-stmlresearch-")) return;
        added = true;
        // Consumers are on the new key now; someone registers a datastore with the old one by hand.
        const moved = (await ml.datastores.listSecrets(
          "rg-ml-research",
          "mlw-research",
          "workspaceblobstore",
        )) as { key?: string };
        const keys = (await storage.storageAccounts.listKeys("rg-ml-research", "stmlresearch")).keys!;
        const old = keys.find((k) => k.value !== moved.key)!.value!;
        await ml.datastores.createOrUpdate("rg-ml-research", "mlw-research", "late_arrival", {
          properties: {
            datastoreType: "AzureBlob",
            accountName: "stmlresearch",
            containerName: "late",
            credentials: { credentialsType: "AccountKey", secrets: { secretsType: "AccountKey", key: old } },
          } as never,
        });
      },
    });
    const before = regenerationCounts(rig.emulator).stmlresearch!;
    const { report } = await rig.rotate({ storageAccounts: ["stmlresearch"] }, { force: true });
    rig.restart();
    expect(added).toBe(true);
    const research = report.accounts[0]!;
    expect(research.outcome).toBe("rotated");
    const late = research.consumers.find((c) => c.name === "mlw-research/late_arrival");
    expect(late?.action).toBe("healed");
    expect(late?.reason).toContain("given a grace of its own");
    const after = regenerationCounts(rig.emulator).stmlresearch!;
    expect(after.key1 + after.key2).toBe(before.key1 + before.key2 + 2);
    const state = (await admin(rig.emulator, "GET", "/state")).body as {
      consumers: { name: string; heldKeyName: string | null }[];
    };
    expect(state.consumers.find((c) => c.name === "mlw-research/late_arrival")?.heldKeyName).toBe(
      research.activeKeyAfter?.key,
    );
    expect(await outages(rig.emulator)).toEqual([]);
  });
});

describe("a known datastore re-registered with the old key after every move", () => {
  it("is found from list metadata (lastModifiedAt) each time and stops the rotation before the old key is regenerated", async () => {
    let completed = 0;
    let changed = 0;
    const ml = clientsFor(rig.emulator).ml;
    const storage = clientsFor(rig.emulator).storage;
    rig.restart({
      onActivity: async (info) => {
        if (info.name !== "moveAndVerify" || info.phase !== "completed") return;
        if (!info.instanceId.startsWith("keyturn-account-stmllake-")) return;
        // From the verification on (the first completion is the moves alone): inside the grace.
        if (++completed < 2) return;
        changed++;
        const existing = await ml.datastores.get("rg-ml-research", "mlw-research", "raw_lake");
        const moved = (await ml.datastores.listSecrets("rg-ml-research", "mlw-research", "raw_lake")) as {
          key?: string;
        };
        const keys = (await storage.storageAccounts.listKeys("rg-ml-research", "stmllake")).keys!;
        const old = keys.find((k) => k.value !== moved.key)!.value!;
        await ml.datastores.createOrUpdate("rg-ml-research", "mlw-research", "raw_lake", {
          properties: {
            ...existing.properties,
            credentials: { credentialsType: "AccountKey", secrets: { secretsType: "AccountKey", key: old } },
          } as never,
        });
      },
    });
    const before = regenerationCounts(rig.emulator).stmllake!;
    const { report } = await rig.rotate({ storageAccounts: ["stmllake"] }, { force: true });
    rig.restart();
    // After the verification, then after each late move: someone puts the old key back every time.
    expect(changed).toBe(1 + MAX_LATE_ROUNDS);
    const lake = report.accounts[0]!;
    expect(lake.outcome).toBe("stalled");
    expect(lake.reason).toMatch(/raw_lake/);
    const after = regenerationCounts(rig.emulator).stmllake!;
    expect(after.key1 + after.key2).toBe(before.key1 + before.key2 + 1);
    expect(await outages(rig.emulator)).toEqual([]);
  });
});

describe("a datastore deleted during the grace period", () => {
  it("is reported gone, not a failure: the account still rotates", async () => {
    let deleted = false;
    rig.restart({
      onActivity: async (info) => {
        if (deleted || info.name !== "moveAndVerify" || info.phase !== "completed") return;
        if (!info.instanceId.startsWith("keyturn-account-stmlshared-")) return;
        deleted = true;
        // Someone deletes it by hand (the emulator's admin API acts as that someone).
        await admin(rig.emulator, "DELETE", "/workspaces/mlw-research/datastores/shared_features");
      },
    });
    const before = regenerationCounts(rig.emulator).stmlshared ?? { key1: 0, key2: 0 };
    const { report } = await rig.rotate({ storageAccounts: ["stmlshared"] }, { force: true });
    rig.restart();
    expect(deleted).toBe(true);
    const shared = report.accounts[0]!;
    expect(shared.outcome).toBe("rotated");
    expect(shared.consumers.find((c) => c.name === "mlw-research/shared_features")).toMatchObject({
      action: "gone",
    });
    expect(regenerationCounts(rig.emulator).stmlshared).toEqual({
      key1: before.key1 + 1,
      key2: before.key2 + 1,
    });
    expect(await outages(rig.emulator)).toEqual([]);
  });
});

describe("secret hygiene (I3)", () => {
  it("no key value the emulator ever issued appears in history, status, output, logs or errors", async () => {
    const keys = [...rig.emulator.ctx.issuedKeys];
    expect(keys.length).toBeGreaterThan(8);
    const haystacks: [string, string][] = [];
    for (const file of filesUnder(rig.dir)) haystacks.push([file, readFileSync(file, "utf8")]);
    for (const instance of rig.host.durable.list())
      haystacks.push([instance.instanceId, JSON.stringify(instance)]);
    expect(rig.logs.length).toBeGreaterThan(0);
    haystacks.push(["logs", rig.logs.join("\n")]);
    expect(haystacks.length).toBeGreaterThan(5);
    for (const [where, text] of haystacks) {
      for (const key of keys) {
        if (text.includes(key)) throw new Error(`a storage key leaked into ${where}`);
      }
    }
  });
});

describe("telemetry of these rotations", () => {
  interface Item {
    kind: string;
    name: string;
    properties: Record<string, unknown>;
  }
  const items = (): Item[] =>
    readFileSync(join(rig.dir, "telemetry.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Item);

  it("records every event of the catalogue, correlated to the durable instance", () => {
    const all = items();
    const names = new Set(all.map((i) => i.name));
    for (const name of [
      "RotationStarted",
      "AccountRotated",
      "AccountSkipped",
      "AccountStalled",
      "RotationCompleted",
      "KeyAgeDays",
      "ArmCalls",
    ]) {
      expect(names).toContain(name);
    }
    const stalled = all.find((i) => i.name === "AccountStalled")!;
    expect(stalled.properties).toMatchObject({
      storageAccount: "stmllake",
      consumer: "mlw-research/raw_lake",
    });
    expect(String(stalled.properties.error)).toMatch(/raw_lake/);
    expect(all.find((i) => i.name === "AccountSkipped")?.properties).toMatchObject({
      skipCode: "in-progress",
    });
    expect(
      all.every(
        (i) => typeof i.properties.instanceId === "string" && typeof i.properties.operationId === "string",
      ),
    ).toBe(true);
  });
});

describe("scope ids", () => {
  it("are the same for the same scope however it is written", () => {
    expect(scopeInstanceId({ storageAccounts: ["StMlShared"] })).toBe(
      scopeInstanceId({ storageAccounts: ["stmlshared", "stmlshared"] }),
    );
  });
});
