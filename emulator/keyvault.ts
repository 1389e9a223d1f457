import type { EmulatorContext } from "./context";
import { AzureError, isObject, type Request, type Response } from "./http";
import { VAULT_AUDIENCE, type Principal } from "./identity";
import { newVersion, type KeyVault, type SecretVersion } from "./model";

/**
 * The Key Vault secrets data plane of one vault, as `@azure/keyvault-secrets` sees it: the
 * challenge handshake, data-plane RBAC, set/get/update/delete, version and secret listings with
 * paging, and a simple soft-delete (get/list/recover/purge deleted secrets).
 *
 * Each vault has its own HTTPS listener, so every request reaching this handler is for `vault`.
 * Error bodies are Key Vault's `{error:{code,message,innererror?}}`; secret values never appear in
 * an error message or a listing.
 */

/** API versions Key Vault accepts for secrets (the SDK sends the newest). */
const API_VERSIONS = new Set(["7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01"]);
const LATEST_API_VERSION = "2025-07-01";

const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;
const VERSION = /^[0-9a-zA-Z]{1,64}$/;
/** Key Vault's cap on a secret value (25 KiB). */
const MAX_VALUE_BYTES = 25 * 1024;
const MAX_TAGS = 15;
/** Key Vault pages hold at most 25 items; 25 is also the default. */
const MAX_PAGE_SIZE = 25;
const RECOVERABLE_DAYS = 90;
const RECOVERY_LEVEL = "Recoverable+Purgeable";

export const SECRET_ACTIONS = {
  set: "Microsoft.KeyVault/vaults/secrets/setSecret/action",
  get: "Microsoft.KeyVault/vaults/secrets/getSecret/action",
  readMetadata: "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
  update: "Microsoft.KeyVault/vaults/secrets/update/action",
  delete: "Microsoft.KeyVault/vaults/secrets/delete",
  recover: "Microsoft.KeyVault/vaults/secrets/recover/action",
  purge: "Microsoft.KeyVault/vaults/secrets/purge/action",
} as const;

/** `nbf`/`exp` of a version (the shared model has no fields for them; they are informational in Key Vault). */
interface Validity {
  notBefore?: number;
  expires?: number;
}
const validity = new WeakMap<SecretVersion, Validity>();

interface DeletedSecret {
  name: string;
  versions: SecretVersion[];
  deletedDate: number;
  scheduledPurgeDate: number;
}
/** Soft-deleted secrets per vault, by lower-cased name (Key Vault names are case-insensitive). */
const deletedSecrets = new WeakMap<KeyVault, Map<string, DeletedSecret>>();

/** An error answered with Key Vault's body, which may carry an `innererror`. */
class VaultError extends AzureError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly innerCode?: string,
    headers: Record<string, string> = {},
  ) {
    super(status, code, message, headers);
  }
}

const seconds = (d: Date): number => Math.floor(d.getTime() / 1000);

