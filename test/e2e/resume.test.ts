import { startRotationRig, type RotationRig } from "../helpers/rotation";
import {
  batchRegenerationCounts,
  consumers,
  outages,
  regenerationCounts,
  registryRegenerationCounts,
} from "../helpers/estate";
import type { ActivityInfo, LocalHost } from "../../local";
import type { RotationReport } from "../../shared/rotation";
import { CLASSIC_DEMO_ACCOUNT } from "../../emulator/estates";

/**
 * I4: kill the process at every step boundary of rotateStorageAccount (after each activity's outcome
 * is on disk, and while an activity is running), then resume: the same end state, no key regenerated
 * twice. One storage account at a time, so each run is short: one with a workspace and AccountKey
 * datastores, one whose consumers include a SAS datastore keyturn re-signs, and a classic one (keys
 * through Service Management, no key creation times: the guards decide from fingerprints alone), and
 * a Batch account's shared keys (`batchKeys`; their consumer a Key Vault secret, proved on Batch's data
 * plane), and a container registry's admin passwords (`registryPasswords`; its consumer the workspace,
 * which picks a password itself on resync).
 */
const BATCH = "batchmltrain";
const REGISTRY = "crmlwtrain";
const ACCOUNTS = ["stmlresearch", "stmllake", CLASSIC_DEMO_ACCOUNT, BATCH, REGISTRY];

/** Regenerations so far of the account's keys: Batch keys and registry passwords are counted apart. */
function counts(accountName: string): { key1: number; key2: number } | undefined {
  const of =
    accountName === BATCH
      ? batchRegenerationCounts
      : accountName === REGISTRY
        ? registryRegenerationCounts
        : regenerationCounts;
  return of(rig.emulator)[accountName];
}

let rig: RotationRig;

beforeAll(async () => {
  rig = await startRotationRig({ emulator: { settings: { resyncPolicy: "consumers" } } });
});
afterAll(async () => {
  await rig?.stop();
});

/** Runs one rotation, killing the host at the n-th activity event of the account's sub-orchestration. */
async function rotateWithCrash(
  accountName: string,
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
  const id = rig.start(
    {
      storageAccounts: [accountName],
      ...(accountName === BATCH ? { batchKeys: true } : {}),
      ...(accountName === REGISTRY ? { registryPasswords: true } : {}),
    },
    { force: true },
  );
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

describe.each(ACCOUNTS)("a rotation of %s killed at any step boundary and resumed", (accountName) => {
  it("converges to the same end state without regenerating any key twice", async () => {
    let expected = { key1: 0, key2: 0 };
    const runs: string[] = [];
    for (const phase of ["completed", "started"] as const) {
      for (let n = 1; ; n++) {
        const before = counts(accountName) ?? { key1: 0, key2: 0 };
        const { crashed, report } = await rotateWithCrash(accountName, n, phase);
        const account = report.accounts.find((a) => a.name === accountName);
        expect(account?.outcome).toBe("rotated");
        // Exactly one more regeneration of each key per rotation, however often the process died.
        expected = { key1: before.key1 + 1, key2: before.key2 + 1 };
        expect(counts(accountName)).toEqual(expected);
        const held = (await consumers(rig.emulator)).filter((c) => c.storageAccountName === accountName);
        const newActive = account!.activeKeyAfter!.key;
        // The workspace picks its registry password itself: a live one is all a rotation can promise.
        expect(
          held.filter((c) =>
            c.kind === "workspaceRegistry" ? c.heldKeyName === null : c.heldKeyName !== newActive,
          ),
        ).toEqual([]);
        // The registry's windows (a regenerated password until the resync right after) are the exception.
        expect(
          (await outages(rig.emulator)).filter((o) => o.kind !== "workspaceRegistry" || o.end === undefined),
        ).toEqual([]);
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
