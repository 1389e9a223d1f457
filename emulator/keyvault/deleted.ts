/** The soft-deleted secrets routes: get, list, recover and purge. */
import type { EmulatorContext } from "../context";
import type { Request, Response } from "../http";
import type { Principal } from "../identity";
import type { KeyVault } from "../model";
import { SECRET_ACTIONS, type VaultAuth } from "./auth";
import { deletedSecretNotFound } from "./errors";
import { base, bundle, commonHeaders, deletedFields, ok, page, secretItem, secretScope } from "./response";
import { deletedSecretsOf } from "./store";

export function deletedSecretRoutes(ctx: EmulatorContext, vault: KeyVault, { authorize }: VaultAuth) {
  function getDeleted(principal: Principal, name: string): Response {
    authorize(principal, SECRET_ACTIONS.readMetadata, secretScope(vault, name));
    const d = deletedSecretsOf(vault)?.get(name.toLowerCase());
    const latest = d?.versions.at(-1);
    if (!d || !latest) throw deletedSecretNotFound(name);
    return ok(vault, { ...deletedFields(vault, d), ...bundle(vault, d.name, latest, false) });
  }

  function listDeleted(req: Request, principal: Principal, apiVersion: string): Response {
    authorize(principal, SECRET_ACTIONS.readMetadata, vault.id);
    const entries = [...(deletedSecretsOf(vault)?.values() ?? [])]
      .filter((d) => d.versions.length > 0)
      .sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()));
    return page(vault, req, apiVersion, "deletedsecrets", entries, (d) => ({
      ...deletedFields(vault, d),
      ...secretItem(d.versions.at(-1)!, `${base(vault)}secrets/${d.name}`),
    }));
  }

  async function recoverDeleted(principal: Principal, name: string): Promise<Response> {
    authorize(principal, SECRET_ACTIONS.recover, secretScope(vault, name));
    const store = deletedSecretsOf(vault);
    const d = store?.get(name.toLowerCase());
    const latest = d?.versions.at(-1);
    if (!store || !d || !latest) throw deletedSecretNotFound(name);
    store.delete(name.toLowerCase());
    vault.secrets.set(d.name, d.versions);
    await ctx.changed("key vault secret recovered");
    return ok(vault, bundle(vault, d.name, latest, false));
  }

  function purgeDeleted(principal: Principal, name: string): Response {
    authorize(principal, SECRET_ACTIONS.purge, secretScope(vault, name));
    const store = deletedSecretsOf(vault);
    if (!store?.delete(name.toLowerCase())) throw deletedSecretNotFound(name);
    return { status: 204, headers: commonHeaders(vault) };
  }

  return { getDeleted, listDeleted, recoverDeleted, purgeDeleted };
}
