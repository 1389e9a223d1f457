/**
 * The Key Vault secrets data plane of one vault, as `@azure/keyvault-secrets` sees it: the
 * challenge handshake, data-plane RBAC, set/get/update/delete, version and secret listings with
 * paging, and a simple soft-delete (get/list/recover/purge deleted secrets).
 *
 * Each vault has its own HTTPS listener, so every request reaching this handler is for `vault`.
 * Error bodies are Key Vault's `{error:{code,message,innererror?}}`; secret values never appear in
 * an error message or a listing.
 *
 * | concern                                    | file          |
 * | ------------------------------------------ | ------------- |
 * | dispatch by path and method, error bodies  | `index.ts`    |
 * | challenge handshake, data-plane RBAC       | `auth.ts`     |
 * | secrets and versions                       | `secrets.ts`  |
 * | soft-deleted secrets                       | `deleted.ts`  |
 * | lookups, `nbf`/`exp`, the deleted store    | `store.ts`    |
 * | request checks and bodies                  | `request.ts`  |
 * | bundles, items, paging, headers            | `response.ts` |
 */
import type { EmulatorContext } from "../context";
import { AzureError, type Request, type Response } from "../http";
import type { KeyVault } from "../model";
import { vaultAuth } from "./auth";
import { deletedSecretRoutes } from "./deleted";
import { VaultError, methodNotAllowed, secretNotFound } from "./errors";
import { VERSION, checkApiVersion, checkName } from "./request";
import { commonHeaders } from "./response";
import { secretRoutes } from "./secrets";

export { SECRET_ACTIONS } from "./auth";

export function vaultHandler(
  ctx: EmulatorContext,
  vault: KeyVault,
  authorityHost: () => string,
): (req: Request) => Promise<Response> {
  const auth = vaultAuth(ctx, vault, authorityHost);
  const secrets = secretRoutes(ctx, vault, auth);
  const deleted = deletedSecretRoutes(ctx, vault, auth);

  async function route(req: Request): Promise<Response> {
    const principal = auth.authenticate(req);
    const apiVersion = checkApiVersion(req);
    const [collection, name, third, fourth] = req.segments;
    const n = req.segments.length;
    const method = req.method;

    if (collection?.toLowerCase() === "secrets") {
      if (n === 1)
        return method === "GET" ? secrets.listSecrets(req, principal, apiVersion) : methodNotAllowed();
      if (n === 2 && name !== undefined) {
        const secret = checkName(name);
        if (method === "PUT") return secrets.setSecret(req, principal, secret);
        if (method === "GET") return secrets.getSecret(principal, secret, undefined);
        if (method === "PATCH") return secrets.updateSecret(req, principal, secret, undefined);
        if (method === "DELETE") return secrets.deleteSecret(principal, secret);
        return methodNotAllowed();
      }
      if (n === 3 && name !== undefined && third !== undefined) {
        const secret = checkName(name);
        if (third.toLowerCase() === "versions") {
          return method === "GET"
            ? secrets.listVersions(req, principal, secret, apiVersion)
            : methodNotAllowed();
        }
        if (!VERSION.test(third)) throw secretNotFound(`${secret}/${third}`);
        if (method === "GET") return secrets.getSecret(principal, secret, third);
        if (method === "PATCH") return secrets.updateSecret(req, principal, secret, third);
        return methodNotAllowed();
      }
    }
    if (collection?.toLowerCase() === "deletedsecrets") {
      if (n === 1)
        return method === "GET" ? deleted.listDeleted(req, principal, apiVersion) : methodNotAllowed();
      if (n === 2 && name !== undefined) {
        const secret = checkName(name);
        if (method === "GET") return deleted.getDeleted(principal, secret);
        if (method === "DELETE") return deleted.purgeDeleted(principal, secret);
        return methodNotAllowed();
      }
      if (n === 3 && name !== undefined && third?.toLowerCase() === "recover" && fourth === undefined) {
        return method === "POST" ? deleted.recoverDeleted(principal, checkName(name)) : methodNotAllowed();
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
          headers: { ...commonHeaders(vault), ...e.headers },
          body: { error: { code: e.code, message: e.message, ...inner } },
        };
      }
      throw e;
    }
  };
}
