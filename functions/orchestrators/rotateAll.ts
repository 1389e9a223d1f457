import type { OrchestrationContext, OrchestrationHandler, Task } from "durable-functions";
import type { RecordRotationInput } from "../../shared/activities/record";
import {
  accountRef,
  consumerRef,
  accountReport,
  buildConsumerGraph,
  DEFAULT_PARALLELISM,
  MAX_PARALLELISM,
  isAccountInScope,
  planAccount,
  planViolations,
  unattachedReports,
  unmatchedScope,
  type AccountNode,
  type AccountPlanResult,
  type AccountReport,
  type Consumer,
  type RotationReport,
} from "../../shared/rotation";
import {
  ACTIVITY,
  ORCHESTRATOR,
  type DiscoverSecretsOutput,
  type DiscoverSubscriptionOutput,
  type DiscoverWorkspaceOutput,
  type ListSubscriptionsOutput,
  type RotateAllInput,
  type SnapshotAccountOutput,
} from "../../shared/activities/contracts";
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
      }),
    ),
  );
  const workspaces = found.flatMap((f) => f.workspaces);
  // Key Vault is not ARM: its secrets are read while the workspaces' datastores are.
  const [secrets, ...perWorkspace] = yield* all<DiscoverSecretsOutput | DiscoverWorkspaceOutput>(context, [
    context.df.callActivityWithRetry(ACTIVITY.discoverSecrets, ACTIVITY_RETRY, { salt: rotationId }),
    ...workspaces.map((workspace) =>
      context.df.callActivityWithRetry(ACTIVITY.discoverWorkspace, ACTIVITY_RETRY, {
        workspace,
        salt: rotationId,
      }),
    ),
  ]);
  if (!secrets) throw new Error("discoverSecrets returned nothing");
  armCalls += sum(found) + sum(perWorkspace) + secrets.armCalls;
  const consumers: Consumer[] = [
    ...found.flatMap((f) => f.consumers),
    ...perWorkspace.flatMap((w) => w.consumers),
    ...secrets.consumers,
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
  const snapshotTasks = withConsumers.map((node) =>
    context.df.callActivityWithRetry(ACTIVITY.snapshotAccount, ACTIVITY_RETRY, {
      accountId: node.account.id,
      salt: rotationId,
    }),
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
  results.push(
    ...withConsumers.map((node, i): AccountPlanResult => {
      const task = snapshotTasks[i]!;
      if (task.isFaulted || !task.isCompleted) {
        return {
          action: "fail",
          account: accountRef(node.account),
          reason: `its keys could not be read: ${errorMessage(task.result)}`,
          consumers: node.consumers.map(consumerRef),
        };
      }
      const snapshot = task.result as SnapshotAccountOutput;
      armCalls += snapshot.armCalls;
      const planned: AccountNode = { account: snapshot.account, consumers: node.consumers };
      return planAccount(planned, policy);
    }),
  );

  const reports: AccountReport[] = [];
  const toRotate: Extract<AccountPlanResult, { action: "rotate" }>[] = [];
  for (const result of results) {
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
      { rotationId, accounts } satisfies RotateLaneInput,
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
