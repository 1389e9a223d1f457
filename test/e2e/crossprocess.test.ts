import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Emulator } from "../../emulator";
import type { AccountReport, RotationReport } from "../../shared/rotation";
import {
  ARM_TIMEOUT_SECONDS,
  GRACE_SECONDS,
  childEnv,
  cli,
  parseReport,
  type CliRun,
} from "../chaos/harness";
import { startTestEmulator } from "../helpers/emulator";
import { consumers, outages, regenerationCounts } from "../helpers/estate";

/**
 * Issue 8: invariants across processes. Real `keyturn` processes (the built CLI) against one in-process
 * emulator: a process SIGKILLed while its regenerateKey request is in flight, whose request lands late
 * while `keyturn resume` works on the account; and two processes whose scopes share an account.
 *
 * The emulator's `hold` fault keeps the request unanswered until the test releases it; it is then
 * served as if nothing had happened, its caller long dead. keyturn's contract (README): a request takes
 * effect within its deadline (KEYTURN_ARM_TIMEOUT_SECONDS, 3 s in the children) of being sent, or never.
 * The test releases it at the last moment of that deadline, while the resume, started right after the
 * kill, would long have read the keys and regenerated again had it not waited the deadline out.
 */

const ACCOUNT = "stmlresearch";
const REGENERATE = "storageAccounts.regenerateKey";
/** Released this long before the held request's deadline (its arrival + KEYTURN_ARM_TIMEOUT_SECONDS). */
const RELEASE_BEFORE_DEADLINE_MS = 600;
const WAIT_MS = 60_000;

jest.setTimeout(120_000);

interface Setup {
  emulator: Emulator;
  dir: string;
  connection: string;
}

