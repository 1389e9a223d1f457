import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { RealClock, type ActivityInfo, type LocalHost } from "../../local";
import type { Emulator } from "../../emulator";
import { findStorageAccountByName, type KeyName } from "../../emulator/model";
import { projectRoot } from "../../emulator/paths";
import { accountInstanceId, type AccountReport, type RotationReport } from "../../shared/rotation";
import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { admin } from "../helpers/emulator";
import { consumers, type ConsumerState } from "../helpers/estate";
import type { Boundary, Cell, KillTrigger, Outcome, WriteMatch } from "./cells";

/**
 * Runs one chaos cell: a fresh emulator (resync policy key1, the worst case), one storage account in
 * scope, a short real grace, the fault landed at the cell's boundary, then a second plain run. Every
 * check is collected as a violation (an empty list is a green cell), so the table shows all of them.
 */

export const GRACE_SECONDS = 2;
/** keyturn's per-call ARM deadline in the cells (KEYTURN_ARM_TIMEOUT_SECONDS; 60 by default). */
export const ARM_TIMEOUT_SECONDS = 3;
/** An emulator outage may outlast the window keyturn reported by this much (the report's clock starts late). */
const WINDOW_SLACK_MS = 1500;
const RUN_TIMEOUT_MS = 240_000;
const EMULATOR_SETTINGS = { resyncPolicy: "key1" } as const;
const CLI = join(projectRoot(), "bin", "keyturn.js");

export interface OutageSummary {
  /** Outages keyturn reported as its window (service insisted on the key it regenerated). */
  reported: number;
  /** Outages the fault itself caused (a key regenerated outside keyturn). */
  byFault: number;
  /** Everything else: I1 violations. */
  unreported: number;
  /** Longest emulator outage, ms (for the record, not the table: it varies run to run). */
  longestMs: number;
  /** Each outage: consumer, cause, how long the emulator saw it and the window keyturn reported. */
  details: string[];
}

export interface RunSummary {
  outcome: Outcome | "run failed";
  reason?: string;
  outages: OutageSummary;
  /** keyturn's own regenerations of the account's keys in this run (out-of-band ones not counted). */
  regenerated: Record<KeyName, number>;
}

export interface CellRun {
  cell: Cell;
  first: RunSummary;
  /** Keys regenerated outside keyturn by the fault. */
  outOfBand: number;
  second?: RunSummary;
  violations: string[];
  seconds: number;
}

process.env.KEYTURN_ARM_TIMEOUT_SECONDS = String(ARM_TIMEOUT_SECONDS);

