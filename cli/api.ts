import { setTimeout as sleep } from "node:timers/promises";
import { DefaultAzureCredential, type AccessToken, type TokenCredential } from "@azure/identity";
import { isTerminal, type InstanceStatus } from "../local";
import { formatDuration, type RotationScope } from "../shared/rotation";
import { redact } from "../shared/redact";
import { CliError, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, listReasons, usageError } from "./errors";
import { onSignal, type Io } from "./io";
import { progressLines } from "./progress";
import { inOptionTerms, parseGrace, scopeFromOptions, withOptIns } from "./request";
import {
  describeScope,
  planFormat,
  printPlan,
  printReports,
  type PlanOptions,
  type RotateOptions,
  type RotationOutput,
} from "./rotation";
import { showReportedInstance, type StatusOptions } from "./status";
import { showHistory } from "./history";
import type { AuditRecord } from "../shared/audit";

/**
 * `keyturn plan|rotate|status --api URL`: the same commands against a deployed keyturn's HTTP API
 * (functions/http.ts) instead of the local host. Nothing here talks to Azure Resource Manager: the
 * deployed app does the work with its own identity; the CLI only starts, follows and prints.
 *
 * Credentials, from the environment (never from the command line, where `ps` and shell history see them):
 * - KEYTURN_API_KEY: a function key, sent as `x-functions-key` (every route but health needs one);
 * - KEYTURN_API_SCOPE: the token scope of the app registration in front of the API (App Service
 *   Authentication), e.g. `api://<appId>/.default`; a token for it from DefaultAzureCredential is sent as
 *   `Authorization: Bearer`. With both set both are sent, which is what an app behind App Service
 *   Authentication with function keys needs (docs/deploy.md).
 */

export const API_KEY_SETTING = "KEYTURN_API_KEY";
export const API_SCOPE_SETTING = "KEYTURN_API_SCOPE";

/** One request's deadline. */
const REQUEST_TIMEOUT_MS = 30_000;
/** GET /api/plan waits up to 60 s for the dry run before it answers with the status links. */
const PLAN_TIMEOUT_MS = 90_000;
/** Between two status reads while following a rotation (KEYTURN_API_POLL_MS overrides, for tests). */
const POLL_MS = 2_000;
/** Status reads in a row that may fail (network, 429, 5xx) before following gives up. */
const MAX_POLL_FAILURES = 5;
/** A token is renewed this long before it expires. */
const TOKEN_MARGIN_MS = 120_000;

/** The `--api` option as commander hands it to a command's action. */
export interface Api {
  api?: string;
}

export interface ApiOptions {
  /** The app's URL, e.g. https://<app>.azurewebsites.net (a trailing /api is accepted). */
  api: string;
}

/** What GET /api/rotations/{id} answers (functions/http.ts `getRotation`). */
interface ReportedStatus {
  instanceId: string;
  name: string;
  runtimeStatus: InstanceStatus["runtimeStatus"];
  createdTime: string;
  lastUpdatedTime: string;
  customStatus?: unknown;
  output?: unknown;
}

interface Answer {
  status: number;
  body: unknown;
  /** Method and URL as they may be printed: no query string. */
  what: string;
}

/** A failure worth another try while following: the rotation runs on whatever the network does. */
class TransientError extends CliError {}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * The API's base URL: http(s), no credentials, query or fragment. Plain http only to this machine: a
 * function key or a token sent in clear over a network is as good as published.
 */
export function parseApiUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usageError(
      `--api "${text}" is not a URL: use the app's address, e.g. https://<app>.azurewebsites.net`,
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw usageError(`--api "${text}": use an https:// URL`);
  }
  if (url.protocol === "http:" && !isLoopback(url.hostname)) {
    throw usageError(
      `--api "${text}": plain http would send the function key or token in clear; use https:// (http only for this machine, e.g. \`keyturn serve\`)`,
    );
  }
  if (url.username || url.password || url.search || url.hash) {
    throw usageError(
      `--api: give the app's address only, without user, query or fragment (credentials come from ${API_KEY_SETTING} or ${API_SCOPE_SETTING})`,
    );
  }
  // The routes are joined below; the app URL with or without the route prefix both work.
  url.pathname = url.pathname.replace(/\/+$/, "").replace(/\/api$/i, "");
  return url;
}

/** A client of one deployed keyturn's HTTP API. */
export class ApiClient {
  readonly base: URL;
  readonly #key: string | undefined;
  readonly #scope: string | undefined;
  readonly #credential: () => TokenCredential;
  #token: AccessToken | undefined;
  #credentialInstance: TokenCredential | undefined;