export function vaultHandler(
  ctx: EmulatorContext,
  vault: KeyVault,
  authorityHost: () => string,
): (req: Request) => Promise<Response> {
  const commonHeaders = (): Record<string, string> => ({
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "strict-transport-security": "max-age=31536000;includeSubDomains",
    "x-ms-keyvault-region": vault.location,
    "x-ms-keyvault-service-version": "1.9.2468.1",
    "x-ms-keyvault-network-info": "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;",
  });

  const challenge = (): string =>
    `Bearer authorization="${authorityHost().replace(/\/+$/, "")}/${ctx.identity.tenantId}", resource="${VAULT_AUDIENCE}"`;

  const unauthorized = (message: string): VaultError =>
    new VaultError(401, "Unauthorized", message, undefined, { "www-authenticate": challenge() });

  function authenticate(req: Request): Principal {
    const header = req.headers.authorization;
    if (!header || !/^bearer\s/i.test(header)) {
      throw unauthorized("AKV10000: Request is missing a Bearer or PoP token.");
    }
    try {
      return ctx.identity.authenticate(header, [VAULT_AUDIENCE]).principal;
    } catch (e) {
      if (!(e instanceof AzureError)) {
        throw unauthorized("[BearerReadAccessTokenFailed] Error validating token: 'S2S12005'.");
      }
      switch (e.code) {
        case "ExpiredAuthenticationToken":
          throw unauthorized("[TokenExpired] Error validating token: 'S2S12086'.");
        case "InvalidAuthenticationTokenAudience":
          throw unauthorized(
            `AKV10022: Invalid audience. Expected ${VAULT_AUDIENCE}, found: ${tokenAudience(header)}.`,
          );
        case "AuthenticationFailed":
          throw unauthorized("AKV10000: Request is missing a Bearer or PoP token.");
        default:
          throw unauthorized("[BearerReadAccessTokenFailed] Error validating token: 'S2S12005'.");
      }
    }
  }

  function authorize(principal: Principal, action: string, resource: string): void {
    if (ctx.rbac.isAllowed(principal, action, resource, true)) return;
    throw new VaultError(
      403,
      "Forbidden",
      "Caller is not authorized to perform action on resource.\r\n" +
        "If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n" +
        `Caller: appid=${principal.clientId};oid=${principal.objectId};iss=https://sts.windows.net/${ctx.identity.tenantId}/\r\n` +
        `Action: '${action}'\r\n` +
        `Resource: '${resource.toLowerCase()}'\r\n` +
        "Assignment: (not found)\r\n" +
        "DenyAssignmentId: null\r\n" +
        "DecisionReason: null \r\n" +
        `Vault: ${vault.name};location=${vault.location}\r\n`,
      "ForbiddenByRbac",
    );
  }

  const secretScope = (name: string): string => `${vault.id}/secrets/${name}`;
  const base = (): string => (vault.vaultUri.endsWith("/") ? vault.vaultUri : `${vault.vaultUri}/`);

  /** The stored entry for a name, matched exactly first, then case-insensitively as Key Vault does. */
  function findSecret(name: string): { name: string; versions: SecretVersion[] } | undefined {
    const exact = vault.secrets.get(name);
    if (exact) return { name, versions: exact };
    const lower = name.toLowerCase();
    for (const [stored, versions] of vault.secrets) {
      if (stored.toLowerCase() === lower) return { name: stored, versions };
    }
    return undefined;
  }

  function secretNotFound(nameOrId: string): VaultError {
    return new VaultError(
      404,
      "SecretNotFound",
      `A secret with (name/id) ${nameOrId} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
    );
  }

  function attributes(v: SecretVersion): Record<string, unknown> {
    const extra = validity.get(v);
    return {
      enabled: v.enabled,
      ...(extra?.notBefore !== undefined ? { nbf: extra.notBefore } : {}),
      ...(extra?.expires !== undefined ? { exp: extra.expires } : {}),
      created: seconds(v.created),
      updated: seconds(v.updated),
      recoveryLevel: RECOVERY_LEVEL,
      recoverableDays: RECOVERABLE_DAYS,
    };
  }

  /** SecretBundle (with the value) or, for listings and deletions, the same without it. */
  function bundle(name: string, v: SecretVersion, withValue: boolean): Record<string, unknown> {
    return {
      ...(withValue ? { value: v.value } : {}),
      ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
      id: `${base()}secrets/${name}/${v.version}`,
      attributes: attributes(v),
      ...(Object.keys(v.tags).length > 0 ? { tags: { ...v.tags } } : {}),
    };
  }

  function secretItem(v: SecretVersion, id: string): Record<string, unknown> {
    return {
      id,
      attributes: attributes(v),
      ...(Object.keys(v.tags).length > 0 ? { tags: { ...v.tags } } : {}),
      ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
    };
  }

  function deletedFields(d: DeletedSecret): Record<string, unknown> {
    return {
      recoveryId: `${base()}deletedsecrets/${d.name}`,
      deletedDate: d.deletedDate,
      scheduledPurgeDate: d.scheduledPurgeDate,
    };
  }

  function page<T>(
    req: Request,
    apiVersion: string,
    path: string,
    items: T[],
    render: (item: T) => unknown,
  ): Response {
    const rawMax = req.query.get("maxresults");
    let size = MAX_PAGE_SIZE;
    if (rawMax !== undefined && rawMax !== "") {
      size = Number(rawMax);
      if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) {
        throw new VaultError(
          400,
          "BadParameter",
          `The value of 'maxresults' must be between 1 and ${MAX_PAGE_SIZE}.`,
        );
      }
    }
    const start = decodeSkipToken(req.query.get("$skiptoken"));
    const slice = items.slice(start, start + size);
    const next = start + slice.length;
    const nextLink =
      next < items.length
        ? `${base()}${path}?api-version=${apiVersion}&$skiptoken=${encodeSkipToken(next)}&maxresults=${size}`
        : null;
    return ok({ value: slice.map(render), nextLink });
  }

  const ok = (body: unknown): Response => ({ status: 200, headers: commonHeaders(), body });

  // ---- routes -------------------------------------------------------------------------------

  async function setSecret(req: Request, principal: Principal, name: string): Promise<Response> {
    authorize(principal, SECRET_ACTIONS.set, secretScope(name));
    const body = parseBody(req);
    const value = body.value;
    if (typeof value !== "string") {
      throw new VaultError(400, "BadParameter", "Property 'value' is required and must be a string.");
    }
    if (Buffer.byteLength(value, "utf8") > MAX_VALUE_BYTES) {
      throw new VaultError(
        400,
        "BadParameter",
        `The secret value exceeds the maximum size of ${MAX_VALUE_BYTES} bytes.`,
      );
    }
    const contentType = parseContentType(body.contentType);
    const tags = parseTags(body.tags) ?? {};
    const attrs = parseAttributes(body.attributes);
    const deleted = deletedSecrets.get(vault)?.get(name.toLowerCase());
    if (deleted) {
      throw new VaultError(
        409,
        "Conflict",
        `Secret ${deleted.name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
        "ObjectIsDeletedButRecoverable",
      );
    }
    const now = ctx.now();
    const version: SecretVersion = {
      version: newVersion(),
      value,
      ...(contentType !== undefined ? { contentType } : {}),
      tags,
      enabled: attrs.enabled ?? true,
      created: now,
      updated: now,
    };
    setValidity(version, attrs);
    const existing = findSecret(name);
    if (existing) existing.versions.push(version);
    else vault.secrets.set(name, [version]);
    await ctx.changed("key vault secret set");
    return ok(bundle(existing?.name ?? name, version, true));
  }

  function getSecret(principal: Principal, name: string, versionId: string | undefined): Response {
    authorize(principal, SECRET_ACTIONS.get, secretScope(name));
    const found = findSecret(name);
    const v =
      found && (versionId === undefined ? found.versions.at(-1) : findVersion(found.versions, versionId));
    if (!found || !v) throw secretNotFound(versionId === undefined ? name : `${name}/${versionId}`);
    if (!v.enabled) {
      throw new VaultError(
        403,
        "Forbidden",
        "Operation get is not allowed on a disabled secret.",
        "SecretDisabled",
      );
    }
    return ok(bundle(found.name, v, true));
  }

  async function updateSecret(
    req: Request,
    principal: Principal,
    name: string,
    versionId: string | undefined,
  ): Promise<Response> {
    authorize(principal, SECRET_ACTIONS.update, secretScope(name));
    const body = parseBody(req);
    const contentType = parseContentType(body.contentType);
    const tags = parseTags(body.tags);
    const attrs = parseAttributes(body.attributes);
    const found = findSecret(name);
    const v =
      found && (versionId === undefined ? found.versions.at(-1) : findVersion(found.versions, versionId));
    if (!found || !v) throw secretNotFound(versionId === undefined ? name : `${name}/${versionId}`);
    if (contentType !== undefined) v.contentType = contentType;
    if (tags !== undefined) v.tags = tags;
    if (attrs.enabled !== undefined) v.enabled = attrs.enabled;
    setValidity(v, attrs);
    v.updated = ctx.now();
    await ctx.changed("key vault secret updated");
    return ok(bundle(found.name, v, false));
  }

  async function deleteSecret(principal: Principal, name: string): Promise<Response> {
    authorize(principal, SECRET_ACTIONS.delete, secretScope(name));
    const found = findSecret(name);
    const latest = found?.versions.at(-1);
    if (!found || !latest) throw secretNotFound(name);
    vault.secrets.delete(found.name);
    const now = seconds(ctx.now());
    const deleted: DeletedSecret = {
      name: found.name,
      versions: found.versions,
      deletedDate: now,
      scheduledPurgeDate: now + RECOVERABLE_DAYS * 86_400,
    };
    deletedStore().set(found.name.toLowerCase(), deleted);
    await ctx.changed("key vault secret deleted");
    return ok({ ...deletedFields(deleted), ...bundle(found.name, latest, false) });
  }

  function listSecrets(req: Request, principal: Principal, apiVersion: string): Response {
    authorize(principal, SECRET_ACTIONS.readMetadata, vault.id);
    const entries = [...vault.secrets]
      .filter(([, versions]) => versions.length > 0)
      .sort(([a], [b]) => a.toLowerCase().localeCompare(b.toLowerCase()));
    return page(req, apiVersion, "secrets", entries, ([name, versions]) =>
      secretItem(versions.at(-1)!, `${base()}secrets/${name}`),
    );
  }

  function listVersions(req: Request, principal: Principal, name: string, apiVersion: string): Response {
    authorize(principal, SECRET_ACTIONS.readMetadata, secretScope(name));
    const found = findSecret(name);
    if (!found || found.versions.length === 0) throw secretNotFound(name);
    return page(req, apiVersion, `secrets/${found.name}/versions`, found.versions, (v) =>
      secretItem(v, `${base()}secrets/${found.name}/${v.version}`),
    );
  }

  function getDeleted(principal: Principal, name: string): Response {
    authorize(principal, SECRET_ACTIONS.readMetadata, secretScope(name));
    const d = deletedSecrets.get(vault)?.get(name.toLowerCase());
    const latest = d?.versions.at(-1);
    if (!d || !latest) throw new VaultError(404, "SecretNotFound", `Deleted Secret not found: ${name}`);
    return ok({ ...deletedFields(d), ...bundle(d.name, latest, false) });
  }

  function listDeleted(req: Request, principal: Principal, apiVersion: string): Response {
    authorize(principal, SECRET_ACTIONS.readMetadata, vault.id);
    const entries = [...(deletedSecrets.get(vault)?.values() ?? [])]
      .filter((d) => d.versions.length > 0)
      .sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()));
    return page(req, apiVersion, "deletedsecrets", entries, (d) => ({
      ...deletedFields(d),
      ...secretItem(d.versions.at(-1)!, `${base()}secrets/${d.name}`),
    }));
  }

  async function recoverDeleted(principal: Principal, name: string): Promise<Response> {
    authorize(principal, SECRET_ACTIONS.recover, secretScope(name));
    const store = deletedSecrets.get(vault);
    const d = store?.get(name.toLowerCase());
    const latest = d?.versions.at(-1);
    if (!store || !d || !latest)
      throw new VaultError(404, "SecretNotFound", `Deleted Secret not found: ${name}`);
    store.delete(name.toLowerCase());
    vault.secrets.set(d.name, d.versions);
    await ctx.changed("key vault secret recovered");
    return ok(bundle(d.name, latest, false));
  }

  function purgeDeleted(principal: Principal, name: string): Response {
    authorize(principal, SECRET_ACTIONS.purge, secretScope(name));
    const store = deletedSecrets.get(vault);
    if (!store?.delete(name.toLowerCase())) {
      throw new VaultError(404, "SecretNotFound", `Deleted Secret not found: ${name}`);
    }
    return { status: 204, headers: commonHeaders() };
  }

  function deletedStore(): Map<string, DeletedSecret> {
    let store = deletedSecrets.get(vault);
    if (!store) {
      store = new Map();
      deletedSecrets.set(vault, store);
    }
    return store;
  }

  async function route(req: Request): Promise<Response> {
    const principal = authenticate(req);
    const apiVersion = checkApiVersion(req);
    const [collection, name, third, fourth] = req.segments;
    const n = req.segments.length;
    const method = req.method;

    if (collection?.toLowerCase() === "secrets") {
      if (n === 1) return method === "GET" ? listSecrets(req, principal, apiVersion) : methodNotAllowed();
      if (n === 2 && name !== undefined) {
        const secret = checkName(name);
        if (method === "PUT") return setSecret(req, principal, secret);
        if (method === "GET") return getSecret(principal, secret, undefined);
        if (method === "PATCH") return updateSecret(req, principal, secret, undefined);
        if (method === "DELETE") return deleteSecret(principal, secret);
        return methodNotAllowed();
      }
      if (n === 3 && name !== undefined && third !== undefined) {
        const secret = checkName(name);
        if (third.toLowerCase() === "versions") {
          return method === "GET" ? listVersions(req, principal, secret, apiVersion) : methodNotAllowed();
        }
        if (!VERSION.test(third)) throw secretNotFound(`${secret}/${third}`);
        if (method === "GET") return getSecret(principal, secret, third);
        if (method === "PATCH") return updateSecret(req, principal, secret, third);
        return methodNotAllowed();
      }
    }
    if (collection?.toLowerCase() === "deletedsecrets") {
      if (n === 1) return method === "GET" ? listDeleted(req, principal, apiVersion) : methodNotAllowed();
      if (n === 2 && name !== undefined) {
        const secret = checkName(name);
        if (method === "GET") return getDeleted(principal, secret);
        if (method === "DELETE") return purgeDeleted(principal, secret);
        return methodNotAllowed();
      }
      if (n === 3 && name !== undefined && third?.toLowerCase() === "recover" && fourth === undefined) {
        return method === "POST" ? recoverDeleted(principal, checkName(name)) : methodNotAllowed();
      }
    }
    throw new VaultError(404, "NotFound", `The requested resource '${req.url.pathname}' was not found.`);
  }

  return async (req: Request): Promise<Response> => {
    try {
      return await route(req);
    } catch (e) {
      if (e instanceof AzureError) {
        const inner = e instanceof VaultError && e.innerCode ? { innererror: { code: e.innerCode } } : {};
        return {
          status: e.status,
          headers: { ...commonHeaders(), ...e.headers },
          body: { error: { code: e.code, message: e.message, ...inner } },
        };
      }
      throw e;
    }
  };
}

