import type { UnattachedCode, UnattachedConsumer } from "./graph";
import type { ConsumerKind, ConsumerRef, KeyName, KeySnapshot } from "./model";
import type { AccountPlan, AccountPlanResult, AccountRef } from "./plan";
import type { KeyRef } from "./guards";
import type { PolicySkipCode } from "./policy";
import { describeUnmatched, type UnmatchedScopeEntry } from "./scope";
import { formatDuration } from "./limits";
import { isReportOnly } from "./kinds";

export type AccountOutcome = "rotated" | "skipped" | "stalled" | "failed" | "planned";

/** Why an account was skipped. `in-progress` (another rotation holds the account, I5) is not policy. */
export type SkipCode = PolicySkipCode | "in-progress";

export const POLICY_SKIP_CODES: readonly SkipCode[] = [
  "opted-out",
  "shared-key-disabled",
  "no-consumers",
  "too-young",
];

/** `gone`: the consumer was deleted during the rotation; nothing holds a key through it any more. */
export type ConsumerAction = "updated" | "verified" | "skipped" | "healed" | "gone";

export interface ConsumerReport {
  id: string;
  name: string;
  kind: ConsumerKind;
  action: ConsumerAction;
  reason?: string;
}

/** A consumer that held a dead key, and for how long (invariant I1's measured exception). */
export interface Outage {
  consumerId: string;
  name: string;
  kind: ConsumerKind;
  durationMs: number;
  reason: string;
  /**
   * The consumer cannot say which key it holds (Batch auto-storage): it held a dead key for this long
   * only if its service had picked the key just regenerated. An upper bound, not a measurement.
   */
  possible?: true;
}

export interface AccountReport {
  id: string;
  name: string;
  outcome: AccountOutcome;
  skipCode?: SkipCode;
  reason?: string;
  activeKeyBefore?: KeyRef;
  activeKeyAfter?: KeyRef;
  consumers: ConsumerReport[];
  graceSeconds: number;
  durationMs: number;
  armCalls: number;
  outages: Outage[];
  /** The keys this run regenerated, in order (empty when none was). */
  keysRegenerated?: KeyName[];
  notes?: string[];
}

export interface UnattachedReport {
  id: string;
  name: string;
  kind: ConsumerKind;
  storageAccountId: string;
  code: UnattachedCode;
  reason: string;
}

export interface RotationReport {
  rotationId: string;
  dryRun: boolean;
  /** ISO 8601, from the orchestration clock. */
  startedAt: string;
  finishedAt?: string;
  accounts: AccountReport[];
  unattached: UnattachedReport[];
  /** Scope entries that name nothing keyturn can see (a misspelled account, say): the run is not a success. */
  unmatchedScope?: UnmatchedScopeEntry[];
}

/** What running a plan produced; everything else in the account's report comes from the plan. */
export interface AccountExecution {
  outcome: "rotated" | "stalled" | "failed";
  reason?: string;
  activeKeyAfter?: KeyRef;
  /** By consumer id; consumers not listed get the plan's intended action when rotated, else `skipped`. */
  /** `consumer` names one the plan did not know (a datastore added during the grace). */
  consumerActions?: Record<string, { action: ConsumerAction; reason?: string; consumer?: ConsumerRef }>;
  durationMs: number;
  armCalls: number;
  outages?: Outage[];
  keysRegenerated?: KeyName[];
}

/** The key as a report shows it: its name and fingerprint (never its creation time). */
export function keyRefOf(keys: Record<KeyName, KeySnapshot>, key: KeyName): KeyRef {
  return { key, fingerprint: keys[key].fingerprint };
}

/**
 * The account's report from its plan result: a dry run when there is no execution, else what the
 * execution says, with the plan filling in the rest.
 */
