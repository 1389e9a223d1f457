import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { isTerminal, type InstanceStatus, type LocalHost } from "../local";
import { ORCHESTRATOR } from "../shared/activities/contracts";
import {
  EXIT_STALLED,
  exitCode,
  formatDuration,
  renderReport,
  scopeInstanceId,
  type RotationReport,
  type RotationScope,
} from "../shared/rotation";
import { CliError, EXIT_FAILURE, EXIT_INTERRUPTED, usageError } from "./errors";
import { createHost } from "./host";
import { acquireStateLock, untilDeadRequestsSettle, type StateLock } from "./statelock";
import { armTimeoutMs } from "../shared/azure/pacing";
import { onSignal, type Io } from "./io";
import { ProgressView } from "./progress";
import { renderMermaid } from "./render";
import { buildRotateInput, parseGrace, scopeFromOptions, type ScopeOptions } from "./request";
import { preflight, recordTarget, recordedTarget, useTarget, type Target } from "./target";

export const DEFAULT_STATE_DIR = ".keyturn/state";

/** rotateAll's output: the report plus what discovery cost. */
export type RotationOutput = RotationReport & { discoveryArmCalls?: number };

export interface CommonOptions {
  connectionFile?: string;
  verbose?: boolean;
}

export interface PlanOptions extends ScopeOptions, CommonOptions {
  /** table (the default), json or mermaid. */
  format?: string;
  /** The same as `--format json`, the spelling every other command takes. */
  json?: boolean;
  grace?: string;
  force?: boolean;
}

export interface RotateOptions extends ScopeOptions, CommonOptions {
  grace?: string;
  force?: boolean;
  json?: boolean;
  stateDir?: string;
  /** Rotate the whole default scope without asking, even on a terminal. */
  yes?: boolean;
}

export interface ResumeOptions extends CommonOptions {
  json?: boolean;
  stateDir?: string;
}

const FORMATS = ["table", "json", "mermaid"] as const;

/**
 * The state directory. A chosen one also holds the local audit trail (unless KEYTURN_AUDIT_FILE names
 * one), so two state directories never share, or mix, one trail; the default stays `.keyturn/audit.jsonl`.
 */
export function stateDirOf(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const dir = resolve(option ?? DEFAULT_STATE_DIR);
  if (option !== undefined && !env.KEYTURN_AUDIT_FILE?.trim())
    env.KEYTURN_AUDIT_FILE = join(dir, "audit.jsonl");
  return dir;
}

/** `--state-dir DIR` when the user chose one, so a suggested command works when pasted. */
function stateDirFlag(option: string | undefined): string {
  return option === undefined ? "" : ` --state-dir ${option}`;
}

export function describeScope(scope: RotationScope): string {
  const parts: string[] = [];
  if (scope.subscriptions) parts.push(`subscriptions ${scope.subscriptions.join(", ")}`);
  if (scope.resourceGroups) parts.push(`resource groups ${scope.resourceGroups.join(", ")}`);
  if (scope.workspaces) parts.push(`workspaces ${scope.workspaces.join(", ")}`);
  if (scope.storageAccounts) parts.push(`storage accounts ${scope.storageAccounts.join(", ")}`);
  return parts.join("; ");
}

/** `keyturn plan`: a dry run through the local host, in memory; nothing is written anywhere. */
export async function plan(io: Io, options: PlanOptions): Promise<number> {
  const format = planFormat(options);
  const graceSeconds = parseGrace(options.grace);
  const target = useTarget(options.connectionFile);
  await preflight(target);
  const input = await buildRotateInput({ ...options, graceSeconds }, target, true);
  const host = createHost(io, { verbose: options.verbose === true });
  try {
    const id = `${scopeInstanceId(input.scope)}-plan`;
    host.startNew(ORCHESTRATOR.rotateAll, input, id);
    // A plan takes seconds; a log needs no play-by-play of it, a terminal gets something to watch.
    const [status] = await follow(host, [id], io, { progress: io.errIsTTY });
    return printPlan(io, reportOf(host, status!), format);
  } finally {
    await host.stop();
  }
}

