import type { Emulator } from "../../emulator";
import { findStorageAccountByName } from "../../emulator/model";
import { BlobAccountLocks, LockLostError, type LockSite } from "../../shared/azure/lock";
import { startTestEmulator } from "../helpers/emulator";

/**
 * The account lock against the emulator's data plane (Azurite): a blob lease in the account itself,
 * with keyturn's own expiry in the blob's metadata (issue 8, I5 across processes).
 */
let emulator: Emulator;
let site: LockSite;
const locks = new BlobAccountLocks();
const HOUR = 3_600_000;

beforeAll(async () => {
  ({ emulator } = await startTestEmulator());
  const account = findStorageAccountByName(emulator.ctx.estate, "stmlbatch")!;
  site = {
    blobEndpoint: emulator.ctx.dataPlane.blobEndpoint(account.name),
    accountName: account.name,
    key: account.keys.key1.value,
  };
});
afterAll(async () => {
  await emulator?.stop();
});

describe("the account lock", () => {
  it("refuses a second rotation, naming the holder and when its hold expires", async () => {
    const first = await locks.acquire(site, "rotation-a", HOUR);
    expect(first.acquired).toBe(true);
    const second = await locks.acquire(site, "rotation-b", HOUR);
    expect(second).toMatchObject({ acquired: false, holder: "rotation-a" });
    if (second.acquired) return;
    expect(Date.parse(second.expiresAt!)).toBeGreaterThan(Date.now() + HOUR - 60_000);
    await locks.release(site, "rotation-a");
  });

  it("lets the holder take its own lock again (a resumed rotation)", async () => {
    expect((await locks.acquire(site, "rotation-c", HOUR)).acquired).toBe(true);
    const again = await locks.acquire(site, "rotation-c", HOUR);
    expect(again).toMatchObject({ acquired: true });
    await locks.release(site, "rotation-c", true);
    expect(await locks.read(site)).toMatchObject({ last: { rotationId: "rotation-c" } });
    expect((await locks.read(site)).holder).toBeUndefined();
  });

  it("records a rotation as the last only when it regenerated both keys", async () => {
    expect((await locks.acquire(site, "rotation-rotated", HOUR)).acquired).toBe(true);
    await locks.release(site, "rotation-rotated", true);
    const { last } = await locks.read(site);
    expect(last?.rotationId).toBe("rotation-rotated");
    // Skipped or failed before both keys were new: it lets go, and the record stays the earlier one.
    const taken = await locks.acquire(site, "rotation-skipped", HOUR);
    expect(taken).toMatchObject({ acquired: true, before: { last } });
    await locks.release(site, "rotation-skipped");
    expect((await locks.read(site)).last).toEqual(last);
  });

  it("breaks a holder past its expiry, and the old holder can write nothing more", async () => {
    expect((await locks.acquire(site, "rotation-dead", 1)).acquired).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    const taken = await locks.acquire(site, "rotation-new", HOUR);
    expect(taken).toMatchObject({ acquired: true, tookOverFrom: "rotation-dead" });
    await expect(locks.hold(site, "rotation-dead", HOUR)).rejects.toThrow(LockLostError);
    await expect(locks.hold(site, "rotation-dead", HOUR)).rejects.toThrow(/rotation rotation-new holds it/);
    expect((await locks.read(site)).holder).toBe("rotation-new");
    await locks.release(site, "rotation-new");
  });

  it("renews the holder's expiry, and lets it take the lock again after letting it go", async () => {
    await locks.acquire(site, "rotation-d", 60_000);
    const first = (await locks.read(site)).expiresAt!;
    await locks.hold(site, "rotation-d", HOUR);
    expect(Date.parse((await locks.read(site)).expiresAt!)).toBeGreaterThan(Date.parse(first));
    await locks.release(site, "rotation-d");
    await locks.hold(site, "rotation-d", HOUR);
    expect((await locks.read(site)).holder).toBe("rotation-d");
    expect((await locks.acquire(site, "rotation-e", HOUR)).acquired).toBe(false);
    await locks.release(site, "rotation-d");
  });

  it("gives the lock to exactly one of many rotations racing for it", async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `racer-${i}`);
    const outcomes = await Promise.all(ids.map((id) => locks.acquire(site, id, HOUR)));
    const winners = outcomes.filter((o) => o.acquired);
    expect(winners).toHaveLength(1);
    const holder = (await locks.read(site)).holder!;
    for (const o of outcomes) if (!o.acquired) expect(o.holder).toBe(holder);
    await locks.release(site, holder);
  });

  it("gives an expired lock to exactly one of many rotations breaking it at once", async () => {
    expect((await locks.acquire(site, "rotation-gone", 1)).acquired).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    const ids = Array.from({ length: 6 }, (_, i) => `breaker-${i}`);
    const outcomes = await Promise.all(ids.map((id) => locks.acquire(site, id, HOUR)));
    expect(outcomes.filter((o) => o.acquired)).toHaveLength(1);
    const holder = (await locks.read(site)).holder!;
    expect(ids).toContain(holder);
    for (const id of ids.filter((i) => i !== holder))
      await expect(locks.hold(site, id, HOUR)).rejects.toThrow(LockLostError);
    await locks.release(site, holder);
  });
});
