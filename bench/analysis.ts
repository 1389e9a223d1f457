/**
 * The pure part of `npm run bench` (bench/run.mjs): what the emulator's admin API and keyturn's JSON
 * report say, turned into the numbers of issue 7 and DESIGN §10. No I/O here, so test/unit/bench
 * covers it; run.mjs compiles this file with esbuild at start.
 */

/** One entry of the emulator's `GET /_admin/requests` (fields newer emulators add are optional). */
export interface RequestLogEntry {
  at: string;
  method: string;
  path: string;
  operation: string;
  status: number;
  clientId?: string;
  durationMs?: number;
  /** On a 429: which limit refused the call (`arm`, `storageRp`, `fault`). */
  throttledBy?: string;
}

/** A storage account of the estate, with what the lower bound needs. */
export interface EstateAccount {
  name: string;
  id: string;
  subscriptionId: string;
  region: string;
  /** AccountKey datastores (any workspace) holding one of this account's keys. */
  datastores: number;
  /** Every consumer holding one of its keys: datastores, workspaces, Batch, Key Vault readers. */
  consumers: number;
}

/** Azure's limits as DESIGN §10 states them (ARM per principal and subscription; Storage RP per subscription and region). */
export const LIMITS = {
  armReadBurst: 250,
  armReadsPerSecond: 25,
  armWriteBurst: 200,
  armWritesPerSecond: 10,
  storageRpWritesPerHour: 1200,
  /** A safe rotation's Storage RP writes per account: the keys read once, two regenerations. */
  storageRpWritesPerAccount: 3,
} as const;

/** Issue 7's target: at most 3 ARM writes per key-holding datastore plus 10 per account. */
export const WRITE_TARGET = { perDatastore: 3, perAccount: 10 } as const;

const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** PUT, PATCH, POST and DELETE count as ARM writes (so listKeys and listSecrets do); GET and HEAD are reads. */
export function isWrite(method: string): boolean {
  return WRITE_METHODS.has(method.toUpperCase());
}

/** The subscription a request path names, lower case; undefined for tenant-level calls. */
export function subscriptionOf(path: string): string | undefined {
  return /^\/subscriptions\/([^/]+)/i.exec(path)?.[1]?.toLowerCase();
}

/** The storage account name a Microsoft.Storage path names (lower case), if any. */
export function storageAccountOf(path: string): string | undefined {
  return /\/providers\/Microsoft\.Storage\/storageAccounts\/([^/]+)/i.exec(path)?.[1]?.toLowerCase();
}

// ---------------------------------------------------------------------------------------------
// The estate, from GET /_admin/state

interface AdminState {
  storageAccounts?: { id: string; name: string; location?: string; region?: string }[];
  consumers?: { kind: string; storageAccountName: string }[];
}

/** Every storage account of the emulator's state with its datastores and consumers counted. */
export function estateAccounts(state: unknown): EstateAccount[] {
  const s = (state ?? {}) as AdminState;
  const datastores = new Map<string, number>();
  const consumers = new Map<string, number>();
  for (const c of s.consumers ?? []) {
    const key = c.storageAccountName.toLowerCase();
    consumers.set(key, (consumers.get(key) ?? 0) + 1);
    if (c.kind === "datastore") datastores.set(key, (datastores.get(key) ?? 0) + 1);
  }
  return (s.storageAccounts ?? []).map((a) => {
    const key = a.name.toLowerCase();
    return {
      name: a.name,
      id: a.id,
      subscriptionId: subscriptionOf(a.id) ?? "",
      // The emulator's state names no region before multi-region estates: one region then.
      region: a.location ?? a.region ?? "default",
      datastores: datastores.get(key) ?? 0,
      consumers: consumers.get(key) ?? 0,
    };
  });
}

