import { existsSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { LocalHost, type InstanceRecord, type InstanceStatus } from "../local";
import { EVENT_TYPE_NAMES, type HistoryEvent } from "../local/durable-protocol";
import { ORCHESTRATOR, type RotateAllInput } from "../shared/activities/contracts";
import { formatDuration, renderReport, type AccountExecution } from "../shared/rotation";
import type { RotationProgress } from "../functions/orchestrators/rotateAll";
import {
  isHeld,
  isPaused,
  type AccountProgress,
  type RotateStorageAccountInput,
  type RotateStorageAccountOutput,
} from "../functions/orchestrators/rotateStorageAccount";
import { CliError, usageError } from "./errors";
import type { Io } from "./io";
import { formatTable } from "./format";
import { armCallsLine, describeScope, stateDirOf, type RotationOutput } from "./rotation";
import { htmlReportInput, renderHtmlReport } from "./report-html";
import { packageVersion } from "./version";

export interface StatusOptions {
  stateDir?: string;
  json?: boolean;
  history?: boolean;
  /** With an id: write the finished rotation as a self-contained HTML report to this file. */
  html?: string;
}

interface Entry {
  status: InstanceStatus;
  /** Runs of one instance id are told apart by execution: a child belongs to one run of its parent. */
  execution?: string;
  parent?: { instanceId: string; executionId: string };
  failure?: string;
}

/** `keyturn status [id]`: what the state dir holds, read without loading or running any function. */
export function status(io: Io, id: string | undefined, options: StatusOptions): number {
  if (options.html !== undefined && id === undefined) {
    throw usageError("--html needs a rotation's instance id: keyturn status <id> --html FILE");
  }
  const stateDir = stateDirOf(options.stateDir);
  if (!existsSync(stateDir)) {
    if (id !== undefined) throw new CliError(`no instance '${id}': ${stateDir} does not exist`);
    if (options.json) io.out("[]\n");
    else io.out(`No rotations in ${stateDir}.\n`);
    return 0;
  }
  const host = new LocalHost({ stateDir, logger: () => undefined });
  const entries = host.durable.list().map((s): Entry => {
    const record = host.durable.getRecord(s.instanceId);
    return {
      status: s,
      ...(record ? { execution: record.executionId } : {}),
      ...(record?.parent ? { parent: record.parent } : {}),
      ...(record?.failure ? { failure: record.failure.message.split("\n")[0]!.trim() } : {}),
    };
  });
  if (id === undefined) {
    listInstances(io, entries, stateDir, options.json === true);
    return 0;
  }
  const entry = entries.find((e) => e.status.instanceId === id);
  if (!entry) {
    throw new CliError(`no instance '${id}' in ${stateDir}: \`keyturn status\` lists the instances there`);
  }
  const record = host.durable.getRecord(id)!;
  if (options.html !== undefined) {
    const records = entries.flatMap((e) => host.durable.getRecord(e.status.instanceId) ?? []);
    const meta = { generatedAt: new Date().toISOString(), version: packageVersion() };
    writeFileSync(options.html, renderHtmlReport(htmlReportInput(record, records, meta)));
  }
  showInstance(io, entry, entries, record, options);
  if (options.html !== undefined) io.err(`HTML report written to ${resolve(options.html)}\n`);
  return 0;
}

function isChildOf(child: Entry, parent: Entry): boolean {
  return (
    child.parent?.instanceId === parent.status.instanceId && child.parent.executionId === parent.execution
  );
}

/**
 * Parents first, in the order they started, each followed by its accounts' sub-orchestrations. A child
 * of an earlier run whose parent id has run again since stands on its own.
 */
function ordered(entries: Entry[]): { entry: Entry; depth: number }[] {
  const byCreation = [...entries].sort((a, b) => a.status.createdTime.localeCompare(b.status.createdTime));
  const rows: { entry: Entry; depth: number }[] = [];
  for (const top of byCreation.filter((e) => !entries.some((p) => isChildOf(e, p)))) {
    rows.push({ entry: top, depth: 0 });
    for (const child of byCreation.filter((e) => isChildOf(e, top))) rows.push({ entry: child, depth: 1 });
  }
  return rows;
}

function listInstances(io: Io, entries: Entry[], stateDir: string, json: boolean): void {
  const rows = ordered(entries);
  if (json) {
    const list = rows.map(({ entry }) => ({
      instanceId: entry.status.instanceId,
      name: entry.status.name,
      runtimeStatus: entry.status.runtimeStatus,
      createdTime: entry.status.createdTime,
      lastUpdatedTime: entry.status.lastUpdatedTime,
      ...(entry.parent ? { parentInstanceId: entry.parent.instanceId } : {}),
      customStatus: entry.status.customStatus,
      summary: summarize(entry),
    }));
    io.out(JSON.stringify(list, null, 2) + "\n");
    return;
  }
  if (rows.length === 0) {
    io.out(`No rotations in ${stateDir}.\n`);
    return;
  }
  const table = [["ID", "NAME", "STATUS", "CREATED", "LAST UPDATED", "PROGRESS"]];
  for (const { entry, depth } of rows) {
    table.push([
      `${"  ".repeat(depth)}${entry.status.instanceId}`,
      entry.status.name,
      entry.status.runtimeStatus,
      shortTime(entry.status.createdTime),
      shortTime(entry.status.lastUpdatedTime),
      summarize(entry),
    ]);
  }
  io.out(formatTable(table).join("\n") + "\n");
  io.out(
    `\n${rows.length} instance${rows.length === 1 ? "" : "s"} in ${stateDir}; \`keyturn status <id>\` for one in detail.\n`,
  );
}

function showInstance(
  io: Io,
  entry: Entry,
  entries: Entry[],
  record: InstanceRecord,
  options: StatusOptions,
): void {
  const { status } = entry;
  const children = entries.filter((e) => isChildOf(e, entry));
  if (options.json) {
    const detail = {
      ...status,
      ...(entry.parent ? { parentInstanceId: entry.parent.instanceId } : {}),
      ...(entry.failure ? { failure: entry.failure } : {}),
      children: children.map((c) => ({
        instanceId: c.status.instanceId,
        runtimeStatus: c.status.runtimeStatus,
        summary: summarize(c),
      })),
      ...(options.history ? { historyEvents: record.history } : {}),
    };
    io.out(JSON.stringify(detail, null, 2) + "\n");
    return;
  }
  const lines: string[] = [];
  const field = (name: string, value: string) => lines.push(`${name.padEnd(12)}${value}`);
  field("Instance", status.instanceId);
  field("Name", status.name);
  field("Status", status.runtimeStatus);
  field("Created", status.createdTime);
  field("Updated", status.lastUpdatedTime);
  if (entry.parent) field("Parent", entry.parent.instanceId);
  if (status.name === ORCHESTRATOR.rotateAll && status.input) {
    const input = status.input as RotateAllInput;
    field("Scope", describeScope(input.scope));
    field(
      "Request",
      `${input.dryRun ? "dry run" : "rotation"}, grace ${formatDuration(input.graceSeconds)}, minimum key age ` +
        `${input.minKeyAgeDays}d${input.force ? ", forced" : ""}, by ${input.startedBy} (${input.trigger})`,
    );
  }
  field("Progress", summarize(entry));
  if (entry.failure) field("Failure", entry.failure);
  const progress = status.customStatus as Partial<RotationProgress> | null;
  if (status.name === ORCHESTRATOR.rotateAll && progress?.accounts) {
    lines.push("", "Accounts:");
    lines.push(
      ...formatTable(
        Object.entries(progress.accounts).map(([name, state]) => [name, state]),
        "  ",
      ),
    );
  }
  if (children.length > 0) {
    lines.push("", "Account rotations:");
    lines.push(
      ...formatTable(
        children.map((c) => [c.status.instanceId, c.status.runtimeStatus, summarize(c)]),
        "  ",
      ),
    );
  }
  if (status.name === ORCHESTRATOR.rotateStorageAccount && status.input) {
    const { plan } = status.input as RotateStorageAccountInput;
    const at = (status.customStatus as Partial<AccountProgress> | null)?.index ?? 0;
    lines.push("", "Steps:");
    plan.steps.forEach((step, i) => {
      const mark = i + 1 < at || status.runtimeStatus === "Completed" ? "done" : i + 1 === at ? "now" : "";
      lines.push(`  ${String(i + 1).padStart(2)}. ${step.id.padEnd(28)} ${mark}`.trimEnd());
    });
  }
  io.out(lines.join("\n") + "\n");
  if (status.runtimeStatus === "Completed" && status.name === ORCHESTRATOR.rotateAll && status.output) {
    const report = status.output as RotationOutput;
    io.out("\n" + renderReport(report) + armCallsLine(report));
  }
  if (options.history && record.failure) {
    io.out(`\nFailure details:\n${record.failure.message}\n${record.failure.details ?? ""}\n`);
  }
  if (options.history) {
    io.out("\nHistory:\n" + formatTable(record.history.map(describeEvent), "  ").join("\n") + "\n");
  }
}

function describeEvent(event: HistoryEvent, index: number): string[] {
  const type = EVENT_TYPE_NAMES[event.EventType] ?? String(event.EventType);
  const details: string[] = [];
  if (event.Name) details.push(event.Name);
  if (event.InstanceId) details.push(event.InstanceId);
  if (event.EventId >= 0 && event.EventType !== 12 && event.EventType !== 0)
    details.push(`#${event.EventId}`);
  if (event.TaskScheduledId !== undefined) details.push(`for #${event.TaskScheduledId}`);
  if (event.TimerId !== undefined) details.push(`timer #${event.TimerId}`);
  if (event.FireAt) details.push(`fires ${event.FireAt}`);
  if (event.Reason) details.push(event.Reason);
  return [String(index + 1), event.Timestamp, type, details.join(" ")];
}

/** One line: where a rotation is, or how it ended. */
export function summarize(entry: Entry): string {
  const { status } = entry;
  if (status.runtimeStatus === "Failed" || status.runtimeStatus === "Terminated") {
    return oneLine(entry.failure ?? status.runtimeStatus.toLowerCase());
  }
  if (status.name === ORCHESTRATOR.rotateAll) {
    if (status.runtimeStatus === "Completed" && status.output) {
      const report = status.output as RotationOutput;
      return `${report.dryRun ? "plan: " : ""}${countStates(report.accounts.map((a) => a.outcome)) || "no accounts in scope"}`;
    }
    const progress = status.customStatus as Partial<RotationProgress> | null;
    const counts = countStates(Object.values(progress?.accounts ?? {}));
    return [progress?.phase ?? "starting", counts].filter((s) => s !== "").join("; ");
  }
  if (status.name === ORCHESTRATOR.rotateStorageAccount) {
    const progress = status.customStatus as Partial<AccountProgress> | null;
    const account = progress?.account ?? "";
    if (status.runtimeStatus === "Completed" && status.output) {
      const output = status.output as RotateStorageAccountOutput;
      if (isPaused(output)) return `${account} in its grace until ${shortTime(output.until)}`;
      if (isHeld(output)) return oneLine(`${account} skipped: ${output.reason}`);
      const execution: AccountExecution = output;
      return oneLine(`${account} ${execution.outcome}${execution.reason ? `: ${execution.reason}` : ""}`);
    }
    if (!progress?.step) return account || "starting";
    const grace = progress.graceUntil ? `, grace until ${progress.graceUntil}` : "";
    return `${account} step ${progress.index}/${progress.of} ${progress.step}${grace}`;
  }
  return "";
}

function countStates(states: string[]): string {
  const counts = new Map<string, number>();
  for (const s of states) counts.set(s, (counts.get(s) ?? 0) + 1);
  return [...counts].map(([s, n]) => `${n} ${s}`).join(", ");
}

function oneLine(text: string, max = 100): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function shortTime(iso: string): string {
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/**
 * `keyturn status --api URL <id>`: one instance as a deployed keyturn's API reports it, shown as a local
 * one is. The API serves neither the instance's input nor its children, so those stay out.
 */
export function showReportedInstance(
  io: Io,
  status: InstanceStatus,
  failure: string | undefined,
  options: Pick<StatusOptions, "json">,
): void {
  const entry: Entry = { status, ...(failure ? { failure } : {}) };
  // Without `history` the record is never read: the API has no durable history to show.
  showInstance(io, entry, [entry], { history: [] } as unknown as InstanceRecord, {
    json: options.json === true,
  });
}