export async function runCell(cell: Cell): Promise<CellRun> {
  const started = Date.now();
  const rig = await startRotationRig({ emulator: { settings: EMULATOR_SETTINGS }, clock: new RealClock() });
  const violations: string[] = [];
  try {
    const { emulator } = rig;
    const account = findStorageAccountByName(emulator.ctx.estate, cell.account);
    if (!account) throw new Error(`the demo estate has no storage account ${cell.account}`);
    const scope = { storageAccounts: [cell.account] };
    const held = (await consumers(emulator)).filter((c) => c.storageAccountName === cell.account);
    const active = majorityKey(held);
    const landing = new Landing(rig, cell, active);

    // First run: the fault lands at the boundary.
    const mark = regenerationMark(emulator);
    const first =
      cell.fault.kind === "kill"
        ? await runKilled(rig, cell, violations)
        : await runLanded(rig, cell, landing);
    if (!landing.fired && cell.fault.kind !== "kill")
      violations.push(`the fault never landed at ${cell.boundary}`);
    await admin(emulator, "DELETE", "/faults");
    landing.dispose();
    const outOfBand = emulator.ctx.regenerations
      .slice(mark)
      .filter((r) => r.account === cell.account && r.outOfBand).length;
    const firstSummary = summarize(emulator, cell, first.report, first.error, 0, mark);
    judgeFirst(cell, firstSummary, active, await accountConsumers(emulator, cell), violations);
    judgeRegenerations(emulator, cell, mark, "first run", violations, { standby: other(active) });

    // Second run: plain, same scope, forced past the key-age policy.
    const outagesBefore = emulator.outages.all().length;
    const secondMark = regenerationMark(emulator);
    await rig.host.stop();
    const host = rig.restart();
    const second = await runToEnd(host, rig.start(scope, { force: true, graceSeconds: GRACE_SECONDS }));
    const secondSummary = summarize(
      emulator,
      cell,
      second.report,
      second.error,
      outagesBefore,
      secondMark,
      true,
    );
    judgeSecond(cell, secondSummary, second.report, await accountConsumers(emulator, cell), violations);
    judgeRegenerations(emulator, cell, secondMark, "second run", violations, { exactlyOnce: true });
    const open = emulator.outages.all().filter((o) => o.end === undefined);
    if (open.length > 0)
      violations.push(`I1: outages still open at the end: ${open.map((o) => o.name).join(", ")}`);
    violations.push(...scanForKeys(rig, [first.report, second.report, first.output]));
    writeEvidence(emulator, cell, {
      first: first.report ?? first.error,
      second: second.report ?? second.error,
    });
    return {
      cell,
      first: firstSummary,
      outOfBand,
      second: secondSummary,
      violations,
      seconds: secondsSince(started),
    };
  } catch (e) {
    violations.push(`harness: ${(e as Error).message}`);
    return {
      cell,
      first: {
        outcome: "run failed",
        reason: (e as Error).message,
        outages: noOutages(),
        regenerated: zero(),
      },
      outOfBand: 0,
      violations,
      seconds: secondsSince(started),
    };
  } finally {
    await rig.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Landing a fault at a boundary

/** Injects the cell's fault when the account's rotation reaches the boundary (in-process host). */
class Landing {
  fired = false;
  private standby: KeyName | undefined;
  private restore: (() => void) | undefined;
  private graceWatch: Promise<void> | undefined;

  constructor(
    private readonly rig: RotationRig,
    private readonly cell: Cell,
    private readonly active: KeyName,
  ) {
    this.standby = other(active);
  }

  /** The onActivity hook: lands the fault when the activity marks the boundary. */
  readonly onActivity = async (info: ActivityInfo): Promise<void> => {
    if (this.fired || this.cell.landing || !info.instanceId.startsWith("keyturn-account-")) return;
    const boundary = this.cell.boundary;
    const input = (info.input ?? {}) as {
      phase?: string;
      moves?: unknown[];
      checks?: unknown[];
      expect?: { key?: KeyName };
    };
    const regenerating = info.name === "regenerateKey";
    const standby = regenerating && input.expect?.key === this.standby;
    const moving = info.name === "moveAndVerify";
    const at: Record<Boundary, boolean> = {
      "during-discovery": false,
      "before-regenerate-standby": regenerating && standby && info.phase === "started",
      "after-regenerate-standby": regenerating && standby && info.phase === "completed",
      "during-moves":
        moving &&
        info.phase === "started" &&
        input.phase === "rotateStandby" &&
        (input.moves?.length ?? 0) > 0,
      "during-verification":
        moving &&
        info.phase === "started" &&
        input.phase === "rotateStandby" &&
        (input.checks?.length ?? 0) > 0,
      "during-grace": false,
      "before-regenerate-active": regenerating && !standby && info.phase === "started",
      "after-regenerate-active": regenerating && !standby && info.phase === "completed",
      "during-final-resync": moving && info.phase === "started" && input.phase === "retireActive",
    };
    if (
      boundary === "during-grace" &&
      moving &&
      info.phase === "completed" &&
      input.phase === "rotateStandby" &&
      (input.checks?.length ?? 0) > 0
    ) {
      this.graceWatch ??= this.whenInGrace().then(() => this.land());
      return;
    }
    if (at[boundary]) await this.land();
  };

  /** Lands now (discovery: before the run starts). */
  async land(): Promise<void> {
    if (this.fired) return;
    this.fired = true;
    await inject(this.rig.emulator, this.cell, this.active);
  }

  /** A cell with `landing`: the fault follows that emulator write instead of an activity's start. */
  watchWrites(match: WriteMatch): void {
    this.restore = onWrite(this.rig.emulator, match, () => this.land());
  }

  async settled(): Promise<void> {
    await this.graceWatch;
  }

  dispose(): void {
    this.restore?.();
  }

  private async whenInGrace(): Promise<void> {
    const id = accountInstanceId(
      findStorageAccountByName(this.rig.emulator.ctx.estate, this.cell.account)!.id,
    );
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (stepOf(this.rig.host.durable.getStatus(id)?.customStatus) === "grace") return;
      await sleep(20);
    }
    throw new Error("the account never showed its grace");
  }
}

async function inject(emulator: Emulator, cell: Cell, active: KeyName): Promise<void> {
  const fault = cell.fault;
  switch (fault.kind) {
    case "rule": {
      const res = await admin(emulator, "POST", "/faults", fault.rule);
      if (res.status !== 201)
        throw new Error(`the emulator refused the fault rule: ${JSON.stringify(res.body)}`);
      return;
    }
    case "regenerate-outside": {
      const keyName = fault.key === "active" ? active : other(active);
      const res = await admin(emulator, "POST", `/storageAccounts/${cell.account}/regenerateKey`, {
        keyName,
      });
      if (res.status !== 204) throw new Error(`out-of-band regeneration refused: ${res.status}`);
      return;
    }
    case "delete-datastore": {
      const res = await admin(
        emulator,
        "DELETE",
        `/workspaces/${fault.workspace}/datastores/${fault.datastore}`,
      );
      if (res.status !== 204) throw new Error(`out-of-band delete refused: ${res.status}`);
      return;
    }
    case "kill":
      throw new Error("a kill is not injected in-process");
  }
}

/**
 * Calls `then` right after the n-th emulator change whose reason matches took effect, before the
 * request that made it is answered (the emulator awaits `changed` before it answers).
 */
function onWrite(emulator: Emulator, match: WriteMatch, then: () => void | Promise<void>): () => void {
  const ctx = emulator.ctx as { changed: (reason: string) => Promise<void> };
  const original = ctx.changed;
  let seen = 0;
  let done = false;
  ctx.changed = async (reason: string) => {
    await original(reason);
    if (done || !match.reason.test(reason)) return;
    seen++;
    if (seen < (match.nth ?? 1)) return;
    done = true;
    await then();
  };
  return () => {
    ctx.changed = original;
  };
}

// ---------------------------------------------------------------------------------------------
// Running

export interface FirstRun {
  report?: RotationReport;
  error?: string;
  /** What the CLI printed (scanned for key material). */
  output?: string;
}

async function runLanded(rig: RotationRig, cell: Cell, landing: Landing): Promise<FirstRun> {
  await rig.host.stop();
  const host = rig.restart({ onActivity: landing.onActivity });
  if (cell.landing) landing.watchWrites(cell.landing);
  if (cell.boundary === "during-discovery") await landing.land();
  const run = await runToEnd(
    host,
    rig.start({ storageAccounts: [cell.account] }, { force: true, graceSeconds: GRACE_SECONDS }),
  );
  await landing.settled();
  return run;
}

async function runToEnd(host: LocalHost, id: string): Promise<FirstRun> {
  const status = await host.waitForCompletion(id, { timeoutMs: RUN_TIMEOUT_MS });
  if (status.runtimeStatus !== "Completed") {
    return { error: `rotateAll ${status.runtimeStatus}: ${JSON.stringify(status.output)}`.slice(0, 300) };
  }
  return { report: status.output as RotationReport };
}

/**
 * `keyturn rotate` as its own process, SIGKILLed at the boundary (watched from the emulator: a held
 * request, a write that took effect, or the grace in the state directory), then `keyturn resume`.
 */
async function runKilled(rig: RotationRig, cell: Cell, violations: string[]): Promise<FirstRun> {
  if (cell.fault.kind !== "kill") throw new Error("not a kill cell");
  const stateDir = join(rig.dir, "cli-state");
  const connection = join(rig.dir, "connection.json");
  const env = childEnv(rig.dir);
  let kill: () => void = () => undefined;
  let killed = false;
  const watch = watchForKill(rig, cell, cell.fault.trigger, stateDir, () => {
    killed = true;
    kill();
  });
  const first = await cli(
    [
      "rotate",
      "--connection-file",
      connection,
      "--state-dir",
      stateDir,
      "--storage-account",
      cell.account,
      "--grace",
      `${GRACE_SECONDS}s`,
      "--force",
      "--json",
    ],
    env,
    (k) => (kill = k),
  );
  watch.dispose();
  await admin(rig.emulator, "DELETE", "/faults");
  if (!killed) {
    violations.push(`the kill never fired (the run ended with exit ${String(first.code)})`);
    return { ...parseReport(first.stdout), output: first.stdout + first.stderr };
  }
  if (first.signal !== "SIGKILL")
    violations.push(`the process ended with ${String(first.signal ?? first.code)}, not SIGKILL`);
  const resumed = await cli(["resume", "--state-dir", stateDir, "--json"], env);
  return {
    ...parseReport(resumed.stdout, resumed.stderr),
    output: first.stdout + first.stderr + resumed.stdout + resumed.stderr,
  };
}

function watchForKill(
  rig: RotationRig,
  cell: Cell,
  trigger: KillTrigger,
  stateDir: string,
  kill: () => void,
): { dispose: () => void } {
  const { emulator } = rig;
  let stopped = false;
  const disposers: (() => void)[] = [];
  const gate = (operation: string) => {
    const rule = emulator.faults.add({ operation, action: { type: "timeout", seconds: 60 }, count: 1 });
    // The held request has arrived once the rule is consumed.
    const poll = async () => {
      while (!stopped && emulator.faults.rules.includes(rule)) await sleep(5);
      if (!stopped) kill();
    };
    void poll();
  };
  switch (trigger.on) {
    case "request":
      if (trigger.armAfter)
        disposers.push(onWrite(emulator, trigger.armAfter, () => gate(trigger.operation)));
      else gate(trigger.operation);
      break;
    case "write":
      disposers.push(onWrite(emulator, trigger.write, kill));
      break;
    case "grace": {
      const id = accountInstanceId(findStorageAccountByName(emulator.ctx.estate, cell.account)!.id);
      const file = join(stateDir, `${encodeURIComponent(id)}.json`);
      const poll = async () => {
        while (!stopped) {
          if (stepOf(readRecord(file)?.customStatus) === "grace") {
            kill();
            return;
          }
          await sleep(15);
        }
      };
      void poll();
      break;
    }
  }
  return {
    dispose: () => {
      stopped = true;
      for (const d of disposers) d();
    },
  };
}

/** The persisted record of an instance (local/store.ts: one JSON file per instance in the state directory). */
function readRecord(file: string): { customStatus?: string } | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as { customStatus?: string };
  } catch {
    return undefined; // not written yet
  }
}

