import {
  ArmThrottle,
  SlidingWindow,
  StorageRpThrottle,
  TokenBucket,
  ARM_READ_LIMITS,
  ARM_WRITE_LIMITS,
  STORAGE_RP_LIMITS,
  TENANT_SCOPE,
} from "../../../emulator/throttle";
import { medianLatencyMs, sampleLatencyMs } from "../../../emulator/latency";
import { actionMatches, Rbac } from "../../../emulator/rbac";
import { Faults } from "../../../emulator/faults";

function clock(start = 0) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("ARM token buckets", () => {
  it("allows ARM's burst of 250 reads, then answers with the seconds until a token is back", () => {
    const c = clock();
    const bucket = new TokenBucket(ARM_READ_LIMITS, c.now);
    for (let i = 0; i < 250; i++) expect(bucket.take().ok).toBe(true);
    expect(bucket.take()).toEqual({ ok: false, retryAfterSeconds: 1 });
  });

  it("refills writes at 10 per second", () => {
    const c = clock();
    const bucket = new TokenBucket(ARM_WRITE_LIMITS, c.now);
    for (let i = 0; i < 200; i++) bucket.take();
    expect(bucket.take().ok).toBe(false);
    c.advance(1000);
    for (let i = 0; i < 10; i++) expect(bucket.take().ok).toBe(true);
    expect(bucket.take().ok).toBe(false);
  });

  it("tells how many calls remain after each one, down to 0", () => {
    const bucket = new TokenBucket({ capacity: 3, refillPerSecond: 1 }, clock().now);
    expect([bucket.take(), bucket.take(), bucket.take()]).toEqual([
      { ok: true, remaining: 2 },
      { ok: true, remaining: 1 },
      { ok: true, remaining: 0 },
    ]);
  });

  it("keeps principals, subscriptions and read/write buckets apart", () => {
    const throttle = new ArmThrottle(clock().now);
    throttle.bucket("keyturn", "sub-a", "write").drain();
    expect(throttle.take("keyturn", "sub-a", "write").ok).toBe(false);
    expect(throttle.take("KEYTURN", "SUB-A", "read").ok).toBe(true);
    expect(throttle.take("keyturn", "sub-b", "write").ok).toBe(true);
    expect(throttle.take("someone-else", "sub-a", "write").ok).toBe(true);
    expect(throttle.take("keyturn", TENANT_SCOPE, "write").ok).toBe(true);
  });

  it("drains every principal's bucket of a subscription, including one that has made no call yet", () => {
    const throttle = new ArmThrottle(clock().now);
    throttle.take("early", "sub-a", "read");
    throttle.drain("sub-a", "read", ["late"]);
    expect(throttle.take("early", "sub-a", "read").ok).toBe(false);
    expect(throttle.take("late", "sub-a", "read").ok).toBe(false);
    expect(throttle.take("early", "sub-a", "write").ok).toBe(true);
    expect(throttle.take("early", "sub-b", "read").ok).toBe(true);
  });

  it("counts POSTs of key listings as writes: 200 listKeys in a burst, the 201st waits a second", () => {
    const throttle = new ArmThrottle(clock().now);
    for (let i = 0; i < 200; i++) expect(throttle.take("keyturn", "sub", "write").ok).toBe(true);
    expect(throttle.take("keyturn", "sub", "write")).toEqual({ ok: false, retryAfterSeconds: 1 });
    expect(throttle.take("keyturn", "sub", "read").ok).toBe(true);
  });
});

