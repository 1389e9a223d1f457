import type { Emulator, RequestLogEntry, ThrottleCounts } from "../../emulator";
import { loadRoleDefinition } from "../../emulator/rbac";
import { KEYTURN_ROLE_FILE } from "../../emulator/paths";
import { admin, armToken, clientsFor, raw, startTestEmulator } from "../helpers/emulator";

/**
 * Contract: Azure's request limits as the emulator answers them over HTTPS (DESIGN §10). The estate
 * `large:4x1x2` has two subscriptions; in each, the first account is in eastus, the second in
 * westeurope. Each test signs in as its own principal with keyturn's role, because ARM's buckets are
 * per principal and an earlier test's calls must not throttle a later one; the Storage RP's limits
 * are per subscription and region, so tests that exhaust them each use their own.
 */

const STORAGE_API = "api-version=2025-08-01";
const ML_API = "api-version=2022-10-01";

let emulator: Emulator;
let sub0: string;
let sub1: string;

beforeAll(async () => {
  ({ emulator } = await startTestEmulator({ estate: "large:4x1x2" }));
  [sub0, sub1] = emulator.connection.subscriptionIds as [string, string];
});
afterAll(async () => {
  await emulator?.stop();
});

const role = loadRoleDefinition(KEYTURN_ROLE_FILE);
let principals = 0;

/** A fresh principal with keyturn's role in every subscription, and its ARM token. */
async function signIn(): Promise<{ token: string; clientId: string }> {
  const principal = emulator.addPrincipal(`limits-${++principals}`, role);
  return { token: await armToken(clientsFor(emulator, principal)), clientId: principal.clientId };
}

function account(sub: string, index: number): string {
  const a = [...emulator.ctx.estate.storageAccounts.values()].filter((x) => x.subscriptionId === sub)[index]!;
  return `/subscriptions/${sub}/resourceGroups/${a.resourceGroup}/providers/Microsoft.Storage/storageAccounts/${a.name}`;
}

const header = (r: { headers: Record<string, string | string[] | undefined> }, name: string) =>
  r.headers[name] as string | undefined;

async function throttleCounts(): Promise<ThrottleCounts> {
  return (await admin(emulator, "GET", "/throttle")).body as ThrottleCounts;
}

describe("the estate over several subscriptions", () => {
  it("names every subscription in the connection file, and keyturn's principal may act in each", async () => {
    expect(emulator.connection.subscriptionIds).toHaveLength(2);
    const token = await armToken(clientsFor(emulator));
    for (const sub of [sub0, sub1]) {
      const keys = await raw(emulator, "POST", `${account(sub, 1)}/listKeys?${STORAGE_API}`, { token });
      expect(keys.status).toBe(200);
    }
    const locations = [sub0, sub1].map((sub) =>
      [...emulator.ctx.estate.storageAccounts.values()]
        .filter((a) => a.subscriptionId === sub)
        .map((a) => a.location),
    );
    expect(locations).toEqual([
      ["eastus", "westeurope"],
      ["eastus", "westeurope"],
    ]);
  });
});

