import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { batchRegenerationCounts, outages, regenerationCounts, whileEntraIdOnly } from "../helpers/estate";
import { BATCH_ENTRA_ADVICE, exitCode } from "../../shared/rotation";

/**
 * Batch account shared keys (seed 004, opt-in with `batchKeys`): the Batch account is a key holder like
 * a storage account, its consumers the Key Vault secrets tagged `keyturn-batch-account`. The procedure is
 * the same: regenerate the key nobody uses, publish it, verify on Batch's data plane, grace, regenerate
 * the other.
 */
const BATCH = "batchmltrain";
const SCOPE = { storageAccounts: [BATCH], batchKeys: true };

let rig: RotationRig;

beforeAll(async () => {
  rig = await startRotationRig();
});
afterAll(async () => {
  await rig?.stop();
});

/** The value of the demo vault's Batch secret now, compared here and never printed. */
function publishedIs(key: "primary" | "secondary"): boolean {
  const batch = [...rig.emulator.ctx.estate.batchAccounts.values()].find((b) => b.name === BATCH)!;
  const vault = [...rig.emulator.ctx.estate.vaults.values()][0]!;
  const latest = vault.secrets.get("batchmltrain-key")?.at(-1);
  return latest?.value === batch.keys[key];
}

describe("Batch shared keys (--batch-keys)", () => {
  it("are left alone without batchKeys: no Batch account is a key holder", async () => {
    const { report } = await rig.rotate({ resourceGroups: ["rg-ml-prod"] }, { dryRun: true, force: true });
    expect(report.accounts.map((a) => a.name)).not.toContain(BATCH);
    expect(batchRegenerationCounts(rig.emulator)).toEqual({});
  });

  it("rotates both keys once, the published secret on a live key throughout, and repeats Microsoft's advice", async () => {
    expect(publishedIs("primary")).toBe(true);
    const probesBefore = rig.emulator.batchLog.length;
    const { report } = await rig.rotate(SCOPE);
    const account = report.accounts.find((a) => a.name === BATCH);
    expect(account).toMatchObject({ outcome: "rotated", keysRegenerated: ["key2", "key1"] });
    expect(account?.notes).toContain(BATCH_ENTRA_ADVICE);
    expect(account?.consumers.map((c) => [c.kind, c.name.split("/").pop(), c.action])).toEqual([
      ["keyVaultSecret", "batchmltrain-key", "updated"],
    ]);
    expect(exitCode(report)).toBe(0);
    expect(batchRegenerationCounts(rig.emulator)).toEqual({ [BATCH]: { key1: 1, key2: 1 } });
    // Storage keys untouched: the scope named only the Batch account.
    expect(regenerationCounts(rig.emulator)).toEqual({});
    // The applications read the secret: it holds the regenerated secondary, which the data plane takes.
    expect(publishedIs("secondary")).toBe(true);
    expect(await outages(rig.emulator)).toEqual([]);
    // Each new key, and the published one, were proved on Batch's data plane with a signed call.
    const probes = rig.emulator.batchLog.slice(probesBefore).filter((e) => e.account === BATCH);
    expect(probes.filter((e) => e.status === 200).length).toBeGreaterThanOrEqual(3);
    expect(probes.filter((e) => e.status !== 200)).toEqual([]);
  });

  it("reports an account whose authentication modes lack SharedKey as Entra ID only, and writes nothing", async () => {
    const before = batchRegenerationCounts(rig.emulator);
    const { report } = await whileEntraIdOnly(rig.emulator, BATCH, () => rig.rotate(SCOPE, { force: true }));
    expect(report.accounts.find((a) => a.name === BATCH)).toMatchObject({
      outcome: "skipped",
      reason: expect.stringContaining("Entra ID only: nothing to rotate") as string,
    });
    expect(batchRegenerationCounts(rig.emulator)).toEqual(before);
  });
});