describe("sliding windows", () => {
  it("admit the limit within the window and say when the oldest call leaves it", () => {
    const c = clock();
    const window = new SlidingWindow({ limit: 3, windowMs: 10_000 }, c.now);
    expect(window.take()).toEqual({ ok: true, remaining: 2 });
    c.advance(4_000);
    window.take();
    window.take();
    expect(window.take()).toEqual({ ok: false, retryAfterSeconds: 6 });
    c.advance(5_999);
    expect(window.take()).toEqual({ ok: false, retryAfterSeconds: 1 });
    c.advance(1);
    expect(window.take()).toEqual({ ok: true, remaining: 0 });
    expect(window.take()).toEqual({ ok: false, retryAfterSeconds: 4 });
  });

  it("do not count refused calls", () => {
    const c = clock();
    const window = new SlidingWindow({ limit: 1, windowMs: 1_000 }, c.now);
    window.take();
    for (let i = 0; i < 5; i++) expect(window.take().ok).toBe(false);
    c.advance(1_000);
    expect(window.take().ok).toBe(true);
  });

  it("stay correct over many more calls than the limit", () => {
    const c = clock();
    const window = new SlidingWindow({ limit: 100, windowMs: 1_000 }, c.now);
    let admitted = 0;
    for (let i = 0; i < 50_000; i++) {
      if (window.take().ok) admitted++;
      c.advance(1);
    }
    // 100 per second over 50 seconds.
    expect(admitted).toBe(5_000);
    // At 50,000 ms the call admitted at 49,000 ms has just left the window.
    expect(window.remaining()).toBe(1);
  });
});

describe("Storage resource provider limits", () => {
  it("admit 10 writes at once, then 10 per second", () => {
    const c = clock();
    const rp = new StorageRpThrottle(c.now);
    for (let i = 0; i < 10; i++) expect(rp.take("sub", "eastus", "write").ok).toBe(true);
    expect(rp.take("sub", "eastus", "write")).toEqual({
      ok: false,
      retryAfterSeconds: 1,
      observationWindow: "Write_ObservationWindow_00:00:01",
    });
    c.advance(1000);
    for (let i = 0; i < 10; i++) expect(rp.take("sub", "eastus", "write").ok).toBe(true);
    expect(rp.take("sub", "eastus", "write").ok).toBe(false);
  });

  it("stop writes at 1,200 an hour and say how long until the first of them leaves the hour", () => {
    const c = clock();
    const rp = new StorageRpThrottle(c.now);
    for (let i = 0; i < 1200; i++) {
      expect(rp.take("sub", "eastus", "write").ok).toBe(true);
      c.advance(100); // 10 per second: never the per-second limit
    }
    // 120 s have passed since the first write: it leaves the hour in 3,480 s.
    expect(rp.take("sub", "eastus", "write")).toEqual({
      ok: false,
      retryAfterSeconds: 3480,
      observationWindow: "Write_ObservationWindow_01:00:00",
    });
    c.advance(3_480_000);
    expect(rp.take("sub", "eastus", "write").ok).toBe(true);
    expect(rp.take("sub", "eastus", "write").ok).toBe(false);
  });

  it("keep each subscription and region's budget apart", () => {
    const rp = new StorageRpThrottle(clock().now);
    for (let i = 0; i < 10; i++) rp.take("sub", "eastus", "write");
    expect(rp.take("sub", "eastus", "write").ok).toBe(false);
    expect(rp.take("sub", "westeurope", "write").ok).toBe(true);
    expect(rp.take("other", "eastus", "write").ok).toBe(true);
    expect(rp.take("SUB", "EastUS", "write").ok).toBe(false);
  });

  it("admit 800 reads and 100 lists per 5 minutes, each apart from writes", () => {
    const c = clock();
    const rp = new StorageRpThrottle(c.now);
    for (let i = 0; i < STORAGE_RP_LIMITS.reads.limit; i++)
      expect(rp.take("sub", "eastus", "read").ok).toBe(true);
    expect(rp.take("sub", "eastus", "read")).toEqual({
      ok: false,
      retryAfterSeconds: 300,
      observationWindow: "Read_ObservationWindow_00:05:00",
    });
    for (let i = 0; i < STORAGE_RP_LIMITS.lists.limit; i++)
      expect(rp.take("sub", "eastus", "list").ok).toBe(true);
    expect(rp.take("sub", "eastus", "list")).toMatchObject({
      ok: false,
      observationWindow: "List_ObservationWindow_00:05:00",
    });
    expect(rp.take("sub", "eastus", "write").ok).toBe(true);
    c.advance(300_000);
    expect(rp.take("sub", "eastus", "read").ok).toBe(true);
    expect(rp.take("sub", "eastus", "list").ok).toBe(true);
  });

  it("do not count a write the per-second bucket refuses against the hour", () => {
    const c = clock();
    const rp = new StorageRpThrottle(c.now, {
      ...STORAGE_RP_LIMITS,
      writesPerHour: { limit: 12, windowMs: 3_600_000 },
    });
    for (let i = 0; i < 10; i++) rp.take("sub", "eastus", "write");
    for (let i = 0; i < 50; i++) expect(rp.take("sub", "eastus", "write").ok).toBe(false);
    c.advance(1000);
    expect(rp.take("sub", "eastus", "write").ok).toBe(true);
    expect(rp.take("sub", "eastus", "write").ok).toBe(true);
    expect(rp.take("sub", "eastus", "write")).toMatchObject({
      ok: false,
      observationWindow: "Write_ObservationWindow_01:00:00",
    });
  });
});

