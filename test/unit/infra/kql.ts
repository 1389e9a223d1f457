import {
  CORRELATION_PROPS,
  EVENT_CATALOGUE,
  METRIC_CATALOGUE,
  ROTATION_OUTCOMES,
  TRIGGERS,
  type EventName,
  type MetricName,
} from "../../../shared/telemetry";

/**
 * A deliberately small reader of the KQL in infra/: it finds what a query depends on in keyturn's
 * telemetry (tables, event and metric names, custom dimensions and measurements, and the values
 * compared with enumerated properties) and reports whatever the catalogue does not define.
 */

const EVENTS = new Set<string>(Object.keys(EVENT_CATALOGUE));
const METRICS = new Set<string>(Object.keys(METRIC_CATALOGUE));
const KNOWN_TABLES = ["customEvents", "customMetrics", "traces", "requests", "dependencies", "exceptions"];

/** Values the catalogue defines for properties that take one of a few. */
const ENUMERATED: Record<string, readonly string[]> = {
  outcome: ROTATION_OUTCOMES,
  trigger: TRIGGERS,
  dryRun: ["true", "false"],
};

function strings(list: string): string[] {
  return [...list.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? "");
}

export interface QueryReferences {
  tables: string[];
  names: string[];
  dimensions: string[];
  measurements: string[];
  comparisons: { property: string; value: string }[];
}

export function references(query: string): QueryReferences {
  const tables = KNOWN_TABLES.filter((t) => new RegExp(`\\b${t}\\b`).test(query));
  const names = [
    ...[...query.matchAll(/\bname\s*(?:==|=~|!=|!~)\s*"([^"]*)"/g)].map((m) => m[1] ?? ""),
    ...[...query.matchAll(/\bname\s+!?in~?\s*\(([^)]*)\)/g)].flatMap((m) => strings(m[1] ?? "")),
  ];
  const field = (column: string): string[] =>
    [
      ...query.matchAll(
        new RegExp(`\\b${column}(?:\\.([A-Za-z_][A-Za-z0-9_]*)|\\[\\s*["']([^"']+)["']\\s*\\])`, "g"),
      ),
    ].map((m) => m[1] ?? m[2] ?? "");
  const comparisons = [
    ...query.matchAll(
      /customDimensions(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*["']([^"']+)["']\s*\])\)?\s*(?:==|!=|=~|!~)\s*"([^"]*)"/g,
    ),
  ].map((m) => ({ property: m[1] ?? m[2] ?? "", value: m[3] ?? "" }));
  return {
    tables,
    names: [...new Set(names)],
    dimensions: [...new Set(field("customDimensions"))],
    measurements: [...new Set(field("customMeasurements"))],
    comparisons,
  };
}

/** Everything in `query` that keyturn's telemetry does not emit; empty when the query is sound. */
export function problems(query: string): string[] {
  const refs = references(query);
  const found: string[] = [];
  if (refs.tables.length === 0) found.push("queries no table");
  for (const t of refs.tables) {
    if (t !== "customEvents" && t !== "customMetrics") found.push(`table ${t} holds nothing keyturn emits`);
  }
  if (refs.names.length === 0) found.push("filters on no event or metric name");
  const events = refs.names.filter((n) => EVENTS.has(n)) as EventName[];
  const metrics = refs.names.filter((n) => METRICS.has(n)) as MetricName[];
  for (const n of refs.names) {
    if (!EVENTS.has(n) && !METRICS.has(n)) found.push(`"${n}" is neither an event nor a metric`);
  }
  if (events.length > 0 && !refs.tables.includes("customEvents"))
    found.push("names events but reads no customEvents");
  if (metrics.length > 0 && !refs.tables.includes("customMetrics")) {
    found.push("names metrics but reads no customMetrics");
  }
  if (metrics.length > 0 && refs.tables.includes("customMetrics") && !refs.tables.includes("customEvents")) {
    for (const n of events) found.push(`"${n}" is an event, but the query reads customMetrics`);
  }
  if (events.length > 0 && refs.tables.includes("customEvents") && !refs.tables.includes("customMetrics")) {
    for (const n of metrics) found.push(`"${n}" is a metric, but the query reads customEvents`);
  }
  const properties = new Set<string>([
    ...CORRELATION_PROPS,
    ...events.flatMap((n) => EVENT_CATALOGUE[n].properties),
    ...metrics.flatMap((n) => METRIC_CATALOGUE[n].properties),
  ]);
  const measurements = new Set<string>(events.flatMap((n) => EVENT_CATALOGUE[n].measurements));
  for (const d of refs.dimensions) {
    if (!properties.has(d)) found.push(`customDimensions.${d} is not a property of ${refs.names.join(", ")}`);
  }
  for (const m of refs.measurements) {
    if (!measurements.has(m))
      found.push(`customMeasurements.${m} is not a measurement of ${refs.names.join(", ")}`);
  }
  for (const { property, value } of refs.comparisons) {
    const allowed = ENUMERATED[property];
    if (allowed && !allowed.includes(value))
      found.push(`${property} is never "${value}" (it is ${allowed.join("|")})`);
  }
  return found;
}
