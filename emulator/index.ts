import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { generate } from "selfsigned";
import {
  AzureError,
  Router,
  errorResponse,
  listen,
  readRequest,
  send,
  type Request,
  type Response,
} from "./http";
import { ARM_AUDIENCES, Identity, VAULT_AUDIENCE, type Principal } from "./identity";
import { Rbac, loadRoleDefinition } from "./rbac";
import {
  ArmThrottle,
  StorageRpThrottle,
  TENANT_SCOPE,
  emptyThrottleCounts,
  type ArmKind,
  type ThrottleCounts,
  type ThrottleSource,
} from "./throttle";
import { Faults, strikesAfter, vaultOperationOf, type FaultAction } from "./faults";
import { sampleLatencyMs } from "./latency";
import { buildEstate, EMULATOR_TENANT_ID } from "./estates";
import { keyWorks, newStorageKey, type Estate, type KeyVault } from "./model";
import { startDataPlane, type DataPlane } from "./dataplane";
import { ConsumerJobs, OutageLog } from "./consumers";
import type { ArmRoute, EmulatorContext, EmulatorSettings, ProviderName } from "./context";
import { storageRoutes } from "./arm/storage";
import { CLASSIC_STORAGE_API_VERSIONS, classicRoutes } from "./arm/classic";
import {
  serviceManagementError,
  serviceManagementService,
  type ServiceManagementCall,
} from "./servicemanagement";
import { batchRoutes } from "./arm/batch";
import { registryRoutes, startRegistryServer, type RegistryLogEntry } from "./arm/registry";
import { mlRoutes } from "./arm/ml";
import { subscriptionRoutes } from "./arm/subscriptions";
import { vaultHandler } from "./keyvault";
import { startBatchDataPlane, type BatchLogEntry } from "./batchdata";
import { adminRoutes, mergeSettings } from "./admin";
import { signSasDatastores } from "./sas";
import { cloudMetadata, instanceDiscovery } from "./cloud";
import { KEYTURN_BATCH_ROLE_FILE, KEYTURN_REGISTRY_ROLE_FILE, KEYTURN_ROLE_FILE } from "./paths";
import { KeyLedger } from "./ledger";
import type { ConnectionInfo, Emulator, RequestLogEntry } from "./handle";

export type { ConnectionInfo, Emulator, RequestLogEntry } from "./handle";

export { EMULATOR_TENANT_ID };
export type { ThrottleCounts, ThrottleSource };

/** The api-versions each provider accepts: the SDKs' (DESIGN §7) and the Azure CLI's older ones. */
export const API_VERSIONS: Record<ProviderName, string[]> = {
  "Microsoft.Storage": [
    "2019-06-01",
    "2021-04-01",
    "2021-06-01",
    "2021-08-01",
    "2021-09-01",
    "2022-05-01",
    "2022-09-01",
    "2023-01-01",
    "2023-04-01",
    "2023-05-01",
    "2024-01-01",
    "2025-01-01",
    "2025-06-01",
    "2025-08-01",
  ],
  "Microsoft.ClassicStorage": CLASSIC_STORAGE_API_VERSIONS,
  "Microsoft.MachineLearningServices": [
    "2021-07-01",
    "2022-05-01",
    "2022-10-01",
    "2023-04-01",
    "2023-10-01",
    "2024-04-01",
    "2024-10-01",
    "2025-01-01-preview",
    "2025-06-01",
  ],
  "Microsoft.Batch": [
    "2021-06-01",
    "2022-01-01",
    "2022-10-01",
    "2023-05-01",
    "2023-11-01",
    "2024-02-01",
    "2024-07-01",
  ],
  "Microsoft.ContainerRegistry": [
    "2019-05-01",
    "2021-09-01",
    "2022-12-01",
    "2023-07-01",
    "2023-11-01-preview",
    "2025-04-01",
    "2025-11-01",
  ],
  subscriptions: [
    "2016-06-01",
    "2018-06-01",
    "2019-06-01",
    "2019-11-01",
    "2020-01-01",
    "2021-01-01",
    "2022-12-01",
  ],
};

