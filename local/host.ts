/**
 * LocalHost: runs a Functions app's real registrations (`app.http`, `app.timer`, `app.eventGrid`,
 * `df.app.orchestration`, `df.app.activity`, `df.input.durableClient`) without the Azure Functions
 * host. It serves HTTP triggers (routes, methods, function keys), fires timer triggers from their
 * NCRONTAB schedules on its clock, delivers Event Grid events (`deliverEvent`, or the Event Grid
 * extension's webhook), gives functions a durable client that talks to its own HTTP
 * endpoint, and drives orchestrations with the replay driver in ./replay.
 *
 * Library internals it depends on (pinned: @azure/functions 4.16.5, durable-functions 3.5.0): the
 * `@azure/functions-core` contract (./functions-core), the worker's invocation sequence
 * (./worker), the orchestration payload, history and action formats (./durable-protocol) and the
 * durable client's HTTP calls (./durable-http).
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve as resolvePath } from "node:path";
import type { DurableClient } from "durable-functions";
import { RealClock, type Cancel, type Clock } from "./clock";
import { DurableEngine, type DurableHooks, type InstanceStatus } from "./replay";
import {
  RPC_PREFIX,
  WEBHOOK_PREFIX,
  durableClientInput,
  handleDurableApi,
  type DurableClientInput,
} from "./durable-http";
import {
  captureRegistrations,
  getHooks,
  getProgrammingModel,
  getRegistrations,
  hasProgrammingModel,
  installFunctionsCore,
  setLogSink,
  type Registration,
  type RpcBindingInfo,
  type RpcHttpCookie,
  type RpcHttpData,
  type RpcInvocationResponse,
  type RpcParameterBinding,
  type RpcTypedData,
} from "./functions-core";
import { compileRoute, decodeSegment, type CompiledRoute } from "./http-routes";
import { parseNcrontab, type Ncrontab } from "../shared/ncrontab";
import {
  fromRpcValue,
  getAppHookData,
  invokeRegistration,
  type FunctionLogger,
  type LogEntry,
} from "./worker";

export interface HostKeys {
  /** Accepted for `authLevel: "function"` (as `?code=` or `x-functions-key`). */
  function: string;
  /** Accepted everywhere, and the only key for `authLevel: "admin"`. */
  master: string;
  /** The durable extension's system key, embedded in the durable client's management links. */
  system: string;
}

export interface InvocationInfo {
  functionName: string;
  triggerType: string;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export interface LocalHostHooks extends DurableHooks {
  /** After every HTTP, timer or Event Grid invocation (durable functions report through the others). */
  onInvocation?: (info: InvocationInfo) => void | Promise<void>;
}

export interface LocalHostOptions {
  /** Directory for orchestration state; in memory only when omitted (then nothing survives a restart). */
  stateDir?: string;
  /** Defaults to wall-clock time; pass a ManualClock to move time by hand in tests. */
  clock?: Clock;
  /** Keys to accept; any left out are generated. */
  keys?: Partial<HostKeys>;
  taskHub?: string;
  /** host.json `extensions.http.routePrefix`; "api" by default. */
  routePrefix?: string;
  /** Activities running at once across all instances (default 8). */
  maxActivityConcurrency?: number;
  /** App settings for `%NAME%` references (timer schedules); process.env by default. */
  settings?: Record<string, string | undefined>;
  /** Where function and host logs go; by default warnings and errors go to the console. */
  logger?: FunctionLogger;
  hooks?: LocalHostHooks;
  /** Passed to orchestrators; the library splits timers longer than this into shorter ones. */
  maximumShortTimerDuration?: string;
}

export interface FunctionInfo {
  name: string;
  triggerType: string;
  bindings: Record<string, RpcBindingInfo>;
  http?: { route: string; methods: string[]; authLevel: string };
  timer?: { schedule: string; runOnStartup: boolean };
}

export interface HttpInvocationRequest {
  method: string;
  /** Absolute URL, or a path (then the host's own origin is used). */
  url: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  params?: Record<string, string>;
}

export interface HttpInvocationResponse {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
}

interface HttpRoute {
  registration: Registration;
  route: CompiledRoute;
  methods: string[];
  authLevel: string;
}

// Registrations made while an entry module loaded, by resolved path: a module loads once per
// module registry, so a second LocalHost over the same entry reuses what the first one captured.
const capturedByEntry = new Map<string, Registration[]>();

const defaultLogger: FunctionLogger = (entry: LogEntry) => {
  if (entry.level === "warning" || entry.level === "error" || entry.level === "critical") {
    console.error(`[${entry.functionName}] ${entry.message}`);
  }
};

/** The Event Grid extension's webhook, as the Functions host serves it: `POST …?functionName=<name>`. */
export const EVENT_GRID_WEBHOOK = "/runtime/webhooks/eventgrid";

function newKey(): string {
  return randomBytes(24).toString("base64url");
}

function isDurableClientBinding(binding: RpcBindingInfo): boolean {
  const type = (binding.type ?? "").toLowerCase();
  return binding.direction === "in" && (type === "durableclient" || type === "orchestrationclient");
}

export class LocalHost {
  readonly clock: Clock;
  readonly keys: HostKeys;
  readonly taskHub: string;
  readonly routePrefix: string;
  readonly durable: DurableEngine;
  readonly hooks: LocalHostHooks;
  readonly #settings: Record<string, string | undefined>;
  readonly #logger: FunctionLogger;
  readonly #registrations = new Map<string, Registration>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #timerCancels: Cancel[] = [];
  #routes: HttpRoute[] | undefined;
  #server: Server | undefined;
  #origin: string | undefined;
  #starting: Promise<string> | undefined;
  #appStarted = false;
  #stopped = false;

