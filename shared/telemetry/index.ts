export * from "./events";
export * from "../redact";
export * from "./telemetry";
export * from "./sinks";
export * from "./emit";
export {
  OtelSink,
  azureMonitorSink,
  CONNECTION_STRING_SETTING,
  AUTHENTICATION_STRING_SETTING,
} from "./azureMonitor";
export type { OtelBackend, OtelLogRecord } from "./azureMonitor";
