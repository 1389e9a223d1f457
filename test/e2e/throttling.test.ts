import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { admin } from "../helpers/emulator";
import { outages, regenerationCounts } from "../helpers/estate";
import { armPacer } from "../../shared/azure/pacing";

/**
 * Throttling is a pace signal, never a failure (DESIGN §10): a storm of 429s on any one call of an
 * account's rotation, first without Retry-After (the SDKs do not retry those), then with it (the SDKs'
 * three retries are not enough), and the account still rotates, each key regenerated exactly once.
 */
let rig: RotationRig;
const backoff = { ...armPacer.options.backoff };

beforeAll(async () => {
  // Injected timing: the pacer's first backoff without Retry-After, so the storms cost seconds, not minutes.
  armPacer.options.backoff.firstMs = 50;
  rig = await startRotationRig({ emulator: { settings: { resyncPolicy: "consumers" } } });
});
afterAll(async () => {
  Object.assign(armPacer.options.backoff, backoff);
  await rig?.stop();
});

const SCOPE = { storageAccounts: ["stmlresearch"] };

describe("a 429 storm at any step of an account", () => {
  it("still rotates the account, regenerating each key exactly once, with no outage", async () => {
    const from = rig.emulator.requestLog.length;
    const clean = await rig.rotate(SCOPE, { force: true });
    expect(clean.report.accounts[0]?.outcome).toBe("rotated");
    // Every kind of ARM call a rotation of this account makes is a place for a storm.
    const operations = [
      ...new Set(
        rig.emulator.requestLog
          .slice(from)
          .map((e) => e.operation)
          .filter((o) => o !== "unknown" && o !== "admin" && o !== "identity"),
      ),
    ].sort();
    expect(operations).toEqual(
      expect.arrayContaining([
        "storageAccounts.listKeys",
        "storageAccounts.regenerateKey",
        "datastores.createOrUpdate",
      ]),
    );
    const cells: string[] = [];
    for (const operation of operations) {
      await admin(rig.emulator, "POST", "/faults", {
        operation,
        action: { type: "status", status: 429, code: "TooManyRequests", message: "Throttled (injected)." },
        count: 3,
      });
      await admin(rig.emulator, "POST", "/faults", {
        operation,
        action: {
          type: "status",
          status: 429,
          code: "TooManyRequests",
          message: "Throttled (injected).",
          retryAfterSeconds: 1,
        },
        count: 4,
      });
      const before = regenerationCounts(rig.emulator).stmlresearch!;
      const { report, status } = await rig.rotate(SCOPE, { force: true });
      if (!report?.accounts) throw new Error(`${operation}: ${JSON.stringify(status.output)}`);
      const left = (await admin(rig.emulator, "GET", "/faults")).body as unknown[];
      await admin(rig.emulator, "DELETE", "/faults");
      const account = report.accounts[0]!;
      cells.push(`${operation}: ${account.outcome}${account.reason ? ` (${account.reason})` : ""}`);
      expect(left).toEqual([]); // the storm really hit
      expect(account.outcome).toBe("rotated");
      expect(regenerationCounts(rig.emulator).stmlresearch).toEqual({
        key1: before.key1 + 1,
        key2: before.key2 + 1,
      });
      expect(await outages(rig.emulator)).toEqual([]);
    }
    expect(cells.length).toBe(operations.length);
  }, 300_000);
});
