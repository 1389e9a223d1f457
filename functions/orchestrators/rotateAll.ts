import type { OrchestrationContext, OrchestrationHandler, Task } from "durable-functions";
import type { RecordRotationInput } from "../../shared/activities/record";
import {
  accountRef,
  consumerRef,
  accountReport,
  buildConsumerGraph,
  CONSUMER_KINDS,
  DEFAULT_PARALLELISM,
  MAX_PARALLELISM,
  inProgressReport,
  isAccountInScope,
  lockHoldSeconds,
  planAccount,
  planViolations,
  unattachedReports,
  unmatchedScope,
  type AccountNode,
  type AccountPlanResult,
  type AccountReport,
  type Consumer,
  type Fingerprint,
  type RotationReport,
} from "../../shared/rotation";
import {
  ACTIVITY,
  ORCHESTRATOR,
  type DiscoverSecretsInput,
  type DiscoverSecretsOutput,
  type DiscoverSubscriptionInput,
  type DiscoverWorkspaceInput,
  type DiscoverSubscriptionOutput,
  type DiscoverWorkspaceOutput,
  type ListSubscriptionsOutput,
  type RotateAllInput,
  type Metered,
  type SnapshotAccountInput,
  type SnapshotAccountOutput,
  type UnlockAccountInput,
} from "../../shared/activities/contracts";
import { heldReason } from "./rotateStorageAccount";
import { assignLanes, type RotateLaneInput } from "./rotateLane";
import { ACTIVITY_RETRY, all, errorMessage, settle } from "./retry";

export interface RotationProgress {
  rotationId: string;
  phase: "discovering" | "planning" | "rotating" | "done";
  /** Every account's state, or only the running ones once there are more than MAX_LISTED. */
  accounts: Record<string, AccountReport["outcome"] | "queued" | "running" | "grace">;
  /** How many accounts are in each state. */
  counts: Record<string, number>;
  report?: RotationReport;
}

/** Durable Functions refuses a custom status over 16 KB; 150 names stay well below it. */
const MAX_LISTED = 150;

export function publishable(status: Omit<RotationProgress, "counts">): RotationProgress {
  const counts: Record<string, number> = {};
  for (const state of Object.values(status.accounts)) counts[state] = (counts[state] ?? 0) + 1;
  const entries = Object.entries(status.accounts);
  const accounts =
    entries.length <= MAX_LISTED
      ? { ...status.accounts }
      : Object.fromEntries(entries.filter(([, s]) => s === "running"));
  return { rotationId: status.rotationId, phase: status.phase, accounts, counts };
}

/**
 * The whole rotation: discover every consumer in every subscription (consumers of an account can live
 * anywhere), plan per storage account, then one rotateStorageAccount sub-orchestration per account,
 * `parallelism` at a time, each under a deterministic instance id so two rotations of one account
 * never run at once (I5).
 */