export function accountReport(result: AccountPlanResult, execution?: AccountExecution): AccountReport {
  if (result.action === "skip") {
    return {
      ...header(result.account),
      outcome: "skipped",
      skipCode: result.code,
      reason: result.reason,
      ...(result.decision ? { activeKeyBefore: keyRefOf(result.keys, result.decision.activeKey) } : {}),
      consumers: result.consumers.map((c) => ({ ...pick(c), action: "skipped" as const })),
      graceSeconds: 0,
      durationMs: execution?.durationMs ?? 0,
      armCalls: execution?.armCalls ?? 0,
      outages: [],
    };
  }
  if (result.action === "fail") {
    return {
      ...header(result.account),
      outcome: "failed",
      reason: result.reason,
      consumers: result.consumers.map((c) => ({ ...pick(c), action: "skipped" as const })),
      graceSeconds: 0,
      durationMs: execution?.durationMs ?? 0,
      armCalls: execution?.armCalls ?? 0,
      outages: [],
    };
  }
  const { plan } = result;
  const outcome: AccountOutcome = execution?.outcome ?? "planned";
  const intended = intendedActions(plan);
  const known = new Set(plan.consumers.map((c) => c.id));
  const found = Object.values(execution?.consumerActions ?? {}).flatMap(({ consumer, ...reported }) =>
    consumer && !known.has(consumer.id) ? [{ ...pick(consumer), ...reported }] : [],
  );
  const consumers = plan.consumers.map((c): ConsumerReport => {
    const reported = execution?.consumerActions?.[c.id];
    if (reported) {
      const { consumer: _, ...action } = reported;
      return { ...pick(c), ...action };
    }
    const planned = intended.get(c.id) ?? { action: "skipped" as const };
    if (outcome === "planned" || outcome === "rotated" || planned.action === "skipped")
      return { ...pick(c), ...planned };
    return {
      ...pick(c),
      action: "skipped",
      reason: `the rotation ${outcome} before this consumer was handled`,
    };
  });
  consumers.push(...found);
  const notes = [...plan.policyNotes, plan.decision.why];
  if (plan.heal && outcome === "rotated") {
    const healed = consumers.filter((c) => c.action === "healed").map((c) => c.name);
    return {
      ...header(plan.account),
      outcome: "skipped",
      skipCode: plan.heal.code,
      reason: `${plan.heal.reason}; healed without a new rotation: ${healed.join(", ")} moved to ${plan.activeKey}`,
      activeKeyBefore: keyRefOf(plan.keys, plan.activeKey),
      consumers,
      graceSeconds: 0,
      durationMs: execution?.durationMs ?? 0,
      armCalls: execution?.armCalls ?? 0,
      outages: execution?.outages ?? [],
      keysRegenerated: [],
      notes,
    };
  }
  return {
    ...header(plan.account),
    outcome,
    ...(execution?.reason !== undefined ? { reason: execution.reason } : {}),
    activeKeyBefore: keyRefOf(plan.keys, plan.activeKey),
    ...(execution?.activeKeyAfter ? { activeKeyAfter: execution.activeKeyAfter } : {}),
    consumers,
    graceSeconds: plan.graceSeconds,
    durationMs: execution?.durationMs ?? 0,
    armCalls: execution?.armCalls ?? 0,
    outages: execution?.outages ?? [],
    ...(execution?.keysRegenerated ? { keysRegenerated: execution.keysRegenerated } : {}),
    notes,
  };
}

/** An account another rotation holds (invariant I5): not done, so not a success. */
export function inProgressReport(account: AccountRef, reason: string, armCalls = 0): AccountReport {
  return {
    ...header(account),
    outcome: "skipped",
    skipCode: "in-progress",
    reason,
    consumers: [],
    graceSeconds: 0,
    durationMs: 0,
    armCalls,
    outages: [],
  };
}

export function unattachedReports(unattached: readonly UnattachedConsumer[]): UnattachedReport[] {
  return unattached.map(({ consumer, code, reason }) => ({
    id: consumer.id,
    name: consumer.name,
    kind: consumer.kind,
    storageAccountId: consumer.storageAccountId,
    code,
    reason,
  }));
}

function intendedActions(plan: AccountPlan): Map<string, { action: ConsumerAction; reason?: string }> {
  const actions = new Map<string, { action: ConsumerAction; reason?: string }>();
  const broken = new Set(plan.decision.broken);
  for (const c of plan.consumers) {
    if (!isReportOnly(c.kind)) {
      actions.set(
        c.id,
        broken.has(c.id)
          ? { action: "healed", reason: "held a key the account no longer has" }
          : { action: "updated" },
      );
    }
  }
  for (const note of plan.notes) actions.set(note.id, { action: "skipped", reason: note.reason });
  return actions;
}

function header(account: AccountRef): { id: string; name: string } {
  return { id: account.id, name: account.name };
}

function pick(c: ConsumerRef): { id: string; name: string; kind: ConsumerKind } {
  return { id: c.id, name: c.name, kind: c.kind };
}

// ---------------------------------------------------------------------------------------------
// Exit code

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_STALLED = 2;

/** Rotated, skipped by policy, or (in a dry run only) planned. */
export function accountSucceeded(account: AccountReport, dryRun: boolean): boolean {
  switch (account.outcome) {
    case "rotated":
      return true;
    case "planned":
      return dryRun;
    case "skipped":
      return account.skipCode !== undefined && POLICY_SKIP_CODES.includes(account.skipCode);
    default:
      return false;
  }
}

/**
 * 0 only when every account in scope ended rotated or skipped by policy (a dry run's planned accounts
 * count as done). A stall gets its own code, 2, because it is safe to resume: the old key is still
 * valid. Anything else, a failure included, is 1. An empty scope is 0: a monthly run with nothing due
 * is not an error.
 */
