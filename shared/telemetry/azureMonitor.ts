import type { TokenCredential } from "@azure/identity";
import type { AzureMonitorOpenTelemetryOptions } from "@azure/monitor-opentelemetry";
import type { Severity, TelemetryItem, TelemetrySink } from "./telemetry";

export const CONNECTION_STRING_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING";
/** `Authorization=AAD;ClientId=<user-assigned identity>`: ingestion with Entra ID instead of the ikey. */
export const AUTHENTICATION_STRING_SETTING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING";
export const CLIENT_ID_SETTING = "AZURE_CLIENT_ID";

/** The log attribute the Azure Monitor exporter turns into a `customEvents` row of that name. */
export const CUSTOM_EVENT_ATTRIBUTE = "microsoft.custom_event.name";

// OpenTelemetry severity numbers (1-24) in the bands the exporter maps to Application Insights levels.
const SEVERITY_NUMBER: Record<Severity, number> = {
  verbose: 5,
  information: 9,
  warning: 13,
  error: 17,
  critical: 21,
};
const SEVERITY_TEXT: Record<Severity, string> = {
  verbose: "DEBUG",
  information: "INFO",
  warning: "WARN",
  error: "ERROR",
  critical: "FATAL",
};

/** The few OpenTelemetry calls the sink makes, so it can be tested without the SDK's globals. */
export interface OtelLogRecord {
  timestamp?: Date;
  severityNumber?: number;
  severityText?: string;
  body?: string | { measurements: Record<string, number> };
  attributes?: Record<string, string>;
  context?: unknown;
}

export interface OtelBackend {
  logger: { emit(record: OtelLogRecord): void };
  meter: {
    createHistogram(name: string): { record(value: number, attributes?: Record<string, string>): void };
  };
  /** An OpenTelemetry context whose span context carries this trace id, so items get `operation_Id`. */
  contextFor(operationId: string): unknown;
  flush(): Promise<void>;
}

/**
 * Maps keyturn's items onto OpenTelemetry the way the Azure Monitor exporter expects: events and
 * traces as log records (an event is a record with `microsoft.custom_event.name`, its measurements
 * in the body), metrics as histograms whose attributes become `customDimensions`.
 */
export class OtelSink implements TelemetrySink {
  private readonly histograms = new Map<string, ReturnType<OtelBackend["meter"]["createHistogram"]>>();

  constructor(private readonly backend: OtelBackend) {}

  write(item: TelemetryItem): void {
    const timestamp = new Date(item.time);
    const context = this.backend.contextFor(item.operationId);
    switch (item.type) {
      case "event":
        this.backend.logger.emit({
          timestamp,
          attributes: { ...item.properties, [CUSTOM_EVENT_ATTRIBUTE]: item.name },
          body: { measurements: item.measurements },
          context,
        });
        return;
      case "trace":
        this.backend.logger.emit({
          timestamp,
          severityNumber: SEVERITY_NUMBER[item.severity],
          severityText: SEVERITY_TEXT[item.severity],
          body: item.message,
          attributes: item.properties,
          context,
        });
        return;
      case "metric": {
        let histogram = this.histograms.get(item.name);
        if (!histogram) {
          histogram = this.backend.meter.createHistogram(item.name);
          this.histograms.set(item.name, histogram);
        }
        histogram.record(item.value, item.properties);
        return;
      }
    }
  }

  flush(): Promise<void> {
    return this.backend.flush();
  }
}

/** Entra ID ingestion when the authentication string asks for it (`Authorization=AAD`). */
export function ingestionCredential(env: NodeJS.ProcessEnv): TokenCredential | undefined {
  const text = env[AUTHENTICATION_STRING_SETTING]?.trim();
  if (!text) return undefined;
  const parts = new Map<string, string>();
  for (const pair of text.split(";")) {
    const at = pair.indexOf("=");
    if (at > 0) parts.set(pair.slice(0, at).trim().toLowerCase(), pair.slice(at + 1).trim());
  }
  if (parts.get("authorization")?.toUpperCase() !== "AAD") return undefined;
  const clientId = parts.get("clientid") || env[CLIENT_ID_SETTING]?.trim() || undefined;
  // Loaded here rather than at the top: keyturn without Application Insights never pays for it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const identity = require("@azure/identity") as typeof import("@azure/identity");
  return new identity.ManagedIdentityCredential(clientId ? { clientId } : {});
}

/**
 * Everything but keyturn's own items is off. The Functions host already records invocations, and
 * automatic HTTP/Azure SDK instrumentation would send request URLs (a data-plane probe's SAS among
 * them) past `redact()`, which only sees what keyturn emits.
 */
export function distroOptions(env: NodeJS.ProcessEnv): AzureMonitorOpenTelemetryOptions {
  const credential = ingestionCredential(env);
  const off = { enabled: false };
  return {
    azureMonitorExporterOptions: {
      connectionString: env[CONNECTION_STRING_SETTING]?.trim() ?? "",
      ...(credential ? { credential } : {}),
    },
    enableLiveMetrics: false,
    enableStandardMetrics: false,
    enablePerformanceCounters: false,
    instrumentationOptions: {
      http: off,
      azureSdk: off,
      mongoDb: off,
      mySql: off,
      postgreSql: off,
      redis: off,
      redis4: off,
      bunyan: off,
      winston: off,
    },
  };
}

let started: OtelBackend | undefined;

/**
 * The Azure Monitor OpenTelemetry distro, started once per process (it installs process-wide
 * providers), behind an `OtelSink`.
 */
export function azureMonitorSink(env: NodeJS.ProcessEnv = process.env): TelemetrySink {
  if (!started) {
    /* eslint-disable @typescript-eslint/no-require-imports -- loaded only when a connection string is set */
    const distro = require("@azure/monitor-opentelemetry") as typeof import("@azure/monitor-opentelemetry");
    const api = require("@opentelemetry/api") as typeof import("@opentelemetry/api");
    const apiLogs = require("@opentelemetry/api-logs") as typeof import("@opentelemetry/api-logs");
    /* eslint-enable @typescript-eslint/no-require-imports */
    distro.useAzureMonitor(distroOptions(env));
    const forceFlush = async (provider: object): Promise<void> => {
      const flushable = provider as { forceFlush?: () => Promise<void> };
      if (typeof flushable.forceFlush === "function") await flushable.forceFlush();
    };
    const logger = apiLogs.logs.getLogger("keyturn");
    started = {
      logger: { emit: (record) => logger.emit(record as Parameters<typeof logger.emit>[0]) },
      meter: api.metrics.getMeter("keyturn"),
      contextFor: (operationId) =>
        api.trace.setSpanContext(api.ROOT_CONTEXT, {
          traceId: operationId,
          spanId: /^0{16}/.test(operationId) ? operationId.slice(16) : operationId.slice(0, 16),
          // Sampled: the distro drops log records whose trace is not.
          traceFlags: api.TraceFlags.SAMPLED,
          isRemote: true,
        }),
      flush: async () => {
        await Promise.all([
          forceFlush(apiLogs.logs.getLoggerProvider()),
          forceFlush(api.metrics.getMeterProvider()),
        ]);
      },
    };
  }
  return new OtelSink(started);
}
