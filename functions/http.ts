import type { HttpRequest, HttpResponseInit, InvocationContext, Timer } from "@azure/functions";
import type { DurableClient } from "durable-functions";
import { ConfigError, loadConfig, type KeyturnConfig } from "../shared/config";
import { scopeInstanceId, validateRotationRequest, type RotationScope } from "../shared/rotation";
import { ORCHESTRATOR, rotateAllInput } from "../shared/activities/contracts";
import { activityDeps } from "./deps";
import { scrubError } from "../shared/errors";

const ACTIVE = new Set(["Running", "Pending", "ContinuedAsNew", "Suspended"]);

/**
 * `getStatus` throws on an unknown instance in durable-functions v3 (a 404): unknown means not
 * running. Any other failure is not evidence of anything, so it propagates and no rotation starts (I5).
 */
export async function runningStatus(client: DurableClient, instanceId: string): Promise<string | undefined> {
  try {
    const status = await client.getStatus(instanceId);
    const runtime = String(status?.runtimeStatus ?? "");
    return ACTIVE.has(runtime) ? runtime : undefined;
  } catch (e) {
    if (/\b404\b/.test(String((e as Error)?.message ?? e))) return undefined;
    throw e;
  }
}

function problem(status: number, error: string, details: Record<string, unknown> = {}): HttpResponseInit {
  return { status, jsonBody: { error, ...details } };
}

function config(): KeyturnConfig | HttpResponseInit {
  try {
    return loadConfig();
  } catch (e) {
    if (e instanceof ConfigError)
      return problem(500, "keyturn is misconfigured; fix its app settings", { reasons: e.reasons });
    throw e;
  }
}

/** POST /api/rotations: validate everything before starting anything (I6); one run per scope (I5). */
export async function startRotation(
  request: HttpRequest,
  client: DurableClient,
  context: InvocationContext,
): Promise<HttpResponseInit> {
  const settings = config();
  if (!("schedule" in settings)) return settings;
  let body: unknown;
  try {
    body = JSON.parse(await request.text());
  } catch {
    return problem(400, "the request body must be JSON", {
      reasons: [
        'body: is not valid JSON; send e.g. {"scope": {"storageAccounts": ["name"]}, "dryRun": false, "graceMinutes": 60}',
      ],
    });
  }
  const validation = validateRotationRequest(body, { graceSeconds: settings.graceSeconds });
  if (!validation.ok)
    return problem(400, "invalid rotation request; nothing was started", { reasons: validation.reasons });
  const valid = validation.value;
  const instanceId = valid.dryRun
    ? `${scopeInstanceId(valid.scope)}-plan-${context.invocationId}`
    : scopeInstanceId(valid.scope);
  const busy = (runtimeStatus: string) =>
    problem(409, "a rotation for this scope is already running; wait for it or follow its status", {
      instanceId,
      runtimeStatus,
      statusUri: `/api/rotations/${instanceId}`,
    });
  const running = await runningStatus(client, instanceId);
  if (running) return busy(running);
  const input = rotateAllInput(valid, settings, {
    trigger: "http",
    // App Service Authentication sets this header and strips any the caller sends; with function keys
    // alone anyone could, so it is recorded only when authentication is on.
    startedBy:
      (process.env.WEBSITE_AUTH_ENABLED === "True"
        ? request.headers.get("x-ms-client-principal-name")
        : null) ?? "function key",
  });
  try {
    await client.startNew(ORCHESTRATOR.rotateAll, { instanceId, input });
  } catch (e) {
    // Two identical starts can both pass the check above; the runtime refuses the second. Whether it
    // lost that race is asked of the runtime, not read from the error's wording.
    const now = await runningStatus(client, instanceId);
    if (now) return busy(now);
    throw e;
  }
  context.log(`keyturn: started ${instanceId}${valid.dryRun ? " (dry run)" : ""}`);
  const response = client.createCheckStatusResponse(request, instanceId);
  return {
    status: 202,
    headers: response.headers,
    jsonBody: { instanceId, statusUri: `/api/rotations/${instanceId}` },
  };
}