function stepOf(customStatus: unknown): string | undefined {
  const status = typeof customStatus === "string" ? safeJson(customStatus) : customStatus;
  return typeof status === "object" && status !== null ? (status as { step?: string }).step : undefined;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function childEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KEYTURN_")) env[k] = v;
  return {
    ...env,
    KEYTURN_AUDIT_FILE: join(dir, "cli-audit.jsonl"),
    KEYTURN_TELEMETRY_FILE: join(dir, "cli-telemetry.jsonl"),
    KEYTURN_ARM_TIMEOUT_SECONDS: String(ARM_TIMEOUT_SECONDS),
  };
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function cli(
  args: string[],
  env: NodeJS.ProcessEnv,
  onKill?: (kill: () => void) => void,
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    onKill?.(() => child.kill("SIGKILL"));
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), RUN_TIMEOUT_MS);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function parseReport(stdout: string, stderr = ""): FirstRun {
  const json = safeJson(stdout.trim());
  const report = (Array.isArray(json) ? json[0] : json) as RotationReport | undefined;
  if (report && Array.isArray(report.accounts)) return { report };
  return {
    error: `no JSON report: ${(stderr || stdout).trim().split("\n").slice(-2).join(" ")}`.slice(0, 300),
  };
}

// ---------------------------------------------------------------------------------------------
// Judging

