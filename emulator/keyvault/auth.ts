/**
 * Key Vault's challenge handshake and data-plane RBAC: a request without a valid vault token is
 * answered 401 with the `www-authenticate` challenge naming the tenant's authority and the vault
 * resource, as `@azure/keyvault-secrets` expects; a principal without the data action gets Key
 * Vault's 403 (`ForbiddenByRbac`).
 */
import type { EmulatorContext } from "../context";
import { AzureError, isObject, type Request } from "../http";
import { VAULT_AUDIENCE, type Principal } from "../identity";
import type { KeyVault } from "../model";
import { VaultError } from "./errors";

/** The data actions of the secrets data plane, as Azure RBAC names them. */
export const SECRET_ACTIONS = {
  set: "Microsoft.KeyVault/vaults/secrets/setSecret/action",
  get: "Microsoft.KeyVault/vaults/secrets/getSecret/action",
  readMetadata: "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
  update: "Microsoft.KeyVault/vaults/secrets/update/action",
  delete: "Microsoft.KeyVault/vaults/secrets/delete",
  recover: "Microsoft.KeyVault/vaults/secrets/recover/action",
  purge: "Microsoft.KeyVault/vaults/secrets/purge/action",
} as const;

export interface VaultAuth {
  /** The caller's principal, or a 401 with the challenge. */
  authenticate: (req: Request) => Principal;
  /** Nothing, or a 403 naming the action and the resource. */
  authorize: (principal: Principal, action: string, resource: string) => void;
}

export function vaultAuth(ctx: EmulatorContext, vault: KeyVault, authorityHost: () => string): VaultAuth {
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

  return { authenticate, authorize };
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
