import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  CORRELATION_PROPS,
  EVENT_CATALOGUE,
  METRIC_CATALOGUE,
  ROTATION_OUTCOMES,
  TRIGGERS,
} from "../../../shared/telemetry";
import { emittedTelemetry } from "./emitted";
import { problems } from "./kql";
import { analysisErrors, formatDiagnostic, kqlReferences, syntaxErrors } from "./kusto";
import { bicepQueryProperties, infraQueries, withPlaceholdersReplaced } from "./queries";

/**
 * Every alert and workbook query (and any KQL in Bicep) goes through Kusto's own parser and
 * analyzer, @kusto/language-service-next; the names each one reads come from its syntax tree and
 * must be what keyturn's telemetry code emits.
 */

const queries = infraQueries();
const table = queries.map((q) => [`${q.source}: ${q.name}`, q.query] as const);

describe("the Kusto helper (./kusto.ts) itself", () => {
  it("reports what Kusto's parser rejects, and nothing for a sound query", () => {
    // `latest` is a keyword: the parser rejects it as a let name (the workbook's old bug).
    expect(syntaxErrors("let latest = 1;\nprint latest")).toEqual([
      expect.objectContaining({ code: "KS198", severity: "Error", at: "latest" }),
    ]);
    expect(syntaxErrors(`customEvents | where name == "Heartbeat"`)).toEqual([]);
    expect(syntaxErrors(`customEvents | where name == "Heartbeat" |`).length).toBeGreaterThan(0);
    expect(syntaxErrors(`customEvents | summarize count() by`).length).toBeGreaterThan(0);
  });

  it("analysis against the Application Insights schema reports unknown tables, columns and functions", () => {
    const codes = (q: string) => analysisErrors(q).map((d) => [d.code, d.at]);
    expect(codes(`customEvent | take 1`)).toEqual([["KS204", "customEvent"]]);
    expect(codes(`customMetrics | project valueMaxx`)).toEqual([["KS142", "valueMaxx"]]);
    expect(codes(`customEvents | project valueMax`)).toEqual([["KS142", "valueMax"]]);
    expect(codes(`customEvents | extend x = tostrin(name)`)).toEqual([["KS211", "tostrin"]]);
    expect(codes(`customMetrics | summarize arg_max(timestamp, valueMax) by name`)).toEqual([]);
  });

  it("reads names, dimensions, measurements and compared values from the syntax tree", () => {
    const refs = kqlReferences(
      [
        `customEvents`,
        `| where name in ("A", "B") or "C" == name or name =~ "D" or name !in ("E")`,
        `| where tostring(customDimensions["outcome"]) != "ok" and customDimensions.trigger == "timer"`,
        `| extend s = tostring(customDimensions['storageAccount']), d = todouble(customMeasurements.days)`,
        `| extend x = customDimensions[strcat("a", "b")], note = "name == \\"Z\\" customDimensions.fake"`,
        `| project timestamp, name, s, d, x, note`,
      ].join("\n"),
    );
    expect(refs.tables).toEqual(["customEvents"]);
    expect(refs.names.sort()).toEqual(["A", "B", "C", "D", "E"]);
    expect(refs.dimensions.sort()).toEqual(["outcome", "storageAccount", "trigger"]);
    expect(refs.measurements).toEqual(["days"]);
    expect(refs.comparisons).toEqual([
      { property: "outcome", value: "ok" },
      { property: "trigger", value: "timer" },
    ]);
    expect(refs.opaque).toEqual([`customDimensions[strcat("a", "b")]`]);
    expect(refs.columns.sort()).toEqual(["customDimensions", "customMeasurements", "name", "timestamp"]);
  });

  it("a let-bound name is not a table, and names compared through it are still found", () => {
    const refs = kqlReferences(
      `let recent = customMetrics | where name == "KeyAgeDays"; recent | project valueMax, customDimensions.keyName`,
    );
    expect(refs.tables).toEqual(["customMetrics"]);
    expect(refs.names).toEqual(["KeyAgeDays"]);
    expect(refs.dimensions).toEqual(["keyName"]);
  });
});

describe("what keyturn's telemetry code emits (./emitted.ts)", () => {
  const emitted = emittedTelemetry();

  it("is found by running the emitters, and agrees with the catalogue of shared/telemetry/events.ts", () => {
    // RotationStarted is emitted by shared/activities/record.ts, not by an emitter here; no query reads it.
    expect([...emitted.events.keys()].sort()).toEqual(
      Object.keys(EVENT_CATALOGUE)
        .filter((n) => n !== "RotationStarted")
        .sort(),
    );
    expect([...emitted.metrics.keys()].sort()).toEqual(Object.keys(METRIC_CATALOGUE).sort());
    for (const [name, item] of emitted.events) {
      const listed = EVENT_CATALOGUE[name as keyof typeof EVENT_CATALOGUE];
      expect([name, [...item.properties].sort()]).toEqual([
        name,
        [...listed.properties, ...CORRELATION_PROPS].sort(),
      ]);
      expect([name, [...item.measurements].sort()]).toEqual([name, [...listed.measurements].sort()]);
    }
    for (const [name, item] of emitted.metrics) {
      const listed = METRIC_CATALOGUE[name as keyof typeof METRIC_CATALOGUE];
      expect([name, [...item.properties].sort()]).toEqual([
        name,
        [...listed.properties, ...CORRELATION_PROPS].sort(),
      ]);
    }
  });

  it("sends every outcome and trigger the code defines, and dryRun as true/false", () => {
    const completed = emitted.events.get("RotationCompleted");
    expect([...(completed?.values.get("outcome") ?? [])].sort()).toEqual([...ROTATION_OUTCOMES].sort());
    expect([...(completed?.values.get("trigger") ?? [])].sort()).toEqual([...TRIGGERS].sort());
    expect([...(completed?.values.get("dryRun") ?? [])].sort()).toEqual(["false", "true"]);
  });
});

describe("every KQL query in infra/, through Kusto's parser", () => {
  it("finds the alert rules, the workbook's queries and the Bicep's", () => {
    const alerts = (
      JSON.parse(readFileSync(join(__dirname, "../../../infra/alerts.json"), "utf8")) as {
        alerts: unknown[];
      }
    ).alerts;
    expect(queries.filter((q) => q.source === "alerts.json")).toHaveLength(alerts.length);
    expect(queries.filter((q) => q.source === "workbook.json").length).toBeGreaterThanOrEqual(5);
    for (const q of queries) expect([q.name, q.query.trim().length > 0]).toEqual([q.name, true]);
    // Bicep writes no KQL of its own: the rules' queries are alerts.json's, placeholders replaced.
    for (const { file, expression } of bicepQueryProperties().filter((p) => p.expression !== undefined)) {
      expect([file, expression]).toEqual([file, expect.stringMatching(/^replace\(alert\.query, /)]);
    }
    expect(withPlaceholdersReplaced("x > {overdueAfterDays}")).toMatch(/^x > \d+$/);
  });

  it.each(table)("%s parses without a syntax error", (name, query) => {
    expect([name, syntaxErrors(query).map(formatDiagnostic)]).toEqual([name, []]);
  });

  it.each(table)("%s analyzes without an error against the Application Insights tables", (name, query) => {
    expect([name, analysisErrors(query).map(formatDiagnostic)]).toEqual([name, []]);
  });

  it.each(table)(
    "%s reads only events, metrics, dimensions and measurements keyturn emits",
    (name, query) => {
      expect([name, problems(query)]).toEqual([name, []]);
    },
  );
});