/** GET /api/rotations/{id}: the instance's status, per-account progress and, when done, the report. */
export async function getRotation(request: HttpRequest, client: DurableClient): Promise<HttpResponseInit> {
  const instanceId = request.params.id ?? "";
  try {
    const status = await client.getStatus(instanceId);
    if (!status) return problem(404, `no rotation '${instanceId}'`);
    return {
      status: 200,
      jsonBody: {
        instanceId: status.instanceId,
        name: status.name,
        runtimeStatus: status.runtimeStatus,
        createdTime: status.createdTime,
        lastUpdatedTime: status.lastUpdatedTime,
        customStatus: status.customStatus,
        output: status.output,
      },
    };
  } catch {
    return problem(404, `no rotation '${instanceId}': check the id from POST /api/rotations`);
  }
}

/** GET /api/plan?storageAccounts=a,b&…: a dry run that waits for its plan. */
export async function getPlan(
  request: HttpRequest,
  client: DurableClient,
  context: InvocationContext,
): Promise<HttpResponseInit> {
  const settings = config();
  if (!("schedule" in settings)) return settings;
  const scope: RotationScope = {};
  for (const key of ["subscriptions", "resourceGroups", "workspaces", "storageAccounts"] as const) {
    const value = request.query.get(key);
    if (value) scope[key] = value.split(",");
  }
  const validation = validateRotationRequest(
    { scope, dryRun: true },
    { graceSeconds: settings.graceSeconds },
  );
  if (!validation.ok) return problem(400, "invalid plan request", { reasons: validation.reasons });
  const instanceId = `${scopeInstanceId(validation.value.scope)}-plan-${context.invocationId}`;
  const input = rotateAllInput(validation.value, settings, { trigger: "http", startedBy: "plan" });
  await client.startNew(ORCHESTRATOR.rotateAll, { instanceId, input });
  const response = await client.waitForCompletionOrCreateCheckStatusResponse(request, instanceId, {
    timeoutInMilliseconds: 60_000,
  });
  return response;
}

/** The monthly rotation: the configured subscriptions (or all the identity sees); skipped while one runs. */
export async function monthlyRotation(
  _timer: Timer,
  client: DurableClient,
  context: InvocationContext,
): Promise<void> {
  const settings = loadConfig();
  const scope: RotationScope =
    settings.subscriptions.length > 0 ? { subscriptions: settings.subscriptions } : {};
  const instanceId = scopeInstanceId(scope);
  if (await runningStatus(client, instanceId)) {
    context.warn(
      `keyturn: the previous scheduled rotation ${instanceId} is still running; skipping this one`,
    );
    return;
  }
  const input = rotateAllInput(
    { scope, dryRun: false, force: false, graceSeconds: settings.graceSeconds },
    settings,
    {
      trigger: "timer",
      startedBy: "schedule",
    },
  );
  await client.startNew(ORCHESTRATOR.rotateAll, { instanceId, input });
  context.log(`keyturn: scheduled rotation ${instanceId} started`);
}

/** GET /api/rotations?storageAccount=name&limit=50: the audit trail, newest first. */
export async function listRotations(
  request: HttpRequest,
  context: InvocationContext,
): Promise<HttpResponseInit> {
  const limitText = request.query.get("limit") ?? "50";
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    return problem(400, "invalid query", {
      reasons: [`limit: "${limitText}" must be a whole number from 1 to 1000`],
    });
  }
  const storageAccount = request.query.get("storageAccount") ?? undefined;
  try {
    const records = await activityDeps().audit.list({ limit, ...(storageAccount ? { storageAccount } : {}) });
    return { status: 200, jsonBody: { rotations: records } };
  } catch (e) {
    const error = scrubError(e);
    context.error(`listRotations failed: ${error.message}`);
    return problem(502, "the audit trail could not be read", { reason: error.message });
  }
}
