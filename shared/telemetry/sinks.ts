import { appendFileSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { azureMonitorSink, CONNECTION_STRING_SETTING } from "./azureMonitor";
import type {
  Correlation,
  EventItem,
  MetricItem,
  Telemetry,
  TelemetryItem,
  TelemetrySink,
  TraceItem,
} from "./telemetry";
import { createTelemetry } from "./telemetry";

/** A path for JSON lines, or `stderr` for the console. Unset: no local telemetry. */
export const TELEMETRY_FILE_SETTING = "KEYTURN_TELEMETRY_FILE";

/** Keeps items in memory, for tests and for callers that want to look at what was sent. */
export class MemorySink implements TelemetrySink {
  readonly items: TelemetryItem[] = [];

  write(item: TelemetryItem): void {
    this.items.push(item);
  }

  async flush(): Promise<void> {}

  events(name?: string): EventItem[] {
    return this.items.filter(
      (i): i is EventItem => i.type === "event" && (name === undefined || i.name === name),
    );
  }

  metrics(name?: string): MetricItem[] {
    return this.items.filter(
      (i): i is MetricItem => i.type === "metric" && (name === undefined || i.name === name),
    );
  }

  traces(): TraceItem[] {
    return this.items.filter((i): i is TraceItem => i.type === "trace");
  }

  clear(): void {
    this.items.length = 0;
  }
}

/**
 * Appends one JSON object per line. Synchronous on purpose: volume is a few items per account, and
 * a line written before a crash is a line a test or a person can still read afterwards.
 */
export class JsonLinesFileSink implements TelemetrySink {
  private readonly path: string;
  private ready = false;

  constructor(path: string) {
    this.path = resolve(path);
  }

  write(item: TelemetryItem): void {
    if (!this.ready) {
      mkdirSync(dirname(this.path), { recursive: true });
      this.ready = true;
    }
    appendFileSync(this.path, JSON.stringify(item) + "\n", "utf8");
  }

  async flush(): Promise<void> {}
}

/** JSON lines on stderr: stdout belongs to the CLI's own output (`--json` reports). */
export class ConsoleSink implements TelemetrySink {
  constructor(private readonly stream: NodeJS.WritableStream = process.stderr) {}

  write(item: TelemetryItem): void {
    this.stream.write(JSON.stringify(item) + "\n");
  }

  async flush(): Promise<void> {}
}

let cached: { key: string; sinks: readonly TelemetrySink[] } | undefined;

/**
 * The sinks the environment asks for: Azure Monitor when `APPLICATIONINSIGHTS_CONNECTION_STRING` is
 * set, and JSON lines when `KEYTURN_TELEMETRY_FILE` is (both may be). Made once per process and
 * settings, because the Azure Monitor exporter is process-wide and costly to start.
 */
export function sinksFromEnv(env: NodeJS.ProcessEnv = process.env): readonly TelemetrySink[] {
  const connectionString = env[CONNECTION_STRING_SETTING]?.trim() ?? "";
  const file = env[TELEMETRY_FILE_SETTING]?.trim() ?? "";
  const key = `${connectionString}\n${file}`;
  if (cached?.key === key) return cached.sinks;
  const sinks: TelemetrySink[] = [];
  if (connectionString) sinks.push(azureMonitorSink(env));
  if (file === "stderr") sinks.push(new ConsoleSink());
  else if (file) sinks.push(new JsonLinesFileSink(file));
  cached = { key, sinks };
  return sinks;
}

/** Telemetry for one durable instance, to wherever the environment says. */
export function telemetryFromEnv(correlation: Correlation, env: NodeJS.ProcessEnv = process.env): Telemetry {
  return createTelemetry(correlation, { sinks: sinksFromEnv(env) });
}
