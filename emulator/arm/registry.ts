/**
 * Microsoft.ContainerRegistry `registries` as `@azure/arm-containerregistry@12` (api-version
 * 2025-11-01) sees them: get, listCredentials and regenerateCredential, with the admin user's two
 * passwords (seed 003). Also the registry's data plane (`GET /v2/` with the admin user's basic auth,
 * on the registry's own HTTPS listener, its `loginServer`), which password a workspace resync takes
 * (`registryResyncPick`, since Microsoft does not document it: DESIGN §11), and what every workspace
 * holds, for the outage log.
 *
 * Shapes and errors follow the REST spec (Registries_Get, Registries_ListCredentials,
 * Registries_RegenerateCredential, 2025-11-01): credentials are `{username, passwords: [{name, value}]}`
 * in the order password, password2; a registry whose admin user is disabled answers the credential
 * operations 400 `UnAuthorizedForCredentialOperations`. The server has already authenticated,
 * throttled and checked RBAC, the api-version and the subscription/resource group before a handler runs.
 */
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import type { ArmRoute, EmulatorContext, RegistryResyncPick } from "../context";
import { AzureError, isObject, jsonBody, readRequest, send, type Request, type Response } from "../http";
import {
  newRegistryPassword,
  registryId,
  resourceKey,
  type ContainerRegistry,
  type Estate,
  type RegistryPasswordName,
  type Workspace,
} from "../model";
import { filterByGroup, getResource, page } from "./common";

export const REGISTRY_PROVIDER = "Microsoft.ContainerRegistry";
export const REGISTRY_TYPE = "Microsoft.ContainerRegistry/registries";
export const REGISTRY_API_VERSION = "2025-11-01";
export const REGISTRY_PASSWORD_NAMES: readonly RegistryPasswordName[] = ["password", "password2"];

/** The RBAC actions, as Azure lists them (Azure permissions for Containers). */
export const REGISTRY_ACTIONS = {
  read: "Microsoft.ContainerRegistry/registries/read",
  listCredentials: "Microsoft.ContainerRegistry/registries/listCredentials/action",
  regenerateCredential: "Microsoft.ContainerRegistry/registries/regenerateCredential/action",
} as const;

const REGISTRY =
  "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries/{registryName}";

// ---------------------------------------------------------------------------------------------
// Bodies

function registryResource(registry: ContainerRegistry): Record<string, unknown> {
  return {
    id: registry.id,
    name: registry.name,
    type: REGISTRY_TYPE,
    location: registry.location,
    tags: {},
    sku: { name: "Standard", tier: "Standard" },
    properties: {
      loginServer: registry.loginServer,
      creationDate: registry.createdAt.toISOString(),
      provisioningState: "Succeeded",
      adminUserEnabled: registry.adminUserEnabled,
      networkRuleSet: { defaultAction: "Allow", ipRules: [] },
      policies: {
        quarantinePolicy: { status: "disabled" },
        trustPolicy: { type: "Notary", status: "disabled" },
        retentionPolicy: { days: 7, status: "disabled" },
        exportPolicy: { status: "enabled" },
        azureADAuthenticationAsArmPolicy: { status: "enabled" },
      },
      encryption: { status: "disabled" },
      dataEndpointEnabled: false,
      dataEndpointHostNames: [],
      privateEndpointConnections: [],
      publicNetworkAccess: "Enabled",
      networkRuleBypassOptions: "AzureServices",
      zoneRedundancy: "Disabled",
      anonymousPullEnabled: false,
    },
  };
}

/** RegistryListCredentialsResult: the admin username (the registry's name) and both passwords. */
function credentialsResult(registry: ContainerRegistry): Record<string, unknown> {
  return {
    username: registry.name,
    passwords: REGISTRY_PASSWORD_NAMES.map((name) => ({ name, value: registry.passwords[name] })),
  };
}

/** ACR's answer to a credential operation on a registry whose admin user is disabled. */
function requireAdminUser(registry: ContainerRegistry): void {
  if (registry.adminUserEnabled) return;
  throw new AzureError(
    400,
    "UnAuthorizedForCredentialOperations",
    `Cannot perform credential operations for ${registry.id} as admin user is disabled. Kindly enable admin user as per docs: https://docs.microsoft.com/en-us/azure/container-registry/container-registry-authentication#admin-account`,
  );
}

