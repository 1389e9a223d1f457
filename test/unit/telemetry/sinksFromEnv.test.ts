import { MemorySink } from "../../../shared/telemetry/sinks";

// The real distro cannot start here (it probes the Azure VM metadata endpoint): stand in for it.
jest.mock("../../../shared/telemetry/azureMonitor", () => ({
  ...jest.requireActual<object>("../../../shared/telemetry/azureMonitor"),
  azureMonitorSink: jest.fn(() => new MemorySink()),
}));

import { azureMonitorSink } from "../../../shared/telemetry/azureMonitor";
import { JsonLinesFileSink, sinksFromEnv } from "../../../shared/telemetry";

describe("sinksFromEnv with Application Insights", () => {
  it("adds Azure Monitor only when the connection string is set, once per process", () => {
    const env = {
      APPLICATIONINSIGHTS_CONNECTION_STRING: "InstrumentationKey=x;IngestionEndpoint=https://x/",
    };
    const sinks = sinksFromEnv(env);
    expect(sinks).toHaveLength(1);
    expect(sinksFromEnv(env)).toBe(sinks);
    expect(azureMonitorSink).toHaveBeenCalledTimes(1);
    expect(sinksFromEnv({ APPLICATIONINSIGHTS_CONNECTION_STRING: "  " })).toEqual([]);
  });

  it("sends to both Azure Monitor and the file when both are set", () => {
    const sinks = sinksFromEnv({
      APPLICATIONINSIGHTS_CONNECTION_STRING: "InstrumentationKey=y",
      KEYTURN_TELEMETRY_FILE: "/tmp/keyturn-telemetry-both.jsonl",
    });
    expect(sinks).toHaveLength(2);
    expect(sinks[1]).toBeInstanceOf(JsonLinesFileSink);
  });
});
