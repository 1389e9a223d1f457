/**
 * The telemetry catalogue: every custom event, metric, property and measurement keyturn sends to
 * Application Insights. The workbook and alert rules in infra/ query these names, and a unit test
 * checks that they name nothing that is not here, so renaming one here means updating infra too.
 *
 * In Application Insights, events land in `customEvents` (properties in `customDimensions`,
 * measurements in `customMeasurements`) and metrics in `customMetrics` (properties in
 * `customDimensions`). Property values arrive as strings: booleans as "true"/"false".
 */

/** Where a rotation was started from (`event`: a Key Vault SecretNearExpiry event through Event Grid). */
export const TRIGGERS = ["timer", "http", "cli", "event"] as const;
export type Trigger = (typeof TRIGGERS)[number];

/**
 * A whole rotation's result, matching the CLI's exit code: `success` (0: every account rotated or
 * skipped by policy), `stalled` (2: only stalls, safe to resume), `failed` (1: anything else).
 */
export const ROTATION_OUTCOMES = ["success", "stalled", "failed"] as const;
export type RotationOutcome = (typeof ROTATION_OUTCOMES)[number];

/** Every custom dimension keyturn emits, by name. */
export const Prop = {
  /** Application Insights operation id (W3C trace id); also set as the item's `operation_Id`. */
  operationId: "operationId",
  /** The Durable Functions instance the item belongs to (per-account work: its sub-orchestration). */
  instanceId: "instanceId",
  /** Ties every item of one rotation together across its per-account sub-orchestrations. */
  rotationId: "rotationId",
  trigger: "trigger",
  dryRun: "dryRun",
  /** The requested scope in a few words, e.g. `storageAccounts: stmlshared` (ids, never secrets). */
  scope: "scope",
  storageAccount: "storageAccount",
  storageAccountId: "storageAccountId",
  subscriptionId: "subscriptionId",
  outcome: "outcome",
  reason: "reason",
  /** Machine-readable skip reason: `opted-out`, `no-consumers`, `too-young` or `in-progress`. */
  skipCode: "skipCode",
  /** The consumer that did not verify (its name), on `AccountStalled`. */
  consumer: "consumer",
  consumerId: "consumerId",
  consumerKind: "consumerKind",
  error: "error",
  /** The keys regenerated, by ARM name, in order: `key2,key1`; `none` when none was. */
  keyRegenerated: "keyRegenerated",
  /** The key consumers use after the rotation (`key1` or `key2`). */
  activeKey: "activeKey",
  /** The key a `KeyAgeDays` value is about. */
  keyName: "keyName",
  /** The account's `keyPolicy.keyExpirationPeriodInDays`, when it has one. */
  keyExpirationPeriodInDays: "keyExpirationPeriodInDays",
  /** ISO 8601 time of the last successful (not dry-run) rotation, or `never`. */
  lastSuccessAt: "lastSuccessAt",
} as const;
export type PropName = (typeof Prop)[keyof typeof Prop];

/** On every item, whatever its name: set from the telemetry's correlation, never by callers. */
export const CORRELATION_PROPS = [Prop.operationId, Prop.instanceId, Prop.rotationId] as const;

export const Measurement = {
  accounts: "accounts",
  rotated: "rotated",
  skipped: "skipped",
  stalled: "stalled",
  failed: "failed",
  consumers: "consumers",
  durationMs: "durationMs",
  armCalls: "armCalls",
  graceSeconds: "graceSeconds",
  daysSinceLastSuccess: "daysSinceLastSuccess",
} as const;
export type MeasurementName = (typeof Measurement)[keyof typeof Measurement];

export const Events = {
  RotationStarted: "RotationStarted",
  AccountRotated: "AccountRotated",
  AccountSkipped: "AccountSkipped",
  AccountStalled: "AccountStalled",
  AccountFailed: "AccountFailed",
  RotationCompleted: "RotationCompleted",
  Heartbeat: "Heartbeat",
} as const;
export type EventName = keyof typeof Events;

export const Metrics = {
  KeyAgeDays: "KeyAgeDays",
  RotationDurationMs: "RotationDurationMs",
  ArmCalls: "ArmCalls",
} as const;
export type MetricName = keyof typeof Metrics;

/** The storage account an item is about. `accountProperties()` builds it from an ARM id. */
export interface AccountProperties {
  storageAccount: string;
  storageAccountId: string;
  subscriptionId: string;
}

