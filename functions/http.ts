import type { HttpRequest, HttpResponseInit, InvocationContext, Timer } from "@azure/functions";
import type { DurableClient } from "durable-functions";
import { loadConfig, type KeyturnConfig } from "../shared/config";
import { scopeInstanceId, validateRotationRequest, type RotationScope } from "../shared/rotation";
import { ORCHESTRATOR, rotateAllInput } from "../shared/activities/contracts";
import { loadCloudProfile } from "../shared/azure";
import { activityDeps } from "./deps";
import { identifyCaller, loadApiAuthConfig } from "./auth";
import { ConfigurationError, scrubError } from "../shared/errors";

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
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

function isNotFound(e: unknown): boolean {
  return /\b404\b/.test(String((e as Error)?.message ?? e));
}

/** A rotation request is a few hundred bytes; 1000 scope entries of full ARM ids are about 200 KiB. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Every problem is named at once (I6), but a hostile request does not buy a huge answer. */
const MAX_REASONS = 50;
const MAX_REASON_CHARS = 400;

/** Keeps a reason's start (the field) and end (what to fix); drops the middle of an echoed giant value. */
function shorten(reason: string): string {
  if (reason.length <= MAX_REASON_CHARS) return reason;
  return `${reason.slice(0, 150)}… (${reason.length - 350} characters left out) …${reason.slice(-200)}`;
}

function problem(
  status: number,
  error: string,
  details: { reasons?: readonly string[] } & Record<string, unknown> = {},
): HttpResponseInit {
  const { reasons, ...rest } = details;
  if (!reasons) return { status, jsonBody: { error, ...rest } };
  const shown = reasons.slice(0, MAX_REASONS).map(shorten);
  if (reasons.length > MAX_REASONS)
    shown.push(
      `…and ${reasons.length - MAX_REASONS} more problems like these: fix the ones above and send again`,
    );
  return { status, jsonBody: { error, reasons: shown, ...rest } };
}

/**
 * keyturn's settings, and the cloud profile its activities will build from them: a bad setting answers
 * here, naming it, before anything starts (I6), instead of failing the rotation's first activity.
 */
function config(): KeyturnConfig | HttpResponseInit {
  const misconfigured = "keyturn is misconfigured; fix its app settings";
  try {
    const settings = loadConfig();
    loadCloudProfile(settings.connectionFile ? { connectionFile: settings.connectionFile } : {});
    return settings;
  } catch (e) {
    // One setting (`setting` names it) or every problem loadConfig found.
    if (e instanceof ConfigurationError)
      return problem(500, misconfigured, {
        reasons: e.reasons,
        ...(e.setting !== undefined ? { setting: e.setting } : {}),
      });
    throw e;
  }
}

/**
 * Who is calling: with `KEYTURN_API_AUDIENCE` set, the identity in an Entra ID bearer token that
 * functions/auth.ts validates (signature, issuer, audience, expiry); otherwise "function key". Never the
 * `x-ms-client-principal-*` headers: App Service Authentication is not enforced on Flex Consumption,
 * so nothing strips or vouches for them and any caller with a function key could write them.
 * Checked before anything else a route does, so a refused caller learns nothing about keyturn's settings.
 */
async function caller(
  request: HttpRequest,
  refused: string,
): Promise<{ startedBy: string } | HttpResponseInit> {
  const loaded = loadApiAuthConfig();
  if (!loaded.ok)
    return problem(500, "keyturn is misconfigured; fix its app settings", {
      reasons: loaded.problems,
      setting: loaded.setting,
    });
  const who = await identifyCaller(request.headers.get("authorization"), loaded.config);
  if (who.ok) return { startedBy: who.startedBy };
  if (who.status === 503)
    return problem(503, `the caller's token could not be checked; ${refused}`, { reasons: [who.reason] });
  return {
    ...problem(401, `the caller's Entra ID token was refused; ${refused}`, { reasons: [who.reason] }),
    headers: { "www-authenticate": 'Bearer error="invalid_token"' },
  };
}

/**
 * The query parameters a route takes, each at most once (`code` is the function key, read by the host).
 * An unknown or repeated parameter is refused rather than ignored: a typo such as `storageAccount` for
 * `storageAccounts` would otherwise widen or narrow what the call covers without anyone noticing.
 */
function queryProblems(request: HttpRequest, allowed: readonly string[], repeatable = false): string[] {
  const counts = new Map<string, number>();
  for (const [name] of request.query) counts.set(name, (counts.get(name) ?? 0) + 1);
  const problems: string[] = [];
  for (const [name, count] of counts) {
    if (name === "code") continue;
    if (!allowed.includes(name))
      problems.push(
        `unknown query parameter ${JSON.stringify(name)} (${allowed.length > 0 ? `expected ${allowed.join(", ")}` : "this route takes none"})`,
      );
    else if (count > 1 && !repeatable) problems.push(`${name}: given ${count} times; give it once`);
  }
  return problems;
}

/** POST /api/rotations: validate everything before starting anything (I6); one run per scope (I5). */
export async function startRotation(
  request: HttpRequest,
  client: DurableClient,
  context: InvocationContext,
): Promise<HttpResponseInit> {
  const who = await caller(request, "nothing was started");
  if (!("startedBy" in who)) return who;
  const settings = config();
  if (!("schedule" in settings)) return settings;
  const text = await request.text();
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_BODY_BYTES) {
    return problem(413, "the request body is too large; nothing was started", {
      reasons: [
        `body: is ${bytes} bytes; a rotation request is at most ${MAX_BODY_BYTES} bytes (1 MiB): name at most 1000 entries per scope field`,
      ],
    });
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
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
    // The validated token's identity, or "function key": never a header the caller could have written.
    startedBy: who.startedBy,
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
  return accepted(request, instanceId);
}

