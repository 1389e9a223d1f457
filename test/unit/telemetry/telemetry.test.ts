import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type { Correlation, TelemetryItem, TelemetrySink } from "../../../shared/telemetry";
import {
  ConsoleSink,
  JsonLinesFileSink,
  MemorySink,
  createTelemetry,
  nullTelemetry,
  operationIdFor,
  replaySafe,
  sinksFromEnv,
  telemetryFromEnv,
} from "../../../shared/telemetry";

const ACCOUNT = {
  storageAccount: "stmlshared",
  storageAccountId:
    "/subscriptions/6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/resourceGroups/rg-ml-prod/providers/Microsoft.Storage/storageAccounts/stmlshared",
  subscriptionId: "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
};

const fixedNow = (): Date => new Date("2025-06-01T03:00:00.000Z");

function setup(
  correlation: Correlation = { instanceId: "keyturn-account-stmlshared-0123", rotationId: "rot-1" },
) {
  const sink = new MemorySink();
  const telemetry = createTelemetry(correlation, { sinks: [sink], now: fixedNow });
  return { sink, telemetry };
}

describe("correlation", () => {
  it("puts operationId, instanceId and rotationId on every item, events, metrics and traces alike", () => {
    const { sink, telemetry } = setup();
    telemetry.event(
      "RotationStarted",
      { trigger: "timer", dryRun: false, scope: "subscriptions" },
      { accounts: 4 },
    );
    telemetry.metric("ArmCalls", 7, ACCOUNT);
    telemetry.trace("resync polling", "information");
    expect(sink.items).toHaveLength(3);
    for (const item of sink.items) {
      expect(item.properties).toMatchObject({
        instanceId: "keyturn-account-stmlshared-0123",
        rotationId: "rot-1",
        operationId: telemetry.correlation.operationId,
      });
      expect(item.operationId).toBe(telemetry.correlation.operationId);
      expect(item.time).toBe("2025-06-01T03:00:00.000Z");
    }
  });

  it("gives every instance of one rotation the same operation id, and other rotations another", () => {
    const a = operationIdFor({ instanceId: "keyturn-account-a", rotationId: "rot-1" });
    const b = operationIdFor({ instanceId: "keyturn-account-b", rotationId: "rot-1" });
    const c = operationIdFor({ instanceId: "keyturn-account-a", rotationId: "rot-2" });
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    expect(operationIdFor({ instanceId: "only-instance" })).toMatch(/^[0-9a-f]{32}$/);
  });

  it("keeps a given W3C trace id and turns anything else into one", () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    expect(operationIdFor({ instanceId: "i", operationId: traceId.toUpperCase() })).toBe(traceId);
    expect(operationIdFor({ instanceId: "i", operationId: "not-a-trace-id" })).toMatch(/^[0-9a-f]{32}$/);
    expect(operationIdFor({ instanceId: "i", operationId: "0".repeat(32) })).not.toBe("0".repeat(32));
  });

  it("does not let a caller's properties pass an item off as another instance's", () => {
    const { sink, telemetry } = setup();
    telemetry.trace("x", "warning", { instanceId: "someone-else", operationId: "f".repeat(32) });
    expect(sink.items[0]?.properties.instanceId).toBe("keyturn-account-stmlshared-0123");
    expect(sink.items[0]?.properties.operationId).toBe(telemetry.correlation.operationId);
  });

  it("omits rotationId when the instance is not part of a rotation", () => {
    const { sink, telemetry } = setup({ instanceId: "keyturn-heartbeat" });
    telemetry.event("Heartbeat", { lastSuccessAt: "never" }, { daysSinceLastSuccess: 0 });
    expect(sink.items[0]?.properties).not.toHaveProperty("rotationId");
  });
});

describe("items", () => {
  it("records events with string properties and numeric measurements", () => {
    const { sink, telemetry } = setup();
    telemetry.event(
      "AccountRotated",
      { ...ACCOUNT, keyRegenerated: "key2,key1", activeKey: "key2" },
      { consumers: 5, durationMs: 3_700_000, armCalls: 41, graceSeconds: 3600 },
    );
    const [event, ...others] = sink.events("AccountRotated");
    expect(others).toEqual([]);
    expect(event).toMatchObject({
      type: "event",
      name: "AccountRotated",
      properties: { ...ACCOUNT, keyRegenerated: "key2,key1", activeKey: "key2" },
      measurements: { consumers: 5, durationMs: 3_700_000, armCalls: 41, graceSeconds: 3600 },
    });
  });

  it("leaves out undefined optional properties and stringifies booleans and numbers", () => {
    const { sink, telemetry } = setup();
    telemetry.metric("KeyAgeDays", 31.5, { ...ACCOUNT, keyName: "key1", keyExpirationPeriodInDays: 30 });
    telemetry.metric("KeyAgeDays", 2, { ...ACCOUNT, keyName: "key2", keyExpirationPeriodInDays: undefined });
    telemetry.event("RotationCompleted", { trigger: "http", dryRun: true, outcome: "success" });
    const [withPolicy, withoutPolicy] = sink.metrics("KeyAgeDays");
    expect(withPolicy).toMatchObject({ value: 31.5, properties: { keyExpirationPeriodInDays: "30" } });
    expect(withoutPolicy?.properties).not.toHaveProperty("keyExpirationPeriodInDays");
    expect(sink.events("RotationCompleted")[0]?.properties.dryRun).toBe("true");
    expect(sink.events("RotationCompleted")[0]?.measurements).toEqual({});
  });

  it("drops a metric value that is not a finite number", () => {
    const { sink, telemetry } = setup();
    telemetry.metric("ArmCalls", Number.NaN, ACCOUNT);
    telemetry.metric("ArmCalls", Infinity, ACCOUNT);
    expect(sink.items).toEqual([]);
  });

  it("records traces with their severity", () => {
    const { sink, telemetry } = setup();
    telemetry.trace("datastore probe retried", "warning", { storageAccount: "stmlshared" });
    expect(sink.traces()).toEqual([
      expect.objectContaining({ message: "datastore probe retried", severity: "warning" }),
    ]);
  });
});