/** The key fingerprints per account (lower-case name) in an admin state. */
export function keyFingerprints(state: unknown): Map<string, { key1: string; key2: string }> {
  const s = (state ?? {}) as {
    storageAccounts?: {
      name: string;
      keys: { key1: { fingerprint: string }; key2: { fingerprint: string } };
    }[];
  };
  return new Map(
    (s.storageAccounts ?? []).map((a) => [
      a.name.toLowerCase(),
      { key1: a.keys.key1.fingerprint, key2: a.keys.key2.fingerprint },
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// The request log

export interface OperationCount {
  method: string;
  write: boolean;
  calls: number;
  throttled: number;
}

export interface ArmSummary {
  /** Every ARM request answered, 429s included. */
  requests: number;
  reads: number;
  writes: number;
  /** Requests not answered 429: the ones that cost a token. */
  acceptedReads: number;
  acceptedWrites: number;
  throttled: number;
  throttledBySource: Record<string, number>;
  byOperation: Record<string, OperationCount>;
  bySubscription: Record<
    string,
    { reads: number; writes: number; acceptedWrites: number; throttled: number }
  >;
  /** Successful `storageAccounts.regenerateKey` calls per account (lower-case name). */
  regenerations: Record<string, number>;
  /** Accepted writes on datastore paths (listSecrets, PUT, DELETE): the per-datastore part of the budget. */
  datastoreWrites: number;
  firstAt?: string;
  lastAt?: string;
}

/** Aggregates the request log; `fromMs`/`toMs` (epoch ms, inclusive) keep one run's window. */
export function summarizeRequests(
  entries: readonly RequestLogEntry[],
  window: { fromMs?: number; toMs?: number } = {},
): ArmSummary {
  const summary: ArmSummary = {
    requests: 0,
    reads: 0,
    writes: 0,
    acceptedReads: 0,
    acceptedWrites: 0,
    throttled: 0,
    throttledBySource: {},
    byOperation: {},
    bySubscription: {},
    regenerations: {},
    datastoreWrites: 0,
  };
  for (const e of entries) {
    const t = Date.parse(e.at);
    if (window.fromMs !== undefined && t < window.fromMs) continue;
    if (window.toMs !== undefined && t > window.toMs) continue;
    const write = isWrite(e.method);
    const throttled = e.status === 429;
    summary.requests++;
    if (write) summary.writes++;
    else summary.reads++;
    if (throttled) {
      summary.throttled++;
      const source = e.throttledBy ?? "unknown";
      summary.throttledBySource[source] = (summary.throttledBySource[source] ?? 0) + 1;
    } else if (write) {
      summary.acceptedWrites++;
      if (/\/datastores\//i.test(e.path)) summary.datastoreWrites++;
    } else {
      summary.acceptedReads++;
    }
    const label = e.operation && e.operation !== "unknown" ? e.operation : `${e.method} (unrouted)`;
    const op = (summary.byOperation[label] ??= { method: e.method, write, calls: 0, throttled: 0 });
    op.calls++;
    if (throttled) op.throttled++;
    const sub = subscriptionOf(e.path) ?? "(tenant)";
    const bySub = (summary.bySubscription[sub] ??= { reads: 0, writes: 0, acceptedWrites: 0, throttled: 0 });
    if (write) bySub.writes++;
    else bySub.reads++;
    if (write && !throttled) bySub.acceptedWrites++;
    if (throttled) bySub.throttled++;
    if (e.operation === "storageAccounts.regenerateKey" && e.status >= 200 && e.status < 300) {
      const account = storageAccountOf(e.path);
      if (account) summary.regenerations[account] = (summary.regenerations[account] ?? 0) + 1;
    }
    if (summary.firstAt === undefined || e.at < summary.firstAt) summary.firstAt = e.at;
    if (summary.lastAt === undefined || e.at > summary.lastAt) summary.lastAt = e.at;
  }
  summary.byOperation = Object.fromEntries(
    Object.entries(summary.byOperation).sort((a, b) => b[1].calls - a[1].calls || a[0].localeCompare(b[0])),
  );
  return summary;
}

export interface WriteEconomy {
  accounts: number;
  datastores: number;
  /** Accepted ARM writes (429s cost no token and are counted apart). */
  writes: number;
  datastoreWrites: number;
  accountWrites: number;
  /** Writes on datastore paths per key-holding datastore. */
  perDatastore: number | null;
  /** Every other write per account. */
  perAccount: number | null;
  /** All writes over all datastores, for comparison with the 3-per-datastore figure. */
  allWritesPerDatastore: number | null;
  /** 3 per datastore + 10 per account. */
  target: number;
  withinTarget: boolean;
}

/** ARM writes against issue 7's target (≤ 3 per key-holding datastore + 10 per account). */
export function writeEconomy(arm: ArmSummary, accounts: readonly EstateAccount[]): WriteEconomy {
  const n = accounts.length;
  const d = accounts.reduce((sum, a) => sum + a.datastores, 0);
  const target = WRITE_TARGET.perDatastore * d + WRITE_TARGET.perAccount * n;
  const accountWrites = arm.acceptedWrites - arm.datastoreWrites;
  return {
    accounts: n,
    datastores: d,
    writes: arm.acceptedWrites,
    datastoreWrites: arm.datastoreWrites,
    accountWrites,
    perDatastore: d > 0 ? arm.datastoreWrites / d : null,
    perAccount: n > 0 ? accountWrites / n : null,
    allWritesPerDatastore: d > 0 ? arm.acceptedWrites / d : null,
    target,
    withinTarget: arm.acceptedWrites <= target,
  };
}

export interface RegenerationCheck {
  accounts: number;
  /** Accounts whose two keys were each regenerated exactly once. */
  bothKeysOnce: number;
  /** Accounts with more than two successful regenerations (a key regenerated twice). */
  overTwice: string[];
  /** Accounts with a key regenerated more than once, when the emulator says which key. */
  keyTwice: string[];
  /** Accounts left with one or no key regenerated. */
  incomplete: string[];
  /** True when each account's two keys were regenerated exactly once each. */
  ok: boolean;
  /** `per-key` when the emulator reported which key each regeneration was; else calls + fingerprints. */
  method: "per-key" | "calls+fingerprints";
}

/**
 * Whether each account's two keys were regenerated exactly once each: from the emulator's own
 * per-key record when it has one, else from the successful regenerateKey calls in the request log
 * and the key fingerprints before and after (both changed and exactly two calls means once each).
 */
export function checkRegenerations(
  accounts: readonly EstateAccount[],
  before: Map<string, { key1: string; key2: string }>,
  after: Map<string, { key1: string; key2: string }>,
  callsPerAccount: Record<string, number>,
  perKey?: readonly { account: string; key: string; outOfBand?: boolean }[],
): RegenerationCheck {
  const result: RegenerationCheck = {
    accounts: accounts.length,
    bothKeysOnce: 0,
    overTwice: [],
    keyTwice: [],
    incomplete: [],
    ok: false,
    method: perKey ? "per-key" : "calls+fingerprints",
  };
  const counted = new Map<string, { key1: number; key2: number }>();
  for (const r of perKey ?? []) {
    if (r.outOfBand) continue;
    const name = (r.account.split("/").pop() ?? r.account).toLowerCase();
    const c = counted.get(name) ?? { key1: 0, key2: 0 };
    if (r.key === "key1" || r.key === "key2") c[r.key]++;
    counted.set(name, c);
  }
  for (const a of accounts) {
    const name = a.name.toLowerCase();
    if (perKey) {
      const c = counted.get(name) ?? { key1: 0, key2: 0 };
      if (c.key1 + c.key2 > 2) result.overTwice.push(a.name);
      if (c.key1 > 1 || c.key2 > 1) result.keyTwice.push(a.name);
      if (c.key1 === 1 && c.key2 === 1) result.bothKeysOnce++;
      else if (c.key1 === 0 || c.key2 === 0) result.incomplete.push(a.name);
      continue;
    }
    const calls = callsPerAccount[name] ?? 0;
    const b = before.get(name);
    const f = after.get(name);
    const changed1 = b !== undefined && f !== undefined && b.key1 !== f.key1;
    const changed2 = b !== undefined && f !== undefined && b.key2 !== f.key2;
    if (calls > 2) result.overTwice.push(a.name);
    if (calls === 2 && changed1 && changed2) result.bothKeysOnce++;
    else if (!(changed1 && changed2)) result.incomplete.push(a.name);
  }
  result.ok =
    result.overTwice.length === 0 && result.keyTwice.length === 0 && result.bothKeysOnce === accounts.length;
  return result;
}

// ---------------------------------------------------------------------------------------------
// The lower bound of DESIGN §10

/** Minimal ARM writes of one account with D key-holding datastores: 3·D + 8. */
export function minimalWrites(datastores: number): number {
  return 3 * datastores + 8;
}

export interface LowerBound {
  graceSeconds: number;
  /** One account's calls outside its grace; null when not measured (no sequential run). */
  criticalPathSeconds: number | null;
  terms: {
    /** grace + one account's critical path. */
    accountCriticalPath: number;
    /** max over subscriptions of (W − 200) / 10 s. */
    armWriteBudget: number;
    /** max over subscription and region of the Storage RP's 1,200 writes per hour. */
    storageRpHourly: number;
  };
  perSubscription: {
    subscriptionId: string;
    accounts: number;
    datastores: number;
    minimalWrites: number;
    armWriteSeconds: number;
  }[];
  bound: number;
  binding: keyof LowerBound["terms"];
}

/**
 * DESIGN §10: `max(grace + one account's critical path, max over subscriptions of (W − 200)/10 s,
 * the Storage RP hourly budget)`, with W = Σ (3·D + 8) the minimal writes of a subscription's
 * accounts. The Storage RP term: S = 3 writes per account in one subscription and region; the
 * (1,200·k + 1)-th write cannot come before k hours have passed, so 3,600 · ⌊(S − 1) / 1,200⌋ s.
 */
export function lowerBound(input: {
  graceSeconds: number;
  criticalPathSeconds: number | null;
  accounts: readonly EstateAccount[];
}): LowerBound {
  const subs = new Map<string, { accounts: number; datastores: number; writes: number }>();
  const storage = new Map<string, number>();
  for (const a of input.accounts) {
    const s = subs.get(a.subscriptionId) ?? { accounts: 0, datastores: 0, writes: 0 };
    s.accounts++;
    s.datastores += a.datastores;
    s.writes += minimalWrites(a.datastores);
    subs.set(a.subscriptionId, s);
    const key = `${a.subscriptionId}|${a.region}`;
    storage.set(key, (storage.get(key) ?? 0) + LIMITS.storageRpWritesPerAccount);
  }
  const perSubscription = [...subs.entries()].map(([subscriptionId, s]) => ({
    subscriptionId,
    accounts: s.accounts,
    datastores: s.datastores,
    minimalWrites: s.writes,
    armWriteSeconds: Math.max(0, (s.writes - LIMITS.armWriteBurst) / LIMITS.armWritesPerSecond),
  }));
  const terms = {
    accountCriticalPath: input.graceSeconds + (input.criticalPathSeconds ?? 0),
    armWriteBudget: Math.max(0, ...perSubscription.map((s) => s.armWriteSeconds)),
    storageRpHourly: Math.max(
      0,
      ...[...storage.values()].map((n) => 3600 * Math.floor((n - 1) / LIMITS.storageRpWritesPerHour)),
    ),
  };
  const binding = (Object.keys(terms) as (keyof typeof terms)[]).reduce((a, b) =>
    terms[b] > terms[a] ? b : a,
  );
  return {
    graceSeconds: input.graceSeconds,
    criticalPathSeconds: input.criticalPathSeconds,
    terms,
    perSubscription,
    bound: terms[binding],
    binding,
  };
}

// ---------------------------------------------------------------------------------------------
// The sequential procedure: sampling and extrapolation

/**
 * `k` accounts spread over subscriptions (round robin), evenly spaced within each subscription's
 * accounts sorted by name; all of them when k ≥ their number.
 */
export function sampleAccounts<T extends { name: string; subscriptionId: string }>(
  accounts: readonly T[],
  k: number,
): T[] {
  if (k >= accounts.length) return [...accounts];
  const bySub = new Map<string, T[]>();
  for (const a of [...accounts].sort((x, y) => x.name.localeCompare(y.name))) {
    const list = bySub.get(a.subscriptionId) ?? [];
    list.push(a);
    bySub.set(a.subscriptionId, list);
  }
  const groups = [...bySub.entries()].sort((x, y) => x[0].localeCompare(y[0])).map(([, list]) => list);
  const quota = groups.map(() => 0);
  for (let i = 0; i < k; i++) {
    // Round robin over subscriptions that still have accounts left.
    const open = groups.map((g, gi) => gi).filter((gi) => quota[gi]! < groups[gi]!.length);
    quota[open[i % open.length]!]!++;
  }
  return groups.flatMap((g, gi) => {
    const q = quota[gi]!;
    return Array.from({ length: q }, (_, j) => g[Math.floor(((j + 0.5) * g.length) / q)]!);
  });
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface SequentialEstimate {
  sampled: number;
  totalAccounts: number;
  /** True when every account ran: the wall time is measured, not extrapolated. */
  whole: boolean;
  discoverySeconds: number;
  measuredSeconds: number;
  perAccountMedianSeconds: number | null;
  perAccountMeanSeconds: number | null;
  /** discovery + mean per-account time × every account with consumers. */
  estimatedSeconds: number | null;
  /** Median per-account time minus the grace: one account's calls, the bound's critical path. */
  criticalPathSeconds: number | null;
}

/** Linear extrapolation of the sequential procedure from the accounts it ran to the whole estate. */
export function extrapolateSequential(input: {
  discoverySeconds: number;
  perAccountSeconds: readonly number[];
  totalAccounts: number;
  graceSeconds: number;
}): SequentialEstimate {
  const k = input.perAccountSeconds.length;
  const sum = input.perAccountSeconds.reduce((a, b) => a + b, 0);
  const mean = k > 0 ? sum / k : null;
  const med = median(input.perAccountSeconds);
  return {
    sampled: k,
    totalAccounts: input.totalAccounts,
    whole: k === input.totalAccounts,
    discoverySeconds: input.discoverySeconds,
    measuredSeconds: input.discoverySeconds + sum,
    perAccountMedianSeconds: med,
    perAccountMeanSeconds: mean,
    estimatedSeconds: mean === null ? null : input.discoverySeconds + mean * input.totalAccounts,
    criticalPathSeconds: med === null ? null : Math.max(0, med - input.graceSeconds),
  };
}

// ---------------------------------------------------------------------------------------------
// keyturn's JSON report

export interface OutcomeSummary {
  rotated: number;
  stalled: number;
  failed: number;
  skipped: number;
  /** Accounts with consumers that the report does not mention (e.g. the rotation died in discovery). */
  missing: number;
  /** Why accounts did not rotate: the first few, as the report says. */
  problems: { account: string; outcome: string; reason?: string }[];
}

/** Outcomes from `keyturn rotate --json`; a missing or unreadable report leaves every account missing. */
export function summarizeOutcomes(report: unknown, accounts: readonly EstateAccount[]): OutcomeSummary {
  const r = (report ?? {}) as { accounts?: { name?: string; outcome?: string; reason?: string }[] };
  const summary: OutcomeSummary = { rotated: 0, stalled: 0, failed: 0, skipped: 0, missing: 0, problems: [] };
  const seen = new Set<string>();
  for (const a of r.accounts ?? []) {
    const name = (a.name ?? "").toLowerCase();
    seen.add(name);
    const outcome = a.outcome ?? "unknown";
    if (outcome === "rotated" || outcome === "stalled" || outcome === "failed" || outcome === "skipped")
      summary[outcome]++;
    if (outcome !== "rotated" && summary.problems.length < 20)
      summary.problems.push({ account: a.name ?? "?", outcome, ...(a.reason ? { reason: a.reason } : {}) });
  }
  summary.missing = accounts.filter((a) => !seen.has(a.name.toLowerCase())).length;
  return summary;
}

// ---------------------------------------------------------------------------------------------
// The chart: ARM calls per bucket over time against the budget

export interface SeriesPoint {
  /** Seconds since the run started (bucket start). */
  t: number;
  reads: number;
  writes: number;
  throttled: number;
}

/** Accepted reads, accepted writes and 429s per `bucketSeconds`, from `startMs` to the last entry (or `endMs`). */
export function timeSeries(
  entries: readonly RequestLogEntry[],
  startMs: number,
  endMs?: number,
  bucketSeconds = 10,
): SeriesPoint[] {
  const times = entries.map((e) => Date.parse(e.at));
  const last = endMs ?? Math.max(startMs, ...times);
  const n = Math.max(1, Math.ceil((last - startMs) / 1000 / bucketSeconds));
  const points: SeriesPoint[] = Array.from({ length: n }, (_, i) => ({
    t: i * bucketSeconds,
    reads: 0,
    writes: 0,
    throttled: 0,
  }));
  entries.forEach((e, i) => {
    const t = times[i]!;
    if (t < startMs || t > last) return;
    const p = points[Math.min(n - 1, Math.floor((t - startMs) / 1000 / bucketSeconds))]!;
    if (e.status === 429) p.throttled++;
    else if (isWrite(e.method)) p.writes++;
    else p.reads++;
  });
  return points;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Round numbers for axis ticks: 1, 2 or 5 × 10^k, about `count` of them up to `max`. */
export function niceTicks(max: number, count = 6): number[] {
  if (max <= 0) return [0];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = 0; v <= max + 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/**
 * A hand-written SVG: accepted writes and reads per bucket as step lines, 429s as bars, and the
 * sustained budget (writes 10/s, reads 25/s per subscription, times the subscriptions) as dashed lines.
 */
export function renderChart(input: {
  title: string;
  subtitle?: string;
  points: readonly SeriesPoint[];
  bucketSeconds: number;
  subscriptions: number;
  /** Where the run ended (seconds): the last bucket is drawn up to here. */
  endSeconds?: number;
}): string {
  const W = 960;
  const H = 460;
  const m = { left: 64, right: 24, top: 56, bottom: 96 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const subs = Math.max(1, input.subscriptions);
  const writeBudget = LIMITS.armWritesPerSecond * input.bucketSeconds * subs;
  const readBudget = LIMITS.armReadsPerSecond * input.bucketSeconds * subs;
  const tMax = Math.max(1, input.endSeconds ?? input.points.length * input.bucketSeconds);
  const peak = Math.max(
    readBudget,
    writeBudget,
    ...input.points.map((p) => Math.max(p.reads, p.writes, p.throttled)),
  );
  const yTicks = niceTicks(peak * 1.08, 6);
  const yMax = Math.max(yTicks[yTicks.length - 1]!, 1);
  const x = (t: number) => m.left + (t / tMax) * pw;
  const y = (v: number) => m.top + ph - (v / yMax) * ph;
  const f = (n: number) => n.toFixed(1);
  const step = (key: "reads" | "writes") =>
    input.points
      .map(
        (p, i) =>
          `${i === 0 ? "M" : "L"}${f(x(p.t))},${f(y(p[key]))} L${f(x(Math.min(tMax, p.t + input.bucketSeconds)))},${f(y(p[key]))}`,
      )
      .join(" ");
  const barW = Math.max(1, (pw / Math.max(1, input.points.length)) * 0.6);
  const bars = input.points
    .filter((p) => p.throttled > 0)
    .map(
      (p) =>
        `<rect x="${f(x(Math.min(tMax, p.t + input.bucketSeconds / 2)) - barW / 2)}" y="${f(y(p.throttled))}" width="${f(barW)}" height="${f(y(0) - y(p.throttled))}" fill="#f59e0b" opacity="0.75"/>`,
    );
  const xTicks = niceTicks(tMax, 8);
  const per = subs > 1 ? ` × ${subs} subscriptions` : "";
  const lines: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${m.left}" y="22" font-size="15" font-weight="600">${escapeXml(input.title)}</text>`,
    input.subtitle ? `<text x="${m.left}" y="40" fill="#555">${escapeXml(input.subtitle)}</text>` : "",
    ...yTicks.map(
      (v) =>
        `<line x1="${m.left}" x2="${W - m.right}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="#e5e7eb"/><text x="${m.left - 6}" y="${f(y(v) + 4)}" text-anchor="end" fill="#555">${v}</text>`,
    ),
    ...xTicks
      .filter((t) => t <= tMax)
      .map(
        (t) =>
          `<line x1="${f(x(t))}" x2="${f(x(t))}" y1="${m.top + ph}" y2="${m.top + ph + 4}" stroke="#555"/><text x="${f(x(t))}" y="${m.top + ph + 18}" text-anchor="middle" fill="#555">${t}</text>`,
      ),
    `<line x1="${m.left}" x2="${W - m.right}" y1="${m.top + ph}" y2="${m.top + ph}" stroke="#555"/>`,
    `<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ph}" stroke="#555"/>`,
    `<text x="${m.left + pw / 2}" y="${m.top + ph + 36}" text-anchor="middle" fill="#333">seconds since keyturn started</text>`,
    `<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#333">ARM calls per ${input.bucketSeconds} s</text>`,
    ...bars,
    `<line x1="${m.left}" x2="${W - m.right}" y1="${f(y(readBudget))}" y2="${f(y(readBudget))}" stroke="#2563eb" stroke-dasharray="6 4"/>`,
    `<line x1="${m.left}" x2="${W - m.right}" y1="${f(y(writeBudget))}" y2="${f(y(writeBudget))}" stroke="#dc2626" stroke-dasharray="6 4"/>`,
    `<path d="${step("reads")}" fill="none" stroke="#2563eb" stroke-width="1.5"/>`,
    `<path d="${step("writes")}" fill="none" stroke="#dc2626" stroke-width="1.5"/>`,
  ];
  const legend: [string, string, boolean][] = [
    ["#dc2626", "ARM writes accepted", false],
    ["#2563eb", "ARM reads accepted", false],
    ["#f59e0b", "429 answers", false],
    ["#dc2626", `write budget 10/s${per} (after a 200 burst)`, true],
    ["#2563eb", `read budget 25/s${per} (after 250)`, true],
  ];
  // Two rows, what was measured then the budget; each entry as wide as its label (about 6.6 px a character).
  const rowX = [m.left, m.left];
  legend.forEach(([color, label, dashed], i) => {
    const row = i < 3 ? 0 : 1;
    const lx = rowX[row]!;
    rowX[row] = lx + 24 + label.length * 6.6 + 28;
    const ly = row === 0 ? H - 30 : H - 10;
    lines.push(
      label === "429 answers"
        ? `<rect x="${lx}" y="${ly - 9}" width="18" height="10" fill="${color}" opacity="0.75"/>`
        : `<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${dashed ? ' stroke-dasharray="5 3"' : ""}/>`,
      `<text x="${lx + 24}" y="${ly}" fill="#333">${escapeXml(label)}</text>`,
    );
  });
  lines.push("</svg>");
  return lines.filter((l) => l !== "").join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// Tables

/** What one estate's bench run produced, as bench/run.mjs writes it to bench/results/<estate>.json. */
export interface EstateResult {
  estate: string;
  date: string;
  commit?: string;
  graceSeconds: number;
  shape: { accounts: number; datastores: number; subscriptions: number };
  keyturn?: {
    wallSeconds: number;
    exitCode: number | null;
    timedOut: boolean;
    error?: string;
    peakRssMB: number | null;
    outcomes: OutcomeSummary;
    arm: ArmSummary;
    economy: WriteEconomy;
    regenerations: RegenerationCheck;
    outages: number;
    outageDetail?: OutageDetail;
    requestLogComplete: boolean;
  };
  sequential?: SequentialEstimate & {
    accountsFailed: number;
    outages: number;
    arm: ArmSummary;
  };
  lowerBound: LowerBound;
  ratioToBound: number | null;
  speedup: number | null;
}

/** The emulator's outage log in short: how many per consumer kind, and their summed duration. */
export interface OutageDetail {
  count: number;
  byKind: Record<string, number>;
  totalSeconds: number;
}

/** "empty", or how many outages of which kinds and for how long in all. */
export function describeOutages(count: number, detail?: OutageDetail): string {
  if (count === 0) return "empty";
  if (!detail) return `${count} outages`;
  const kinds = Object.entries(detail.byKind)
    .map(([kind, n]) => `${n} ${kind}`)
    .join(", ");
  return `${count} outages (${kinds}; ${detail.totalSeconds.toFixed(1)} s in all)`;
}

function seconds(s: number | null | undefined): string {
  if (s === null || s === undefined) return "—";
  if (s >= 600) return `${Math.round(s)} s (${(s / 60).toFixed(1)} min)`;
  return `${s.toFixed(1)} s`;
}

function num(n: number | null | undefined, digits = 2): string {
  return n === null || n === undefined ? "—" : Number(n.toFixed(digits)).toString();
}

/** One row per metric: [label, value per estate…]. */
export function tableRows(results: readonly EstateResult[]): string[][] {
  const rows: [string, (r: EstateResult) => string][] = [
    [
      "estate (accounts × datastores, subscriptions)",
      (r) =>
        `\`${r.estate}\` (${r.shape.accounts} accounts, ${r.shape.datastores} key-holding datastores, ${r.shape.subscriptions} sub.)`,
    ],
    ["grace", (r) => `${r.graceSeconds} s`],
    [
      "keyturn wall time",
      (r) =>
        r.keyturn ? seconds(r.keyturn.wallSeconds) + (r.keyturn.timedOut ? " (timed out)" : "") : "not run",
    ],
    [
      "rotated / stalled / failed (missing)",
      (r) => {
        const o = r.keyturn?.outcomes;
        if (!o) return "—";
        return `${o.rotated} / ${o.stalled} / ${o.failed}${o.missing > 0 ? ` (${o.missing} not in the report)` : ""} of ${r.shape.accounts}`;
      },
    ],
    ["keyturn exit code", (r) => (r.keyturn ? String(r.keyturn.exitCode ?? "signal") : "—")],
    [
      "ARM calls (reads / writes, 429s included)",
      (r) =>
        r.keyturn ? `${r.keyturn.arm.requests} (${r.keyturn.arm.reads} / ${r.keyturn.arm.writes})` : "—",
    ],
    [
      "ARM writes accepted (target ≤ 3/datastore + 10/account)",
      (r) => {
        const e = r.keyturn?.economy;
        if (!e) return "—";
        return `${e.writes} of ≤ ${e.target} ${e.withinTarget ? "✓" : "✗"}`;
      },
    ],
    [
      "writes per datastore / per account",
      (r) => {
        const e = r.keyturn?.economy;
        return e ? `${num(e.perDatastore)} / ${num(e.perAccount)}` : "—";
      },
    ],
    ["429s received", (r) => (r.keyturn ? String(r.keyturn.arm.throttled) : "—")],
    [
      "each key regenerated exactly once (never twice)",
      (r) => {
        const g = r.keyturn?.regenerations;
        if (!g) return "—";
        const parts = [`${g.bothKeysOnce} of ${g.accounts} accounts both keys once`];
        if (g.incomplete.length > 0) parts.push(`${g.incomplete.length} with a key not regenerated`);
        if (g.overTwice.length + g.keyTwice.length > 0)
          parts.push(`${new Set([...g.overTwice, ...g.keyTwice]).size} with a key regenerated twice`);
        return `${g.ok ? "yes" : "no"} (${parts.join(", ")})`;
      },
    ],
    ["outage log", (r) => (r.keyturn ? describeOutages(r.keyturn.outages, r.keyturn.outageDetail) : "—")],
    [
      "keyturn peak RSS",
      (r) => (r.keyturn?.peakRssMB != null ? `${r.keyturn.peakRssMB.toFixed(0)} MB` : "—"),
    ],
    [
      "lower bound (DESIGN §10)",
      (r) =>
        `${seconds(r.lowerBound.bound)} (${r.lowerBound.binding}${r.lowerBound.criticalPathSeconds === null ? "; critical path not measured" : ""})`,
    ],
    [
      "keyturn / lower bound (target ≤ 1.25)",
      (r) => (r.ratioToBound === null ? "—" : `${num(r.ratioToBound)}×`),
    ],
    [
      "sequential procedure",
      (r) => {
        const s = r.sequential;
        if (!s) return "not run";
        if (s.whole) return `${seconds(s.measuredSeconds)} measured, all ${s.totalAccounts} accounts`;
        return `${seconds(s.estimatedSeconds)} extrapolated from ${s.sampled} of ${s.totalAccounts} accounts (${seconds(s.measuredSeconds)} measured)`;
      },
    ],
    [
      "sequential: per account (median), failed, outages",
      (r) =>
        r.sequential
          ? `${seconds(r.sequential.perAccountMedianSeconds)}, ${r.sequential.accountsFailed} failed, ${r.sequential.outages} outages`
          : "—",
    ],
    ["speed-up over sequential (target ≥ 10)", (r) => (r.speedup === null ? "—" : `${num(r.speedup, 1)}×`)],
  ];
  return rows.map(([label, cell]) => [label, ...results.map(cell)]);
}

/** The results as a Markdown table, metrics down, estates across. */
export function markdownTable(results: readonly EstateResult[]): string {
  const rows = tableRows(results);
  const header = ["metric", ...results.map((r) => `\`${r.estate}\``)];
  const lines = [header, header.map(() => "---"), ...rows].map(
    (row) => `| ${row.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`,
  );
  return lines.join("\n") + "\n";
}

/** The same table for a terminal. */
export function textTable(results: readonly EstateResult[]): string {
  const rows = tableRows(results).map((row) => row.map((c) => c.replace(/`/g, "")));
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return (
    rows
      .map((row) =>
        row
          .map((cell, c) => cell.padEnd(widths[c]!))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

/** ARM calls by operation for one run, as a Markdown table. */
export function operationsTable(arm: ArmSummary): string {
  const lines = ["| operation | method | calls | 429s |", "| --- | --- | --- | --- |"];
  for (const [op, c] of Object.entries(arm.byOperation))
    lines.push(`| ${op} | ${c.method} | ${c.calls} | ${c.throttled} |`);
  return lines.join("\n") + "\n";
}
