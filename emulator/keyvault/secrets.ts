/** The secrets routes: set (a new version), get, update, delete (soft), list secrets and versions. */
import type { EmulatorContext } from "../context";
import type { Request, Response } from "../http";
import type { Principal } from "../identity";
import { newVersion, type KeyVault, type SecretVersion } from "../model";
import { SECRET_ACTIONS, type VaultAuth } from "./auth";
import { VaultError, secretNotFound } from "./errors";
import { MAX_VALUE_BYTES, parseAttributes, parseBody, parseContentType, parseTags } from "./request";
import { base, bundle, deletedFields, ok, page, secondsOf, secretItem, secretScope } from "./response";
import {
  RECOVERABLE_DAYS,
  deletedSecretsOf,
  deletedStore,
  findSecret,
  findVersion,
  setValidity,
  type DeletedSecret,
} from "./store";

export function secretRoutes(ctx: EmulatorContext, vault: KeyVault, { authorize }: VaultAuth) {
  async function setSecret(req: Request, principal: Principal, name: string): Promise<Response> {
    authorize(principal, SECRET_ACTIONS.set, secretScope(vault, name));
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
    const deleted = deletedSecretsOf(vault)?.get(name.toLowerCase());
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
    const existing = findSecret(vault, name);
    if (existing) existing.versions.push(version);
    else vault.secrets.set(name, [version]);
    await ctx.changed("key vault secret set");
    return ok(vault, bundle(vault, existing?.name ?? name, version, true));
  }

  function getSecret(principal: Principal, name: string, versionId: string | undefined): Response {
    authorize(principal, SECRET_ACTIONS.get, secretScope(vault, name));
    const found = findSecret(vault, name);
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
    return ok(vault, bundle(vault, found.name, v, true));
  }

  async function updateSecret(
    req: Request,
    principal: Principal,
    name: string,
    versionId: string | undefined,
  ): Promise<Response> {
    authorize(principal, SECRET_ACTIONS.update, secretScope(vault, name));
    const body = parseBody(req);
    const contentType = parseContentType(body.contentType);
    const tags = parseTags(body.tags);
    const attrs = parseAttributes(body.attributes);
    const found = findSecret(vault, name);
    const v =
      found && (versionId === undefined ? found.versions.at(-1) : findVersion(found.versions, versionId));
    if (!found || !v) throw secretNotFound(versionId === undefined ? name : `${name}/${versionId}`);
    if (contentType !== undefined) v.contentType = contentType;
    if (tags !== undefined) v.tags = tags;
    if (attrs.enabled !== undefined) v.enabled = attrs.enabled;
    setValidity(v, attrs);
    v.updated = ctx.now();
    await ctx.changed("key vault secret updated");
    return ok(vault, bundle(vault, found.name, v, false));
  }

  async function deleteSecret(principal: Principal, name: string): Promise<Response> {
    authorize(principal, SECRET_ACTIONS.delete, secretScope(vault, name));
    const found = findSecret(vault, name);
    const latest = found?.versions.at(-1);
    if (!found || !latest) throw secretNotFound(name);
    vault.secrets.delete(found.name);
    const now = secondsOf(ctx.now());
    const deleted: DeletedSecret = {
      name: found.name,
      versions: found.versions,
      deletedDate: now,
      scheduledPurgeDate: now + RECOVERABLE_DAYS * 86_400,
    };
    deletedStore(vault).set(found.name.toLowerCase(), deleted);
    await ctx.changed("key vault secret deleted");
    return ok(vault, { ...deletedFields(vault, deleted), ...bundle(vault, found.name, latest, false) });
  }

  function listSecrets(req: Request, principal: Principal, apiVersion: string): Response {
    authorize(principal, SECRET_ACTIONS.readMetadata, vault.id);
    const entries = [...vault.secrets]
      .filter(([, versions]) => versions.length > 0)
      .sort(([a], [b]) => a.toLowerCase().localeCompare(b.toLowerCase()));
    return page(vault, req, apiVersion, "secrets", entries, ([name, versions]) =>
      secretItem(versions.at(-1)!, `${base(vault)}secrets/${name}`),
    );
  }

  function listVersions(req: Request, principal: Principal, name: string, apiVersion: string): Response {
    authorize(principal, SECRET_ACTIONS.readMetadata, secretScope(vault, name));
    const found = findSecret(vault, name);
    if (!found || found.versions.length === 0) throw secretNotFound(name);
    return page(vault, req, apiVersion, `secrets/${found.name}/versions`, found.versions, (v) =>
      secretItem(v, `${base(vault)}secrets/${found.name}/${v.version}`),
    );
  }

  return { setSecret, getSecret, updateSecret, deleteSecret, listSecrets, listVersions };
}