export const rotateAll: OrchestrationHandler = function* (context: OrchestrationContext) {
  const input = context.df.getInput<RotateAllInput>();
  const startedAt = context.df.currentUtcDateTime.toISOString();
  const rotationId = `${context.df.instanceId}@${startedAt}`;
  const status: Omit<RotationProgress, "counts"> = { rotationId, phase: "discovering", accounts: {} };
  context.df.setCustomStatus(publishable(status));
  let armCalls = 0;
  const record = { rotationId, instanceId: context.df.instanceId, trigger: input.trigger };
  yield* recordSafely(context, { ...record, phase: "started", dryRun: input.dryRun, scope: input.scope });

  const subs = (yield context.df.callActivityWithRetry(ACTIVITY.listSubscriptions, ACTIVITY_RETRY, {
    scope: input.scope,
  })) as ListSubscriptionsOutput;
  armCalls += subs.armCalls;
  const found = yield* all<DiscoverSubscriptionOutput>(
    context,
    subs.subscriptionIds.map((subscriptionId) =>
      context.df.callActivityWithRetry(ACTIVITY.discoverSubscription, ACTIVITY_RETRY, {
        subscriptionId,
        salt: rotationId,
        ...(input.scope.batchKeys === true ? { batchKeys: true } : {}),
        ...(input.scope.registryPasswords === true ? { registryPasswords: true } : {}),
      } satisfies DiscoverSubscriptionInput),
    ),
  );
  const workspaces = found.flatMap((f) => f.workspaces);
  // Key Vault is not ARM: its secrets are read while the workspaces' datastores are.
  const secretsTask = context.df.callActivityWithRetry(ACTIVITY.discoverSecrets, ACTIVITY_RETRY, {
    salt: rotationId,
    ...(input.scope.batchKeys === true ? { batchKeys: true } : {}),
  } satisfies DiscoverSecretsInput);
  const workspaceTasks = workspaces.map((workspace) =>
    context.df.callActivityWithRetry(ACTIVITY.discoverWorkspace, ACTIVITY_RETRY, {
      workspace,
      salt: rotationId,
      ...(input.scope.registryPasswords === true ? { registryPasswords: true } : {}),
    } satisfies DiscoverWorkspaceInput),
  );
  yield* settle(context, [secretsTask, ...workspaceTasks]);
  // Where consumers could not be listed: any account may have one there, so no account is rotated.
  const unseen: string[] = [];
  const seen = <T extends DiscoverSecretsOutput | DiscoverWorkspaceOutput>(task: Task, where: string) => {
    if (task.isCompleted && !task.isFaulted) return [task.result as T];
    unseen.push(
      `${where} could not be listed (${task.isFaulted ? errorMessage(task.result) : "did not finish"})`,
    );
    return [];
  };
  const secrets = seen<DiscoverSecretsOutput>(secretsTask, "the Key Vault secrets keyturn publishes to");
  const perWorkspace = workspaceTasks.flatMap((task, i) =>
    seen<DiscoverWorkspaceOutput>(task, `the datastores of workspace ${workspaces[i]!.name}`),
  );
  armCalls += sum(found) + sum(perWorkspace) + sum(secrets);
  const consumers: Consumer[] = [
    ...found.flatMap((f) => f.consumers),
    ...perWorkspace.flatMap((w) => w.consumers),
    ...secrets.flatMap((s) => s.consumers),
  ];

  status.phase = "planning";
  context.df.setCustomStatus(publishable(status));
  const graph = buildConsumerGraph(
    found.flatMap((f) => f.accounts),
    consumers,
    { inScope: (node) => isAccountInScope(input.scope, node) },
  );
  const unmatched = unmatchedScope(input.scope, {
    accounts: found.flatMap((f) => f.accounts),
    workspaces,
  });
  // Shared-key access disabled: Azure refuses both keys, so they are reported, never read.
  const keyless = graph.accounts.filter((node) => node.account.sharedKeyAccessDisabled);
  const withConsumers = graph.accounts.filter(
    (node) => node.consumers.length > 0 && !node.account.sharedKeyAccessDisabled,
  );
  // A rotation takes each account's lock with the keys its snapshot reads: plans are made from keys
  // no other rotation can change meanwhile. A plan (dry run) takes none.
  const lock = input.dryRun ? {} : { lock: { rotationId, holdSeconds: lockHoldSeconds(input.graceSeconds) } };
  const snapshotTasks = withConsumers.map((node) =>
    context.df.callActivityWithRetry(ACTIVITY.snapshotAccount, ACTIVITY_RETRY, {
      accountId: node.account.id,
      salt: rotationId,
      ...lock,
      ...observedAtSnapshot(node.consumers),
    } satisfies SnapshotAccountInput),
  );
  // One account whose keys cannot be read (a lock, a missing permission) fails alone.
  yield* settle(context, snapshotTasks);
  const now = context.df.currentUtcDateTime;
  const policy = {
    now,
    graceSeconds: input.graceSeconds,
    minKeyAgeDays: input.minKeyAgeDays,
    force: input.force,
  };
  const results: AccountPlanResult[] = keyless.map((node) => planAccount(node, policy));
  const reports: AccountReport[] = [];
  /** Accounts whose lock this rotation holds, and until when. */
  const locked = new Map<string, string | undefined>();
  withConsumers.forEach((node, i) => {
    const task = snapshotTasks[i]!;
    if (task.isFaulted || !task.isCompleted) {
      results.push({
        action: "fail",
        account: accountRef(node.account),
        reason: `its keys could not be read: ${errorMessage(task.result)}`,
        consumers: node.consumers.map(consumerRef),
      });
      return;
    }
    const snapshot = task.result as SnapshotAccountOutput;
    armCalls += snapshot.armCalls;
    if (snapshot.lock && !snapshot.lock.acquired) {
      const report = inProgressReport(accountRef(node.account), heldReason(snapshot.lock));
      reports.push(report);
      status.accounts[report.name] = report.outcome;
      return;
    }
    if (snapshot.lock && snapshot.lock.unlocked === undefined)
      locked.set(node.account.id, snapshot.lock.expiresAt);
    const planned: AccountNode = {
      account: snapshot.account,
      consumers: withHeld(node.consumers, snapshot.held),
    };
    results.push(planAccount(planned, policy));
  });

  const toRotate: Extract<AccountPlanResult, { action: "rotate" }>[] = [];
  for (const planned of results) {
    const result = unseen.length > 0 ? blind(planned, unseen) : planned;
    if (result.action === "rotate" && !input.dryRun) {
      const violations = planViolations(result.plan);
      if (violations.length > 0) {
        reports.push(
          accountReport({
            action: "fail",
            account: result.plan.account,
            reason: `unsafe plan: ${violations.join("; ")}`,
            consumers: result.plan.consumers,
          }),
        );
        continue;
      }
      toRotate.push(result);
      status.accounts[result.plan.account.name] = "queued";
    } else {
      const report = accountReport(result);
      reports.push(report);
      status.accounts[report.name] = report.outcome;
    }
  }

  // Locked for a rotation that is not happening (skipped, failed plan): let go at once.
  const rotating = new Set(toRotate.map((r) => r.plan.account.id));
  const unlocks = [...locked.keys()]
    .filter((id) => !rotating.has(id))
    .map((accountId) =>
      context.df.callActivity(ACTIVITY.unlockAccount, {
        accountId,
        rotationId,
        key: "key1",
      } satisfies UnlockAccountInput),
    );
  yield* settle(context, unlocks);
  for (const task of unlocks)
    if (task.isCompleted && !task.isFaulted) armCalls += (task.result as Metered).armCalls;

  status.phase = "rotating";
  context.df.setCustomStatus(publishable(status));
  // Starters validate it; the durable webhook does not, and 0 or NaN here would hang or drop accounts.
  const parallelism =
    Number.isInteger(input.parallelism) && input.parallelism >= 1
      ? Math.min(input.parallelism, MAX_PARALLELISM)
      : DEFAULT_PARALLELISM;
  // At most `parallelism` accounts do ARM work at once, one per lane; an account waiting out its grace
  // holds no lane, so every grace overlaps other accounts' work (DESIGN §10).
  const lanes = assignLanes(toRotate, parallelism);
  for (const r of toRotate) status.accounts[r.plan.account.name] = "running";
  context.df.setCustomStatus(publishable(status));
  const laneTasks = lanes.map((accounts, i) =>
    context.df.callSubOrchestrator(
      ORCHESTRATOR.rotateLane,
      {
        rotationId,
        accounts,
        ...(input.armTimeoutSeconds !== undefined ? { armTimeoutSeconds: input.armTimeoutSeconds } : {}),
        lockedUntil: Object.fromEntries(
          accounts.flatMap((r) => {
            const until = locked.get(r.plan.account.id);
            return until !== undefined ? [[r.plan.account.id, until]] : [];
          }),
        ),
      } satisfies RotateLaneInput,
      `${context.df.instanceId}:lane-${i}`,
    ),
  );
  yield* settle(context, laneTasks);
  lanes.forEach((accounts, i) => {
    const task = laneTasks[i]!;
    const laneReports =
      task.isCompleted && !task.isFaulted
        ? (task.result as AccountReport[])
        : accounts.map((r) =>
            accountReport(r, {
              outcome: "failed",
              reason: task.isFaulted ? errorMessage(task.result) : "did not finish",
              durationMs: 0,
              armCalls: 0,
            }),
          );
    for (const report of laneReports) {
      reports.push(report);
      status.accounts[report.name] = report.outcome;
    }
  });
  context.df.setCustomStatus(publishable(status));

  const report: RotationReport = {
    rotationId,
    dryRun: input.dryRun,
    startedAt,
    finishedAt: context.df.currentUtcDateTime.toISOString(),
    accounts: reports.sort((a, b) => a.name.localeCompare(b.name)),
    unattached: unattachedReports(graph.unattached),
    ...(unmatched.length > 0 ? { unmatchedScope: unmatched } : {}),
  };
  yield* recordSafely(context, { ...record, phase: "completed", startedBy: input.startedBy, report });
  status.phase = "done";
  context.df.setCustomStatus({ ...publishable(status), discoveryArmCalls: armCalls });
  return { ...report, discoveryArmCalls: armCalls };
};