  constructor(options: LocalHostOptions = {}) {
    this.clock = options.clock ?? new RealClock();
    this.keys = {
      function: options.keys?.function ?? newKey(),
      master: options.keys?.master ?? newKey(),
      system: options.keys?.system ?? newKey(),
    };
    this.taskHub = options.taskHub ?? "LocalTaskHub";
    this.routePrefix = (options.routePrefix ?? "api").replace(/^\/+|\/+$/g, "");
    this.#settings = options.settings ?? process.env;
    this.#logger = options.logger ?? defaultLogger;
    this.hooks = options.hooks ?? {};
    setLogSink((level, category, message) =>
      this.#logger({ functionName: "functions-core", invocationId: "", level, category, message }),
    );
    this.durable = new DurableEngine({
      clock: this.clock,
      invoke: (name, data) => this.#invokeWithTrigger(name, data),
      getFunction: (name) => this.#registrations.get(name),
      stateDir: options.stateDir,
      maxActivityConcurrency: options.maxActivityConcurrency,
      hooks: this.hooks,
      maximumShortTimerDuration: options.maximumShortTimerDuration,
      log: (level, message) =>
        this.#logger({ functionName: "local-host", invocationId: "", level, category: "system", message }),
    });
  }

  /**
   * Loads an app entry module (compiled JS, or TS under Jest) and captures its registrations.
   * Installs the `@azure/functions-core` stand-in first: `@azure/functions` looks for it on the first
   * registration and never looks again.
   */
  load(entry: string): FunctionInfo[] {
    installFunctionsCore();
    const resolved = require.resolve(resolvePath(entry));
    let captured = capturedByEntry.get(resolved);
    if (!captured) {
      // Loading the app is the point: a dynamic require of a path known only at run time, through the
      // module system of the caller (Jest's registry in tests, so the app sees the same stand-in).
      captured = captureRegistrations(() => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        require(resolved);
      });
      // Loaded earlier by someone else (e.g. a test importing the app): fall back to every registration.
      if (captured.length === 0) captured = getRegistrations();
      capturedByEntry.set(resolved, captured);
    }
    if (captured.length === 0 || !hasProgrammingModel()) {
      throw new Error(
        `No functions were registered by ${entry}. Either the app registers none, or @azure/functions ` +
          `could not load "@azure/functions-core" and switched to test mode. Under Jest, add ` +
          `jest.mock("@azure/functions-core", () => jest.requireActual("<repo>/local/functions-core"), ` +
          `{ virtual: true }) to the test file; elsewhere, load the app only through LocalHost.load (or call ` +
          `installFunctionsCore() before anything imports @azure/functions).`,
      );
    }
    for (const registration of captured) this.#registrations.set(registration.name, registration);
    this.#routes = undefined;
    return this.functions;
  }