/** `--format` and `--json` of `plan`, checked before anything starts. */
export function planFormat(options: Pick<PlanOptions, "format" | "json">): string {
  const format = options.format ?? (options.json ? "json" : "table");
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw usageError(`--format "${format}": use ${FORMATS.join(", ")}`);
  }
  if (options.json && format !== "json") {
    throw usageError(`--json and --format "${format}" contradict each other: pass one of them`);
  }
  return format;
}

/** Prints a plan in the format `planFormat` chose; returns the exit code. */
export function printPlan(io: Io, report: RotationOutput, format: string): number {
  if (format === "json") io.out(JSON.stringify(report, null, 2) + "\n");
  else if (format === "mermaid") io.out(renderMermaid(report) + "\n");
  else io.out(renderReport(report) + armCallsLine(report));
  return exitCode(report);
}

/**
 * `keyturn rotate`: rotateAll under the scope's own instance id (I5) in a persistent state dir, so a
 * killed run is continued by `keyturn resume` from its last checkpoint.
 */
export async function rotate(io: Io, options: RotateOptions): Promise<number> {
  // Flags first: a typo should not wait for files or the network.
  const graceSeconds = parseGrace(options.grace);
  const target = useTarget(options.connectionFile);
  await preflight(target);
  const input = await buildRotateInput({ ...options, graceSeconds }, target, false);
  // No scope option rotates everything the identity sees: on a terminal, say so and ask first.
  if (scopeFromOptions(options) === undefined && options.yes !== true && io.prompt.interactive) {
    await confirmDefaultScope(io, input.scope, target);
  }
  const stateDir = stateDirOf(options.stateDir);
  const id = scopeInstanceId(input.scope);
  const release = acquireStateLock(stateDir, "rotate");
  await settleDeadRequests(io, release);
  const host = createHost(io, { stateDir, verbose: options.verbose === true });
  try {
    const existing = host.durable.getStatus(id);
    if (existing && !isTerminal(existing.runtimeStatus)) {
      const flag = stateDirFlag(options.stateDir);
      throw new CliError(
        `a rotation for this scope is unfinished (id ${id}, ${existing.runtimeStatus}, last updated ` +
          `${existing.lastUpdatedTime}): run \`keyturn resume${flag}\` to finish it (unless another keyturn ` +
          `process is running it now), or \`keyturn status${flag} ${id}\` to see where it is`,
        EXIT_FAILURE,
      );
    }
    recordTarget(stateDir, target);
    host.startNew(ORCHESTRATOR.rotateAll, input, id);
    io.err(
      `keyturn: rotating ${describeScope(input.scope)} on ${target.kind === "emulator" ? `the emulator of ${target.connectionFile}` : "Azure"}` +
        ` (grace ${formatDuration(input.graceSeconds)}${input.force ? ", forced" : ""}); id ${id}, state in ${stateDir}\n`,
    );
    const statuses = await follow(host, [id], io, {
      progress: true,
      interrupted: `run \`keyturn resume${stateDirFlag(options.stateDir)}\` to finish it`,
    });
    return printReports(io, (s) => failureOf(host, s), statuses, options.json === true);
  } finally {
    await host.stop();
    release();
  }
}

/** How many subscriptions the question lists by id before it only counts the rest. */
const LISTED_SUBSCRIPTIONS = 10;

/**
 * The question `rotate` asks before rotating the whole default scope on a terminal. Anything but y
 * or yes (an empty line, end of input, Ctrl+C) aborts with a usage error (exit 2): nothing was
 * started, and the remedy is on the command line (a scope option, or --yes).
 */
