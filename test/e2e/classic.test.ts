import { CLASSIC_DEMO_ACCOUNT } from "../../emulator/estates";
import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { consumers, outages, regenerationCounts } from "../helpers/estate";
import { placesHoldingKeys } from "../helpers/leaks";

/**
 * A classic storage account (Microsoft.ClassicStorage, keys through Service Management) rotated by the
 * real functions against the emulator, with simulated jobs using every consumer's key all along:
 * I1 (consumers on live keys throughout), I2 (both keys once, the standby first), I3 (no key bytes
 * anywhere keyturn writes). I4 (killed at every step boundary, resumed) is test/e2e/resume.test.ts.
 */

const LEGACY = CLASSIC_DEMO_ACCOUNT;
let rig: RotationRig;

beforeAll(async () => {
  rig = await startRotationRig({ emulator: { consumerJobsIntervalMs: 20 } });
});
afterAll(async () => {
  await rig?.stop();
});

describe("a classic storage account", () => {
  it("is found by discovery and planned like any other; a dry run regenerates nothing", async () => {
    const { report } = await rig.rotate({ storageAccounts: [LEGACY] }, { dryRun: true });
    const account = report.accounts.find((a) => a.name === LEGACY);
    expect(account).toBeDefined();
    expect(account!.outcome).not.toMatch(/failed|stalled/);
    expect(regenerationCounts(rig.emulator)[LEGACY]).toBeUndefined();
  });

  it("is rotated with both keys regenerated once, standby first, and no consumer ever on a dead key", async () => {
    const probesBefore = rig.emulator.jobs.probes;
    const { report } = await rig.rotate({ storageAccounts: [LEGACY] });
    const account = report.accounts.find((a) => a.name === LEGACY)!;
    expect(account.outcome).toBe("rotated");
    expect(regenerationCounts(rig.emulator)[LEGACY]).toEqual({ key1: 1, key2: 1 });

    // I2: the standby key first, then the one consumers held before.
    const order = rig.emulator.ctx.regenerations.filter((r) => r.account === LEGACY).map((r) => r.key);
    expect(order).toEqual([
      account.activeKeyBefore!.key === "key1" ? "key2" : "key1",
      account.activeKeyBefore!.key,
    ]);
    // Through Service Management's Regenerate Keys, never an ARM call.
    const regenerations = rig.emulator.requestLog.filter(
      (e) => e.operation === "storageServices.regenerateKeys" && e.status === 200,
    );
    expect(regenerations).toHaveLength(2);

    // I1: every consumer on the new active key; the jobs ran throughout and nothing failed.
    const held = (await consumers(rig.emulator)).filter((c) => c.storageAccountName === LEGACY);
    expect(held.map((c) => c.name)).toEqual([expect.stringContaining("legacy_archive")]);
    expect(held.every((c) => c.heldKeyName === account.activeKeyAfter!.key)).toBe(true);
    expect(await outages(rig.emulator)).toEqual([]);
    expect(rig.emulator.outages.probeFailures).toEqual([]);
    expect(rig.emulator.jobs.probes).toBeGreaterThan(probesBefore);
  });

  it("leaves no key value in history, status, output, logs or files (I3)", async () => {
    const account = [...rig.emulator.ctx.estate.storageAccounts.values()].find((a) => a.name === LEGACY)!;
    // The classic account's keys, the rotated ones included, are among those the scan looks for.
    expect([...rig.emulator.ctx.issuedKeys]).toEqual(
      expect.arrayContaining([account.keys.key1.value, account.keys.key2.value]),
    );
    expect(rig.logs.length).toBeGreaterThan(0);
    expect(placesHoldingKeys(rig)).toEqual([]);
  });
});
