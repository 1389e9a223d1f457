import { CORRELATION_PROPS } from "../../../shared/telemetry";
import { emittedTelemetry } from "./emitted";
import { analysisErrors, formatDiagnostic, kqlReferences, type KqlReferences } from "./kusto";

/**
 * The cross-check between the KQL in infra/ and the telemetry keyturn sends. Kusto's own parser and
 * analyzer read each query (./kusto.ts): what it depends on (tables, event and metric names, custom
 * dimensions and measurements, values compared with enumerated properties) comes from the syntax
 * tree, and what keyturn sends comes from running its emitters (./emitted.ts).
 */

/** Properties that take one of a few values; the values allowed are those the code was seen sending. */
const ENUMERATED = ["outcome", "trigger", "dryRun"] as const;

export type QueryReferences = Pick<
  KqlReferences,
  "tables" | "names" | "dimensions" | "measurements" | "comparisons"
>;

export function references(query: string): QueryReferences {
  return kqlReferences(query);
}

/** Everything in `query` that Kusto rejects or keyturn's telemetry does not emit; empty when sound. */
export function problems(query: string): string[] {
  const { events: EVENTS, metrics: METRICS } = emittedTelemetry();
  const found = analysisErrors(query).map(formatDiagnostic);
  const refs = kqlReferences(query);
  if (refs.tables.length === 0) found.push("queries no table");
  for (const t of refs.tables) {
    if (t !== "customEvents" && t !== "customMetrics") found.push(`table ${t} holds nothing keyturn emits`);
  }
  if (refs.names.length === 0) found.push("filters on no event or metric name");
  const events = refs.names.filter((n) => EVENTS.has(n));
  const metrics = refs.names.filter((n) => METRICS.has(n));
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
  const items = [...events.map((n) => EVENTS.get(n)), ...metrics.map((n) => METRICS.get(n))].filter(
    (i) => i !== undefined,
  );
  const properties = new Set<string>([...CORRELATION_PROPS, ...items.flatMap((i) => [...i.properties])]);
  const measurements = new Set<string>(events.flatMap((n) => [...(EVENTS.get(n)?.measurements ?? [])]));
  for (const d of refs.dimensions) {
    if (!properties.has(d)) found.push(`customDimensions.${d} is not a property of ${refs.names.join(", ")}`);
  }
  for (const m of refs.measurements) {
    if (!measurements.has(m))
      found.push(`customMeasurements.${m} is not a measurement of ${refs.names.join(", ")}`);
  }
  for (const o of refs.opaque) found.push(`${o} has a key the check cannot read: use a string literal`);
  for (const { property, value } of refs.comparisons) {
    if (!(ENUMERATED as readonly string[]).includes(property)) continue;
    const allowed = [...new Set(items.flatMap((i) => [...(i.values.get(property) ?? [])]))];
    if (!allowed.includes(value)) found.push(`${property} is never "${value}" (it is ${allowed.join("|")})`);
  }
  return found;
}
