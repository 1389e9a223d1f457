import { XMLParser, XMLValidator } from "fast-xml-parser";
import { AzureError, Router, type Request, type Response } from "./http";
import type { KeyName, StorageAccount } from "./model";
import type { EmulatorContext } from "./context";
import type { Principal } from "./identity";
import { CLASSIC_ACTIONS } from "./arm/classic";
import { regenerateStorageKey } from "./arm/storage";

/**
 * The Service Management API's storage keys (seed 002): Get Storage Keys and Regenerate Keys of classic
 * accounts, XML in and out, `x-ms-version` required, errors as `<Error><Code/><Message/></Error>` with
 * the codes Microsoft's "Service Management Status and Error Codes" lists. Signed in with Entra tokens
 * for `https://management.core.windows.net/`, and RBAC-checked with the Microsoft.ClassicStorage actions.
 */

/** The token audience Service Management accepts (ARM's own, management.azure.com, is refused). */
export const SERVICE_MANAGEMENT_AUDIENCE = "https://management.core.windows.net";
export const SERVICE_MANAGEMENT_XMLNS = "http://schemas.microsoft.com/windowsazure";
/** The namespace as Microsoft's archived pages now print it (their links were rewritten to https); accepted too. */
const DOCUMENTED_XMLNS = "https://schemas.microsoft.com/windowsazure";
/** The oldest `x-ms-version` Service Management serves ("2009-10-01 or higher"). */
export const OLDEST_VERSION = "2009-10-01";

const KEY_NAMES: Record<string, KeyName> = { Primary: "key1", Secondary: "key2" };

export interface ServiceManagementRoute {
  method: "GET" | "POST";
  pattern: string;
  operation: string;
  action: string;
  handler: (req: Request, account: StorageAccount) => Promise<Response> | Response;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  parseTagValue: false,
  trimValues: true,
});

const escape = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function xml(status: number, body: string): Response {
  return {
    status,
    headers: { "content-type": "application/xml; charset=utf-8" },
    body: `<?xml version="1.0" encoding="utf-8"?>\n${body}`,
  };
}

/** An error as Service Management answers it. */
export function serviceManagementError(error: AzureError): Response {
  return {
    ...xml(
      error.status,
      `<Error xmlns="${SERVICE_MANAGEMENT_XMLNS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><Code>${escape(error.code)}</Code><Message>${escape(error.message)}</Message></Error>`,
    ),
    headers: { ...error.headers, "content-type": "application/xml; charset=utf-8" },
  };
}

/** Get Storage Keys and Regenerate Keys both answer with the account's StorageService and both keys. */
function storageService(origin: string, account: StorageAccount): Response {
  return xml(
    200,
    `<StorageService xmlns="${SERVICE_MANAGEMENT_XMLNS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` +
      `<Url>${escape(`${origin}/${account.subscriptionId}/services/storageservices/${account.name}`)}</Url>` +
      `<StorageServiceKeys><Primary>${escape(account.keys.key1.value)}</Primary><Secondary>${escape(account.keys.key2.value)}</Secondary></StorageServiceKeys>` +
      `</StorageService>`,
  );
}

const badRequest = (code: string, message: string) => new AzureError(400, code, message);

/** The KeyType of a RegenerateKeys body, or Service Management's 400. */
function keyTypeOf(req: Request): KeyName {
  const type = (req.headers["content-type"] ?? "").toLowerCase();
  if (!/^(application|text)\/xml\b/.test(type)) {
    throw badRequest("BadRequest", "The Content-Type header must be application/xml.");
  }
  const invalid = () =>
    badRequest("InvalidXmlRequest", "The request body's XML was invalid or not correctly specified.");
  if (req.rawBody.trim() === "" || XMLValidator.validate(req.rawBody) !== true) throw invalid();
  const root = (parser.parse(req.rawBody) as Record<string, unknown>).RegenerateKeys;
  if (typeof root !== "object" || root === null) throw invalid();
  const { "@xmlns": xmlns, KeyType: keyType } = root as Record<string, unknown>;
  if (xmlns !== SERVICE_MANAGEMENT_XMLNS && xmlns !== DOCUMENTED_XMLNS) throw invalid();
  const keyName = typeof keyType === "string" ? KEY_NAMES[keyType] : undefined;
  if (keyName === undefined) {
    throw badRequest(
      "BadRequest",
      `The value '${typeof keyType === "string" ? keyType : ""}' of KeyType is invalid: use Primary or Secondary.`,
    );
  }
  return keyName;
}