describe("failure isolation", () => {
  const broken: TelemetrySink = {
    write: () => {
      throw new Error("disk full");
    },
    flush: () => Promise.reject(new Error("network down")),
  };

  it("a failing sink neither throws into the caller nor starves the other sinks", async () => {
    const sink = new MemorySink();
    const telemetry = createTelemetry({ instanceId: "i" }, { sinks: [broken, sink] });
    expect(() => telemetry.trace("still here", "error")).not.toThrow();
    expect(sink.items).toHaveLength(1);
    await expect(telemetry.flush()).resolves.toBeUndefined();
  });

  it("flush waits for every sink", async () => {
    const flushed: string[] = [];
    const slow: TelemetrySink = {
      write: () => undefined,
      flush: () =>
        new Promise<void>((resolve) =>
          setTimeout(() => {
            flushed.push("slow");
            resolve();
          }, 20),
        ),
    };
    await createTelemetry({ instanceId: "i" }, { sinks: [slow] }).flush();
    expect(flushed).toEqual(["slow"]);
  });
});

describe("replaySafe and nullTelemetry", () => {
  it("sends nothing while an orchestrator replays, and everything once it runs new code", () => {
    const { sink, telemetry } = setup();
    replaySafe(telemetry, true).event("RotationStarted", { trigger: "timer", dryRun: false, scope: "all" });
    expect(sink.items).toHaveLength(0);
    replaySafe(telemetry, false).event("RotationStarted", { trigger: "timer", dryRun: false, scope: "all" });
    expect(sink.items).toHaveLength(1);
    expect(replaySafe(telemetry, true).correlation).toBe(telemetry.correlation);
  });

  it("nullTelemetry accepts everything and keeps nothing", async () => {
    const t = nullTelemetry();
    t.trace("x", "verbose");
    await expect(t.flush()).resolves.toBeUndefined();
  });
});

describe("local sinks", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "keyturn-telemetry-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("appends one JSON object per line to the file, creating its folder", () => {
    const path = join(dir, "nested", "telemetry.jsonl");
    const telemetry = createTelemetry({ instanceId: "i" }, { sinks: [new JsonLinesFileSink(path)] });
    telemetry.trace("one", "information");
    telemetry.metric("ArmCalls", 2, ACCOUNT);
    const lines = readFileSync(path, "utf8").trimEnd().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as TelemetryItem).type)).toEqual(["trace", "metric"]);
  });

  it("writes JSON lines to the console stream", () => {
    const stream = new PassThrough();
    const chunks: string[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c.toString()));
    createTelemetry({ instanceId: "i" }, { sinks: [new ConsoleSink(stream)] }).trace("hello", "information");
    expect(JSON.parse(chunks.join(""))).toMatchObject({ type: "trace", message: "hello" });
  });

  it("sinksFromEnv: nothing when unset, a file for a path, the console for `stderr`", () => {
    expect(sinksFromEnv({})).toEqual([]);
    const path = join(dir, "t.jsonl");
    const [file] = sinksFromEnv({ KEYTURN_TELEMETRY_FILE: path });
    expect(file).toBeInstanceOf(JsonLinesFileSink);
    expect(sinksFromEnv({ KEYTURN_TELEMETRY_FILE: path })[0]).toBe(file);
    expect(sinksFromEnv({ KEYTURN_TELEMETRY_FILE: "stderr" })[0]).toBeInstanceOf(ConsoleSink);
  });

  it("telemetryFromEnv writes where KEYTURN_TELEMETRY_FILE says", async () => {
    const path = join(dir, "env.jsonl");
    const t = telemetryFromEnv({ instanceId: "i", rotationId: "r" }, { KEYTURN_TELEMETRY_FILE: path });
    t.event("Heartbeat", { lastSuccessAt: "2025-05-01T03:00:00Z" }, { daysSinceLastSuccess: 31 });
    await t.flush();
    expect(JSON.parse(readFileSync(path, "utf8"))).toMatchObject({
      type: "event",
      name: "Heartbeat",
      properties: { rotationId: "r", instanceId: "i" },
    });
  });
});
