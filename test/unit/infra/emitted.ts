import type { AccountReport, RotationReport, StorageAccountSnapshot } from "../../../shared/rotation";
import {
  MemorySink,
  TRIGGERS,
  createTelemetry,
  emitAccountOutcome,
  emitHeartbeat,
  emitKeyAge,
  emitRotationCompleted,
} from "../../../shared/telemetry";

/**
 * What keyturn's telemetry code actually sends, found by running it: the emitters of
 * shared/telemetry (every account outcome, a rotation's completion for each trigger and outcome,
 * a key's age, the heartbeat), with every optional property given, through the real `Telemetry`
 * (redaction and correlation included) into a `MemorySink`. The names, custom dimensions and
 * measurements the alerts and workbook query must be among what is recorded here.
 */

export interface EmittedItem {
  properties: Set<string>;
  /** Events only: the keys of `customMeasurements`. */
  measurements: Set<string>;
  /** Every value each property was sent with, e.g. `outcome` → success, stalled, failed. */
  values: Map<string, Set<string>>;
}

export interface Emitted {
  events: Map<string, EmittedItem>;
  metrics: Map<string, EmittedItem>;
}

const SUB = "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
const ID = `/subscriptions/${SUB}/resourceGroups/rg-ml/providers/Microsoft.Storage/storageAccounts/stmlshared`;

function account(outcome: AccountReport["outcome"], overrides: Partial<AccountReport> = {}): AccountReport {
  return {
    id: ID,
    name: "stmlshared",
    outcome,
    activeKeyBefore: { key: "key1", fingerprint: "aaaaaaaaaaaa" },
    activeKeyAfter: { key: "key2", fingerprint: "bbbbbbbbbbbb" },
    consumers: [{ id: "ds1", name: "workspaceblobstore", kind: "datastore", action: "updated" }],
    graceSeconds: 3600,
    durationMs: 1000,
    armCalls: 10,
    outages: [],
    ...overrides,
  };
}

function report(accounts: AccountReport[], dryRun: boolean): RotationReport {
  return {
    rotationId: "rot-1",
    dryRun,
    startedAt: "2025-06-01T03:00:00.000Z",
    finishedAt: "2025-06-01T04:00:00.000Z",
    accounts,
    unattached: [],
  };
}

const snapshot: StorageAccountSnapshot = {
  id: ID,
  name: "stmlshared",
  subscriptionId: SUB,
  resourceGroup: "rg-ml",
  tags: {},
  keys: {
    key1: { fingerprint: "aaaaaaaaaaaa", creationTime: "2025-01-01T00:00:00.000Z" },
    key2: { fingerprint: "bbbbbbbbbbbb", creationTime: "2025-03-01T00:00:00.000Z" },
  },
  keyExpirationPeriodInDays: 90,
};

let cached: Emitted | undefined;

export function emittedTelemetry(): Emitted {
  if (cached) return cached;
  const sink = new MemorySink();
  const telemetry = createTelemetry({ instanceId: "instance-1", rotationId: "rot-1" }, { sinks: [sink] });
  const now = new Date("2025-06-01T04:00:00.000Z");

  const rotated = account("rotated");
  const skipped = account("skipped", { skipCode: "opted-out", reason: "tagged keyturn-skip" });
  const stalled = account("stalled", { reason: "workspaceblobstore did not verify" });
  const failed = account("failed", { reason: "ARM said no" });
  emitAccountOutcome(telemetry, rotated);
  emitAccountOutcome(telemetry, skipped);
  emitAccountOutcome(telemetry, stalled, {
    stalledConsumer: { id: "ds1", name: "workspaceblobstore", kind: "datastore" },
  });
  emitAccountOutcome(telemetry, failed, { keysRegenerated: ["key2"] });
  for (const trigger of TRIGGERS) {
    for (const dryRun of [false, true]) {
      for (const accounts of [[rotated, skipped], [rotated, stalled], [failed]]) {
        emitRotationCompleted(telemetry, report(accounts, dryRun), trigger);
      }
    }
  }
  emitKeyAge(telemetry, snapshot, now);
  emitHeartbeat(telemetry, { lastSuccessAt: "2025-05-01T04:00:00.000Z", now });

  const emitted: Emitted = { events: new Map(), metrics: new Map() };
  const entry = (map: Map<string, EmittedItem>, name: string): EmittedItem => {
    const found = map.get(name) ?? { properties: new Set(), measurements: new Set(), values: new Map() };
    map.set(name, found);
    return found;
  };
  const record = (item: EmittedItem, properties: Record<string, string>): void => {
    for (const [key, value] of Object.entries(properties)) {
      item.properties.add(key);
      item.values.set(key, (item.values.get(key) ?? new Set()).add(value));
    }
  };
  for (const e of sink.events()) {
    const item = entry(emitted.events, e.name);
    record(item, e.properties);
    for (const m of Object.keys(e.measurements)) item.measurements.add(m);
  }
  for (const m of sink.metrics()) record(entry(emitted.metrics, m.name), m.properties);
  cached = emitted;
  return emitted;
}