export function serviceManagementRoutes(
  ctx: EmulatorContext,
  origin: () => string,
): ServiceManagementRoute[] {
  const keys = "/{subscriptionId}/services/storageservices/{serviceName}/keys";
  return [
    {
      method: "GET",
      pattern: keys,
      operation: "storageServices.getKeys",
      action: CLASSIC_ACTIONS.listKeys,
      handler: (_req, account) => storageService(origin(), account),
    },
    {
      method: "POST",
      pattern: keys,
      operation: "storageServices.regenerateKeys",
      action: CLASSIC_ACTIONS.regenerateKey,
      handler: async (req, account) => {
        if (req.query.get("action") !== "regenerate") {
          throw badRequest(
            "MissingOrInvalidRequiredQueryParameter",
            "A required query parameter was not specified for this request or was specified incorrectly.",
          );
        }
        const keyName = keyTypeOf(req);
        await regenerateStorageKey(ctx, account, keyName, `regenerateKeys ${account.name}/${keyName}`);
        return storageService(origin(), account);
      },
    },
  ];
}

/** Who made a Service Management call, once its token was checked (for the request log). */
export interface ServiceManagementCall {
  principal?: Principal;
}

export interface ServiceManagementService {
  /** The request's route; "method": a known path with another verb; undefined: no such path. */
  route(req: Request): ServiceManagementRoute | "method" | undefined;
  /**
   * Serves one request in Service Management's order: the route, the token, `x-ms-version`, the
   * subscription and account, then the caller's permission. Errors are thrown as AzureErrors.
   */
  serve(req: Request, call: ServiceManagementCall): Promise<Response>;
}

export function serviceManagementService(
  ctx: EmulatorContext,
  origin: () => string,
): ServiceManagementService {
  const routes = serviceManagementRoutes(ctx, origin);
  const router = new Router();
  for (const route of routes) router.add(route.method, route.pattern, () => ({ status: 500 }));
  const byPattern = new Map(routes.map((r) => [`${r.method} ${r.pattern}`, r]));
  const match = (req: Request) => {
    const matched = router.match(req.method, req.segments);
    if (typeof matched !== "object") return matched;
    return {
      route: byPattern.get(`${matched.route.method} ${matched.route.pattern}`)!,
      params: matched.params,
    };
  };
  return {
    route: (req) => {
      const matched = match(req);
      return typeof matched === "object" ? matched.route : matched;
    },
    serve: async (req, call) => {
      const matched = match(req);
      if (matched === "method") {
        throw badRequest(
          "InvalidHttpVerb",
          "The HTTP verb specified was not recognized by the server or isn't valid for this resource.",
        );
      }
      if (matched === undefined)
        throw new AzureError(404, "ResourceNotFound", "The specified resource does not exist.");
      const { route, params } = matched;
      try {
        const audience = [SERVICE_MANAGEMENT_AUDIENCE];
        call.principal = ctx.identity.authenticate(req.headers.authorization, audience).principal;
      } catch (e) {
        const reason = e instanceof AzureError ? ` ${e.message}` : "";
        throw new AzureError(
          403,
          "AuthenticationFailed",
          `The server failed to authenticate the request.${reason}`,
        );
      }
      const version = String(req.headers["x-ms-version"] ?? "");
      if (!/^\d{4}-\d{2}-\d{2}$/.test(version) || version < OLDEST_VERSION) {
        throw badRequest(
          "MissingOrIncorrectVersionHeader",
          "The versioning header is not specified or was specified incorrectly.",
        );
      }
      const subscriptionId = params.subscriptionId!;
      const serviceName = params.serviceName!;
      if (!ctx.estate.subscriptions.has(subscriptionId.toLowerCase()))
        throw new AzureError(404, "ResourceNotFound", `The subscription '${subscriptionId}' was not found.`);
      // Service Management knows classic accounts only, by name within the subscription.
      const account = [...ctx.estate.storageAccounts.values()].find(
        (a) =>
          a.classic &&
          a.subscriptionId.toLowerCase() === subscriptionId.toLowerCase() &&
          a.name.toLowerCase() === serviceName.toLowerCase(),
      );
      if (!account)
        throw new AzureError(404, "ResourceNotFound", `The storage account '${serviceName}' was not found.`);
      ctx.rbac.authorize(call.principal, route.action, account.id);
      return route.handler(req, account);
    },
  };
}
