import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { consumers, outages, regenerationCounts, rotatable } from "../helpers/estate";
import { admin } from "../helpers/emulator";

let rig: RotationRig;

beforeAll(async () => {
  // Microsoft does not document which key a workspace resync picks: here it always picks key1.
  rig = await startRotationRig({
    emulator: { settings: { resyncPolicy: "key1", batchSyncPolicy: "consumers" } },
  });
});
afterAll(async () => {
  await rig?.stop();
});

describe("when a workspace resync always picks key1", () => {
  it("keeps datastores, Batch and Key Vault readers on live keys; only workspaces see a bounded window", async () => {
    const { report } = await rig.rotate();
    expect(rotatable(report.accounts).every((a) => a.outcome === "rotated")).toBe(true);
    const log = await outages(rig.emulator);
    expect(log.filter((o) => o.kind !== "workspace")).toEqual([]);
    // The workspaces on key1 break when key1 is regenerated, and recover with the very next resync.
    const windows = log.filter((o) => o.kind === "workspace");
    expect(windows.map((o) => o.name).sort()).toEqual(["mlw-research", "mlw-score", "mlw-train"]);
    for (const o of windows) expect(o.end).toBeDefined();
    // The report carries the same windows, measured by the orchestration.
    const reported = report.accounts.flatMap((a) => a.outages).filter((o) => !o.possible);
    expect(reported.map((o) => o.name).sort()).toEqual(["mlw-research", "mlw-score", "mlw-train"]);
    expect(reported.every((o) => o.kind === "workspace" && o.durationMs >= 0)).toBe(true);
    expect((await consumers(rig.emulator)).filter((c) => c.heldKeyName === null)).toEqual([]);
  });

  it("still regenerates each key once per rotation", () => {
    for (const counts of Object.values(regenerationCounts(rig.emulator)))
      expect(counts).toEqual({ key1: 1, key2: 1 });
  });
});

describe("when a workspace resync picks the key the consumers hold", () => {
  it("rotates with no outage at all", async () => {
    await admin(rig.emulator, "PATCH", "/settings", { resyncPolicy: "consumers" });
    await admin(rig.emulator, "DELETE", "/outages");
    const { report } = await rig.rotate(undefined, { force: true });
    expect(rotatable(report.accounts).every((a) => a.outcome === "rotated")).toBe(true);
    expect(await outages(rig.emulator)).toEqual([]);
    // Batch cannot say which key it holds: its windows are reported as possible, never measured.
    const reported = report.accounts.flatMap((a) => a.outages);
    expect(reported.filter((o) => !o.possible)).toEqual([]);
    expect(reported.every((o) => o.kind === "batchAutoStorage")).toBe(true);
  });
});
