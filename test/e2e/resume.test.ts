import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { consumers, outages, regenerationCounts } from "../helpers/estate";
import type { ActivityInfo, LocalHost } from "../../local";
import type { RotationReport } from "../../shared/rotation";

/**
 * I4: kill the process at every step boundary of rotateStorageAccount (after each activity's outcome
 * is on disk, and while an activity is running), then resume: the same end state, no key regenerated
 * twice. One storage account, so each run is short.
 */
const SCOPE = { storageAccounts: ["stmlresearch"] };

let rig: RotationRig;

beforeAll(async () => {
  rig = await startRotationRig({ emulator: { settings: { resyncPolicy: "consumers" } } });
});
afterAll(async () => {
  await rig?.stop();
});

/** Runs one rotation, killing the host at the n-th activity event of the account's sub-orchestration. */
async function rotateWithCrash(
  n: number,
  phase: ActivityInfo["phase"],
): Promise<{ crashed: boolean; report: RotationReport }> {
  let seen = 0;
  let crashed = false;
  const first: LocalHost = rig.restart({
    onActivity: (info) => {
      if (!info.instanceId.startsWith("keyturn-account-") || info.phase !== phase) return;
      seen++;
      if (seen === n) {
        crashed = true;
        void first.stop();
      }
    },
  });
  const id = rig.start(SCOPE, { force: true });
  try {
    const status = await first.waitForCompletion(id, { timeoutMs: 60_000 });
    if (!crashed) return { crashed, report: status.output as RotationReport };
  } catch (e) {
    if (!crashed) throw e;
  }
  const second = rig.restart();
  expect(second.resume()).toContain(id);
  const status = await second.waitForCompletion(id, { timeoutMs: 60_000 });
  return { crashed, report: status.output as RotationReport };
}

describe("a rotation killed at any step boundary and resumed", () => {
  it("converges to the same end state without regenerating any key twice", async () => {
    let expected = { key1: 0, key2: 0 };
    const runs: string[] = [];
    for (const phase of ["completed", "started"] as const) {
      for (let n = 1; ; n++) {
        const before = regenerationCounts(rig.emulator).stmlresearch ?? { key1: 0, key2: 0 };
        const { crashed, report } = await rotateWithCrash(n, phase);
        const account = report.accounts.find((a) => a.name === "stmlresearch");
        expect(account?.outcome).toBe("rotated");
        // Exactly one more regeneration of each key per rotation, however often the process died.
        expected = { key1: before.key1 + 1, key2: before.key2 + 1 };
        expect(regenerationCounts(rig.emulator).stmlresearch).toEqual(expected);
        const held = (await consumers(rig.emulator)).filter((c) => c.storageAccountName === "stmlresearch");
        const newActive = account!.activeKeyAfter!.key;
        expect(held.filter((c) => c.heldKeyName !== newActive)).toEqual([]);
        expect(await outages(rig.emulator)).toEqual([]);
        runs.push(`${phase}#${n}`);
        if (!crashed) break;
      }
    }
    // Every activity of the procedure was a crash point, both after its outcome and while it ran: the
    // account's five (regenerate, move and verify, find late datastores, regenerate, verify), plus the
    // run that was not killed, in each phase.
    expect(runs.length).toBeGreaterThanOrEqual(2 * 6);
  });
});
