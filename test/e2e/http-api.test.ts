import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { regenerationCounts } from "../helpers/estate";
import type { RotationReport } from "../../shared/rotation";

let rig: RotationRig;
let origin: string;

beforeAll(async () => {
  rig = await startRotationRig({ emulator: { settings: { resyncPolicy: "consumers" } } });
  origin = await rig.host.start({ timers: false });
});
afterAll(async () => {
  await rig?.stop();
});

async function call(
  method: string,
  path: string,
  body?: unknown,
  key: string | null = rig.host.keys.function,
) {
  const res = await fetch(`${origin}${path}`, {
    method,
    headers: { "content-type": "application/json", ...(key ? { "x-functions-key": key } : {}) },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> | undefined,
  };
}

const nothingWritten = () => {
  expect(rig.emulator.ctx.regenerations).toEqual([]);
  expect(rig.host.durable.list()).toEqual([]);
};

describe("POST /api/rotations rejects bad input before anything is written (I6)", () => {
  it.each([
    ["malformed JSON", "{scope:", /JSON/],
    ["an empty scope", { scope: {} }, /scope/],
    [
      "an invalid storage account name",
      { scope: { storageAccounts: ["Not An Account!"] } },
      /storageAccounts\[0\]/,
    ],
    ["a negative grace", { scope: { storageAccounts: ["stmlshared"] }, graceMinutes: -5 }, /graceMinutes/],
    ["an unknown field", { scope: { storageAccounts: ["stmlshared"] }, dryrun: true }, /dryrun/],
  ])("answers %s with 400 and the reasons", async (_what, body, reason) => {
    const res = await call("POST", "/api/rotations", body);
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body?.reasons ?? res.body)).toMatch(reason);
    nothingWritten();
  });

  it("answers a call without the function key with 401", async () => {
    const res = await call("POST", "/api/rotations", { scope: { storageAccounts: ["stmlshared"] } }, null);
    expect(res.status).toBe(401);
    nothingWritten();
  });

  it("answers bad settings with a message naming the setting, and starts nothing", async () => {
    process.env.KEYTURN_PARALLELISM = "0";
    try {
      const res = await call("POST", "/api/rotations", { scope: { storageAccounts: ["stmlshared"] } });
      expect(res.status).toBe(500);
      expect(JSON.stringify(res.body)).toMatch(/KEYTURN_PARALLELISM|parallelism/i);
    } finally {
      delete process.env.KEYTURN_PARALLELISM;
    }
    nothingWritten();
  });
});

describe("the rotation API", () => {
  it("plans without writing anything", async () => {
    const res = await call("GET", "/api/plan?storageAccounts=stmlshared");
    expect(res.status).toBe(200);
    const report = res.body as unknown as RotationReport;
    expect(report.dryRun).toBe(true);
    expect(report.accounts.map((a) => [a.name, a.outcome])).toEqual([["stmlshared", "planned"]]);
    expect(rig.emulator.ctx.regenerations).toEqual([]);
  });

  it("answers 20 identical starts at once with exactly one 202 and 409 for the rest, never a 500", async () => {
    const body = { scope: { storageAccounts: ["stmlbatch"] }, graceMinutes: 0 };
    const answers = await Promise.all(Array.from({ length: 20 }, () => call("POST", "/api/rotations", body)));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([202, ...Array<number>(19).fill(409)]);
    for (const a of answers.filter((x) => x.status === 409)) expect(a.body?.instanceId).toBeDefined();
    const started = answers.find((a) => a.status === 202)!;
    const done = await rig.host.waitForCompletion(String(started.body?.instanceId), { timeoutMs: 60_000 });
    expect(done.runtimeStatus).toBe("Completed");
    expect(regenerationCounts(rig.emulator).stmlbatch).toEqual({ key1: 1, key2: 1 });
  });

  it("answers a start with keyturn's own status URL, never the durable runtime's system key", async () => {
    const res = await fetch(`${origin}/api/rotations`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-functions-key": rig.host.keys.function },
      body: JSON.stringify({ scope: { storageAccounts: ["stmllake"] }, dryRun: true }),
    });
    const text = await res.text();
    expect(res.status).toBe(202);
    const body = JSON.parse(text) as { instanceId: string; statusUri: string };
    expect(res.headers.get("location")).toBe(`${origin}${body.statusUri}`);
    expect(body.statusUri).toBe(`/api/rotations/${body.instanceId}`);
    const everything = text + JSON.stringify([...res.headers.entries()]);
    expect(everything).not.toMatch(/code=|runtime\/webhooks/i);
    expect(everything).not.toContain(rig.host.keys.system);
    await rig.host.waitForCompletion(body.instanceId, { timeoutMs: 60_000 });
  });

  it("starts a rotation (202), refuses a second for the same scope (409), and reports its status", async () => {
    const body = { scope: { storageAccounts: ["stmlshared"] }, graceMinutes: 1 };
    const first = await call("POST", "/api/rotations", body);
    expect(first.status).toBe(202);
    const instanceId = String(first.body?.instanceId);
    const second = await call("POST", "/api/rotations", body);
    expect(second.status).toBe(409);
    expect(second.body?.instanceId).toBe(instanceId);

    const done = await rig.host.waitForCompletion(instanceId, { timeoutMs: 60_000 });
    expect(done.runtimeStatus).toBe("Completed");
    const status = await call("GET", `/api/rotations/${instanceId}`);
    expect(status.status).toBe(200);
    expect(status.body?.runtimeStatus).toBe("Completed");
    const report = status.body?.output as RotationReport;
    expect(report.accounts[0]).toMatchObject({ name: "stmlshared", outcome: "rotated", graceSeconds: 60 });
    expect(regenerationCounts(rig.emulator).stmlshared).toEqual({ key1: 1, key2: 1 });
  });

  it("lists the audit trail, newest first, without key material", async () => {
    const res = await call("GET", "/api/rotations?storageAccount=stmlshared");
    expect(res.status).toBe(200);
    const rotations = res.body?.rotations as Record<string, unknown>[];
    expect(rotations).toHaveLength(1);
    expect(rotations[0]).toMatchObject({
      storageAccount: "stmlshared",
      outcome: "rotated",
      keysRegenerated: "key2,key1",
      activeKeyBefore: "key1",
      activeKeyAfter: "key2",
      trigger: "http",
    });
    expect(rotations[0]?.consumersMoved).toEqual(expect.arrayContaining(["mlw-train/workspaceblobstore"]));
    const text = JSON.stringify(res.body);
    for (const key of rig.emulator.ctx.issuedKeys) expect(text.includes(key)).toBe(false);
    expect((await call("GET", "/api/rotations?limit=0")).status).toBe(400);
  });

  it("sends the daily heartbeat: days since the last successful rotation, and every account's key age", async () => {
    await rig.host.fireTimer("heartbeat");
    const items = readFileSync(join(rig.dir, "telemetry.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { name: string; properties: Record<string, unknown> });
    const beat = items.filter((i) => i.name === "Heartbeat").at(-1);
    expect(beat?.properties.lastSuccessAt).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    const ages = items.filter((i) => i.name === "KeyAgeDays").map((i) => i.properties.storageAccount);
    expect(new Set(ages)).toEqual(new Set(["stmlbatch", "stmllake", "stmlresearch", "stmlshared"]));
  });

  it("answers an unknown rotation id with 404", async () => {
    const res = await call("GET", "/api/rotations/keyturn-scope-nope");
    expect(res.status).toBe(404);
  });
});