/** A fresh emulator (resync policy `consumers`: no reported I1 window, so any outage is a failure). */
async function withEmulator<T>(work: (setup: Setup) => Promise<T>): Promise<T> {
  const { emulator } = await startTestEmulator({ settings: { resyncPolicy: "consumers" } });
  const dir = mkdtempSync(join(tmpdir(), "keyturn-crossprocess-"));
  const connection = join(dir, "connection.json");
  writeFileSync(connection, JSON.stringify(emulator.connection));
  try {
    return await work({ emulator, dir, connection });
  } finally {
    emulator.faults.release();
    await emulator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function until(what: string, condition: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function onAccount(path: string): boolean {
  return (
    path.toLowerCase().includes(`/storageaccounts/${ACCOUNT}/`) ||
    path.toLowerCase().endsWith(`/storageaccounts/${ACCOUNT}`)
  );
}

function regenerationsOf(emulator: Emulator, account: string) {
  return emulator.ctx.regenerations.filter((r) => r.account === account && !r.outOfBand);
}

function accountIn(report: RotationReport | undefined, account: string): AccountReport | undefined {
  return report?.accounts.find((a) => a.name === account);
}

function reportOf(run: CliRun): RotationReport {
  const parsed = parseReport(run.stdout, run.stderr);
  if (!parsed.report) throw new Error(`${parsed.error ?? "no report"} (exit ${String(run.code)})`);
  return parsed.report;
}

/** Every consumer of the account holds one of its live keys. */
async function deadKeyHolders(emulator: Emulator, account: string): Promise<string[]> {
  return (await consumers(emulator))
    .filter((c) => c.storageAccountName === account && c.heldKeyName === null)
    .map((c) => `${c.kind} ${c.name}`);
}

/**
 * `keyturn rotate --storage-account ACCOUNT` SIGKILLed while its first or second regenerateKey is held,
 * then `keyturn resume` at once; the held request is released just inside its deadline, while the
 * resume is waiting that deadline out (without the wait it would already have regenerated again).
 */
async function killWhileRegenerating(which: "first" | "second"): Promise<void> {
  await withEmulator(async ({ emulator, dir, connection }) => {
    const stateDir = join(dir, "state");
    const env = childEnv(dir);
    const hold = () =>
      emulator.faults.add({
        operation: REGENERATE,
        path: `/storageAccounts/${ACCOUNT}/regenerateKey$`,
        action: { type: "hold" },
      });
    if (which === "first") hold();
    let kill: () => void = () => undefined;
    const rotating = cli(
      [
        "rotate",
        "--connection-file",
        connection,
        "--state-dir",
        stateDir,
        "--storage-account",
        ACCOUNT,
        "--grace",
        `${GRACE_SECONDS}s`,
        "--force",
        "--json",
      ],
      env,
      (k) => (kill = k),
    );
    let ended: CliRun | undefined;
    void rotating.then((r) => (ended = r));
    if (which === "second") {
      await until("the first regeneration", () => regenerationsOf(emulator, ACCOUNT).length === 1 || !!ended);
      hold();
    }
    await until("the held regenerateKey", () => emulator.faults.held.length === 1 || !!ended);
    expect(ended).toBeUndefined();
    kill();
    const killed = await rotating;
    const killedAt = Date.now();
    expect(killed.signal).toBe("SIGKILL");
    const before = regenerationsOf(emulator, ACCOUNT);
    expect(before).toHaveLength(which === "first" ? 0 : 1);
    const heldKey = emulator.faults.held[0]!;

    const resuming = cli(["resume", "--state-dir", stateDir, "--json"], env);
    let resumeEnded = false;
    void resuming.then(() => (resumeEnded = true));
    const deadline = Date.parse(heldKey.since) + ARM_TIMEOUT_SECONDS * 1000;
    await sleep(Math.max(0, deadline - RELEASE_BEFORE_DEADLINE_MS - Date.now()));
    expect(resumeEnded).toBe(false);
    expect(emulator.faults.release().map((r) => r.id)).toEqual([heldKey.id]);
    const resumed = await resuming;
    expect(resumed.stderr).toMatch(
      /waiting \d+ s until requests it may have had in flight can no longer land/,
    );

    // The dead process's request landed, after the kill, and was answered 200 to nobody.
    const late = emulator.requestLog.filter(
      (r) => r.operation === REGENERATE && onAccount(r.path) && Date.parse(r.at) < killedAt,
    );
    expect(late.map((r) => r.status)).toEqual(which === "first" ? [200] : [200, 200]);
    const after = regenerationsOf(emulator, ACCOUNT);
    expect(Date.parse(after[before.length]!.at)).toBeGreaterThanOrEqual(killedAt);

    // Each key regenerated exactly once in all, the late one counted.
    expect(regenerationCounts(emulator)[ACCOUNT]).toEqual({ key1: 1, key2: 1 });
    expect(resumed.code).toBe(0);
    const account = accountIn(reportOf(resumed), ACCOUNT);
    expect(account?.outcome).toBe("rotated");
    expect(await deadKeyHolders(emulator, ACCOUNT)).toEqual([]);
    expect(await outages(emulator)).toEqual([]);
  });
}

describe("across processes (issue 8)", () => {
  test("a regeneration of a killed process that lands late is not repeated by resume", async () => {
    await killWhileRegenerating("first");
  });

  test("the old active key's regeneration of a killed process that lands late is not repeated by resume", async () => {
    await killWhileRegenerating("second");
  });

  test("two processes on overlapping scopes rotate the shared account once", async () => {
    await withEmulator(async ({ emulator, dir, connection }) => {
      const group = "rg-ml-research";
      const inGroup = emulator.ctx.estate.storageAccounts;
      const groupAccounts = [...inGroup.values()]
        .filter((a) => a.resourceGroup === group)
        .map((a) => a.name)
        .sort();
      expect(groupAccounts).toEqual(["stmlgoverned", "stmllake", "stmllegacy", "stmlresearch"]);
      // Both plan before either writes: the first regeneration of the shared account (by whichever
      // process took its lock) is held until the other process has ended. The deadline is long enough
      // (30 s) that the held request is not given up for lost meanwhile.
      emulator.faults.add({
        operation: REGENERATE,
        path: `/storageAccounts/${ACCOUNT}/regenerateKey$`,
        action: { type: "hold" },
      });
      const run = (name: string, scope: string[]) => {
        const own = join(dir, name);
        return cli(
          [
            "rotate",
            "--connection-file",
            connection,
            "--state-dir",
            join(own, "state"),
            ...scope,
            "--grace",
            `${GRACE_SECONDS}s`,
            "--json",
          ],
          { ...childEnv(own), KEYTURN_ARM_TIMEOUT_SECONDS: "30" },
        );
      };
      const runs = [
        run("by-account", ["--storage-account", ACCOUNT]),
        run("by-group", ["--resource-group", group]),
      ] as const;
      await Promise.race(runs);
      // The one that ended first did not wait for the shared account: the other holds it.
      expect(emulator.faults.held).toHaveLength(1);
      expect(regenerationsOf(emulator, ACCOUNT)).toHaveLength(0);
      emulator.faults.release();
      const [byAccount, byGroup] = await Promise.all(runs);
      const reports = { byAccount: reportOf(byAccount), byGroup: reportOf(byGroup) };

      // Every key of every account at most once; the ones rotated exactly once.
      const counts = regenerationCounts(emulator);
      for (const [name, c] of Object.entries(counts)) {
        expect({ name, ...c }).toEqual({ name, key1: c.key1 > 0 ? 1 : 0, key2: c.key2 > 0 ? 1 : 0 });
      }
      expect(counts[ACCOUNT]).toEqual({ key1: 1, key2: 1 });
      expect(counts.stmllake).toEqual({ key1: 1, key2: 1 });

      // One rotated the shared account, the other skipped it naming the winner's rotation.
      const shared = {
        byAccount: accountIn(reports.byAccount, ACCOUNT),
        byGroup: accountIn(reports.byGroup, ACCOUNT),
      };
      const outcomes = [shared.byAccount?.outcome, shared.byGroup?.outcome].sort();
      expect(outcomes).toEqual(["rotated", "skipped"]);
      const [winner, loser] =
        shared.byAccount?.outcome === "rotated"
          ? ([reports.byAccount, shared.byGroup!] as const)
          : ([reports.byGroup, shared.byAccount!] as const);
      expect(loser.skipCode).toBe("in-progress");
      expect(loser.reason).toContain(winner.rotationId);
      expect(loser.keysRegenerated ?? []).toEqual([]);

      // The group's own accounts: stmllake rotated, stmlgoverned skipped by policy.
      expect(accountIn(reports.byGroup, "stmllake")?.outcome).toBe("rotated");
      expect(accountIn(reports.byGroup, "stmlgoverned")?.skipCode).toBe("shared-key-disabled");

      // README exit codes: 0 when every account was rotated or skipped by policy; an account another
      // rotation holds is not done, so the process that skipped it exits 1 (run it again).
      const byAccountWon = shared.byAccount?.outcome === "rotated";
      expect(byAccount.code).toBe(byAccountWon ? 0 : 1);
      expect(byGroup.code).toBe(byAccountWon ? 1 : 0);

      for (const name of groupAccounts) expect(await deadKeyHolders(emulator, name)).toEqual([]);
      expect(await outages(emulator)).toEqual([]);
    });
  });
});