// ---- request parsing ------------------------------------------------------------------------

function checkApiVersion(req: Request): string {
  const v = req.query.get("api-version");
  if (v === undefined || v === "") {
    throw new VaultError(
      400,
      "BadParameter",
      "The request URI contains an invalid API version, or the api-version query parameter is missing.",
    );
  }
  if (!API_VERSIONS.has(v)) {
    throw new VaultError(
      400,
      "BadParameter",
      `The specified version (${v}) is not recognized. Consider using the latest supported version (${LATEST_API_VERSION}).`,
    );
  }
  return v;
}

function checkName(name: string): string {
  if (!SECRET_NAME.test(name)) {
    throw new VaultError(
      400,
      "BadParameter",
      `The secret name '${name.slice(0, 127)}' is invalid. A secret name must be 1-127 characters long and contain only 0-9, a-z, A-Z and -.`,
    );
  }
  return name;
}

function methodNotAllowed(): never {
  throw new VaultError(
    405,
    "MethodNotAllowed",
    "The requested HTTP method is not allowed for this resource.",
  );
}

/** Parses a JSON object body. Parse errors are reported without echoing the body (it may hold a secret). */
function parseBody(req: Request): Record<string, unknown> {
  if (req.rawBody.trim() === "") {
    throw new VaultError(400, "BadParameter", "The request body is missing or empty.");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(req.rawBody);
  } catch {
    throw new VaultError(400, "BadParameter", "The request body is not valid JSON.");
  }
  if (!isObject(parsed)) throw new VaultError(400, "BadParameter", "The request body must be a JSON object.");
  return parsed;
}