export interface EmulatorOptions {
  /** `demo` (default) or `large:<accounts>x<datastoresPerAccount>[x<subscriptions>]`. */
  estate?: string;
  /** HTTPS port for ARM, sign-in and admin; 0 (default) picks a free one. */
  port?: number;
  settings?: Partial<EmulatorSettings>;
  /** The role keyturn's principal is given at subscription scope; default infra/keyturn-role.json. */
  roleFile?: string;
  /**
   * The opt-in roles it is given too, as infra assigns them with their feature on; default
   * infra/keyturn-batch-role.json (`--batch-keys`) and infra/keyturn-registry-role.json
   * (`--registry-passwords`). `[]`: the main role alone.
   */
  optInRoleFiles?: string[];
  /** Run the simulated consumer jobs every N ms (off when undefined). */
  consumerJobsIntervalMs?: number;
}

export const DEFAULT_SETTINGS: EmulatorSettings = {
  resyncPolicy: "key1",
  batchSyncPolicy: "consumers",
  registryResyncPick: "password",
  resyncPolls: 1,
  lroRetryAfterSeconds: 0,
  latency: "off",
  latencyScale: 1,
  throttling: true,
  storageRpLimits: true,
  resyncRewritesDefaultDatastores: false,
  keyPropagationSeconds: 0,
  workspaceAutoSyncSeconds: 0,
  consumerKeyCacheSeconds: 0,
  keyCreationTimeKnown: true,
};

/** setTimeout's longest delay; a longer wait is made of several. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The request log's capacity: a bench of a 300-account estate makes tens of thousands of calls, and
 * reads the whole log afterwards. Past it, the oldest tenth goes at once (one splice, not a shift per call).
 */
export const MAX_REQUEST_LOG = 250_000;

function appendBounded(log: RequestLogEntry[], entry: RequestLogEntry): void {
  if (log.length >= MAX_REQUEST_LOG) log.splice(0, Math.ceil(MAX_REQUEST_LOG / 10));
  log.push(entry);
}