describe("ARM's token buckets", () => {
  it("put the remaining calls of the bucket each answer drew from on every answer", async () => {
    const { token } = await signIn();
    const read = await raw(emulator, "GET", `${account(sub0, 0)}?${STORAGE_API}`, { token });
    expect(read.status).toBe(200);
    expect(Number(header(read, "x-ms-ratelimit-remaining-subscription-reads"))).toBe(249);
    expect(header(read, "x-ms-ratelimit-remaining-subscription-writes")).toBeUndefined();
    const missing = await raw(
      emulator,
      "GET",
      `/subscriptions/${sub0}/resourceGroups/rg-nosuch/providers/Microsoft.Storage/storageAccounts/x?${STORAGE_API}`,
      { token },
    );
    expect(missing.status).toBe(404);
    // ARM counted it before finding no such group (the bucket refills 1 per 40 ms meanwhile).
    expect(Number(header(missing, "x-ms-ratelimit-remaining-subscription-reads"))).toBeLessThanOrEqual(249);

    const write = await raw(emulator, "POST", `${account(sub0, 0)}/listKeys?${STORAGE_API}`, { token });
    expect(write.status).toBe(200);
    expect(Number(header(write, "x-ms-ratelimit-remaining-subscription-writes"))).toBe(199);
    expect(header(write, "x-ms-ratelimit-remaining-subscription-reads")).toBeUndefined();

    // A POST that only reads (listSecrets) is still a write, and an answer that is an error still counts.
    const ws = [...emulator.ctx.estate.workspaces.values()].find((w) => w.subscriptionId === sub1)!;
    const secrets = await raw(emulator, "POST", `${ws.id}/datastores/nosuch/listSecrets?${ML_API}`, {
      token,
    });
    expect(secrets.status).toBe(404);
    expect(Number(header(secrets, "x-ms-ratelimit-remaining-subscription-writes"))).toBe(199);

    const tenant = await raw(emulator, "GET", "/subscriptions?api-version=2022-12-01", { token });
    expect(tenant.status).toBe(200);
    expect(Number(header(tenant, "x-ms-ratelimit-remaining-tenant-reads"))).toBe(249);
  });

  it("answer an empty bucket with 429, Azure's error, a whole Retry-After and 0 remaining, for that principal only", async () => {
    const throttled = await signIn();
    const other = await signIn();
    await admin(emulator, "POST", "/throttle/drain", {
      subscriptionId: sub1,
      kind: "write",
      clientId: throttled.clientId,
    });
    const path = `${account(sub1, 0)}/listKeys?${STORAGE_API}`;
    const refused = await raw(emulator, "POST", path, { token: throttled.token });
    expect(refused.status).toBe(429);
    expect(header(refused, "retry-after")).toMatch(/^[1-9]\d*$/);
    expect(header(refused, "x-ms-ratelimit-remaining-subscription-writes")).toBe("0");
    expect(refused.body).toMatchObject({
      error: {
        code: "SubscriptionRequestsThrottled",
        message: expect.stringContaining("'write'") as unknown,
      },
    });
    // Reads have their own bucket; another principal has its own buckets.
    expect((await raw(emulator, "GET", `${account(sub1, 0)}?${STORAGE_API}`, throttled)).status).toBe(200);
    expect((await raw(emulator, "POST", path, other)).status).toBe(200);
  });

  it("are off with the setting throttling=false, and the drained principal is served again", async () => {
    const { token, clientId } = await signIn();
    await admin(emulator, "POST", "/throttle/drain", { subscriptionId: sub0, kind: "read", clientId });
    const path = `${account(sub0, 1)}?${STORAGE_API}`;
    expect((await raw(emulator, "GET", path, { token })).status).toBe(429);
    expect(await admin(emulator, "PATCH", "/settings", { throttling: false })).toMatchObject({
      status: 200,
      body: { throttling: false, storageRpLimits: true },
    });
    try {
      const served = await raw(emulator, "GET", path, { token });
      expect(served.status).toBe(200);
      expect(header(served, "x-ms-ratelimit-remaining-subscription-reads")).toBeUndefined();
    } finally {
      await admin(emulator, "PATCH", "/settings", { throttling: true });
    }
  });
});

