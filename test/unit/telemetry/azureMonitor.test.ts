import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { ManagedIdentityCredential } from "@azure/identity";
import { AzureMonitorLogExporter, AzureMonitorMetricExporter } from "@azure/monitor-opentelemetry-exporter";
import { ROOT_CONTEXT, TraceFlags, trace } from "@opentelemetry/api";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { generate } from "selfsigned";
import type { OtelBackend, OtelLogRecord } from "../../../shared/telemetry";
import { OtelSink, REDACTED, createTelemetry } from "../../../shared/telemetry";
import { distroOptions, ingestionCredential } from "../../../shared/telemetry/azureMonitor";

const ACCOUNT = {
  storageAccount: "stmlshared",
  storageAccountId:
    "/subscriptions/6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/resourceGroups/rg-ml-prod/providers/Microsoft.Storage/storageAccounts/stmlshared",
  subscriptionId: "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
};

function fakeBackend() {
  const records: OtelLogRecord[] = [];
  const recorded: { name: string; value: number; attributes?: Record<string, string> }[] = [];
  const created: string[] = [];
  const backend: OtelBackend = {
    logger: { emit: (r) => records.push(r) },
    meter: {
      createHistogram: (name) => {
        created.push(name);
        return { record: (value, attributes) => recorded.push({ name, value, attributes }) };
      },
    },
    contextFor: (operationId) => ({ operationId }),
    flush: jest.fn(async () => undefined),
  };
  return { backend, records, recorded, created };
}

describe("OtelSink maps items the way the Azure Monitor exporter reads them", () => {
  it("an event is a log record named by microsoft.custom_event.name, measurements in the body", () => {
    const { backend, records } = fakeBackend();
    const t = createTelemetry({ instanceId: "i", rotationId: "r" }, { sinks: [new OtelSink(backend)] });
    t.event(
      "AccountSkipped",
      { ...ACCOUNT, skipCode: "too-young", reason: "key is 3 days old" },
      { consumers: 2 },
    );
    expect(records).toEqual([
      {
        timestamp: expect.any(Date) as Date,
        attributes: expect.objectContaining({
          "microsoft.custom_event.name": "AccountSkipped",
          skipCode: "too-young",
          instanceId: "i",
          rotationId: "r",
        }) as Record<string, string>,
        body: { measurements: { consumers: 2 } },
        context: { operationId: t.correlation.operationId },
      },
    ]);
  });

  it("a trace is a log record with an OpenTelemetry severity", () => {
    const { backend, records } = fakeBackend();
    const t = createTelemetry({ instanceId: "i" }, { sinks: [new OtelSink(backend)] });
    t.trace("stalled", "error");
    t.trace("fine", "verbose");
    expect(records.map((r) => [r.body, r.severityNumber, r.severityText])).toEqual([
      ["stalled", 17, "ERROR"],
      ["fine", 5, "DEBUG"],
    ]);
  });

  it("a metric is a histogram value whose attributes are the properties; one histogram per name", async () => {
    const { backend, recorded, created } = fakeBackend();
    const t = createTelemetry({ instanceId: "i" }, { sinks: [new OtelSink(backend)] });
    t.metric("ArmCalls", 3, ACCOUNT);
    t.metric("ArmCalls", 4, ACCOUNT);
    expect(created).toEqual(["ArmCalls"]);
    expect(recorded.map((r) => [r.value, r.attributes?.storageAccount, r.attributes?.instanceId])).toEqual([
      [3, "stmlshared", "i"],
      [4, "stmlshared", "i"],
    ]);
    await t.flush();
    expect(backend.flush).toHaveBeenCalled();
  });
});

describe("ingestion credential and distro options", () => {
  it("uses the user-assigned identity when the authentication string asks for Entra ID", () => {
    expect(
      ingestionCredential({ APPLICATIONINSIGHTS_AUTHENTICATION_STRING: "Authorization=AAD;ClientId=abc" }),
    ).toBeInstanceOf(ManagedIdentityCredential);
    expect(
      ingestionCredential({
        APPLICATIONINSIGHTS_AUTHENTICATION_STRING: "authorization=aad",
        AZURE_CLIENT_ID: "x",
      }),
    ).toBeInstanceOf(ManagedIdentityCredential);
    expect(ingestionCredential({})).toBeUndefined();
    expect(
      ingestionCredential({ APPLICATIONINSIGHTS_AUTHENTICATION_STRING: "Authorization=Other" }),
    ).toBeUndefined();
  });

  it("turns off every automatic collection, so nothing bypasses redaction", () => {
    const options = distroOptions({ APPLICATIONINSIGHTS_CONNECTION_STRING: " InstrumentationKey=x " });
    expect(options.azureMonitorExporterOptions?.connectionString).toBe("InstrumentationKey=x");
    expect(options.azureMonitorExporterOptions).not.toHaveProperty("credential");
    expect(options.enableLiveMetrics).toBe(false);
    for (const [name, config] of Object.entries(options.instrumentationOptions ?? {})) {
      expect([name, (config as { enabled?: boolean }).enabled]).toEqual([name, false]);
    }
  });
});

