import type { AccountReport, RotationReport, StorageAccountSnapshot } from "../../../shared/rotation";
import {
  MemorySink,
  accountProperties,
  createTelemetry,
  emitAccountOutcome,
  emitHeartbeat,
  emitKeyAge,
  emitRotationCompleted,
  rotationOutcome,
} from "../../../shared/telemetry";

const SUB = "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
const ID = `/subscriptions/${SUB}/resourceGroups/rg-ml-prod/providers/Microsoft.Storage/storageAccounts/stmlshared`;

function account(overrides: Partial<AccountReport>): AccountReport {
  return {
    id: ID,
    name: "stmlshared",
    outcome: "rotated",
    activeKeyBefore: { key: "key1", fingerprint: "aaaaaaaaaaaa" },
    activeKeyAfter: { key: "key2", fingerprint: "bbbbbbbbbbbb" },
    consumers: [
      { id: "ds1", name: "workspaceblobstore", kind: "datastore", action: "updated" },
      { id: "ws1", name: "mlw-train", kind: "workspace", action: "updated" },
    ],
    graceSeconds: 3600,
    durationMs: 3_700_000,
    armCalls: 40,
    outages: [],
    ...overrides,
  };
}

function report(accounts: AccountReport[], dryRun = false): RotationReport {
  return {
    rotationId: "rot-1",
    dryRun,
    startedAt: "2025-06-01T03:00:00.000Z",
    finishedAt: "2025-06-01T04:05:00.000Z",
    accounts,
    unattached: [],
  };
}

function setup() {
  const sink = new MemorySink();
  return { sink, telemetry: createTelemetry({ instanceId: "i", rotationId: "rot-1" }, { sinks: [sink] }) };
}

describe("accountProperties", () => {
  it("takes the name and subscription from the ARM id", () => {
    expect(accountProperties(ID)).toEqual({
      storageAccount: "stmlshared",
      storageAccountId: ID,
      subscriptionId: SUB,
    });
  });
});

describe("emitAccountOutcome", () => {
  it("a rotated account: the standby key first, then the old active one, and its ARM calls", () => {
    const { sink, telemetry } = setup();
    emitAccountOutcome(telemetry, account({}));
    expect(sink.events("AccountRotated")[0]).toMatchObject({
      properties: {
        storageAccount: "stmlshared",
        subscriptionId: SUB,
        keyRegenerated: "key2,key1",
        activeKey: "key2",
      },
      measurements: { consumers: 2, durationMs: 3_700_000, armCalls: 40, graceSeconds: 3600 },
    });
    expect(sink.metrics("ArmCalls")[0]).toMatchObject({ value: 40, properties: { storageAccountId: ID } });
  });

  it("a skipped account carries its code and reason", () => {
    const { sink, telemetry } = setup();
    emitAccountOutcome(
      telemetry,
      account({ outcome: "skipped", skipCode: "too-young", reason: "key is 3 days old" }),
    );
    expect(sink.events("AccountSkipped")[0]?.properties).toMatchObject({
      skipCode: "too-young",
      reason: "key is 3 days old",
    });
  });

  it("a stalled account names the consumer that did not verify and only the standby key", () => {
    const { sink, telemetry } = setup();
    emitAccountOutcome(telemetry, account({ outcome: "stalled", reason: "probe got 403" }), {
      stalledConsumer: { id: "ds1", name: "workspaceblobstore", kind: "datastore" },
    });
    expect(sink.events("AccountStalled")[0]?.properties).toMatchObject({
      consumer: "workspaceblobstore",
      consumerId: "ds1",
      consumerKind: "datastore",
      error: "probe got 403",
      keyRegenerated: "key2",
    });
  });

  it("a failed account carries its error, and what was regenerated only when known", () => {
    const { sink, telemetry } = setup();
    emitAccountOutcome(telemetry, account({ outcome: "failed", reason: "throttled" }));
    emitAccountOutcome(telemetry, account({ outcome: "failed", reason: "lost" }), { keysRegenerated: [] });
    const [unknown, none] = sink.events("AccountFailed");
    expect(unknown?.properties).not.toHaveProperty("keyRegenerated");
    expect(none?.properties.keyRegenerated).toBe("none");
  });

  it("a dry run's planned account emits nothing", () => {
    const { sink, telemetry } = setup();
    emitAccountOutcome(telemetry, account({ outcome: "planned" }));
    expect(sink.items).toEqual([]);
  });
});

