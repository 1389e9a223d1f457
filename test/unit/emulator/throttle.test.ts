import {
  SubscriptionThrottle,
  TokenBucket,
  ARM_READ_LIMITS,
  ARM_WRITE_LIMITS,
} from "../../../emulator/throttle";
import { medianLatencyMs, sampleLatencyMs } from "../../../emulator/latency";
import { actionMatches, Rbac } from "../../../emulator/rbac";
import { Faults } from "../../../emulator/faults";
import { parseEstateName } from "../../../emulator/estates";

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

  it("keeps subscriptions and read/write buckets apart", () => {
    const c = clock();
    const throttle = new SubscriptionThrottle(c.now);
    throttle.bucket("sub-a", "write").drain();
    expect(throttle.take("sub-a", "write").ok).toBe(false);
    expect(throttle.take("SUB-A", "read").ok).toBe(true);
    expect(throttle.take("sub-b", "write").ok).toBe(true);
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

describe("estate names", () => {
  it("accepts demo and large:<accounts>x<datastores>, and names the fix otherwise", () => {
    expect(parseEstateName("demo")).toEqual({ kind: "demo" });
    expect(parseEstateName("large:20x5")).toEqual({ kind: "large", accounts: 20, datastores: 5 });
    expect(() => parseEstateName("large:0x5")).toThrow(/large:<accounts>x<datastoresPerAccount>/);
    expect(() => parseEstateName("big")).toThrow(/Unknown estate 'big'/);
  });
});