/**
 * 202 for an instance still running, pointing at keyturn's own status route. Never the durable
 * runtime's management URLs: they carry its system key (`code=`), which lets whoever holds it
 * terminate, purge or raise events on any instance, more than a function key allows.
 */
function accepted(request: HttpRequest, instanceId: string): HttpResponseInit {
  const statusUri = `/api/rotations/${instanceId}`;
  return {
    status: 202,
    headers: { location: new URL(statusUri, request.url).toString(), "retry-after": "10" },
    jsonBody: { id: instanceId, instanceId, statusUri },
  };
}

/**
 * What a Durable Functions instance id may be: at most 256 characters, none of `/ \\ # ?` or control
 * characters. The id goes into the durable runtime's URL unencoded (`instances/{id}`), so anything else
 * could address another runtime endpoint (`?`, `..%2F`) and is refused before the call.
 */
const INSTANCE_ID = /^[^/\\#?\p{Cc}]{1,256}$/u;

/** GET /api/rotations/{id}: the instance's status, per-account progress and, when done, the report. */
export async function getRotation(request: HttpRequest, client: DurableClient): Promise<HttpResponseInit> {
  const who = await caller(request, "the status was not read");
  if (!("startedBy" in who)) return who;
  const instanceId = request.params.id ?? "";
  const reasons = queryProblems(request, []);
  if (!INSTANCE_ID.test(instanceId) || instanceId.trim() === "") {
    reasons.unshift(
      `id: ${JSON.stringify(instanceId)} is not a rotation's instance id: use the instanceId that POST /api/rotations returned (at most 256 characters, none of / \\ # ? or control characters)`,
    );
  }
  if (reasons.length > 0) return problem(400, "invalid rotation status request", { reasons });
  let status: Awaited<ReturnType<DurableClient["getStatus"]>> | undefined;
  try {
    status = await client.getStatus(instanceId);
  } catch (e) {
    // Unknown is a 404 from the runtime; any other failure is the runtime's, not the caller's.
    if (!isNotFound(e)) throw e;
  }
  if (!status) return problem(404, `no rotation '${instanceId}': check the id from POST /api/rotations`);
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
}

const SCOPE_PARAMETERS = ["subscriptions", "resourceGroups", "workspaces", "storageAccounts"] as const;

/** GET /api/plan?storageAccounts=a,b&…: a dry run that waits for its plan. */
export async function getPlan(
  request: HttpRequest,
  client: DurableClient,
  context: InvocationContext,
): Promise<HttpResponseInit> {
  const who = await caller(request, "nothing was planned");
  if (!("startedBy" in who)) return who;
  const settings = config();
  if (!("schedule" in settings)) return settings;
  const scope: RotationScope = {};
  for (const key of SCOPE_PARAMETERS) {
    // Repeating a parameter adds to it, as commas do; an empty value is an empty entry, refused below.
    const values = request.query.getAll(key);
    if (values.length > 0) scope[key] = values.flatMap((v) => v.split(","));
  }
  const unknown = queryProblems(request, SCOPE_PARAMETERS, true);
  const validation = validateRotationRequest(
    { scope, dryRun: true },
    { graceSeconds: settings.graceSeconds },
  );
  const reasons = [...unknown, ...(validation.ok ? [] : validation.reasons)];
  if (!validation.ok || reasons.length > 0) return problem(400, "invalid plan request", { reasons });
  const instanceId = `${scopeInstanceId(validation.value.scope)}-plan-${context.invocationId}`;
  const input = rotateAllInput(validation.value, settings, { trigger: "http", startedBy: "plan" });
  await client.startNew(ORCHESTRATOR.rotateAll, { instanceId, input });
  const response = await client.waitForCompletionOrCreateCheckStatusResponse(request, instanceId, {
    timeoutInMilliseconds: 60_000,
  });
  return response.status === 202 ? accepted(request, instanceId) : response;
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
  const who = await caller(request, "the audit trail was not read");
  if (!("startedBy" in who)) return who;
  const reasons = queryProblems(request, ["limit", "storageAccount"]);
  const limitText = request.query.get("limit") ?? "50";
  const limit = /^\d{1,4}$/.test(limitText) ? Number(limitText) : Number.NaN;
  if (!(limit >= 1 && limit <= 1000))
    reasons.push(`limit: ${JSON.stringify(limitText)} must be a whole number from 1 to 1000`);
  const storageAccount = request.query.get("storageAccount") ?? undefined;
  if (storageAccount !== undefined && !/^[a-z0-9]{3,24}$/i.test(storageAccount)) {
    reasons.push(
      `storageAccount: ${JSON.stringify(storageAccount)} is not a storage account name (3-24 letters and digits)`,
    );
  }
  if (reasons.length > 0) return problem(400, "invalid query", { reasons });
  try {
    const records = await activityDeps().audit.list({ limit, ...(storageAccount ? { storageAccount } : {}) });
    return { status: 200, jsonBody: { rotations: records } };
  } catch (e) {
    const error = scrubError(e);
    context.error(`listRotations failed: ${error.message}`);
    return problem(502, "the audit trail could not be read", { reason: error.message });
  }
}