export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const now = () => new Date();
  const estate = buildEstate(options.estate ?? "demo", now());
  const settings = settingsOf(options.settings);
  const tls = await makeCertificate();
  const dir = mkdtempSync(join(tmpdir(), "keyturn-emulator-"));
  const caCertFile = join(dir, "ca.pem");
  writeFileSync(caCertFile, tls.cert);

  let origin = "";
  const identity = new Identity(EMULATOR_TENANT_ID, () => origin);
  const rbac = new Rbac();
  // The main role, and the opt-in roles infra assigns when their feature is on (--batch-keys).
  const roles = [
    loadRoleDefinition(options.roleFile ?? KEYTURN_ROLE_FILE),
    ...(options.optInRoleFiles ?? [KEYTURN_BATCH_ROLE_FILE, KEYTURN_REGISTRY_ROLE_FILE]).map(
      loadRoleDefinition,
    ),
  ];
  const keyturn = identity.addPrincipal("keyturn");
  for (const role of roles) {
    rbac.addRole(role);
    for (const sub of estate.subscriptions.values()) {
      rbac.assign({
        principalObjectId: keyturn.objectId,
        role: role.Name,
        scope: `/subscriptions/${sub.subscriptionId}`,
      });
    }
  }

  const dataPlane = await startDataPlane({
    accounts: dataPlaneAccounts(estate, now()),
    tables: true,
    queues: true,
  });
  const outages = new OutageLog(estate, now, () => settings.consumerKeyCacheSeconds);
  const faults = new Faults();
  const throttle = new ArmThrottle();
  const storageRpThrottle = new StorageRpThrottle();
  const requestLog: RequestLogEntry[] = [];
  const vaultLog: RequestLogEntry[] = [];
  const registryLog: RegistryLogEntry[] = [];
  const batchLog: BatchLogEntry[] = [];

  // Timed behaviour (key propagation, consumer key caches, workspace auto-sync): timers that keep no
  // process alive, all cleared by stop(), which also waits for a task already running.
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const running = new Set<Promise<void>>();
  const runTask = (task: () => Promise<void>): void => {
    const run: Promise<void> = task()
      .catch((e: unknown) => {
        if (!stopped)
          process.stderr.write(`keyturn emulator: a timed task failed: ${(e as Error)?.message}\n`);
      })
      .finally(() => running.delete(run));
    running.add(run);
  };
  const schedule = (delayMs: number, task: () => Promise<void>): void => {
    if (stopped) return;
    const wait = Math.min(Math.max(0, delayMs), MAX_TIMER_MS);
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (stopped) return;
      if (delayMs > wait) schedule(delayMs - wait, task);
      else runTask(task);
    }, wait);
    timer.unref();
    timers.add(timer);
  };
  /** One timer for the next moment a consumer may get better by itself, so the log closes its outage then. */
  let wake: { at: number; timer: NodeJS.Timeout } | undefined;
  const armWake = (): void => {
    const next = outages.nextTransition();
    if (stopped || next === undefined || (wake && wake.at <= next)) return;
    if (wake) clearTimeout(wake.timer);
    const timer = setTimeout(
      () => {
        wake = undefined;
        if (!stopped) runTask(() => ctx.changed("a key propagated or a job's cached key expired"));
      },
      Math.min(Math.max(0, next - now().getTime()), MAX_TIMER_MS),
    );
    timer.unref();
    wake = { at: next, timer };
  };

  const ctx: EmulatorContext = {
    estate,
    identity,
    rbac,
    settings,
    dataPlane,
    now,
    changed: async (reason) => {
      await dataPlane.setAccounts(dataPlaneAccounts(estate, now()));
      outages.evaluate(reason);
      armWake();
    },
    takeLroFailure: (operation) => faults.takeLroFailure(operation),
    schedule,
    regenerations: [],
    registryRegenerations: [],
    // A KeyLedger also appends each key's digest to KEYTURN_KEY_LEDGER when set (the whole-run secret scan).
    issuedKeys: new KeyLedger([
      ...accountsOf(estate).flatMap((a) => [a.key1, a.key2]),
      ...[...estate.batchAccounts.values()].flatMap((b) => [b.keys.primary, b.keys.secondary]),
      ...[...estate.registries.values()].flatMap((r) => [r.passwords.password, r.passwords.password2]),
    ]),
  };
  await prepareContainers(estate, dataPlane);
  await signSasDatastores(estate, ctx.issuedKeys);
  const jobs = new ConsumerJobs(estate, dataPlane, outages, now);

  const armRoutes = [
    storageRoutes,
    classicRoutes,
    mlRoutes,
    batchRoutes,
    registryRoutes,
    subscriptionRoutes,
  ].flatMap((m) => m(ctx));
  const arm = new Router();
  for (const route of armRoutes) arm.add(route.method, route.pattern, () => ({ status: 500 }));
  const byPattern = new Map(armRoutes.map((r) => [`${r.method} ${r.pattern}`, r]));
  const actionOf = (req: Request): string | undefined => {
    const matched = arm.match(req.method, req.segments);
    return typeof matched === "object"
      ? byPattern.get(`${matched.route.method} ${matched.route.pattern}`)?.action
      : undefined;
  };

  const emulator: Emulator = {
    connection: undefined as unknown as ConnectionInfo,
    caCert: tls.cert,
    ctx,
    outages,
    jobs,
    faults,
    throttle,
    storageRpThrottle,
    requestLog,
    throttled: emptyThrottleCounts(),
    vaultLog,
    registryLog,
    batchLog,
    addPrincipal(displayName, roleDefinition, scope) {
      const principal = identity.addPrincipal(displayName);
      if (!rbac.roles.has(roleDefinition.Name.toLowerCase())) rbac.addRole(roleDefinition);
      const scopes = scope
        ? [scope]
        : [...estate.subscriptions.values()].map((s) => `/subscriptions/${s.subscriptionId}`);
      for (const s of scopes)
        rbac.assign({ principalObjectId: principal.objectId, role: roleDefinition.Name, scope: s });
      return principal;
    },
    stop: async () => undefined,
  };
  const admin = adminRoutes(emulator);

  const identityRouter = new Router()
    .add("GET", "/{tenant}/.well-known/openid-configuration", (_r, p) =>
      identity.openIdConfiguration(p.tenant!),
    )
    .add("GET", "/{tenant}/v2.0/.well-known/openid-configuration", (_r, p) =>
      identity.openIdConfiguration(`${p.tenant!}/v2.0`),
    )
    .add("GET", "/{tenant}/discovery/keys", () => identity.jwks())
    .add("GET", "/{tenant}/discovery/v2.0/keys", () => identity.jwks())
    .add("POST", "/{tenant}/oauth2/token", (r) => identity.token(r))
    .add("POST", "/{tenant}/oauth2/v2.0/token", (r) => identity.token(r))
    .add("GET", "/common/discovery/instance", (r) => instanceDiscovery(r, origin))
    .add("GET", "/metadata/endpoints", (r) => cloudMetadata(origin, r));

  /** What one ARM call learned on its way, for the request log. */
  interface CallMeta {
    clientId?: string;
    throttledBy?: ThrottleSource;
  }

  /**
   * ARM's limits, then the Storage RP's, in Azure's order: ARM counts every call it routes (so a
   * call the Storage RP refuses has used an ARM token), and only calls ARM lets through and
   * authorizes reach the provider.
   */
  async function dispatchArm(
    req: Request,
    res: ServerResponse,
    requestId: string,
    meta: CallMeta,
  ): Promise<Response> {
    const path = "/" + req.segments.join("/");
    const matched = arm.match(req.method, req.segments);
    const route =
      typeof matched === "object"
        ? byPattern.get(`${matched.route.method} ${matched.route.pattern}`)
        : undefined;
    const operation = route?.operation ?? "unknown";
    let fault = faults.take({ method: req.method, path, operation });
    if (fault?.type === "hold") {
      await faults.hold({ method: req.method, path, operation });
      fault = undefined;
    }
    if (fault && !strikesAfter(fault)) {
      // A fault fires before sign-in is checked (a dropped connection cares for no token), but the
      // log still names who received it when the token is good.
      meta.clientId = callerOf(req);
      const injected = await applyFault(fault, res, requestId);
      if (injected) return injected;
      return { status: 0 };
    }
    const { principal } = identity.authenticate(req.headers.authorization, ARM_AUDIENCES);
    meta.clientId = principal.clientId;
    res.setHeader("x-keyturn-client", principal.clientId);
    if (settings.throttling) {
      // ARM counts every call of a signed-in principal before it looks at what the call asks, so a
      // call it then refuses (no api-version, an unknown path or group) has used a token too.
      const sub =
        typeof matched === "object"
          ? matched.params.subscriptionId
          : req.segments[0]?.toLowerCase() === "subscriptions"
            ? req.segments[1]
            : undefined;
      const kind = route?.kind ?? (req.method === "GET" || req.method === "HEAD" ? "read" : "write");
      const refused = takeArmToken(principal, sub, kind, res);
      if (refused) {
        meta.throttledBy = "arm";
        throw refused;
      }
    }
    const apiVersion = req.query.get("api-version");
    if (!apiVersion) {
      throw new AzureError(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
      );
    }
    if (matched === "method") {
      throw new AzureError(
        405,
        "MethodNotAllowed",
        `The requested resource does not support http method '${req.method}'.`,
      );
    }
    if (!matched || !route) throw unknownArmPath(req.segments);
    const params = matched.params;
    const subscriptionId = params.subscriptionId;
    if (subscriptionId !== undefined) checkScope(estate, subscriptionId, params.resourceGroupName);
    checkApiVersion(route, apiVersion, req.segments);
    const scope = route.method === "POST" ? path.split("/").slice(0, -1).join("/") : path;
    // Every route names the action Azure checks (test/unit/emulator/routes.test.ts): one that names none
    // is refused, so a route can never slip past the role file unchecked.
    if (!route.action)
      throw new AzureError(500, "InternalServerError", `${operation} declares no RBAC action.`);
    rbac.authorize(principal, route.action, scope);
    if (settings.storageRpLimits && route.storageRp && subscriptionId !== undefined) {
      const region = route.storageRp.region(params);
      const taken =
        region === undefined
          ? { ok: true as const }
          : storageRpThrottle.take(subscriptionId, region, route.storageRp.kind);
      if (!taken.ok) {
        meta.throttledBy = "storageRp";
        throw new AzureError(
          429,
          "TooManyRequests",
          `The request is being throttled as the limit has been reached for operation type - ${taken.observationWindow}. For more information, see - https://aka.ms/srpthrottlinglimits`,
          { "retry-after": String(taken.retryAfterSeconds) },
        );
      }
    }
    if (settings.latency === "realistic") await sleep(sampleLatencyMs(operation, settings.latencyScale));
    const response = await route.handler(req, params, {
      principal,
      subscriptionId: subscriptionId ?? "",
      scope,
    });
    // A fault that strikes after the work: the write happened, its answer is lost.
    if (fault) return (await applyFault(fault, res, requestId)) ?? { status: 0 };
    return response;
  }

  function callerOf(req: Request): string | undefined {
    try {
      return identity.authenticate(req.headers.authorization, ARM_AUDIENCES).principal.clientId;
    } catch {
      return undefined;
    }
  }

  /**
   * Draws one token from the principal's bucket for the subscription (the tenant's, for a call that
   * names none) and sets ARM's remaining-calls header, on a refusal too. Refused: ARM's 429.
   */
  function takeArmToken(
    principal: Principal,
    subscriptionId: string | undefined,
    kind: ArmKind,
    res: ServerResponse,
  ): AzureError | undefined {
    const scope = subscriptionId ?? TENANT_SCOPE;
    const taken = throttle.take(principal.objectId, scope, kind);
    const level = subscriptionId === undefined ? "tenant" : "subscription";
    res.setHeader(
      `x-ms-ratelimit-remaining-${level}-${kind === "read" ? "reads" : "writes"}`,
      String(taken.ok ? taken.remaining : 0),
    );
    if (taken.ok) return undefined;
    const target =
      subscriptionId === undefined ? `tenant '${estate.tenantId}'` : `subscription '${subscriptionId}'`;
    return new AzureError(
      429,
      subscriptionId === undefined ? "TenantRequestsThrottled" : "SubscriptionRequestsThrottled",
      `Number of '${kind}' requests for ${target} actor '${principal.objectId}' exceeded. Please try again after '${taken.retryAfterSeconds}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling`,
      { "retry-after": String(taken.retryAfterSeconds) },
    );
  }

  async function handle(incoming: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const arrived = now();
    const meta: CallMeta = {};
    let status = 500;
    let operation = "unknown";
    let req: Request | undefined;
    try {
      req = await readRequest(incoming);
      const first = (req.segments[0] ?? "").toLowerCase();
      let response: Response;
      if (first === "subscriptions" || first === "providers") {
        const matched = arm.match(req.method, req.segments);
        if (typeof matched === "object")
          operation =
            byPattern.get(`${matched.route.method} ${matched.route.pattern}`)?.operation ?? operation;
        response = await dispatchArm(req, res, requestId, meta);
      } else {
        const router = first === "_admin" ? admin : identityRouter;
        const matched = router.match(req.method, req.segments);
        if (typeof matched !== "object")
          throw new AzureError(404, "NotFound", `The requested path '${req.url.pathname}' was not found.`);
        operation = first === "_admin" ? "admin" : "identity";
        response = await matched.route.handler(req, matched.params);
      }
      if (response.status === 0) return; // a fault already handled the socket
      status = response.status;
      send(res, response, requestId);
    } catch (e) {
      const error = e instanceof AzureError ? e : internalError(e);
      status = error.status;
      send(res, errorResponse(error), requestId);
    } finally {
      const first = req?.segments[0]?.toLowerCase();
      if (req && (first === "subscriptions" || first === "providers")) {
        const throttledBy = status === 429 ? (meta.throttledBy ?? "fault") : undefined;
        const counts = emulator.throttled;
        counts.requests++;
        if (throttledBy) {
          counts.total++;
          counts.bySource[throttledBy]++;
          counts.byOperation[operation] = (counts.byOperation[operation] ?? 0) + 1;
        }
        appendBounded(requestLog, {
          at: arrived.toISOString(),
          method: req.method,
          path: req.url.pathname,
          operation,
          status,
          durationMs: now().getTime() - arrived.getTime(),
          clientId: meta.clientId,
          action: actionOf(req),
          ...(throttledBy ? { throttledBy } : {}),
        });
      }
    }
  }

  const sockets = new Set<Socket>();
  const track = (server: Server) =>
    server.on("connection", (socket: Socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });

  const server = track(createServer({ key: tls.key, cert: tls.cert }, (i, r) => void handle(i, r)));
  await listen(server, options.port ?? 0);
  origin = `https://127.0.0.1:${(server.address() as { port: number }).port}`;

  const vaultServers: Server[] = [];
  for (const vault of estate.vaults.values())
    vaultServers.push(await startVault(ctx, vault, tls, () => origin, track, vaultLog, faults));
  // Each Batch account's data plane, where a shared key is proven by using it (emulator/batchdata.ts).
  const batchServers: Server[] = [];
  for (const batch of estate.batchAccounts.values())
    batchServers.push(await startBatchDataPlane(ctx, batch, tls, track, batchLog));
  // Each container registry's data plane (`/v2/`) on its own listener: its loginServer.
  const registryServers: Server[] = [];
  for (const registry of estate.registries.values())
    registryServers.push(await startRegistryServer(registry, tls, track, registryLog, now));

  // Service Management (classic accounts' keys) on its own listener, as management.core.windows.net is.
  let serviceManagementOrigin = "";
  const serviceManagement = serviceManagementService(ctx, () => serviceManagementOrigin);
  const serviceManagementServer = track(
    createServer({ key: tls.key, cert: tls.cert }, (incoming, res) => {
      const requestId = randomUUID();
      const arrived = now();
      const call: ServiceManagementCall = {};
      readRequest(incoming)
        .then(async (req) => {
          const route = serviceManagement.route(req);
          const info = {
            method: req.method,
            path: req.url.pathname,
            operation: typeof route === "object" ? route.operation : "storageServices.unknown",
          };
          let fault = faults.takeServiceManagement(info);
          if (fault?.type === "hold") {
            await faults.hold(info);
            fault = undefined;
          }
          let response: Response;
          if (fault && !strikesAfter(fault)) {
            response = (await applyFault(fault, res, requestId)) ?? { status: 0 };
          } else {
            response = await serviceManagement
              .serve(req, call)
              .catch((e: unknown) => serviceManagementError(e instanceof AzureError ? e : internalError(e)));
            // Struck after the work: the key was regenerated, its answer is lost.
            if (fault) response = (await applyFault(fault, res, requestId)) ?? { status: 0 };
          }
          appendBounded(requestLog, {
            at: arrived.toISOString(),
            method: req.method,
            path: req.url.pathname,
            operation: info.operation,
            status: response.status,
            durationMs: now().getTime() - arrived.getTime(),
            clientId: call.principal?.clientId,
            ...(typeof route === "object" ? { action: route.action } : {}),
          });
          return response;
        })
        .then(
          (response) => {
            if (response.status !== 0) send(res, response, requestId); // 0: a fault handled the socket
          },
          (e: unknown) =>
            send(res, serviceManagementError(e instanceof AzureError ? e : internalError(e)), requestId),
        );
    }),
  );
  await listen(serviceManagementServer, 0);
  serviceManagementOrigin = `https://127.0.0.1:${(serviceManagementServer.address() as { port: number }).port}`;

  if (options.consumerJobsIntervalMs !== undefined) jobs.start(options.consumerJobsIntervalMs);

  emulator.connection = {
    armEndpoint: origin,
    authorityHost: origin,
    tenantId: estate.tenantId,
    clientId: keyturn.clientId,
    clientSecret: keyturn.clientSecret,
    subscriptionIds: [...estate.subscriptions.values()].map((s) => s.subscriptionId),
    caCertFile,
    adminEndpoint: `${origin}/_admin`,
    serviceManagementEndpoint: serviceManagementOrigin,
    vaults: Object.fromEntries([...estate.vaults.values()].map((v) => [v.name, v.vaultUri])),
  };
  outages.evaluate("start");
  emulator.stop = async () => {
    stopped = true;
    faults.release(); // a held request would keep its handler running forever
    if (wake) clearTimeout(wake.timer);
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    await jobs.stop();
    await Promise.allSettled([...running]);
    for (const socket of sockets) socket.destroy();
    await Promise.all(
      [server, serviceManagementServer, ...vaultServers, ...batchServers, ...registryServers].map(
        (s) => new Promise<void>((r) => s.close(() => r())),
      ),
    );
    await dataPlane.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return emulator;
}