/** What each event carries. Optional properties are left out of the item when undefined. */
export interface EventSchema {
  RotationStarted: {
    properties: { trigger: Trigger; dryRun: boolean; scope: string };
    measurements: { accounts?: number };
  };
  AccountRotated: {
    properties: AccountProperties & { keyRegenerated: string; activeKey: string };
    measurements: { consumers: number; durationMs: number; armCalls: number; graceSeconds: number };
  };
  AccountSkipped: {
    properties: AccountProperties & { skipCode: string; reason: string };
    measurements: { consumers?: number };
  };
  /** Stopped before the old key was regenerated (step 5): nothing is broken, resume after fixing. */
  AccountStalled: {
    properties: AccountProperties & {
      consumer: string;
      consumerId?: string;
      consumerKind?: string;
      error: string;
      keyRegenerated: string;
    };
    measurements: { durationMs: number; armCalls: number };
  };
  AccountFailed: {
    properties: AccountProperties & { error: string; keyRegenerated?: string };
    measurements: { durationMs: number; armCalls: number };
  };
  RotationCompleted: {
    properties: { trigger: Trigger; dryRun: boolean; outcome: RotationOutcome };
    measurements: {
      accounts: number;
      rotated: number;
      skipped: number;
      stalled: number;
      failed: number;
      durationMs: number;
    };
  };
  /**
   * A daily sign of life with the time since the last successful rotation. Log alerts look back at
   * most two days, so "no successful rotation for 35 days" has to be computed by keyturn itself.
   */
  Heartbeat: {
    properties: { lastSuccessAt: string };
    measurements: { daysSinceLastSuccess: number };
  };
}

/** What each metric's values carry. */
export interface MetricSchema {
  /**
   * Age of the account's older key, once per account per run, after the account was handled (so 0
   * right after a rotation); the keyPolicy alert compares it with `keyExpirationPeriodInDays`.
   */
  KeyAgeDays: AccountProperties & { keyName: string; keyExpirationPeriodInDays?: number };
  /** Wall time of a whole rotation. */
  RotationDurationMs: { trigger: Trigger; dryRun: boolean; outcome: RotationOutcome };
  /** ARM calls made for one account. */
  ArmCalls: AccountProperties;
}

export type EventProperties<N extends EventName> = EventSchema[N]["properties"];
export type EventMeasurements<N extends EventName> = EventSchema[N]["measurements"];
export type MetricProperties<N extends MetricName> = MetricSchema[N];

/**
 * The same catalogue as data, for the infra cross-checks and docs. The type assertions below keep it
 * in step with `EventSchema`/`MetricSchema`: adding a property to one and not the other fails to
 * compile.
 */
export const EVENT_CATALOGUE = {
  RotationStarted: {
    properties: ["trigger", "dryRun", "scope"],
    measurements: ["accounts"],
  },
  AccountRotated: {
    properties: ["storageAccount", "storageAccountId", "subscriptionId", "keyRegenerated", "activeKey"],
    measurements: ["consumers", "durationMs", "armCalls", "graceSeconds"],
  },
  AccountSkipped: {
    properties: ["storageAccount", "storageAccountId", "subscriptionId", "skipCode", "reason"],
    measurements: ["consumers"],
  },
  AccountStalled: {
    properties: [
      "storageAccount",
      "storageAccountId",
      "subscriptionId",
      "consumer",
      "consumerId",
      "consumerKind",
      "error",
      "keyRegenerated",
    ],
    measurements: ["durationMs", "armCalls"],
  },
  AccountFailed: {
    properties: ["storageAccount", "storageAccountId", "subscriptionId", "error", "keyRegenerated"],
    measurements: ["durationMs", "armCalls"],
  },
  RotationCompleted: {
    properties: ["trigger", "dryRun", "outcome"],
    measurements: ["accounts", "rotated", "skipped", "stalled", "failed", "durationMs"],
  },
  Heartbeat: {
    properties: ["lastSuccessAt"],
    measurements: ["daysSinceLastSuccess"],
  },
} as const satisfies Record<
  EventName,
  { properties: readonly PropName[]; measurements: readonly MeasurementName[] }
>;

export const METRIC_CATALOGUE = {
  KeyAgeDays: {
    properties: [
      "storageAccount",
      "storageAccountId",
      "subscriptionId",
      "keyName",
      "keyExpirationPeriodInDays",
    ],
  },
  RotationDurationMs: { properties: ["trigger", "dryRun", "outcome"] },
  ArmCalls: { properties: ["storageAccount", "storageAccountId", "subscriptionId"] },
} as const satisfies Record<MetricName, { properties: readonly PropName[] }>;

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type KeysOf<T> = Extract<keyof T, string>;
type Listed<T extends readonly string[]> = T[number];

// Compile-time only: each line fails to type-check when the data and the schema disagree.
const _eventsInStep: {
  [N in EventName]: [
    Same<KeysOf<EventProperties<N>>, Listed<(typeof EVENT_CATALOGUE)[N]["properties"]>>,
    Same<KeysOf<EventMeasurements<N>>, Listed<(typeof EVENT_CATALOGUE)[N]["measurements"]>>,
  ];
} = {
  RotationStarted: [true, true],
  AccountRotated: [true, true],
  AccountSkipped: [true, true],
  AccountStalled: [true, true],
  AccountFailed: [true, true],
  RotationCompleted: [true, true],
  Heartbeat: [true, true],
};
const _metricsInStep: {
  [N in MetricName]: Same<KeysOf<MetricProperties<N>>, Listed<(typeof METRIC_CATALOGUE)[N]["properties"]>>;
} = { KeyAgeDays: true, RotationDurationMs: true, ArmCalls: true };
void _eventsInStep;
void _metricsInStep;