function accountOf(report: RotationReport | undefined, cell: Cell): AccountReport | undefined {
  return report?.accounts.find((a) => a.name === cell.account);
}

function summarize(
  emulator: Emulator,
  cell: Cell,
  report: RotationReport | undefined,
  error: string | undefined,
  outagesFrom: number,
  regenerationsFrom: number,
  plain = false,
): RunSummary {
  const account = accountOf(report, cell);
  const windows = new Set((account?.outages ?? []).map((o) => o.consumerId.toLowerCase()));
  const reportedMs = new Map((account?.outages ?? []).map((o) => [o.consumerId.toLowerCase(), o.durationMs]));
  const outages: OutageSummary = noOutages();
  for (const o of emulator.outages.all().slice(outagesFrom)) {
    outages.longestMs = Math.max(outages.longestMs, o.durationMs ?? 0);
    const reported = reportedMs.get(o.consumerId.toLowerCase());
    let verdict: string;
    if (!plain && cell.faultOutages === true && o.cause.startsWith("out-of-band")) {
      outages.byFault++;
      verdict = "the fault's";
    } else if (
      windows.has(o.consumerId.toLowerCase()) &&
      o.durationMs !== undefined &&
      o.durationMs <= (reported ?? 0) + WINDOW_SLACK_MS
    ) {
      outages.reported++;
      verdict = "reported";
    } else {
      // Beyond I1's one exception: unreported, reported too short, or still open when the run ended
      // (the consumer was left on a dead key, whatever the report says).
      outages.unreported++;
      verdict = o.end === undefined ? "UNREPORTED (left open by the run)" : "UNREPORTED";
    }
    outages.details.push(
      `${o.name} (${o.kind}) ${verdict}: ${o.durationMs === undefined ? "still open" : `${o.durationMs} ms`} from "${o.cause}"` +
        `${reported !== undefined ? `, keyturn reported ${reported} ms` : ", no window reported"}`,
    );
  }
  const regenerated = zero();
  for (const r of emulator.ctx.regenerations.slice(regenerationsFrom))
    if (r.account === cell.account && !r.outOfBand) regenerated[r.key]++;
  const outcome = account ? (account.outcome as Outcome) : "run failed";
  const reason = account?.reason ?? (account ? undefined : (error ?? "the account is not in the report"));
  return { outcome, ...(reason !== undefined ? { reason } : {}), outages, regenerated };
}