export async function confirmDefaultScope(io: Io, scope: RotationScope, target: Target): Promise<void> {
  const subscriptions = scope.subscriptions ?? [];
  const n = subscriptions.length;
  const listed = subscriptions.slice(0, LISTED_SUBSCRIPTIONS).map((s) => `  ${s}\n`);
  if (n > LISTED_SUBSCRIPTIONS) listed.push(`  ... and ${n - LISTED_SUBSCRIPTIONS} more\n`);
  const where = target.kind === "emulator" ? `the emulator of ${target.connectionFile}` : "Azure";
  const answer = await io.prompt.ask(
    `No scope option given: keyturn will rotate the keys of every storage account in the ${n} ` +
      `subscription${n === 1 ? "" : "s"} your identity sees on ${where}:\n${listed.join("")}` +
      `(--storage-account, --workspace, --resource-group or --subscription rotate less; --yes skips this question)\n` +
      `Continue? [y/N] `,
  );
  if (!/^\s*y(es)?\s*$/i.test(answer ?? "")) {
    throw usageError(
      "aborted: nothing was rotated. Name a scope (--storage-account, --workspace, --resource-group, " +
        "--subscription), or pass --yes to rotate every subscription without this question",
    );
  }
}

/** `keyturn resume`: continues every unfinished rotation in the state dir from its persisted history. */
export async function resume(io: Io, options: ResumeOptions): Promise<number> {
  const stateDir = stateDirOf(options.stateDir);
  // With --json, nothing to resume is an empty array: stdout always holds one JSON document.
  const nothing = (why: string) => {
    io.err(`Nothing to resume: ${why}.\n`);
    if (options.json) io.out("[]\n");
    return 0;
  };
  if (!existsSync(stateDir)) return nothing(`${stateDir} does not exist (no rotation was started with it)`);
  const recorded = recordedTarget(stateDir);
  if (
    options.connectionFile !== undefined &&
    recorded &&
    recorded.connectionFile !== resolve(options.connectionFile)
  ) {
    io.err(
      `keyturn: warning: the rotations in ${stateDir} were started against ${recorded.connectionFile ?? "Azure"}; resuming against ${resolve(options.connectionFile)} as asked\n`,
    );
  }
  const release = acquireStateLock(stateDir, "resume");
  await settleDeadRequests(io, release);
  const host = createHost(io, { stateDir, verbose: options.verbose === true });
  try {
    // The store is read when the host is made; nothing runs until resume(), so this costs nothing.
    const unfinished = host.durable.list().filter((s) => !isTerminal(s.runtimeStatus));
    if (unfinished.length === 0) {
      return nothing(`every rotation in ${stateDir} has finished (\`keyturn status\` lists them)`);
    }
    const target = useTarget(options.connectionFile ?? recorded?.connectionFile);
    await preflight(target);
    const resumed = host.resume();
    const tops = resumed.filter((id) => {
      const record = host.durable.getRecord(id);
      return record?.name === ORCHESTRATOR.rotateAll && record.parent === undefined;
    });
    const waitFor = tops.length > 0 ? tops : resumed;
    io.err(`keyturn: resuming ${waitFor.join(", ")} from ${stateDir}\n`);
    const statuses = await follow(host, waitFor, io, {
      progress: tops.length > 0,
      interrupted: `run \`keyturn resume${stateDirFlag(options.stateDir)}\` again to finish`,
    });
    return printReports(io, (s) => failureOf(host, s), statuses, options.json === true);
  } finally {
    await host.stop();
    release();
  }
}