function parseContentType(raw: unknown): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== "string" || raw.length > 255) {
    throw new VaultError(
      400,
      "BadParameter",
      "Property 'contentType' must be a string of at most 255 characters.",
    );
  }
  return raw;
}

function parseTags(raw: unknown): Record<string, string> | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObject(raw))
    throw new VaultError(400, "BadParameter", "Property 'tags' must be an object of strings.");
  const entries = Object.entries(raw);
  if (entries.length > MAX_TAGS) {
    throw new VaultError(400, "BadParameter", `A secret can have at most ${MAX_TAGS} tags.`);
  }
  const tags: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (typeof v !== "string" || k.length > 512 || v.length > 256) {
      throw new VaultError(
        400,
        "BadParameter",
        "Tag names must be at most 512 characters and tag values strings of at most 256 characters.",
      );
    }
    tags[k] = v;
  }
  return tags;
}

interface ParsedAttributes {
  enabled?: boolean;
  /** null clears the attribute; undefined leaves it as it is. */
  notBefore?: number | null;
  expires?: number | null;
}

function parseAttributes(raw: unknown): ParsedAttributes {
  if (raw === undefined || raw === null) return {};
  if (!isObject(raw)) throw new VaultError(400, "BadParameter", "Property 'attributes' must be an object.");
  const out: ParsedAttributes = {};
  if (raw.enabled !== undefined && raw.enabled !== null) {
    if (typeof raw.enabled !== "boolean") {
      throw new VaultError(400, "BadParameter", "Attribute 'enabled' must be a boolean.");
    }
    out.enabled = raw.enabled;
  }
  for (const [wire, key] of [
    ["nbf", "notBefore"],
    ["exp", "expires"],
  ] as const) {
    const v = raw[wire];
    if (v === undefined) continue;
    if (v === null) {
      out[key] = null;
      continue;
    }
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw new VaultError(400, "BadParameter", `Attribute '${wire}' must be a Unix time in seconds.`);
    }
    out[key] = v;
  }
  if (typeof out.notBefore === "number" && typeof out.expires === "number" && out.expires <= out.notBefore) {
    throw new VaultError(400, "BadParameter", "Attribute 'exp' must be later than 'nbf'.");
  }
  return out;
}