/** The defaults with the given settings, checked as `PATCH /_admin/settings` checks them (undefined: the default). */
function settingsOf(given: Partial<EmulatorSettings> = {}): EmulatorSettings {
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  const { settings, problems } = mergeSettings(DEFAULT_SETTINGS, defined);
  if (problems.length > 0) throw new Error(`Invalid emulator settings: ${problems.join("; ")}.`);
  return settings;
}

function accountsOf(estate: Estate) {
  return [...estate.storageAccounts.values()].map((a) => ({
    name: a.name,
    key1: a.keys.key1.value,
    key2: a.keys.key2.value,
  }));
}

/**
 * The keys the data plane accepts now: a key that has not propagated yet, and both keys of an account
 * without shared-key access, are replaced by a value nobody holds (made here, never issued), so they
 * get 403 while the account stays served.
 */
function dataPlaneAccounts(estate: Estate, at: Date) {
  return [...estate.storageAccounts.values()].map((a) => {
    const accepted = (name: "key1" | "key2") =>
      keyWorks(a, a.keys[name].value, at) ? a.keys[name].value : newStorageKey();
    return { name: a.name, key1: accepted("key1"), key2: accepted("key2") };
  });
}

/** Every datastore's container exists in Azurite, so a probe with a live key succeeds. */
async function prepareContainers(estate: Estate, dataPlane: DataPlane): Promise<void> {
  const wanted = new Set<string>();
  for (const ws of estate.workspaces.values()) {
    for (const ds of ws.datastores.values()) {
      if (ds.datastoreType !== "AzureFile") wanted.add(`${ds.accountName}\n${ds.containerName}`);
    }
  }
  const pending = [...wanted];
  const worker = async () => {
    for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
      const [account, container] = next.split("\n") as [string, string];
      await dataPlane.ensureContainer(account, container);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

function checkScope(estate: Estate, subscriptionId: string, resourceGroup: string | undefined): void {
  const sub = estate.subscriptions.get(subscriptionId.toLowerCase());
  if (!sub)
    throw new AzureError(
      404,
      "SubscriptionNotFound",
      `The subscription '${subscriptionId}' could not be found.`,
    );
  if (resourceGroup !== undefined && !sub.resourceGroups.has(resourceGroup.toLowerCase())) {
    throw new AzureError(
      404,
      "ResourceGroupNotFound",
      `Resource group '${resourceGroup}' could not be found.`,
    );
  }
}

function checkApiVersion(route: ArmRoute, apiVersion: string, segments: string[]): void {
  const supported = API_VERSIONS[route.provider];
  if (supported.includes(apiVersion)) return;
  if (route.provider === "subscriptions") {
    throw new AzureError(
      400,
      "InvalidApiVersionParameter",
      `The api-version '${apiVersion}' is invalid. The supported versions are '${supported.join(",")}'.`,
    );
  }
  const providerIndex = segments.findIndex((s) => s.toLowerCase() === "providers");
  const type = segments[providerIndex + 2] ?? "";
  throw new AzureError(
    400,
    "NoRegisteredProviderFound",
    `No registered resource provider found for location 'westeurope' and API version '${apiVersion}' for type '${type}'. The supported api-versions are '${supported.join(", ")}'. The supported locations are 'westeurope, northeurope, eastus, westus2'.`,
  );
}

/** ARM answers an unknown namespace or type with 400/404 naming it; anything else is a 404. */
function unknownArmPath(segments: string[]): AzureError {
  const i = segments.findIndex((s) => s.toLowerCase() === "providers");
  const namespace = i >= 0 ? segments[i + 1] : undefined;
  const known = [
    "microsoft.storage",
    "microsoft.classicstorage",
    "microsoft.machinelearningservices",
    "microsoft.batch",
    "microsoft.containerregistry",
  ];
  if (namespace && !known.includes(namespace.toLowerCase())) {
    return new AzureError(
      400,
      "InvalidResourceNamespace",
      `The resource namespace '${namespace}' is invalid.`,
    );
  }
  if (namespace) {
    return new AzureError(
      404,
      "InvalidResourceType",
      `The resource type '${segments
        .slice(i + 2)
        .filter((_, k) => k % 2 === 0)
        .join("/")}' could not be found in the namespace '${namespace}'.`,
    );
  }
  return new AzureError(404, "NotFound", `The requested path '/${segments.join("/")}' was not found.`);
}

function internalError(e: unknown): AzureError {
  // Never echo the thrown value: it could carry request content (I3). The stack goes to stderr for the developer.
  process.stderr.write(`keyturn emulator: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  return new AzureError(
    500,
    "InternalServerError",
    "The emulator failed to process the request; see its log.",
  );
}

async function applyFault(
  fault: FaultAction,
  res: ServerResponse,
  requestId: string,
): Promise<Response | undefined> {
  switch (fault.type) {
    case "status":
      return errorResponse(
        new AzureError(
          fault.status,
          fault.code ?? "InjectedFault",
          fault.message ?? `Injected fault: status ${fault.status}.`,
          fault.retryAfterSeconds !== undefined ? { "retry-after": String(fault.retryAfterSeconds) } : {},
        ),
      );
    case "drop":
      res.socket?.destroy();
      return undefined;
    case "timeout": {
      const socket = res.socket;
      setTimeout(() => socket?.destroy(), (fault.seconds ?? 120) * 1000).unref();
      return undefined;
    }
    case "hold":
      return undefined; // served once released, before any fault applies
    case "failLro":
      return {
        status: 500,
        body: { error: { code: "InternalServerError", message: `request ${requestId}` } },
      };
  }
}

/** The Key Vault data action a secrets call needs (for the role-file cross-check). */
export function vaultActionOf(method: string, segments: string[]): string | undefined {
  if (segments[0]?.toLowerCase() !== "secrets") return undefined;
  const base = "Microsoft.KeyVault/vaults/secrets";
  if (method === "PUT") return `${base}/setSecret/action`;
  if (method === "PATCH") return `${base}/update/action`;
  if (method === "DELETE") return `${base}/delete`;
  if (method === "GET") {
    return segments.length === 1 || segments[2]?.toLowerCase() === "versions"
      ? `${base}/readMetadata/action`
      : `${base}/getSecret/action`;
  }
  return undefined;
}

function logVaultCall(
  ctx: EmulatorContext,
  vault: KeyVault,
  req: Request,
  status: number,
  log: RequestLogEntry[],
): void {
  let clientId: string | undefined;
  try {
    clientId = ctx.identity.authenticate(req.headers.authorization, [VAULT_AUDIENCE]).principal.clientId;
  } catch {
    clientId = undefined;
  }
  appendBounded(log, {
    at: ctx.now().toISOString(),
    method: req.method,
    path: `${vault.name}${req.url.pathname}`,
    operation: "vault",
    status,
    clientId,
    action: vaultActionOf(req.method, req.segments),
  });
}

async function startVault(
  ctx: EmulatorContext,
  vault: KeyVault,
  tls: { key: string; cert: string },
  origin: () => string,
  track: (s: Server) => Server,
  vaultLog: RequestLogEntry[],
  faults: Faults,
): Promise<Server> {
  const handler = vaultHandler(ctx, vault, origin);
  const server = track(
    createServer({ key: tls.key, cert: tls.cert }, (incoming, res) => {
      const requestId = randomUUID();
      readRequest(incoming)
        .then(async (req) => {
          // Fault rules naming a "keyVault.*" operation; the path is /{vault}/secrets/....
          const fault = faults.takeVault({
            method: req.method,
            path: `/${vault.name}${req.url.pathname}`,
            operation: vaultOperationOf(req.method, req.segments),
          });
          let response: Response;
          if (fault && !strikesAfter(fault)) {
            response = (await applyFault(fault, res, requestId)) ?? { status: 0 };
          } else {
            response = await handler(req).catch((e: unknown) =>
              errorResponse(e instanceof AzureError ? e : internalError(e)),
            );
            // Struck after the work: the secret was written, its answer is lost.
            if (fault) response = (await applyFault(fault, res, requestId)) ?? { status: 0 };
          }
          logVaultCall(ctx, vault, req, response.status, vaultLog);
          return response;
        })
        .then(
          (response) => {
            if (response.status !== 0) send(res, response, requestId); // 0: a fault handled the socket
          },
          (e: unknown) => send(res, errorResponse(e instanceof AzureError ? e : internalError(e)), requestId),
        );
    }),
  );
  await listen(server, 0);
  vault.vaultUri = `https://127.0.0.1:${(server.address() as { port: number }).port}/`;
  return server;
}

async function makeCertificate(): Promise<{ key: string; cert: string }> {
  const pems = await Promise.resolve(
    generate([{ name: "commonName", value: "keyturn emulator" }], {
      notAfterDate: new Date(Date.now() + 30 * 86_400_000),
      keySize: 2048,
      algorithm: "sha256",
      extensions: [
        { name: "basicConstraints", cA: true },
        { name: "keyUsage", keyCertSign: true, digitalSignature: true, keyEncipherment: true },
        { name: "extKeyUsage", serverAuth: true },
        {
          name: "subjectAltName",
          altNames: [
            { type: 2, value: "localhost" },
            { type: 7, ip: "127.0.0.1" },
          ],
        },
      ],
    }),
  );
  return { key: pems.private, cert: pems.cert };
}