describe("the Storage resource provider's limits", () => {
  it("refuse a burst of writes past 10 per second in one subscription and region, and no other", async () => {
    const { token } = await signIn();
    const burst = await Promise.all(
      Array.from({ length: 25 }, () =>
        raw(emulator, "POST", `${account(sub0, 0)}/listKeys?${STORAGE_API}`, { token }),
      ),
    );
    const refused = burst.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    expect(burst.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(10);
    for (const r of refused) {
      expect(header(r, "retry-after")).toBe("1");
      expect(r.body).toMatchObject({
        error: {
          code: "TooManyRequests",
          message: expect.stringContaining("Write_ObservationWindow_00:00:01") as unknown,
        },
      });
      // ARM let the call through before the provider refused it: its token is spent and shown.
      expect(header(r, "x-ms-ratelimit-remaining-subscription-writes")).toMatch(/^\d+$/);
    }
    // The same subscription's other region, and the other subscription's same region, are untouched.
    expect(
      (await raw(emulator, "POST", `${account(sub0, 1)}/listKeys?${STORAGE_API}`, { token })).status,
    ).toBe(200);
    expect(
      (await raw(emulator, "POST", `${account(sub1, 0)}/listKeys?${STORAGE_API}`, { token })).status,
    ).toBe(200);
  });

  it("let the SDK wait out a write refused for a second and succeed", async () => {
    const clients = clientsFor(emulator, emulator.addPrincipal(`limits-sdk`, role));
    const a = [...emulator.ctx.estate.storageAccounts.values()].find(
      (x) => x.subscriptionId === sub0 && x.location === "westeurope",
    )!;
    const before = emulator.requestLog.length;
    const results = await Promise.all(
      Array.from({ length: 15 }, () => clients.storage.storageAccounts.listKeys(a.resourceGroup, a.name)),
    );
    expect(results.every((r) => r.keys?.length === 2)).toBe(true);
    const mine = emulator.requestLog.slice(before).filter((e) => e.operation === "storageAccounts.listKeys");
    expect(mine.filter((e) => e.status === 200)).toHaveLength(15);
    expect(mine.filter((e) => e.status === 429).every((e) => e.throttledBy === "storageRp")).toBe(true);
  });

  it("admit 100 lists per 5 minutes per subscription, then say when the window admits one; the setting turns them off", async () => {
    const reader = await signIn();
    const readers = [reader, await signIn()];
    const list = (n: number) =>
      raw(
        emulator,
        "GET",
        `/subscriptions/${sub1}/providers/Microsoft.Storage/storageAccounts?${STORAGE_API}`,
        {
          token: readers[n % 2]!.token,
        },
      );
    for (let i = 0; i < 100; i++) expect((await list(i)).status).toBe(200);
    const refused = await list(100);
    expect(refused.status).toBe(429);
    expect(Number(header(refused, "retry-after"))).toBeGreaterThan(250);
    expect(Number(header(refused, "retry-after"))).toBeLessThanOrEqual(300);
    expect(refused.body).toMatchObject({
      error: {
        code: "TooManyRequests",
        message: expect.stringContaining("List_ObservationWindow_00:05:00") as unknown,
      },
    });
    // Lists are the provider's, not ARM's: other kinds of call in the subscription go on.
    expect((await raw(emulator, "GET", `${account(sub1, 1)}?${STORAGE_API}`, reader)).status).toBe(200);

    await admin(emulator, "PATCH", "/settings", { storageRpLimits: false });
    try {
      expect((await list(101)).status).toBe(200);
    } finally {
      await admin(emulator, "PATCH", "/settings", { storageRpLimits: true });
    }
    expect((await list(102)).status).toBe(429);
  });
});

describe("settings and the admin API for a bench", () => {
  it("validate both limit settings as booleans, changing nothing on a bad value", async () => {
    const bad = await admin(emulator, "PATCH", "/settings", { storageRpLimits: "no", throttling: false });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain("storageRpLimits must be a boolean");
    expect((await admin(emulator, "GET", "/settings")).body).toMatchObject({
      throttling: true,
      storageRpLimits: true,
    });
  });

  it("counts every 429 by what refused it and by operation, and logs each call with its time, method and status", async () => {
    const { token, clientId } = await signIn();
    const start = await throttleCounts();
    const before = emulator.requestLog.length;
    await admin(emulator, "POST", "/faults", {
      operation: "storageAccounts.getProperties",
      action: { type: "status", status: 429, retryAfterSeconds: 1 },
    });
    await admin(emulator, "POST", "/throttle/drain", { subscriptionId: sub1, kind: "write", clientId });
    expect((await raw(emulator, "GET", `${account(sub1, 1)}?${STORAGE_API}`, { token })).status).toBe(429);
    expect(
      (await raw(emulator, "POST", `${account(sub1, 1)}/listKeys?${STORAGE_API}`, { token })).status,
    ).toBe(429);

    const end = await throttleCounts();
    expect(end.total - start.total).toBe(2);
    expect(end.bySource.fault - start.bySource.fault).toBe(1);
    expect(end.bySource.arm - start.bySource.arm).toBe(1);
    expect(end.requests - start.requests).toBe(2);
    expect(end.byOperation["storageAccounts.listKeys"]).toBeGreaterThanOrEqual(1);

    const log = (await admin(emulator, "GET", "/requests")).body as RequestLogEntry[];
    expect(log).toHaveLength(emulator.requestLog.length);
    const mine = log.slice(before);
    expect(mine.map((e) => [e.method, e.operation, e.status, e.throttledBy])).toEqual([
      ["GET", "storageAccounts.getProperties", 429, "fault"],
      ["POST", "storageAccounts.listKeys", 429, "arm"],
    ]);
    for (const e of mine) {
      expect(e.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(e.clientId).toBe(clientId);
    }
  });

  it("starts the log and the counts afresh on DELETE /requests", async () => {
    expect((await admin(emulator, "DELETE", "/requests")).status).toBe(204);
    expect(emulator.requestLog).toHaveLength(0);
    expect(await throttleCounts()).toEqual({
      throttling: true,
      storageRpLimits: true,
      requests: 0,
      total: 0,
      bySource: { arm: 0, storageRp: 0, fault: 0 },
      byOperation: {},
    });
  });
});