  constructor(
    api: string,
    env: NodeJS.ProcessEnv = process.env,
    credential: () => TokenCredential = () => defaultCredential(env),
  ) {
    this.base = parseApiUrl(api);
    this.#key = env[API_KEY_SETTING]?.trim() || undefined;
    this.#scope = env[API_SCOPE_SETTING]?.trim() || undefined;
    this.#credential = credential;
    if (!this.#key && !this.#scope) {
      throw new CliError(
        `--api needs credentials for ${this.address}: set ${API_KEY_SETTING} to a function key ` +
          `(\`az functionapp keys list\`), or ${API_SCOPE_SETTING} to the API's token scope (e.g. api://<appId>/.default) ` +
          `for an Entra token from DefaultAzureCredential (az login, a managed identity, AZURE_CLIENT_ID…); ` +
          `behind App Service Authentication set both (docs/deploy.md)`,
        EXIT_USAGE,
      );
    }
  }

  /** The base URL as it may be printed. */
  get address(): string {
    return `${this.base.origin}${this.#prefix}`;
  }

  /** `METHOD path` against the API; the query names scope entries only, never a credential. */
  async request(
    method: string,
    path: string,
    options: { query?: URLSearchParams; body?: unknown; timeoutMs?: number } = {},
  ): Promise<Answer> {
    const url = new URL(`${this.#prefix}/api/${path}`, this.base.origin);
    if (options.query) url.search = options.query.toString();
    const what = `${method} ${url.origin}${url.pathname}`;
    const headers: Record<string, string> = { accept: "application/json", ...(await this.#authHeaders()) };
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        // A redirect is App Service Authentication sending a browser to sign in, or another host: either
        // way the credentials are not for it.
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      const error = e as Error & { cause?: { code?: string; message?: string } };
      const timedOut = error.name === "TimeoutError" || error.name === "AbortError";
      const why = timedOut
        ? `no answer within ${formatDuration(timeoutMs / 1000)}`
        : (error.cause?.code ?? error.cause?.message ?? error.message);
      throw new TransientError(this.#safe(`${what}: ${why} (is ${this.address} keyturn's API, and up?)`));
    }
    const text = await response.text();
    let body: unknown = text;
    try {
      body = text === "" ? undefined : JSON.parse(text);
    } catch {
      // Not JSON (a proxy's or the platform's error page): kept as text for the message.
    }
    const answer = { status: response.status, body, what };
    if (response.status === 401 || response.status === 403) throw this.#refused(answer);
    if (response.status >= 300 && response.status < 400) {
      throw new CliError(
        this.#safe(
          `${what} answered ${response.status}, a redirect to ${response.headers.get("location")?.split("?")[0] ?? "elsewhere"}: ` +
            `App Service Authentication redirects requests without a token; set ${API_SCOPE_SETTING} so keyturn sends one`,
        ),
      );
    }
    return answer;
  }

  /** An answer the caller did not expect, as an error naming the URL, the status and the API's reasons. */
  unexpected(answer: Answer): CliError {
    const raw = answer.body;
    const body =
      typeof raw === "object" && raw !== null
        ? (raw as { error?: unknown; reasons?: unknown; message?: unknown })
        : undefined;
    const named = body?.error ?? body?.message;
    const error = body
      ? typeof named === "string"
        ? named
        : JSON.stringify(named ?? body).slice(0, 300)
      : typeof raw === "string" && raw.trim() !== ""
        ? raw.trim().slice(0, 300)
        : "no details";
    // The API's reasons name its body's fields; the person at the CLI typed options.
    const reasons = Array.isArray(body?.reasons) ? body.reasons.map(String).map(inOptionTerms) : [];
    const line = `${answer.what} answered ${answer.status}: ${error}`;
    const code = answer.status === 400 || answer.status === 413 ? EXIT_USAGE : EXIT_FAILURE;
    const message = reasons.length > 0 ? listReasons(line, reasons) : line;
    return answer.status === 429 || answer.status >= 500
      ? new TransientError(this.#safe(message), code)
      : new CliError(this.#safe(message), code);
  }

  /** GET /api/rotations/{id}; undefined when the API knows no such instance. */
  async rotation(id: string): Promise<InstanceStatus | undefined> {
    const answer = await this.request("GET", `rotations/${encodeURIComponent(id)}`);
    if (answer.status === 404) return undefined;
    if (answer.status !== 200 || !isReportedStatus(answer.body)) throw this.unexpected(answer);
    return asInstanceStatus(answer.body);
  }

  /** The base URL's path, "" for the app's root. */
  get #prefix(): string {
    return this.base.pathname.replace(/\/+$/, "");
  }

  #safe(text: string): string {
    return redact(text, [this.#key, this.#token?.token]);
  }

  #refused(answer: Answer): CliError {
    const sent = [
      ...(this.#key ? [`the function key in ${API_KEY_SETTING}`] : []),
      ...(this.#scope ? [`an Entra token for ${this.#scope} (${API_SCOPE_SETTING})`] : []),
    ].join(" and ");
    const hint = !this.#key
      ? `; the API's routes need a function key too: set ${API_KEY_SETTING}`
      : !this.#scope && answer.status === 401
        ? `; if App Service Authentication is on, also set ${API_SCOPE_SETTING}`
        : answer.status === 403
          ? "; a 403 from App Service Authentication means the identity is not assigned to the API's enterprise application"
          : "";
    return new CliError(
      this.#safe(
        `${answer.what} answered ${answer.status} ${answer.status === 401 ? "Unauthorized" : "Forbidden"}: ` +
          `the API refused ${sent}${hint} (docs/deploy.md, "Securing the HTTP API")`,
      ),
    );
  }

  async #authHeaders(): Promise<Record<string, string>> {
    const headers: Record<string, string> = {};
    if (this.#key) headers["x-functions-key"] = this.#key;
    if (this.#scope) headers.authorization = `Bearer ${await this.#bearer(this.#scope)}`;
    return headers;
  }

  async #bearer(scope: string): Promise<string> {
    if (this.#token && this.#token.expiresOnTimestamp - TOKEN_MARGIN_MS > Date.now())
      return this.#token.token;
    let token: AccessToken | null;
    try {
      this.#credentialInstance ??= this.#credential();
      token = await this.#credentialInstance.getToken(scope);
    } catch (e) {
      const reason = String((e as Error)?.message ?? e)
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "")
        .slice(0, 3)
        .join(" ");
      throw new CliError(
        this.#safe(
          `no Entra token for ${scope} (${API_SCOPE_SETTING}) from DefaultAzureCredential: ${reason}. ` +
            `Sign in (az login) or run as an identity that may call the API, or set ${API_KEY_SETTING} to a function key`,
        ),
      );
    }
    if (!token) {
      throw new CliError(`no Entra token for ${scope} (${API_SCOPE_SETTING}) from DefaultAzureCredential`);
    }
    this.#token = token;
    return token.token;
  }
}

/**
 * DefaultAzureCredential, signing in where KEYTURN_AUTHORITY_HOST or AZURE_AUTHORITY_HOST says. A sign-in
 * endpoint named explicitly is taken as it is: instance discovery would only ask Azure's public cloud
 * about it (MSAL knows the national clouds without asking; Azure Stack Hub and the emulator it does not).
 */
function defaultCredential(env: NodeJS.ProcessEnv): TokenCredential {
  const authorityHost = env.KEYTURN_AUTHORITY_HOST?.trim() || env.AZURE_AUTHORITY_HOST?.trim();
  return new DefaultAzureCredential(authorityHost ? { authorityHost, disableInstanceDiscovery: true } : {});
}

function isReportedStatus(body: unknown): body is ReportedStatus {
  return (
    typeof body === "object" &&
    body !== null &&
    typeof (body as ReportedStatus).instanceId === "string" &&
    typeof (body as ReportedStatus).runtimeStatus === "string"
  );
}

function asInstanceStatus(body: ReportedStatus): InstanceStatus {
  return {
    instanceId: body.instanceId,
    name: body.name,
    runtimeStatus: body.runtimeStatus,
    // The API does not serve the input (it may hold more than the caller asked about).
    input: undefined,
    output: body.output ?? null,
    customStatus: body.customStatus ?? null,
    createdTime: body.createdTime,
    lastUpdatedTime: body.lastUpdatedTime,
  };
}

/** A failed instance's output is its failure message (Durable Functions), first line. */
function failureOf(status: InstanceStatus): string {
  const text = typeof status.output === "string" ? status.output : status.runtimeStatus;
  return text.split("\n")[0]!.trim();
}

function refuseLocalOptions(options: { connectionFile?: string; stateDir?: string }): void {
  const local = [
    ...(options.connectionFile !== undefined ? ["--connection-file"] : []),
    ...(options.stateDir !== undefined ? ["--state-dir"] : []),
  ];
  if (local.length > 0) {
    throw usageError(
      `${local.join(" and ")} ${local.length === 1 ? "is" : "are"} for local runs; with --api the deployed app uses its own settings and state: leave ${local.length === 1 ? "it" : "them"} out`,
    );
  }
}

/** The API rotates only what it is told: it has no "every subscription" (the monthly timer does that). */
function requiredScope(options: Parameters<typeof scopeFromOptions>[0], command: string): RotationScope {
  const scope = scopeFromOptions(options);
  if (!scope) {
    throw usageError(
      `${command} --api needs a scope: --storage-account, --workspace, --resource-group or --subscription (the API rotates only a named scope)`,
    );
  }
  return withOptIns(scope, options);
}

/** POST /api/rotations: the body the API validates (shared/rotation/request.ts). */
async function startRotation(
  client: ApiClient,
  request: { scope: RotationScope; dryRun: boolean; graceSeconds?: number; force?: boolean },
): Promise<string> {
  const body = {
    scope: request.scope,
    dryRun: request.dryRun,
    ...(request.graceSeconds !== undefined ? { graceMinutes: request.graceSeconds / 60 } : {}),
    ...(request.force ? { force: true } : {}),
  };
  const answer = await client.request("POST", "rotations", { body });
  const reply = answer.body as { instanceId?: unknown; runtimeStatus?: unknown } | undefined;
  if (answer.status === 409 && typeof reply?.instanceId === "string") {
    throw new CliError(
      `a rotation for this scope is already running on ${client.address} (id ${reply.instanceId}, ${String(reply.runtimeStatus)}): ` +
        `follow it with \`keyturn status --api ${client.address} ${reply.instanceId}\``,
    );
  }
  if (answer.status === 400 || answer.status === 413) {
    throw client.unexpected(answer);
  }
  if (answer.status !== 202 || typeof reply?.instanceId !== "string") throw client.unexpected(answer);
  return reply.instanceId;
}

function pollMs(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.KEYTURN_API_POLL_MS);
  return Number.isFinite(n) && n >= 50 ? n : POLL_MS;
}

/**
 * Reads the instance's status until it ends, printing each change of its progress on stderr (the
 * lines local runs print). Ctrl+C stops following, not the rotation: it goes on in the app.
 */
async function follow(client: ApiClient, id: string, io: Io, progress: boolean): Promise<InstanceStatus> {
  const seen = new Map<string, string>();
  const signal = onSignal();
  const interval = pollMs();
  let failures = 0;
  try {
    for (;;) {
      let status: InstanceStatus | undefined;
      try {
        status = await client.rotation(id);
        failures = 0;
        if (!status) throw new CliError(`${client.address} knows no rotation '${id}'`);
      } catch (e) {
        if (!(e instanceof TransientError) || ++failures >= MAX_POLL_FAILURES) {
          if (e instanceof TransientError) {
            throw new CliError(
              `${e.message}; the rotation ${id} may still be running: \`keyturn status --api ${client.address} ${id}\``,
            );
          }
          throw e;
        }
        io.err(`keyturn: ${e.message}; trying again\n`);
      }
      if (status) {
        if (progress) {
          for (const line of progressLines(status, [], id)) {
            if (seen.get(line.key) === line.text) continue;
            seen.set(line.key, line.text);
            io.err(`${line.text.trim()}\n`);
          }
        }
        if (isTerminal(status.runtimeStatus)) return status;
      }
      const wait = new AbortController();
      const outcome = await Promise.race([
        sleep(interval * (failures + 1), undefined, { signal: wait.signal }).catch(() => undefined),
        signal.signal,
      ]);
      wait.abort();
      if (typeof outcome === "string") {
        throw new CliError(
          `interrupted (${outcome}); the rotation ${id} goes on in the app: \`keyturn status --api ${client.address} ${id}\` shows it`,
          EXIT_INTERRUPTED,
        );
      }
    }
  } finally {
    signal.dispose();
  }
}

function reportOf(status: InstanceStatus): RotationOutput {
  if (status.runtimeStatus !== "Completed") {
    throw new CliError(
      `rotation ${status.instanceId} ${status.runtimeStatus.toLowerCase()}: ${failureOf(status)}`,
    );
  }
  return status.output as RotationOutput;
}

/**
 * `keyturn plan --api URL`: GET /api/plan, which waits up to a minute for the dry run; a longer one
 * answers 202 with the instance's id, followed then like a rotation. --grace and --force are not
 * parameters of GET /api/plan, so with them the dry run is started with POST /api/rotations.
 */
export async function apiPlan(io: Io, options: PlanOptions & ApiOptions): Promise<number> {
  const format = planFormat(options);
  const graceSeconds = parseGrace(options.grace);
  refuseLocalOptions(options);
  const scope = requiredScope(options, "plan");
  const client = new ApiClient(options.api);
  if (graceSeconds !== undefined || options.force) {
    const id = await startRotation(client, {
      scope,
      dryRun: true,
      ...(graceSeconds !== undefined ? { graceSeconds } : {}),
      ...(options.force ? { force: true } : {}),
    });
    return printPlan(io, reportOf(await follow(client, id, io, io.errIsTTY)), format);
  }
  const query = new URLSearchParams();
  for (const [key, values] of Object.entries(scope) as [keyof RotationScope, string[]][]) {
    query.set(key, values.join(","));
  }
  const answer = await client.request("GET", "plan", { query, timeoutMs: PLAN_TIMEOUT_MS });
  const body = answer.body as { accounts?: unknown; id?: unknown } | undefined;
  // 200 with the report; 200 (terminated) or 500 (failed) with the instance's status; 202 with its links.
  if (answer.status === 200 && Array.isArray(body?.accounts)) {
    return printPlan(io, answer.body as RotationOutput, format);
  }
  if ((answer.status === 200 || answer.status === 500) && isReportedStatus(answer.body)) {
    return printPlan(io, reportOf(asInstanceStatus(answer.body)), format);
  }
  if (answer.status === 202 && typeof body?.id === "string") {
    // The links carry the durable extension's system key; keyturn's own route needs only the caller's.
    return printPlan(io, reportOf(await follow(client, body.id, io, io.errIsTTY)), format);
  }
  throw client.unexpected(answer);
}

/** `keyturn rotate --api URL`: POST /api/rotations, then follows the rotation to its report. */
export async function apiRotate(io: Io, options: RotateOptions & ApiOptions): Promise<number> {
  const graceSeconds = parseGrace(options.grace);
  refuseLocalOptions(options);
  const scope = requiredScope(options, "rotate");
  const client = new ApiClient(options.api);
  const id = await startRotation(client, {
    scope,
    dryRun: false,
    ...(graceSeconds !== undefined ? { graceSeconds } : {}),
    ...(options.force ? { force: true } : {}),
  });
  const grace =
    graceSeconds === undefined ? "the app's default grace" : `grace ${formatDuration(graceSeconds)}`;
  io.err(
    `keyturn: rotating ${describeScope(scope)} through ${client.address} (${grace}${options.force ? ", forced" : ""}); id ${id}\n`,
  );
  const status = await follow(client, id, io, true);
  return printReports(io, failureOf, [status], options.json === true);
}

/** `keyturn status --api URL --history`: the deployment's audit trail (GET /api/rotations), as a local one prints. */
async function apiHistory(
  io: Io,
  client: ApiClient,
  options: { json?: boolean; storageAccount?: string },
): Promise<number> {
  const query = new URLSearchParams({ limit: "50" });
  if (options.storageAccount) query.set("storageAccount", options.storageAccount);
  const answer = await client.request("GET", "rotations", { query });
  const rotations = (answer.body as { rotations?: unknown } | undefined)?.rotations;
  if (answer.status !== 200 || !Array.isArray(rotations)) throw client.unexpected(answer);
  return showHistory(io, rotations as AuditRecord[], options, `${client.address}, GET /api/rotations`);
}

/** `keyturn status --api URL <id>`: GET /api/rotations/{id}, shown as `keyturn status <id>` shows it. */
export async function apiStatus(
  io: Io,
  id: string | undefined,
  options: StatusOptions & ApiOptions & { storageAccount?: string },
): Promise<number> {
  refuseLocalOptions(options);
  if (options.history) {
    if (id !== undefined)
      throw usageError(
        "--history with an id shows a durable history, which the API does not serve: leave out --api",
      );
    return apiHistory(io, new ApiClient(options.api), options);
  }
  // `--html` (when the status command has it) renders the durable history, which the API does not serve.
  if ((options as { html?: unknown }).html !== undefined) {
    throw usageError(
      "--html needs the rotation's durable history, which the API does not serve: leave out --api",
    );
  }
  if (id === undefined) {
    throw usageError(
      "status --api needs an instance id (the API lists no instances): the id `rotate --api` printed",
    );
  }
  const client = new ApiClient(options.api);
  const status = await client.rotation(id);
  if (!status)
    throw new CliError(`no rotation '${id}' at ${client.address}: check the id \`rotate --api\` printed`);
  const failed = status.runtimeStatus === "Failed" || status.runtimeStatus === "Terminated";
  showReportedInstance(io, status, failed ? failureOf(status) : undefined, options);
  return 0;
}
