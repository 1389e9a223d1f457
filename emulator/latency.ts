/**
 * A latency model for ARM operations: log-normal around medians that match what Azure shows in
 * practice (reads fast, key regeneration and datastore writes slower). Off by default so tests
 * run fast; `realistic` on request, scaled by `latencyScale`.
 */
const MEDIANS_MS: [RegExp, number][] = [
  [/regenerate/i, 900],
  [/createOrUpdate|syncAutoStorageKeys|resyncKeys/i, 450],
  [/listKeys|listSecrets|getKeys/i, 150],
  [/list/i, 200],
  [/.*/, 90],
];

export function medianLatencyMs(operation: string): number {
  return MEDIANS_MS.find(([re]) => re.test(operation))?.[1] ?? 90;
}

/** A sample with median `median` and a modest spread (sigma 0.35), from an injected random source. */
export function sampleLatencyMs(
  operation: string,
  scale: number,
  random: () => number = Math.random,
): number {
  const u1 = Math.max(random(), 1e-9);
  const u2 = random();
  const normal = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  return Math.round(medianLatencyMs(operation) * Math.exp(0.35 * normal) * scale);
}