describe("latency model", () => {
  it("is centred on the operation's median and scales", () => {
    const median = () => 0.5;
    // u1 = 0.5, u2 = 0.5 gives a normal draw of -sqrt(2 ln 2): below the median, deterministically.
    const sample = sampleLatencyMs("storageAccounts.regenerateKey", 1, median);
    expect(sample).toBeLessThan(medianLatencyMs("storageAccounts.regenerateKey"));
    expect(sampleLatencyMs("storageAccounts.regenerateKey", 0.1, median)).toBe(Math.round(sample / 10));
    expect(medianLatencyMs("storageAccounts.regenerateKey")).toBeGreaterThan(
      medianLatencyMs("workspaces.get"),
    );
  });
});

describe("RBAC", () => {
  it("matches actions case-insensitively with wildcards", () => {
    expect(
      actionMatches(
        "Microsoft.Storage/storageAccounts/listKeys/action",
        "microsoft.storage/storageaccounts/listkeys/action",
      ),
    ).toBe(true);
    expect(actionMatches("*/read", "Microsoft.Batch/batchAccounts/read")).toBe(true);
    expect(actionMatches("*/read", "Microsoft.Batch/batchAccounts/listKeys/action")).toBe(false);
  });

  it("grants only within the assignment's scope and honours NotActions", () => {
    const rbac = new Rbac([
      {
        Name: "r",
        Actions: ["Microsoft.Storage/*"],
        NotActions: ["Microsoft.Storage/storageAccounts/regeneratekey/action"],
      },
    ]);
    const p = { clientId: "c", clientSecret: "s", objectId: "o", displayName: "p" };
    rbac.assign({ principalObjectId: "o", role: "r", scope: "/subscriptions/s1/resourceGroups/rg1" });
    const id = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/a";
    expect(rbac.isAllowed(p, "Microsoft.Storage/storageAccounts/read", id)).toBe(true);
    expect(rbac.isAllowed(p, "Microsoft.Storage/storageAccounts/regeneratekey/action", id)).toBe(false);
    expect(rbac.isAllowed(p, "Microsoft.Storage/storageAccounts/read", id.replace("rg1", "rg2"))).toBe(false);
    expect(() => rbac.authorize(p, "Microsoft.Storage/storageAccounts/regeneratekey/action", id)).toThrow(
      /AuthorizationFailed|does not have authorization/,
    );
  });
});

describe("fault rules", () => {
  it("fire the given number of times and then stop", () => {
    const faults = new Faults();
    faults.add({ operation: "storageAccounts.listKeys", action: { type: "drop" }, count: 2 });
    const info = { method: "POST", path: "/x", operation: "storageAccounts.listKeys" };
    expect(faults.take(info)).toEqual({ type: "drop" });
    expect(faults.take({ ...info, operation: "other" })).toBeUndefined();
    expect(faults.take(info)).toEqual({ type: "drop" });
    expect(faults.take(info)).toBeUndefined();
  });

  it("rejects a bad path pattern when it is added, not on every request", () => {
    expect(() => new Faults().add({ path: "(", action: { type: "drop" } })).toThrow();
  });

  it("keeps LRO failures for their operation only", () => {
    const faults = new Faults();
    faults.add({ operation: "resyncKeys", action: { type: "failLro" } });
    expect(faults.take({ method: "POST", path: "/x", operation: "resyncKeys" })).toBeUndefined();
    expect(faults.takeLroFailure("batch")).toBe(false);
    expect(faults.takeLroFailure("resyncKeys")).toBe(true);
    expect(faults.takeLroFailure("resyncKeys")).toBe(false);
  });
});