interface Envelope {
  name: string;
  tags: Record<string, string>;
  data: {
    baseType: string;
    baseData: {
      name?: string;
      message?: string;
      severityLevel?: string;
      properties?: Record<string, string>;
      measurements?: Record<string, number>;
      metrics?: { name: string; value: number }[];
    };
  };
}

/**
 * The exporter's own mapping, end to end: real OpenTelemetry providers and the Azure Monitor
 * exporters post to an HTTPS ingestion endpoint on loopback, which records the envelopes.
 */
describe("through the real Azure Monitor exporter", () => {
  let server: Server;
  let envelopes: Envelope[];
  let ca: string;
  const saved = { ...process.env };

  beforeAll(async () => {
    // No statsbeat or SDK stats: they would post to Microsoft's endpoints, not ours.
    process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = "true";
    process.env.APPLICATIONINSIGHTS_STATSBEAT_DISABLED = "true";
    process.env.APPLICATIONINSIGHTS_SDKSTATS_DISABLED = "true";
    const pems = await generate([{ name: "commonName", value: "localhost" }], {
      keySize: 2048,
      algorithm: "sha256",
      extensions: [
        { name: "basicConstraints", cA: true },
        { name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }] },
      ],
    });
    ca = pems.cert;
    envelopes = [];
    server = createServer({ key: pems.private, cert: pems.cert }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        let body = Buffer.concat(chunks);
        if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
        const parsed = JSON.parse(body.toString("utf8")) as Envelope | Envelope[];
        envelopes.push(...(Array.isArray(parsed) ? parsed : [parsed]));
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ itemsReceived: 1, itemsAccepted: 1, errors: [] }));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });

  afterAll(async () => {
    process.env = saved;
    await new Promise((r) => server.close(r));
  });

  it("events land as customEvents, traces as traces, metrics as customMetrics, all under one operation id", async () => {
    const { port } = server.address() as AddressInfo;
    const exporterOptions = {
      connectionString: `InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://127.0.0.1:${port}/`,
      tlsOptions: { ca },
    };
    const loggerProvider = new LoggerProvider({
      processors: [new SimpleLogRecordProcessor(new AzureMonitorLogExporter(exporterOptions))],
    });
    const meterProvider = new MeterProvider({
      readers: [
        new PeriodicExportingMetricReader({
          exporter: new AzureMonitorMetricExporter(exporterOptions),
          exportIntervalMillis: 3_600_000,
        }),
      ],
    });
    const logger = loggerProvider.getLogger("keyturn");
    const sink = new OtelSink({
      logger: { emit: (r) => logger.emit(r as Parameters<typeof logger.emit>[0]) },
      meter: meterProvider.getMeter("keyturn"),
      contextFor: (traceId) =>
        trace.setSpanContext(ROOT_CONTEXT, {
          traceId,
          spanId: traceId.slice(0, 16),
          traceFlags: TraceFlags.SAMPLED,
          isRemote: true,
        }),
      flush: async () => {
        await loggerProvider.forceFlush();
        await meterProvider.forceFlush();
      },
    });
    const t = createTelemetry(
      { instanceId: "keyturn-account-stmlshared-0123", rotationId: "rot-1" },
      { sinks: [sink] },
    );
    t.event(
      "AccountStalled",
      {
        ...ACCOUNT,
        consumer: "workspaceblobstore",
        error: "probe failed with AccountKey=c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
        keyRegenerated: "key2",
      },
      { durationMs: 1200, armCalls: 9 },
    );
    t.trace("resync did not finish", "warning", { storageAccount: "stmlshared" });
    t.metric("KeyAgeDays", 42.5, { ...ACCOUNT, keyName: "key1", keyExpirationPeriodInDays: 30 });
    await t.flush();
    await loggerProvider.shutdown();
    await meterProvider.shutdown();

    const operationId = t.correlation.operationId;
    const event = envelopes.find((e) => e.data.baseType === "EventData");
    expect(event?.data.baseData).toMatchObject({
      name: "AccountStalled",
      properties: {
        storageAccount: "stmlshared",
        consumer: "workspaceblobstore",
        error: `probe failed with AccountKey=${REDACTED}`,
        instanceId: "keyturn-account-stmlshared-0123",
        rotationId: "rot-1",
        operationId,
      },
      measurements: { durationMs: 1200, armCalls: 9 },
    });
    expect(event?.data.baseData.properties).not.toHaveProperty("microsoft.custom_event.name");
    expect(event?.tags["ai.operation.id"]).toBe(operationId);

    const message = envelopes.find((e) => e.data.baseType === "MessageData");
    expect(message?.data.baseData).toMatchObject({
      message: "resync did not finish",
      severityLevel: "Warning",
    });
    expect(message?.tags["ai.operation.id"]).toBe(operationId);

    const metric = envelopes.find((e) => e.data.baseType === "MetricData");
    expect(metric?.data.baseData.metrics?.[0]).toMatchObject({ name: "KeyAgeDays", value: 42.5 });
    expect(metric?.data.baseData.properties).toMatchObject({
      storageAccountId: ACCOUNT.storageAccountId,
      keyExpirationPeriodInDays: "30",
    });
  });
});
