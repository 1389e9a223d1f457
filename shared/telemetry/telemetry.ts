import { createHash } from "node:crypto";
import type { EventMeasurements, EventName, EventProperties, MetricName, MetricProperties } from "./events";
import { Prop } from "./events";
import type { PropertyInput } from "../redact";
import { redactMeasurements, redactProperties, redactText } from "../redact";

export type Severity = "verbose" | "information" | "warning" | "error" | "critical";

export type Properties = Readonly<Record<string, PropertyInput>>;

/** What ties an item to the durable instance and rotation it belongs to; on every item. */
export interface Correlation {
  /** The Durable Functions instance (for per-account work, the account's sub-orchestration). */
  instanceId: string;
  /** The rotation the instance is part of; groups every account of one run. */
  rotationId?: string;
  /**
   * Application Insights operation id, a W3C trace id (32 hex). When absent it is derived from the
   * rotation id (else the instance id), so every item of one rotation lands in one end-to-end
   * transaction in the portal without passing trace context through orchestration state.
   */
  operationId?: string;
}

interface ItemBase {
  /** ISO 8601. */
  time: string;
  operationId: string;
  /** Already redacted and stringified, correlation properties included. */
  properties: Record<string, string>;
}

export interface EventItem extends ItemBase {
  type: "event";
  name: string;
  measurements: Record<string, number>;
}

export interface MetricItem extends ItemBase {
  type: "metric";
  name: string;
  value: number;
}

export interface TraceItem extends ItemBase {
  type: "trace";
  message: string;
  severity: Severity;
}

export type TelemetryItem = EventItem | MetricItem | TraceItem;

/** Where items go. A sink only ever receives items that went through redaction. */
export interface TelemetrySink {
  write(item: TelemetryItem): void;
  flush(): Promise<void>;
}

/** Optional properties argument when a metric's schema requires none, else a required one. */
type MetricArgs<P> = object extends P ? [properties?: P] : [properties: P];

/**
 * keyturn's telemetry, used by activities and orchestrator-side code. Emitting never throws and
 * never blocks on the network: a telemetry outage must not fail a rotation.
 */
export interface Telemetry {
  readonly correlation: Readonly<Required<Pick<Correlation, "instanceId" | "operationId">> & Correlation>;
  event<N extends EventName>(
    name: N,
    properties: EventProperties<N>,
    measurements?: EventMeasurements<N>,
  ): void;
  metric<N extends MetricName>(name: N, value: number, ...args: MetricArgs<MetricProperties<N>>): void;
  trace(message: string, severity: Severity, properties?: Properties): void;
  /** Sends what is buffered; call before an activity returns (Flex Consumption may freeze the instance). */
  flush(): Promise<void>;
}

/** A W3C trace id: 32 lower-case hex digits, not all zero. */
const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;

/** The operation id for a correlation: the given one when it is a trace id, else a digest. */
export function operationIdFor(correlation: Correlation): string {
  const given = correlation.operationId?.trim().toLowerCase();
  if (given && TRACE_ID.test(given)) return given;
  const seed = given || correlation.rotationId || correlation.instanceId;
  const digest = createHash("sha256").update(`keyturn-operation:${seed}`, "utf8").digest("hex").slice(0, 32);
  return TRACE_ID.test(digest) ? digest : `1${digest.slice(1)}`;
}

export interface TelemetryOptions {
  sinks: readonly TelemetrySink[];
  now?: () => Date;
}

class SinkTelemetry implements Telemetry {
  readonly correlation: Telemetry["correlation"];
  private readonly common: Record<string, string>;

  constructor(
    correlation: Correlation,
    private readonly sinks: readonly TelemetrySink[],
    private readonly now: () => Date,
  ) {
    const operationId = operationIdFor(correlation);
    this.correlation = { ...correlation, operationId };
    this.common = redactProperties({
      [Prop.operationId]: operationId,
      [Prop.instanceId]: correlation.instanceId,
      [Prop.rotationId]: correlation.rotationId,
    });
  }

  event<N extends EventName>(
    name: N,
    properties: EventProperties<N>,
    measurements?: EventMeasurements<N>,
  ): void {
    this.emit(() => ({
      type: "event",
      ...this.base(properties as Properties),
      name: redactText(name),
      measurements: redactMeasurements(measurements ?? {}),
    }));
  }

  metric<N extends MetricName>(name: N, value: number, ...args: MetricArgs<MetricProperties<N>>): void {
    if (!Number.isFinite(value)) return;
    this.emit(() => ({
      type: "metric",
      ...this.base((args[0] ?? {}) as Properties),
      name: redactText(name),
      value,
    }));
  }

  trace(message: string, severity: Severity, properties: Properties = {}): void {
    this.emit(() => ({ type: "trace", ...this.base(properties), message: redactText(message), severity }));
  }

  async flush(): Promise<void> {
    await Promise.all(this.sinks.map((sink) => sink.flush().catch(() => undefined)));
  }

  private base(properties: Properties): ItemBase {
    return {
      time: this.now().toISOString(),
      operationId: this.correlation.operationId,
      // Correlation last: a caller's property cannot pass the item off as another instance's.
      properties: { ...redactProperties(properties), ...this.common },
    };
  }

  private emit(build: () => TelemetryItem): void {
    let item: TelemetryItem;
    try {
      item = build();
    } catch {
      return;
    }
    for (const sink of this.sinks) {
      try {
        sink.write(item);
      } catch {
        // One broken sink must not take the others, or the rotation, down with it.
      }
    }
  }
}

/** Telemetry for one durable instance, sending to the given sinks (see `sinksFromEnv`). */
export function createTelemetry(correlation: Correlation, options: TelemetryOptions): Telemetry {
  return new SinkTelemetry(correlation, options.sinks, options.now ?? (() => new Date()));
}

/** Telemetry that drops everything: for code paths that have nowhere to send it. */
export function nullTelemetry(correlation: Correlation = { instanceId: "none" }): Telemetry {
  return createTelemetry(correlation, { sinks: [] });
}

/**
 * Orchestrators replay their code on every episode; without this, each replay would send the same
 * events again. Pass `context.df.isReplaying`.
 */
export function replaySafe(telemetry: Telemetry, isReplaying: boolean): Telemetry {
  if (!isReplaying) return telemetry;
  return {
    correlation: telemetry.correlation,
    event: () => undefined,
    metric: () => undefined,
    trace: () => undefined,
    flush: () => Promise.resolve(),
  };
}
