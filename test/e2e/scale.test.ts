import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { outages, regenerationCounts } from "../helpers/estate";

/**
 * An estate bigger than ARM's write burst, with the emulator's limits on (ARM's buckets per principal
 * and subscription, the Storage RP's per subscription and region): keyturn paces itself and rotates
 * every account within its ARM budget (DESIGN §10). Latency is off here; `npm run bench` measures time.
 */
let rig: RotationRig;

beforeAll(async () => {
  rig = await startRotationRig({
    emulator: { estate: "large:20x5", settings: { resyncPolicy: "consumers" } },
  });
});
afterAll(async () => {
  await rig?.stop();
});

describe("an estate of 20 accounts × 5 datastores under Azure's limits", () => {
  it("rotates every account, each key exactly once, within 3 ARM writes per datastore + 10 per account", async () => {
    const from = rig.emulator.requestLog.length;
    const { report } = await rig.rotate(
      { subscriptions: rig.emulator.connection.subscriptionIds },
      { graceSeconds: 5, parallelism: 8 },
    );
    expect(report.accounts).toHaveLength(20);
    expect(
      report.accounts.filter((a) => a.outcome !== "rotated").map((a) => `${a.name}: ${a.reason}`),
    ).toEqual([]);
    const counts = regenerationCounts(rig.emulator);
    expect(Object.values(counts)).toHaveLength(20);
    for (const c of Object.values(counts)) expect(c).toEqual({ key1: 1, key2: 1 });
    expect(await outages(rig.emulator)).toEqual([]);

    const arm = rig.emulator.requestLog
      .slice(from)
      .filter((e) => e.operation !== "admin" && e.operation !== "identity" && e.operation !== "unknown");
    // Writes Azure accepted: a 429 is answered before it costs anything.
    const writes = arm.filter((e) => e.method !== "GET" && e.method !== "HEAD" && e.status !== 429).length;
    // Each account: 5 blob datastores plus workspaceblobstore and workspacefilestore hold its key.
    const datastores = 20 * 7;
    expect(writes).toBeLessThanOrEqual(3 * datastores + 10 * 20);
  }, 300_000);
});