function setValidity(v: SecretVersion, attrs: ParsedAttributes): void {
  const current: Validity = { ...validity.get(v) };
  if (attrs.notBefore === null) delete current.notBefore;
  else if (attrs.notBefore !== undefined) current.notBefore = attrs.notBefore;
  if (attrs.expires === null) delete current.expires;
  else if (attrs.expires !== undefined) current.expires = attrs.expires;
  validity.set(v, current);
}

function findVersion(versions: SecretVersion[], id: string): SecretVersion | undefined {
  const lower = id.toLowerCase();
  return versions.find((v) => v.version.toLowerCase() === lower);
}

/** The audience of a token, for Key Vault's "invalid audience" message (never the token itself). */
function tokenAudience(header: string): string {
  const payload = header.slice(7).trim().split(".")[1];
  if (!payload) return "";
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as unknown;
    return isObject(claims) && typeof claims.aud === "string" ? claims.aud : "";
  } catch {
    return "";
  }
}

function encodeSkipToken(offset: number): string {
  return Buffer.from(JSON.stringify({ NextMarker: offset })).toString("base64url");
}

function decodeSkipToken(token: string | undefined): number {
  if (token === undefined || token === "") return 0;
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as unknown;
    if (isObject(parsed) && typeof parsed.NextMarker === "number" && Number.isInteger(parsed.NextMarker)) {
      return Math.max(0, parsed.NextMarker);
    }
  } catch {
    // fall through
  }
  throw new VaultError(400, "BadParameter", "The value of '$skiptoken' is invalid.");
}