  get functions(): FunctionInfo[] {
    return [...this.#registrations.values()].map((r) => describeFunction(r));
  }

  getRegistration(name: string): Registration | undefined {
    return this.#registrations.get(name);
  }

  /** The origin the host serves on (after start()). */
  get url(): string {
    if (!this.#origin) throw new Error("The local host is not serving yet: call start().");
    return this.#origin;
  }

  /** The value the `durableClient` input binding receives. */
  get durableClientInput(): DurableClientInput {
    return durableClientInput(this.url, this.taskHub, this.keys.system);
  }

  /**
   * Serves HTTP triggers and the durable client's endpoint, runs appStart hooks and (unless
   * `timers: false`) starts the timer triggers. Returns the origin, e.g. http://127.0.0.1:41234.
   */
  async start(options: { port?: number; hostname?: string; timers?: boolean } = {}): Promise<string> {
    const origin = await this.#listen(options.port ?? 0, options.hostname ?? "127.0.0.1");
    if (!this.#appStarted) {
      this.#appStarted = true;
      // The worker locks `app.setup()` here; a stream-enabled app would need the worker's HTTP proxy.
      const capabilities = (await getProgrammingModel().getCapabilities?.({})) ?? {};
      if (capabilities.HttpUri)
        throw new Error("HTTP streaming (app.setup({ enableHttpStream })) is not supported.");
      for (const hook of getHooks("appStart")) {
        await hook({ hookData: {}, appHookData: getAppHookData(), functionAppDirectory: process.cwd() });
      }
      if (options.timers ?? true) this.startTimers();
    }
    return origin;
  }

  /** Continues unfinished orchestrations found in the state directory. */
  resume(): string[] {
    return this.durable.resume();
  }

  /** Resolves when no invocation, episode or activity is running. */
  async idle(): Promise<void> {
    for (;;) {
      await this.durable.idle();
      if (this.#inflight.size === 0) return;
      await Promise.allSettled([...this.#inflight]);
    }
  }

  startNew(name: string, input?: unknown, instanceId?: string): string {
    return this.durable.startNew(name, {
      instanceId,
      input: input === undefined ? undefined : JSON.stringify(input),
    });
  }

  waitForCompletion(
    instanceId: string,
    options?: { timeoutMs?: number; advanceClock?: boolean },
  ): Promise<InstanceStatus> {
    return this.durable.waitForCompletion(instanceId, options);
  }

  /**
   * The library's own DurableClient, wired to this host exactly as `df.getClient(context)` is inside
   * a function (for tools and tests that drive orchestrations from outside a function).
   */
  async durableClient(): Promise<DurableClient> {
    await this.#ensureListening();
    installFunctionsCore();
    // Imported late so that nothing loads @azure/functions before the stand-in is installed.
    const [{ InvocationContext }, df] = await Promise.all([
      import("@azure/functions"),
      import("durable-functions"),
    ]);
    const input = df.input.durableClient();
    const context = new InvocationContext({ functionName: "local-host", options: { extraInputs: [input] } });
    context.extraInputs.set(input, this.durableClientInput);
    return df.getClient(context);
  }

  /**
   * Stops everything, like a killed process: no further episodes, activities, timers or writes;
   * outcomes of invocations still running are discarded. Safe to call from a hook (it does not wait
   * for running invocations).
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.durable.stop();
    for (const cancel of this.#timerCancels.splice(0)) cancel();
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    if (this.#appStarted) {
      for (const hook of getHooks("appTerminate")) {
        try {
          await hook({ hookData: {}, appHookData: getAppHookData() });
        } catch (err) {
          this.#hostLog("error", `appTerminate hook failed: ${String(err)}`);
        }
      }
    }
  }

  // ---------------------------------------------------------------- invoking

  /**
   * Invokes any function with a trigger value (sent as JSON) and returns its return value. Durable
   * client inputs are filled in. For HTTP triggers use invokeHttp.
   */
  async invoke(name: string, triggerValue?: unknown): Promise<unknown> {
    const response = await this.#invokeWithTrigger(
      name,
      triggerValue === undefined ? undefined : { json: JSON.stringify(triggerValue) },
    );
    return fromRpcValue(response.returnValue);
  }

  /** Invokes an HTTP-triggered function directly (no routing or key check). */
  async invokeHttp(name: string, request: HttpInvocationRequest): Promise<HttpInvocationResponse> {
    const registration = this.#require(name);
    if (registration.triggerType.toLowerCase() !== "httptrigger")
      throw new Error(`'${name}' is not an HTTP function.`);
    const url = new URL(request.url, this.#origin ?? "http://127.0.0.1");
    const query: Record<string, string> = {};
    url.searchParams.forEach((value, key) => {
      query[key] = value;
    });
    const body = request.body === undefined ? undefined : Buffer.from(request.body);
    const http: RpcHttpData = {
      method: request.method.toUpperCase(),
      url: url.toString(),
      headers: request.headers ?? {},
      query,
      params: request.params ?? {},
      body: body ? { bytes: body } : null,
    };
    let response: RpcInvocationResponse;
    try {
      response = await this.#invokeWithTrigger(name, { http });
    } catch (err) {
      this.#hostLog("error", `HTTP function '${name}' failed: ${describeError(err)}`);
      await this.#reportInvocation(registration, false, undefined, err);
      return { status: 500, headers: {}, body: Buffer.alloc(0) };
    }
    const result = toHttpResponse(registration, response);
    await this.#reportInvocation(registration, true, { status: result.status });
    return result;
  }

  /** Fires a timer-triggered function now (as the schedule would). */
  async fireTimer(name: string, scheduledFor: Date = this.clock.now(), last?: Date): Promise<void> {
    const registration = this.#require(name);
    const schedule = this.#scheduleOf(registration);
    const now = this.clock.now();
    const next = schedule.next(scheduledFor);
    const payload = {
      Schedule: { AdjustForDST: true },
      ScheduleStatus: {
        Last: (last ?? new Date(0)).toISOString(),
        Next: next?.toISOString() ?? "",
        LastUpdated: now.toISOString(),
      },
      // The Functions host calls a run late by more than a minute "past due".
      IsPastDue: now.getTime() - scheduledFor.getTime() > 60_000,
    };
    try {
      const response = await this.#invokeWithTrigger(name, { json: JSON.stringify(payload) });
      await this.#reportInvocation(registration, true, fromRpcValue(response.returnValue));
    } catch (err) {
      this.#hostLog(
        "error",
        `Timer function '${name}' failed: ${err instanceof Error ? err.message : String(err)}`,
      );
      await this.#reportInvocation(registration, false, undefined, err);
    }
  }

  /**
   * Delivers one Event Grid event (Event Grid schema) to an Event Grid-triggered function, as the
   * Event Grid extension does; false when the function failed (Event Grid would deliver it again).
   */
  async deliverEvent(name: string, event: unknown): Promise<boolean> {
    const registration = this.#require(name);
    if (registration.triggerType.toLowerCase() !== "eventgridtrigger")
      throw new Error(`'${name}' is not an Event Grid function.`);
    try {
      const response = await this.#invokeWithTrigger(name, { json: JSON.stringify(event) });
      await this.#reportInvocation(registration, true, fromRpcValue(response.returnValue));
      return true;
    } catch (err) {
      this.#hostLog("error", `Event Grid function '${name}' failed: ${describeError(err)}`);
      await this.#reportInvocation(registration, false, undefined, err);
      return false;
    }
  }

  /** Arms every timer trigger on the host clock (start() does this). */
  startTimers(): void {
    for (const registration of this.#registrations.values()) {
      if (registration.triggerType.toLowerCase() !== "timertrigger") continue;
      const schedule = this.#scheduleOf(registration);
      let last: Date | undefined;
      const arm = (after: Date) => {
        const next = schedule.next(after);
        if (!next || this.#stopped) return;
        const cancel = this.clock.schedule(next, () => {
          const index = this.#timerCancels.indexOf(cancel);
          if (index >= 0) this.#timerCancels.splice(index, 1);
          if (this.#stopped) return;
          const previous = last;
          last = next;
          arm(next);
          this.#track(this.fireTimer(registration.name, next, previous));
        });
        this.#timerCancels.push(cancel);
      };
      if (registration.trigger.runOnStartup === true) {
        this.#track(this.fireTimer(registration.name));
      }
      arm(this.clock.now());
    }
  }

  async #invokeWithTrigger(
    name: string,
    triggerData: RpcTypedData | undefined,
  ): Promise<RpcInvocationResponse> {
    const registration = this.#require(name);
    const inputData: RpcParameterBinding[] = [{ name: registration.triggerName, data: triggerData ?? null }];
    for (const [bindingName, binding] of Object.entries(registration.metadata.bindings)) {
      if (!isDurableClientBinding(binding)) continue;
      // The durable client calls back over HTTP, so the endpoint must be up.
      await this.#ensureListening();
      inputData.push({ name: bindingName, data: { json: JSON.stringify(this.durableClientInput) } });
    }
    return invokeRegistration(registration, { inputData }, this.#logger);
  }

  #require(name: string): Registration {
    const registration = this.#registrations.get(name);
    if (!registration) throw new Error(`No function named '${name}' is registered.`);
    return registration;
  }

  #scheduleOf(registration: Registration): Ncrontab {
    const raw = scheduleText(registration.trigger);
    const resolved = raw.replace(/^%([^%]+)%$/, (_match, setting: string) => {
      const value = this.#settings[setting];
      if (value === undefined || value === "") {
        throw new Error(`Timer '${registration.name}' uses the app setting ${setting}, which is not set.`);
      }
      return value;
    });
    return parseNcrontab(resolved);
  }

  async #reportInvocation(registration: Registration, ok: boolean, result?: unknown, error?: unknown) {
    const hook = this.hooks.onInvocation;
    if (!hook) return;
    const info: InvocationInfo = {
      functionName: registration.name,
      triggerType: registration.triggerType,
      ok,
    };
    if (result !== undefined) info.result = result;
    if (error !== undefined) info.error = describeError(error);
    try {
      await hook(info);
    } catch (err) {
      this.#hostLog("error", `onInvocation hook failed: ${String(err)}`);
    }
  }

  #track(promise: Promise<unknown>): void {
    const tracked = promise
      .catch((err: unknown) => this.#hostLog("error", String(err)))
      .finally(() => this.#inflight.delete(tracked));
    this.#inflight.add(tracked);
  }

  #hostLog(level: "information" | "warning" | "error", message: string): void {
    this.#logger({ functionName: "local-host", invocationId: "", level, category: "system", message });
  }

  // ---------------------------------------------------------------- serving

  async #ensureListening(): Promise<void> {
    if (!this.#origin) await this.#listen(0, "127.0.0.1");
  }

  #listen(port: number, hostname: string): Promise<string> {
    if (this.#stopped) return Promise.reject(new Error("The local host has been stopped."));
    this.#starting ??= new Promise<string>((resolve, reject) => {
      const server = createServer((req, res) => {
        this.#track(this.#handle(req, res));
      });
      server.once("error", reject);
      server.listen(port, hostname, () => {
        const address = server.address() as AddressInfo;
        const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
        this.#origin = `http://${host}:${address.port}`;
        this.#server = server;
        resolve(this.#origin);
      });
    });
    return this.#starting;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? "/", this.url);
      const path = url.pathname;

      if (path.startsWith(RPC_PREFIX) || path.startsWith(WEBHOOK_PREFIX)) {
        const webhook = path.startsWith(WEBHOOK_PREFIX);
        // The rpc endpoint is for the app's own durable client (the extension binds it to localhost);
        // the webhooks are public, so they need the system key as in Azure.
        if (webhook && !this.#keyAccepted(req, url, [this.keys.system, this.keys.master])) {
          return send(res, 401);
        }
        const rest = path.slice((webhook ? WEBHOOK_PREFIX : RPC_PREFIX).length);
        const segments = rest
          .split("/")
          .filter((s) => s !== "")
          .map(decodeSegment);
        const result = handleDurableApi(
          this.durable,
          this.durableClientInput,
          req.method ?? "GET",
          segments,
          url.searchParams,
          body.toString("utf8"),
        );
        return send(res, result.status, result.headers, result.body);
      }

      if (path.toLowerCase() === EVENT_GRID_WEBHOOK) {
        // Public, so it takes a system key as in Azure (there the Event Grid extension's own).
        if (!this.#keyAccepted(req, url, [this.keys.system, this.keys.master])) return send(res, 401);
        const result = await this.#eventGridWebhook(req, url, body);
        return send(res, result.status, {}, result.body);
      }

      const prefix = this.routePrefix === "" ? "/" : `/${this.routePrefix}/`;
      if (!path.startsWith(prefix) && path !== `/${this.routePrefix}`) return send(res, 404);
      const routePath = path.slice(prefix.length);
      const method = (req.method ?? "GET").toUpperCase();
      for (const route of this.#httpRoutes()) {
        const params = route.route.match(routePath);
        if (!params || !route.methods.includes(method)) continue;
        if (route.authLevel === "function" || route.authLevel === "admin") {
          const keys =
            route.authLevel === "admin" ? [this.keys.master] : [this.keys.function, this.keys.master];
          if (!this.#keyAccepted(req, url, keys)) return send(res, 401);
        }
        const headers: Record<string, string> = {};
        for (const [key, value] of Object.entries(req.headers)) {
          if (value !== undefined) headers[key] = Array.isArray(value) ? value.join(", ") : value;
        }
        const response = await this.invokeHttp(route.registration.name, {
          method,
          url: url.toString(),
          headers,
          body: body.length > 0 ? body : undefined,
          params,
        });
        res.writeHead(response.status, response.headers);
        res.end(response.body);
        return;
      }
      return send(res, 404);
    } catch (err) {
      this.#hostLog(
        "error",
        `Request failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
      if (!res.headersSent) send(res, 500);
      else res.end();
    }
  }

  /**
   * The Event Grid extension's webhook: `aeg-event-type: SubscriptionValidation` answers the handshake;
   * `Notification` delivers each event of the body (an array, Event Grid schema) to `functionName`:
   * 202 when every delivery succeeded, 500 (Event Grid retries) when one failed.
   */
  async #eventGridWebhook(
    req: IncomingMessage,
    url: URL,
    body: Buffer,
  ): Promise<{ status: number; body?: unknown }> {
    if ((req.method ?? "GET").toUpperCase() !== "POST") return { status: 405 };
    const name = url.searchParams.get("functionName") ?? "";
    const registration = this.#registrations.get(name);
    if (registration?.triggerType.toLowerCase() !== "eventgridtrigger")
      return { status: 404, body: { error: `no Event Grid function named '${name}'` } };
    let events: unknown;
    try {
      events = JSON.parse(body.toString("utf8"));
    } catch {
      return { status: 400, body: { error: "the body must be a JSON array of Event Grid events" } };
    }
    const list = Array.isArray(events) ? (events as unknown[]) : [events];
    const kind = String(req.headers["aeg-event-type"] ?? "");
    if (kind === "SubscriptionValidation") {
      const data = (list[0] as { data?: { validationCode?: unknown } } | undefined)?.data;
      return { status: 200, body: { validationResponse: data?.validationCode } };
    }
    if (kind !== "Notification")
      return {
        status: 400,
        body: { error: "aeg-event-type must be Notification or SubscriptionValidation" },
      };
    let failed = 0;
    for (const event of list) if (!(await this.deliverEvent(name, event))) failed++;
    return failed > 0 ? { status: 500 } : { status: 202 };
  }

  #keyAccepted(req: IncomingMessage, url: URL, keys: string[]): boolean {
    const header = req.headers["x-functions-key"];
    const given = url.searchParams.get("code") ?? (Array.isArray(header) ? header[0] : header);
    return given !== undefined && given !== null && keys.includes(given);
  }

  #httpRoutes(): HttpRoute[] {
    this.#routes ??= [...this.#registrations.values()]
      .filter((r) => r.triggerType.toLowerCase() === "httptrigger")
      .map((registration) => {
        const info = describeFunction(registration).http;
        return {
          registration,
          route: compileRoute(info?.route ?? registration.name),
          methods: info?.methods ?? ["GET", "POST"],
          authLevel: info?.authLevel ?? "function",
        };
      })
      .sort((a, b) => a.route.precedence - b.route.precedence);
    return this.#routes;
  }
}

function scheduleText(trigger: RpcBindingInfo): string {
  return typeof trigger.schedule === "string" ? trigger.schedule : "";
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === "string" ? error : JSON.stringify(error);
}

function describeFunction(registration: Registration): FunctionInfo {
  const info: FunctionInfo = {
    name: registration.name,
    triggerType: registration.triggerType,
    bindings: registration.metadata.bindings,
  };
  const trigger = registration.trigger;
  const type = registration.triggerType.toLowerCase();
  if (type === "httptrigger") {
    const methods = Array.isArray(trigger.methods) ? (trigger.methods as string[]) : ["GET", "POST"];
    info.http = {
      route: typeof trigger.route === "string" && trigger.route !== "" ? trigger.route : registration.name,
      methods: methods.map((m) => m.toUpperCase()),
      authLevel: typeof trigger.authLevel === "string" ? trigger.authLevel.toLowerCase() : "function",
    };
  } else if (type === "timertrigger") {
    info.timer = { schedule: scheduleText(trigger), runOnStartup: trigger.runOnStartup === true };
  }
  return info;
}

function toHttpResponse(registration: Registration, response: RpcInvocationResponse): HttpInvocationResponse {
  let data: RpcTypedData | null | undefined;
  const returnBinding = registration.metadata.bindings.$return;
  if (returnBinding?.type?.toLowerCase() === "http") data = response.returnValue;
  else {
    const name = Object.entries(registration.metadata.bindings).find(
      ([, b]) => b.direction === "out" && b.type?.toLowerCase() === "http",
    )?.[0];
    data = response.outputData?.find((o) => o.name === name)?.data;
  }
  const http = data?.http;
  if (!http) return { status: 204, headers: {}, body: Buffer.alloc(0) };
  const headers: Record<string, string | string[]> = { ...(http.headers ?? {}) };
  const cookies = (http.cookies ?? []).map(formatCookie);
  if (cookies.length > 0) headers["set-cookie"] = cookies;
  const value = fromRpcValue(http.body);
  const body = Buffer.isBuffer(value)
    ? value
    : value === undefined || value === null
      ? Buffer.alloc(0)
      : Buffer.from(typeof value === "string" ? value : JSON.stringify(value));
  return { status: Number(http.statusCode ?? 200), headers, body };
}

function formatCookie(cookie: RpcHttpCookie): string {
  const parts = [`${cookie.name ?? ""}=${cookie.value ?? ""}`];
  if (cookie.domain?.value) parts.push(`Domain=${cookie.domain.value}`);
  if (cookie.path?.value) parts.push(`Path=${cookie.path.value}`);
  const seconds = cookie.expires?.value?.seconds;
  if (seconds !== undefined && seconds !== null)
    parts.push(`Expires=${new Date(seconds * 1000).toUTCString()}`);
  if (cookie.maxAge?.value !== undefined && cookie.maxAge.value !== null)
    parts.push(`Max-Age=${cookie.maxAge.value}`);
  if (cookie.secure?.value) parts.push("Secure");
  if (cookie.httpOnly?.value) parts.push("HttpOnly");
  if (cookie.sameSite === "lax") parts.push("SameSite=Lax");
  else if (cookie.sameSite === "strict") parts.push("SameSite=Strict");
  else if (cookie.sameSite === "explicitNone") parts.push("SameSite=None");
  return parts.join("; ");
}

function send(
  res: ServerResponse,
  status: number,
  headers: Record<string, string> = {},
  body?: unknown,
): void {
  if (body === undefined) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", ...headers });
  res.end(JSON.stringify(body));
}