describe("emitRotationCompleted", () => {
  it("says success when every account rotated or was skipped by policy", () => {
    const { sink, telemetry } = setup();
    const r = report([account({}), account({ outcome: "skipped", skipCode: "too-young" })]);
    emitRotationCompleted(telemetry, r, "timer");
    expect(sink.events("RotationCompleted")[0]).toMatchObject({
      properties: { trigger: "timer", dryRun: "false", outcome: "success" },
      measurements: { accounts: 2, rotated: 1, skipped: 1, stalled: 0, failed: 0, durationMs: 3_900_000 },
    });
    expect(sink.metrics("RotationDurationMs")[0]).toMatchObject({ value: 3_900_000 });
  });

  it("maps the exit code: only stalls is `stalled`, anything else bad is `failed`", () => {
    expect(rotationOutcome(report([account({ outcome: "stalled" })]))).toBe("stalled");
    expect(rotationOutcome(report([account({ outcome: "stalled" }), account({ outcome: "failed" })]))).toBe(
      "failed",
    );
    expect(rotationOutcome(report([account({ outcome: "skipped", skipCode: "in-progress" })]))).toBe(
      "failed",
    );
    expect(rotationOutcome(report([]))).toBe("success");
  });
});

describe("emitKeyAge", () => {
  const snapshot = (key1?: string, key2?: string, policy?: number): StorageAccountSnapshot => ({
    id: ID,
    name: "stmlshared",
    subscriptionId: SUB,
    resourceGroup: "rg-ml-prod",
    tags: {},
    keys: {
      key1: { fingerprint: "aaaaaaaaaaaa", ...(key1 ? { creationTime: key1 } : {}) },
      key2: { fingerprint: "bbbbbbbbbbbb", ...(key2 ? { creationTime: key2 } : {}) },
    },
    ...(policy ? { keyExpirationPeriodInDays: policy } : {}),
  });
  const now = new Date("2025-06-01T00:00:00Z");

  it("reports the older key's age with the account's key policy", () => {
    const { sink, telemetry } = setup();
    emitKeyAge(telemetry, snapshot("2025-05-01T00:00:00Z", "2025-04-01T12:00:00Z", 60), now);
    expect(sink.metrics("KeyAgeDays")[0]).toMatchObject({
      value: 60.5,
      properties: { keyName: "key2", keyExpirationPeriodInDays: "60", storageAccount: "stmlshared" },
    });
  });

  it("reports nothing when no key has a creation time", () => {
    const { sink, telemetry } = setup();
    emitKeyAge(telemetry, snapshot(), now);
    expect(sink.items).toEqual([]);
  });

  it("reports nothing for an account with shared-key access disabled: its keys authorize nothing", () => {
    const { sink, telemetry } = setup();
    emitKeyAge(telemetry, { ...snapshot("2025-01-01T00:00:00Z"), sharedKeyAccessDisabled: true }, now);
    expect(sink.items).toEqual([]);
  });
});

describe("emitHeartbeat", () => {
  const now = new Date("2025-06-11T00:00:00Z");
  it("counts days since the last success", () => {
    const { sink, telemetry } = setup();
    emitHeartbeat(telemetry, { lastSuccessAt: "2025-05-01T00:00:00Z", now });
    expect(sink.events("Heartbeat")[0]).toMatchObject({
      properties: { lastSuccessAt: "2025-05-01T00:00:00Z" },
      measurements: { daysSinceLastSuccess: 41 },
    });
  });

  it("with no success yet, counts from `neverSince`, else reports 0", () => {
    const { sink, telemetry } = setup();
    emitHeartbeat(telemetry, { neverSince: "2025-06-01T00:00:00Z", now });
    emitHeartbeat(telemetry, { now });
    expect(
      sink.events("Heartbeat").map((e) => [e.properties.lastSuccessAt, e.measurements.daysSinceLastSuccess]),
    ).toEqual([
      ["never", 10],
      ["never", 0],
    ]);
  });
});