/** Waits, saying why, until requests of a dead process whose lock was taken over can no longer land. */
export async function settleDeadRequests(io: Io, lock: StateLock): Promise<void> {
  const ms = untilDeadRequestsSettle(lock, armTimeoutMs());
  if (ms <= 0 || !lock.takenOver) return;
  io.err(
    `keyturn: the keyturn process ${lock.takenOver.pid} that used this state directory died; waiting ${Math.ceil(ms / 1000)} s until requests it may have had in flight can no longer land (KEYTURN_ARM_TIMEOUT_SECONDS)\n`,
  );
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits for the instances with the progress view running. Ctrl+C stops the host where it is, like a
 * killed process: the state on disk is what the last checkpoint wrote, which `resume` continues.
 */
export async function follow(
  host: LocalHost,
  ids: string[],
  io: Io,
  options: { progress: boolean; interrupted?: string },
): Promise<InstanceStatus[]> {
  const view = options.progress ? new ProgressView(host, ids, io) : undefined;
  const signal = onSignal();
  view?.start();
  try {
    // Real time: grace periods are real here, so no deadline either.
    const done = Promise.all(
      ids.map((id) => host.waitForCompletion(id, { timeoutMs: Number.POSITIVE_INFINITY })),
    );
    done.catch(() => undefined); // rejects once the host stops after an interruption; nobody waits then
    const outcome = await Promise.race([done, signal.signal]);
    if (typeof outcome === "string") {
      view?.stop();
      await host.stop();
      const next = options.interrupted ? `: ${options.interrupted}` : "";
      throw new CliError(
        `interrupted (${outcome}); the rotation stopped at its last checkpoint${next}`,
        EXIT_INTERRUPTED,
      );
    }
    return outcome;
  } finally {
    view?.stop();
    signal.dispose();
  }
}

/** The failure's first line: the rest is the library's error dump, stack included (`status --history`). */
export function failureOf(host: LocalHost, status: InstanceStatus): string {
  const record = host.durable.getRecord(status.instanceId);
  const text =
    record?.failure?.message ?? (typeof status.output === "string" ? status.output : status.runtimeStatus);
  return text.split("\n")[0]!.trim();
}

function reportOf(host: LocalHost, status: InstanceStatus): RotationOutput {
  if (status.runtimeStatus !== "Completed") {
    throw new CliError(
      `rotation ${status.instanceId} ${status.runtimeStatus.toLowerCase()}: ${failureOf(host, status)}`,
    );
  }
  return status.output as RotationOutput;
}

export function armCallsLine(report: RotationOutput): string {
  const accounts = report.accounts.reduce((n, a) => n + a.armCalls, 0);
  const discovery = report.discoveryArmCalls ?? 0;
  return `ARM calls: ${discovery + accounts} (discovery and planning ${discovery}, accounts ${accounts})\n`;
}

/**
 * Prints what the instances ended with and returns the exit code: 0 only when every account in
 * scope ended rotated or skipped by policy, 2 when the only problems are stalls (safe: the old key
 * is still valid), 1 otherwise. With --json stdout gets exactly one JSON document: the report, or an
 * array of them when `resume` continued several rotations.
 */
export function printReports(
  io: Io,
  failure: (status: InstanceStatus) => string,
  statuses: InstanceStatus[],
  json: boolean,
): number {
  const codes: number[] = [];
  const documents: unknown[] = [];
  for (const status of statuses) {
    if (status.runtimeStatus === "Completed" && status.name === ORCHESTRATOR.rotateAll) {
      const report = status.output as RotationOutput;
      codes.push(exitCode(report));
      if (json) documents.push(report);
      else io.out(renderReport(report) + armCallsLine(report));
      continue;
    }
    const failed = status.runtimeStatus !== "Completed";
    codes.push(failed ? EXIT_FAILURE : 0);
    const message = failed
      ? `${status.name} ${status.instanceId} ${status.runtimeStatus.toLowerCase()}: ${failure(status)}`
      : `${status.name} ${status.instanceId} completed`;
    if (json) {
      documents.push({
        instanceId: status.instanceId,
        name: status.name,
        runtimeStatus: status.runtimeStatus,
        ...(failed ? { error: failure(status) } : { output: status.output }),
      });
    } else if (failed) io.err(`${message}\n`);
    else io.out(`${message}\n`);
  }
  if (json) io.out(JSON.stringify(documents.length === 1 ? documents[0] : documents, null, 2) + "\n");
  if (codes.includes(EXIT_FAILURE)) return EXIT_FAILURE;
  return codes.includes(EXIT_STALLED) ? EXIT_STALLED : 0;
}