/**
 * The `name` of a RegenerateCredentialParameters body. The spec's PasswordName is `password` or
 * `password2`; ACR's words for another value are not documented (assumed: 400 naming both).
 */
function parsePasswordName(req: Request): RegistryPasswordName {
  const body = jsonBody(req);
  const name = isObject(body) ? body.name : undefined;
  if (name === "password" || name === "password2") return name;
  throw new AzureError(
    400,
    "InvalidRequestBody",
    `The value '${typeof name === "string" ? name : String(JSON.stringify(name))}' of 'name' in the request body is invalid. Allowed values: 'password', 'password2'.`,
  );
}

// ---------------------------------------------------------------------------------------------
// Passwords: regeneration, liveness, what a workspace holds and takes

/**
 * Regenerates one admin password (also the way an out-of-band change is made): the old value is
 * refused by `/v2/` at once; the new one is recorded in `issuedKeys` (the whole-run secret scan)
 * and `registryRegenerations` (tests count them). A cause starting "out-of-band" marks it as such.
 */
export async function regenerateRegistryPassword(
  ctx: EmulatorContext,
  registry: ContainerRegistry,
  name: RegistryPasswordName,
  cause: string,
): Promise<void> {
  registry.passwords[name] = newRegistryPassword();
  ctx.issuedKeys.add(registry.passwords[name]);
  ctx.registryRegenerations.push({
    registry: registry.name,
    password: name,
    at: ctx.now().toISOString(),
    outOfBand: cause.startsWith("out-of-band"),
  });
  await ctx.changed(cause);
}

/** Which admin password a value is now, if the registry's admin user can sign in with it. */
export function livePasswordName(
  registry: ContainerRegistry,
  value: string,
): RegistryPasswordName | undefined {
  if (!registry.adminUserEnabled) return undefined;
  return REGISTRY_PASSWORD_NAMES.find((name) => registry.passwords[name] === value);
}

/** The registry a workspace names (`properties.containerRegistry`), when the estate holds it. */
export function registryOf(estate: Estate, ws: Workspace): ContainerRegistry | undefined {
  return estate.registries.get(resourceKey(ws.containerRegistryId));
}

/**
 * The password a resync makes a workspace take, by `registryResyncPick`: `password` or `password2`
 * always; `keepIfLive` the one it holds while the registry still accepts it, else `password`;
 * `random` either. Undefined when the admin user is disabled: the service cannot read the passwords
 * (ARM refuses it as it refuses anyone), so the workspace keeps what it holds.
 */
export function chooseRegistryPassword(
  registry: ContainerRegistry,
  held: string | undefined,
  pick: RegistryResyncPick,
  random: () => number = Math.random,
): RegistryPasswordName | undefined {
  if (!registry.adminUserEnabled) return undefined;
  switch (pick) {
    case "password":
    case "password2":
      return pick;
    case "keepIfLive":
      return (held !== undefined ? livePasswordName(registry, held) : undefined) ?? "password";
    case "random":
      return random() < 0.5 ? "password" : "password2";
  }
}

/**
 * On a workspace resync (resyncKeys completing, or the workspace syncing itself): the workspace
 * re-reads its registry's passwords and takes one by `registryResyncPick`. A workspace whose
 * registry the estate does not hold is left as it is. The caller reports the change (`ctx.changed`).
 */
export function resyncRegistryPassword(ctx: EmulatorContext, ws: Workspace): void {
  const registry = registryOf(ctx.estate, ws);
  if (!registry) return;
  const name = chooseRegistryPassword(registry, ws.registryPassword?.value, ctx.settings.registryResyncPick);
  if (name) ws.registryPassword = { name, value: registry.passwords[name] };
}

/**
 * A workspace's `listKeys().containerRegistryCredentials` (ListWorkspaceKeysResult, seed 003): the
 * registry's admin username and the one password the workspace holds, under the name it had when
 * the workspace took it (its value may since have been regenerated: then it is dead). Null when the
 * workspace holds none. `location` is null, as in Microsoft's sample.
 */