export function exitCode(report: RotationReport): number {
  const bad = report.accounts.filter((a) => !accountSucceeded(a, report.dryRun));
  // A scope naming something that does not exist is the caller's to fix, like a stall: 2.
  if (bad.length === 0) return (report.unmatchedScope ?? []).length > 0 ? EXIT_STALLED : EXIT_OK;
  return bad.every((a) => a.outcome === "stalled") ? EXIT_STALLED : EXIT_FAILED;
}

export function summarize(report: RotationReport): Record<AccountOutcome, number> {
  const counts: Record<AccountOutcome, number> = {
    rotated: 0,
    skipped: 0,
    stalled: 0,
    failed: 0,
    planned: 0,
  };
  for (const account of report.accounts) counts[account.outcome]++;
  return counts;
}

// ---------------------------------------------------------------------------------------------
// Text rendering

function formatKey(state: KeyRef | undefined): string {
  return state ? `${state.key} ${state.fingerprint}` : "-";
}

/** Left-aligned columns two spaces apart, trailing spaces trimmed (the CLI's tables use it too). */
export function table(rows: readonly string[][], indent = ""): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map(
    (row) =>
      indent +
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
  );
}

/** Plain text for a terminal or a log: a table of accounts, then per-account details. */
export function renderReport(report: RotationReport): string {
  const lines: string[] = [];
  const title = report.dryRun ? "keyturn plan" : "keyturn rotation";
  lines.push(
    `${title} ${report.rotationId}: started ${report.startedAt}` +
      (report.finishedAt ? `, finished ${report.finishedAt}` : ""),
  );
  lines.push("");
  for (const entry of report.unmatchedScope ?? []) lines.push(`Scope: ${describeUnmatched(entry)}.`);
  if ((report.unmatchedScope ?? []).length > 0) lines.push("");
  if (report.accounts.length === 0) {
    lines.push("No storage accounts in scope.");
  } else {
    const rows = [
      [
        "ACCOUNT",
        "OUTCOME",
        "ACTIVE BEFORE",
        "ACTIVE AFTER",
        "CONSUMERS",
        "GRACE",
        "TIME",
        "ARM CALLS",
        "OUTAGES",
      ],
    ];
    for (const a of report.accounts) {
      rows.push([
        a.name,
        a.outcome,
        formatKey(a.activeKeyBefore),
        formatKey(a.activeKeyAfter),
        String(a.consumers.length),
        formatDuration(a.graceSeconds),
        formatDuration(a.durationMs / 1000),
        String(a.armCalls),
        String(a.outages.length),
      ]);
    }
    lines.push(...table(rows));
    for (const a of report.accounts) {
      lines.push("", `${a.name} (${a.outcome})  ${a.id}`);
      if (a.reason !== undefined) lines.push(`  reason: ${a.reason}`);
      for (const note of a.notes ?? []) lines.push(`  note: ${note}`);
      lines.push(
        ...table(
          a.consumers.map((c) => [c.kind, c.name, c.action, c.reason ?? ""]),
          "  ",
        ),
      );
      for (const o of a.outages) {
        lines.push(
          o.possible
            ? `  possible outage: ${o.kind} ${o.name} held a dead key for at most ${formatDuration(o.durationMs / 1000)}: ${o.reason}`
            : `  outage: ${o.kind} ${o.name} held a dead key for ${formatDuration(o.durationMs / 1000)}: ${o.reason}`,
        );
      }
    }
  }
  // Consumers of out-of-scope accounts are expected and can be many: a count says enough. The others
  // point at accounts keyturn could not find, which someone should look at.
  const missing = report.unattached.filter((u) => u.code !== "out-of-scope");
  const outOfScope = report.unattached.length - missing.length;
  if (missing.length > 0) {
    lines.push("", "Consumers whose storage account was not found (not rotated):");
    lines.push(
      ...table(
        missing.map((u) => [u.kind, u.name, u.reason]),
        "  ",
      ),
    );
  }
  if (outOfScope > 0) {
    lines.push(
      "",
      `${outOfScope} consumer${outOfScope === 1 ? "" : "s"} of storage accounts out of scope (not rotated).`,
    );
  }
  const counts = summarize(report);
  const summary = (Object.keys(counts) as AccountOutcome[])
    .filter((k) => counts[k] > 0)
    .map((k) => `${counts[k]} ${k}`)
    .join(", ");
  lines.push(
    "",
    `${report.accounts.length} account${report.accounts.length === 1 ? "" : "s"}${summary ? `: ${summary}` : ""}; exit code ${exitCode(report)}`,
  );
  return lines.join("\n") + "\n";
}
