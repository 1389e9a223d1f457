import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { consumers, outages, regenerationCounts } from "../helpers/estate";
import { admin } from "../helpers/emulator";
import { exitCode, renderReport, type RotationReport } from "../../shared/rotation";

const ROTATED = ["stmlbatch", "stmllake", "stmllegacy", "stmlresearch", "stmlshared"];
/** The demo account with shared-key access disabled: nothing can use its keys, so nothing to rotate. */
const KEYLESS = "stmlgoverned";
const rotatable = (report: RotationReport) => report.accounts.filter((a) => a.name !== KEYLESS);

let rig: RotationRig;

beforeAll(async () => {
  // The workspace resync follows the consumers here; resync-policy.test.ts covers the key1 policy.
  rig = await startRotationRig({ emulator: { settings: { resyncPolicy: "consumers" } } });
});
afterAll(async () => {
  await rig?.stop();
});

describe("rotating the demo estate", () => {
  it("rotates every account, regenerating each key exactly once, with no outage", async () => {
    const { status, report } = await rig.rotate();
    expect(status.runtimeStatus).toBe("Completed");
    expect(rotatable(report).map((a) => [a.name, a.outcome])).toEqual(ROTATED.map((n) => [n, "rotated"]));
    expect(report.accounts.find((a) => a.name === KEYLESS)).toMatchObject({
      outcome: "skipped",
      skipCode: "shared-key-disabled",
      reason: expect.stringContaining("needs no rotation") as string,
    });
    expect(exitCode(report)).toBe(0);
    expect(regenerationCounts(rig.emulator)).toEqual(
      Object.fromEntries(ROTATED.map((n) => [n, { key1: 1, key2: 1 }])),
    );
    // Every consumer that holds an account key ends on the new active key, key2 (the old standby).
    // Holders of Batch shared keys and registry passwords (not rotated here) stay on their live key1.
    const all = await consumers(rig.emulator);
    const held = all.filter((c) => c.resource === "storageAccount");
    expect(all.filter((c) => c.resource !== "storageAccount" && c.heldKeyName === null)).toEqual([]);
    expect(held.length).toBeGreaterThanOrEqual(13);
    expect(held.filter((c) => c.heldKeyName !== "key2")).toEqual([]);
    expect(await outages(rig.emulator)).toEqual([]);
    // ARM calls as reported match what the emulator served, but for the post-run key-age reads (one per account).
    const served = rig.emulator.requestLog.filter(
      (r) => r.clientId === rig.emulator.connection.clientId,
    ).length;
    const reported =
      report.accounts.reduce((n, a) => n + a.armCalls, 0) +
      (report as unknown as { discoveryArmCalls: number }).discoveryArmCalls;
    expect(served - reported).toBe(report.accounts.length);
    for (const account of rotatable(report)) {
      expect(account.activeKeyBefore?.key).toBe("key1");
      expect(account.activeKeyAfter?.key).toBe("key2");
      expect(account.outages.filter((o) => !o.possible)).toEqual([]);
    }
  });

  it("plans to re-sign the SAS datastores an account key signed, and reports the others and the identity-based one", async () => {
    const { report } = await rig.rotate(undefined, { force: true, dryRun: true });
    const lake = report.accounts.find((a) => a.name === "stmllake")!;
    const byName = (name: string) => lake.consumers.find((c) => c.name === name);
    expect(byName("mlw-research/partner_drop")).toMatchObject({ kind: "sasDatastore" });
    expect(byName("mlw-research/partner_drop")?.action).not.toBe("skipped");
    expect(byName("mlw-research/delegated_drop")).toMatchObject({
      kind: "untouchedSasDatastore",
      action: "skipped",
      reason: expect.stringMatching(/user delegation SAS/) as string,
    });
    expect(byName("mlw-research/stale_drop")).toMatchObject({
      kind: "untouchedSasDatastore",
      action: "skipped",
      reason: expect.stringMatching(/SAS expired at/) as string,
    });
    // A one-year SAS on an account whose SAS policy allows 30 days: a finding, whatever keyturn does.
    expect((lake.notes ?? []).join("\n")).toMatch(
      /mlw-research\/partner_drop: its SAS is valid from .* longer than stmllake's SAS expiration policy \(30\.00:00:00\)/,
    );
    const shared = report.accounts.find((a) => a.name === "stmlshared")!;
    expect(shared.consumers.find((c) => c.name === "mlw-score/vendor_features")).toMatchObject({
      kind: "sasDatastore",
    });
    const research = report.accounts.find((a) => a.name === "stmlresearch")!;
    expect(research.consumers.find((c) => c.name === "mlw-train/identity_scratch")).toMatchObject({
      kind: "identityDatastore",
      action: "skipped",
    });
  });

  it("skips every account as too young right after a rotation", async () => {
    const { report } = await rig.rotate();
    expect(rotatable(report).map((a) => [a.name, a.outcome, a.skipCode])).toEqual(
      ROTATED.map((n) => [n, "skipped", "too-young"]),
    );
    expect(exitCode(report)).toBe(0);
    expect(regenerationCounts(rig.emulator).stmlshared).toEqual({ key1: 1, key2: 1 });
  });

  it("swaps the roles back on the next (forced) rotation", async () => {
    const { report } = await rig.rotate(undefined, { force: true });
    expect(rotatable(report).map((a) => a.outcome)).toEqual(ROTATED.map(() => "rotated"));
    for (const account of rotatable(report)) {
      expect(account.activeKeyBefore?.key).toBe("key2");
      expect(account.activeKeyAfter?.key).toBe("key1");
    }
    expect(regenerationCounts(rig.emulator).stmlshared).toEqual({ key1: 2, key2: 2 });
    expect(
      (await consumers(rig.emulator)).filter(
        (c) => c.resource === "storageAccount" && c.heldKeyName !== "key1",
      ),
    ).toEqual([]);
    expect(await outages(rig.emulator)).toEqual([]);
  });

  it("leaves an account tagged keyturn:skip alone", async () => {
    rig.emulator.ctx.estate.storageAccounts.forEach((a) => {
      if (a.name === "stmllake") a.tags["keyturn:skip"] = "true";
    });
    const { report } = await rig.rotate(undefined, { force: true, dryRun: true });
    expect(report.accounts.find((a) => a.name === "stmllake")).toMatchObject({
      outcome: "skipped",
      skipCode: "opted-out",
    });
    delete rig.emulator.ctx.estate.storageAccounts.values().next().value?.tags["keyturn:skip"];
  });

  it("replays every recorded history to the same actions (the orchestrators are deterministic)", async () => {
    const instances = rig.host.durable.list();
    expect(instances.some((i) => i.name === "rotateStorageAccount")).toBe(true);
    for (const instance of instances) {
      const replayed = await rig.host.durable.replay(instance.instanceId);
      expect({
        id: instance.instanceId,
        deterministic: replayed.deterministic,
        mismatch: replayed.mismatch,
      }).toEqual({
        id: instance.instanceId,
        deterministic: true,
        mismatch: undefined,
      });
    }
  });

  it("keeps consumers working on the data plane throughout (simulated jobs see no 403)", async () => {
    await admin(rig.emulator, "POST", "/consumers/tick");
    const body = (await admin(rig.emulator, "GET", "/outages")).body as {
      probeFailures: unknown[];
      probes: number;
    };
    expect(body.probes).toBeGreaterThan(0);
    expect(body.probeFailures).toEqual([]);
  });

  it("names a misspelled storage account with the closest one it can see, rotates nothing and exits 2", async () => {
    const before = regenerationCounts(rig.emulator);
    const { report } = await rig.rotate({ storageAccounts: ["stmlreserch"] }, { force: true });
    expect(report.accounts).toEqual([]);
    expect(report.unmatchedScope).toEqual([
      { field: "storageAccounts", value: "stmlreserch", closest: "stmlresearch" },
    ]);
    expect(exitCode(report)).toBe(2);
    expect(renderReport(report)).toContain("did you mean 'stmlresearch'?");
    expect(regenerationCounts(rig.emulator)).toEqual(before);
  });
});