export function workspaceRegistryCredentials(ws: Workspace): Record<string, unknown> | null {
  if (!ws.registryPassword) return null;
  return {
    location: null,
    username: ws.containerRegistryId.slice(ws.containerRegistryId.lastIndexOf("/") + 1),
    passwords: [{ name: ws.registryPassword.name, value: ws.registryPassword.value }],
  };
}

// ---------------------------------------------------------------------------------------------
// Outage tracking (for emulator/consumers.ts)

/**
 * A workspace holding a registry admin password: a consumer like a storage-key holder, but of a
 * registry. Shaped so emulator/consumers.ts can map it onto a `ConsumerHolding` one to one.
 */
export interface RegistryHolding {
  kind: "workspaceRegistry";
  /** `{workspace id}/containerRegistry`: distinct from the workspace's storage-key holding. */
  id: string;
  /** `{workspace}/registry {registry}` */
  name: string;
  registryId: string;
  registryName: string;
  heldPassword: string;
}

/** Every workspace that holds a password of a registry the estate holds. */
export function registryHoldings(estate: Estate): RegistryHolding[] {
  const holdings: RegistryHolding[] = [];
  for (const ws of estate.workspaces.values()) {
    const registry = registryOf(estate, ws);
    if (!registry || !ws.registryPassword) continue;
    holdings.push({
      kind: "workspaceRegistry",
      id: `${ws.id}/containerRegistry`,
      name: `${ws.name}/registry ${registry.name}`,
      registryId: registry.id,
      registryName: registry.name,
      heldPassword: ws.registryPassword.value,
    });
  }
  return holdings;
}

/**
 * Every password a registry accepts now (admin user on), with its registry's lower-cased id: what
 * the outage log adds to its live keys, so a holding whose password is not among them is an outage.
 */
export function liveRegistryPasswords(estate: Estate): { value: string; registryKey: string }[] {
  const live: { value: string; registryKey: string }[] = [];
  for (const registry of estate.registries.values()) {
    if (!registry.adminUserEnabled) continue;
    for (const name of REGISTRY_PASSWORD_NAMES)
      live.push({ value: registry.passwords[name], registryKey: resourceKey(registry.id) });
  }
  return live;
}

/** Whether a holding's password works on its registry now (the outage log's test, for one holding). */
export function registryHoldingWorks(estate: Estate, holding: RegistryHolding): boolean {
  const registry = estate.registries.get(resourceKey(holding.registryId));
  return registry !== undefined && livePasswordName(registry, holding.heldPassword) !== undefined;
}

// ---------------------------------------------------------------------------------------------
// ARM routes

export function registryRoutes(ctx: EmulatorContext): ArmRoute[] {
  const find = (p: Record<string, string>): ContainerRegistry =>
    getResource(
      ctx.estate.registries,
      registryId(p.subscriptionId ?? "", p.resourceGroupName ?? "", p.registryName ?? ""),
      REGISTRY_TYPE,
      p.registryName ?? "",
      p.resourceGroupName ?? "",
    );
  const route = (r: Omit<ArmRoute, "provider">): ArmRoute => ({ ...r, provider: REGISTRY_PROVIDER });
  return [
    route({
      method: "GET",
      pattern: "/subscriptions/{subscriptionId}/providers/Microsoft.ContainerRegistry/registries",
      action: REGISTRY_ACTIONS.read,
      kind: "read",
      operation: "registries.list",
      handler: (req, p) => ({
        status: 200,
        body: page(
          filterByGroup(ctx.estate.registries.values(), p.subscriptionId!).map(registryResource),
          req,
          100,
        ),
      }),
    }),
    route({
      method: "GET",
      pattern: REGISTRY,
      action: REGISTRY_ACTIONS.read,
      kind: "read",
      operation: "registries.get",
      handler: (_req, p) => ({ status: 200, body: registryResource(find(p)) }),
    }),
    route({
      method: "POST",
      pattern: `${REGISTRY}/listCredentials`,
      action: REGISTRY_ACTIONS.listCredentials,
      kind: "write",
      operation: "registries.listCredentials",
      handler: (_req, p) => {
        const registry = find(p);
        requireAdminUser(registry);
        return { status: 200, body: credentialsResult(registry) };
      },
    }),
    route({
      method: "POST",
      pattern: `${REGISTRY}/regenerateCredential`,
      action: REGISTRY_ACTIONS.regenerateCredential,
      kind: "write",
      operation: "registries.regenerateCredential",
      handler: async (req, p) => {
        const registry = find(p);
        requireAdminUser(registry);
        const name = parsePasswordName(req);
        await regenerateRegistryPassword(
          ctx,
          registry,
          name,
          `regenerateCredential ${registry.name}/${name}`,
        );
        return { status: 200, body: credentialsResult(registry) };
      },
    }),
  ];
}