/**
 * A rotation planned without seeing every consumer would leave one it missed on a dead key (I1): it
 * becomes a failure that names what could not be listed. Skips stay skips; nothing is written.
 */
function blind(result: AccountPlanResult, unseen: readonly string[]): AccountPlanResult {
  if (result.action !== "rotate") return result;
  return {
    action: "fail",
    account: result.plan.account,
    reason: `not rotated, nothing written: ${unseen.join("; ")}, and a consumer of this account missed there would be left on a dead key. Fix that access and run keyturn again.`,
    consumers: result.plan.consumers,
  };
}

function sum(outputs: { armCalls: number }[]): number {
  return outputs.reduce((n, o) => n + o.armCalls, 0);
}

/** Telemetry must never fail a rotation: one try, and a failure is only logged by the activity. */
function* recordSafely(
  context: OrchestrationContext,
  input: RecordRotationInput,
): Generator<Task, void, unknown> {
  try {
    yield context.df.callActivityWithRetry(ACTIVITY.recordRotation, ACTIVITY_RETRY, input);
  } catch {
    // recorded in the activity's own log
  }
}

/** The consumers whose held key only the account's snapshot can tell, for `snapshotAccount`. */
function observedAtSnapshot(consumers: Consumer[]): Pick<SnapshotAccountInput, "observe"> {
  const observe = consumers.filter((c) => CONSUMER_KINDS[c.kind].heldKnownAtSnapshot);
  return observe.length > 0 ? { observe } : {};
}

function withHeld(consumers: Consumer[], held: Record<string, Fingerprint> | undefined): Consumer[] {
  if (!held) return consumers;
  return consumers.map((c) => (held[c.id] !== undefined ? { ...c, heldFingerprint: held[c.id] } : c));
}
