import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { consumers, outages, regenerationCounts, registryRegenerationCounts } from "../helpers/estate";
import { exitCode, UNKNOWN_KEY_AGE_NOTE } from "../../shared/rotation";
import { REGISTRY_RESYNC_PICKS } from "../../emulator/settings";

/**
 * Container registry admin passwords (seed 003, opt-in with `registryPasswords`): the registry is a key
 * holder (password is key1, password2 key2), its consumer the workspace, which picks a password itself
 * on `resyncKeys`. Which one is undocumented, so the rotation must be safe under every pick the emulator
 * offers (DESIGN §11): both passwords regenerated once, the workspace on a live password at the end, and
 * the only moments it holds a dead one are the documented workspace windows between a regeneration and
 * the resync right after it.
 */
const REGISTRY = "crmlwtrain";
const SCOPE = { storageAccounts: [REGISTRY], registryPasswords: true };

describe.each(REGISTRY_RESYNC_PICKS)("registry passwords with a resync that picks %s", (pick) => {
  let rig: RotationRig;
  beforeAll(async () => {
    rig = await startRotationRig({ emulator: { settings: { registryResyncPick: pick } } });
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("regenerates each password once and leaves the workspace on a live one, checked on /v2/", async () => {
    const probesBefore = rig.emulator.registryLog.length;
    const { report } = await rig.rotate(SCOPE);
    const account = report.accounts.find((a) => a.name === REGISTRY);
    expect(account).toMatchObject({ outcome: "rotated", keysRegenerated: ["key2", "key1"] });
    expect(account?.consumers.map((c) => [c.kind, c.name, c.action])).toEqual([
      ["registryWorkspace", "mlw-train (registry)", "updated"],
    ]);
    expect(exitCode(report)).toBe(0);
    // Registries record no password creation time: the report says the minimum key age cannot apply.
    expect(account?.notes).toContain(UNKNOWN_KEY_AGE_NOTE);
    expect(registryRegenerationCounts(rig.emulator)).toEqual({ [REGISTRY]: { key1: 1, key2: 1 } });
    expect(regenerationCounts(rig.emulator)).toEqual({});
    const held = (await consumers(rig.emulator)).filter((c) => c.kind === "workspaceRegistry");
    expect(held.map((c) => [c.name, c.heldKeyName === null ? "dead" : "live"])).toEqual([
      [expect.stringContaining("mlw-train") as string, "live"],
    ]);
    // Outside the windows the resync closes, nobody held a dead password; every window is closed.
    const log = await outages(rig.emulator);
    expect(log.filter((o) => o.kind !== "workspaceRegistry")).toEqual([]);
    expect(log.filter((o) => o.end === undefined)).toEqual([]);
    // The new passwords were proved with GET /v2/ and the workspace's password after each resync too.
    const probes = rig.emulator.registryLog.slice(probesBefore).filter((e) => e.registry === REGISTRY);
    expect(probes.filter((e) => e.status === 200).length).toBeGreaterThanOrEqual(3);
  });
});

describe("registry passwords, opted out or not there to rotate", () => {
  let rig: RotationRig;
  beforeAll(async () => {
    rig = await startRotationRig();
  });
  afterAll(async () => {
    await rig?.stop();
  });

  it("are left alone without registryPasswords: no registry is a key holder", async () => {
    const { report } = await rig.rotate({ resourceGroups: ["rg-ml-prod"] }, { dryRun: true, force: true });
    expect(report.accounts.map((a) => a.name)).not.toContain(REGISTRY);
    expect(registryRegenerationCounts(rig.emulator)).toEqual({});
  });

  it("reports a registry whose admin user is disabled, and writes nothing", async () => {
    const registry = [...rig.emulator.ctx.estate.registries.values()].find((r) => r.name === REGISTRY)!;
    registry.adminUserEnabled = false;
    try {
      const { report } = await rig.rotate(SCOPE, { force: true });
      expect(report.accounts.find((a) => a.name === REGISTRY)).toMatchObject({
        outcome: "skipped",
        reason: expect.stringContaining("admin user is disabled") as string,
      });
    } finally {
      registry.adminUserEnabled = true;
    }
    expect(registryRegenerationCounts(rig.emulator)).toEqual({});
  });
});