function judgeFirst(
  cell: Cell,
  run: RunSummary,
  active: KeyName,
  held: ConsumerState[],
  violations: string[],
): void {
  const outcome =
    run.outcome === "run failed" && cell.boundary === "during-discovery" ? "failed" : run.outcome;
  if (!cell.expect.includes(outcome as Outcome))
    violations.push(
      `first run ended ${run.outcome} (expected ${cell.expect.join(" or ")}): ${run.reason ?? ""}`,
    );
  if (run.outages.unreported > 0)
    violations.push(
      `I1: outage(s) beyond the reported windows (unreported, reported too short, or left open): ${run.outages.details.filter((d) => d.includes("UNREPORTED")).join("; ")}`,
    );
  if ((outcome === "stalled" || outcome === "failed") && cell.names && !cell.names.test(run.reason ?? ""))
    violations.push(
      `the ${outcome} reason names neither the consumer nor the fault: ${run.reason ?? "(none)"}`,
    );
  if (outcome === "stalled") {
    if (run.regenerated[active] > 0) violations.push(`stalled after regenerating the active key ${active}`);
    const dead = held.filter((c) => c.heldKeyName === null);
    if (dead.length > 0 && cell.faultOutages !== true)
      violations.push(`stalled with consumers on a dead key: ${dead.map((c) => c.name).join(", ")}`);
  }
  if (outcome === "rotated") {
    const dead = held.filter((c) => c.heldKeyName === null);
    if (dead.length > 0)
      violations.push(`rotated with consumers on a dead key: ${dead.map((c) => c.name).join(", ")}`);
  }
}

function judgeSecond(
  cell: Cell,
  run: RunSummary,
  report: RotationReport | undefined,
  held: ConsumerState[],
  violations: string[],
): void {
  if (run.outcome !== "rotated") violations.push(`second run ended ${run.outcome}: ${run.reason ?? ""}`);
  if (run.outages.unreported > 0)
    violations.push(
      `I1 (second run): ${run.outages.details.filter((d) => d.includes("UNREPORTED")).join("; ")}`,
    );
  // Every consumer on a live key; the ones keyturn writes on the new active key (a workspace or Batch
  // account takes the key its service picks: under resync policy key1, key1).
  const after = accountOf(report, cell)?.activeKeyAfter?.key;
  const off = held.filter(
    (c) =>
      c.heldKeyName === null ||
      (after !== undefined && !SERVICE_CHOSEN.has(c.kind) && c.heldKeyName !== after),
  );
  if (off.length > 0)
    violations.push(
      `after the second run, not on a live key (or not on the new active key ${after ?? "?"}): ${off.map((c) => `${c.name} (${c.heldKeyName ?? "dead"})`).join(", ")}`,
    );
}

