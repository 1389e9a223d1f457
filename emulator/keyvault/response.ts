/**
 * What a vault answers: Key Vault's headers, SecretBundle / SecretItem / DeletedSecret bodies (values
 * only in a bundle that asks for them), and paged listings with Key Vault's `$skiptoken`.
 */
import { isObject, type Request, type Response } from "../http";
import type { KeyVault, SecretVersion } from "../model";
import { VaultError } from "./errors";
import { RECOVERABLE_DAYS, validityOf, type DeletedSecret } from "./store";

/** Key Vault pages hold at most 25 items; 25 is also the default. */
const MAX_PAGE_SIZE = 25;
const RECOVERY_LEVEL = "Recoverable+Purgeable";

export const secondsOf = (d: Date): number => Math.floor(d.getTime() / 1000);

export function commonHeaders(vault: KeyVault): Record<string, string> {
  return {
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "strict-transport-security": "max-age=31536000;includeSubDomains",
    "x-ms-keyvault-region": vault.location,
    "x-ms-keyvault-service-version": "1.9.2468.1",
    "x-ms-keyvault-network-info": "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;",
  };
}

export function ok(vault: KeyVault, body: unknown): Response {
  return { status: 200, headers: commonHeaders(vault), body };
}

/** The vault's URI with a trailing slash. */
export function base(vault: KeyVault): string {
  return vault.vaultUri.endsWith("/") ? vault.vaultUri : `${vault.vaultUri}/`;
}

/** The RBAC scope of a secret. */
export function secretScope(vault: KeyVault, name: string): string {
  return `${vault.id}/secrets/${name}`;
}

function attributes(v: SecretVersion): Record<string, unknown> {
  const extra = validityOf(v);
  return {
    enabled: v.enabled,
    ...(extra?.notBefore !== undefined ? { nbf: extra.notBefore } : {}),
    ...(extra?.expires !== undefined ? { exp: extra.expires } : {}),
    created: secondsOf(v.created),
    updated: secondsOf(v.updated),
    recoveryLevel: RECOVERY_LEVEL,
    recoverableDays: RECOVERABLE_DAYS,
  };
}

/** SecretBundle (with the value) or, for listings and deletions, the same without it. */
export function bundle(
  vault: KeyVault,
  name: string,
  v: SecretVersion,
  withValue: boolean,
): Record<string, unknown> {
  return {
    ...(withValue ? { value: v.value } : {}),
    ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
    id: `${base(vault)}secrets/${name}/${v.version}`,
    attributes: attributes(v),
    ...(Object.keys(v.tags).length > 0 ? { tags: { ...v.tags } } : {}),
  };
}

export function secretItem(v: SecretVersion, id: string): Record<string, unknown> {
  return {
    id,
    attributes: attributes(v),
    ...(Object.keys(v.tags).length > 0 ? { tags: { ...v.tags } } : {}),
    ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
  };
}

export function deletedFields(vault: KeyVault, d: DeletedSecret): Record<string, unknown> {
  return {
    recoveryId: `${base(vault)}deletedsecrets/${d.name}`,
    deletedDate: d.deletedDate,
    scheduledPurgeDate: d.scheduledPurgeDate,
  };
}

/** One page of `items` (`maxresults`, `$skiptoken`), with the next page's link when there is one. */
export function page<T>(
  vault: KeyVault,
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
      ? `${base(vault)}${path}?api-version=${apiVersion}&$skiptoken=${encodeSkipToken(next)}&maxresults=${size}`
      : null;
  return ok(vault, { value: slice.map(render), nextLink });
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