// ---------------------------------------------------------------------------------------------
// The data plane: `GET /v2/` (the Docker Registry HTTP API V2 version check) with basic auth

const DISTRIBUTION_HEADER = { "docker-distribution-api-version": "registry/2.0" };

/** ACR's body for an unauthenticated or refused request. */
const UNAUTHORIZED_BODY = {
  errors: [
    {
      code: "UNAUTHORIZED",
      message: "authentication required, visit https://aka.ms/acr/authorization for more information.",
      detail: null,
    },
  ],
};

/** `Basic base64(user:password)` → its parts; anything else → undefined. */
function basicCredentials(header: string | undefined): { username: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? "");
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * The registry's answer to `/v2/`: 200 `{}` to the admin user (the registry's name, case-insensitive)
 * with a live password while the admin user is enabled; otherwise 401 with ACR's challenge
 * (`WWW-Authenticate: Bearer realm=…/oauth2/token,service=…`) and its `{errors:[…]}` body. Any other
 * path: 404 in the registry's words (the emulator serves no repositories).
 */
export function registryDataPlane(registry: ContainerRegistry, req: Request): Response {
  const path = req.segments.join("/").toLowerCase();
  if (path !== "v2" || (req.method !== "GET" && req.method !== "HEAD")) {
    return {
      status: 404,
      headers: DISTRIBUTION_HEADER,
      body: { errors: [{ code: "NOT_FOUND", message: "the emulator serves only /v2/", detail: null }] },
    };
  }
  const given = basicCredentials(
    typeof req.headers.authorization === "string" ? req.headers.authorization : undefined,
  );
  const accepted =
    given !== undefined &&
    given.username.toLowerCase() === registry.name.toLowerCase() &&
    livePasswordName(registry, given.password) !== undefined;
  if (accepted) return { status: 200, headers: DISTRIBUTION_HEADER, body: {} };
  return {
    status: 401,
    headers: {
      ...DISTRIBUTION_HEADER,
      "www-authenticate": `Bearer realm="https://${registry.loginServer}/oauth2/token",service="${registry.loginServer}"`,
    },
    body: UNAUTHORIZED_BODY,
  };
}

/** The registry log's capacity; past it, the oldest tenth goes. */
export const MAX_REGISTRY_LOG = 10_000;

/** Every `/v2/` call, for tests: who was refused and when. Never the credentials. */
export interface RegistryLogEntry {
  at: string;
  registry: string;
  method: string;
  path: string;
  status: number;
}

/**
 * Starts the registry's own HTTPS listener on 127.0.0.1 and sets its `loginServer` (`127.0.0.1:{port}`,
 * Azure's `{name}.azurecr.io`). `track` registers the server's sockets so stopping the emulator ends them.
 */
export async function startRegistryServer(
  registry: ContainerRegistry,
  tls: { key: string; cert: string },
  track: (s: Server) => Server,
  log: RegistryLogEntry[],
  now: () => Date,
): Promise<Server> {
  const server = track(
    createServer({ key: tls.key, cert: tls.cert }, (incoming: IncomingMessage, res: ServerResponse) => {
      const requestId = randomUUID();
      readRequest(incoming)
        .then((req) => {
          const response = registryDataPlane(registry, req);
          if (log.length >= MAX_REGISTRY_LOG) log.splice(0, MAX_REGISTRY_LOG / 10);
          log.push({
            at: now().toISOString(),
            registry: registry.name,
            method: req.method,
            path: req.url.pathname,
            status: response.status,
          });
          send(res, response, requestId);
        })
        .catch(() => send(res, { status: 400, headers: DISTRIBUTION_HEADER }, requestId));
    }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  registry.loginServer = `127.0.0.1:${(server.address() as { port: number }).port}`;
  return server;
}