/** I2/I4: keyturn regenerates each key at most once per run (exactly once in a plain run), standby first. */
function judgeRegenerations(
  emulator: Emulator,
  cell: Cell,
  from: number,
  run: string,
  violations: string[],
  rule: { exactlyOnce?: boolean; standby?: KeyName },
): void {
  const own = emulator.ctx.regenerations
    .slice(from)
    .filter((r) => r.account === cell.account && !r.outOfBand);
  for (const key of ["key1", "key2"] as const) {
    const n = own.filter((r) => r.key === key).length;
    if (n > 1) violations.push(`I4: ${run} regenerated ${key} ${n} times`);
    if (rule.exactlyOnce && n !== 1) violations.push(`${run} regenerated ${key} ${n} times, not once`);
  }
  if (rule.standby && own.length === 2 && own[0]!.key !== rule.standby)
    violations.push(`I2: ${run} regenerated ${own[0]!.key} before the standby ${rule.standby}`);
}

/** I3: no key the emulator ever issued appears in anything keyturn wrote or printed. */
function scanForKeys(rig: RotationRig, extra: unknown[]): string[] {
  const keys = [...rig.emulator.ctx.issuedKeys];
  const texts: { name: string; text: string }[] = [
    { name: "host logs", text: rig.logs.join("\n") },
    ...extra.filter((x) => x !== undefined).map((x, i) => ({ name: `report ${i}`, text: JSON.stringify(x) })),
    ...filesUnder(rig.dir).map((f) => ({ name: f.slice(rig.dir.length + 1), text: readFileSync(f, "utf8") })),
  ];
  const found: string[] = [];
  for (const { name, text } of texts) {
    if (keys.some((k) => text.includes(k) || text.includes(encodeURIComponent(k)))) found.push(name);
  }
  return found.length > 0 ? [`I3: key material in ${found.join(", ")}`] : [];
}

/**
 * KEYTURN_CHAOS_EVIDENCE=<dir>: the cell's emulator request log, vault log, regenerations, outage log
 * and reports as JSON (fingerprints and names only: the emulator logs no key values), for bug reports.
 */
function writeEvidence(emulator: Emulator, cell: Cell, reports: unknown): void {
  const dir = process.env.KEYTURN_CHAOS_EVIDENCE;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  const evidence = {
    cell: cell.id,
    requests: emulator.requestLog.map((r) => `${r.at} ${r.method} ${r.operation} ${r.status} ${r.path}`),
    vault: emulator.vaultLog.map((r) => `${r.at} ${r.method} ${r.status} ${r.path}`),
    regenerations: emulator.ctx.regenerations,
    outages: emulator.outages.all(),
    reports,
  };
  writeFileSync(
    join(dir, `${cell.id.replace(/[^a-z0-9@-]+/gi, "_")}.json`),
    JSON.stringify(evidence, null, 1),
  );
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

// ---------------------------------------------------------------------------------------------

async function accountConsumers(emulator: Emulator, cell: Cell): Promise<ConsumerState[]> {
  return (await consumers(emulator)).filter((c) => c.storageAccountName === cell.account);
}

function majorityKey(held: ConsumerState[]): KeyName {
  const ones = held.filter((c) => c.heldKeyName === "key1").length;
  const twos = held.filter((c) => c.heldKeyName === "key2").length;
  return twos > ones ? "key2" : "key1";
}

function other(key: KeyName): KeyName {
  return key === "key1" ? "key2" : "key1";
}

function regenerationMark(emulator: Emulator): number {
  return emulator.ctx.regenerations.length;
}

function noOutages(): OutageSummary {
  return { reported: 0, byFault: 0, unreported: 0, longestMs: 0, details: [] };
}

/** Consumers whose key their service picks (emulator kinds): they follow, they do not vote. */
const SERVICE_CHOSEN = new Set(["workspace", "batchAutoStorage"]);

function zero(): Record<KeyName, number> {
  return { key1: 0, key2: 0 };
}

function secondsSince(t: number): number {
  return Math.round((Date.now() - t) / 100) / 10;
}
