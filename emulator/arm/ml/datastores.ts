/**
 * Datastores: list (filters, orders, keyset `$skip` paging), get without secrets, createOrUpdate with
 * AML's validation against the storage account, listSecrets and delete.
 */
import type { ArmCall, ArmRoute, EmulatorContext } from "../../context";
import { AzureError, isObject, jsonBody, type Request, type Response } from "../../http";
import { addSasSignature, sasSigningKey, signedWithAccountKey } from "../../sas";
import {
  findStorageAccountByName,
  keyWorks,
  type Datastore,
  type DatastoreCredentials,
  type DatastoreType,
  type Estate,
  type Workspace,
} from "../../model";
import { SEEDED, authorshipOf, recordChange, type Authorship } from "./authorship";
import {
  BadField,
  DATASTORE_NAME,
  DATASTORE_TYPE,
  DEFAULT_DATASTORE_PAGE_SIZE,
  DS,
  ML_ACTIONS,
  decodeSkipToken,
  encodeSkipToken,
  findDatastore,
  invalidSkip,
  mlRoute,
  nextLinkFor,
  shown,
  userError,
  workspaceOf,
} from "./common";

function containerField(type: DatastoreType): string {
  return type === "AzureFile"
    ? "fileShareName"
    : type === "AzureDataLakeGen2"
      ? "filesystem"
      : "containerName";
}

/** Credentials as GET shows them: the type only, never secrets. */
export function publicCredentials(credentials: DatastoreCredentials): Record<string, unknown> {
  return { credentialsType: credentials.credentialsType };
}

/** A datastore as AML answers GET/list/PUT: no secrets. */
export function datastoreResource(ds: Datastore, authorship: Authorship = SEEDED): Record<string, unknown> {
  return {
    id: ds.id,
    name: ds.name,
    type: DATASTORE_TYPE,
    properties: {
      description: ds.description ?? null,
      tags: ds.tags,
      properties: {},
      credentials: publicCredentials(ds.credentials),
      datastoreType: ds.datastoreType,
      isDefault: ds.isDefault,
      accountName: ds.accountName,
      [containerField(ds.datastoreType)]: ds.containerName,
      endpoint: ds.endpoint,
      protocol: ds.protocol,
      serviceDataAccessAuthIdentity: "None",
    },
    systemData: {
      createdAt: ds.createdAt.toISOString(),
      createdBy: authorship.createdBy,
      createdByType: authorship.createdByType,
      lastModifiedAt: ds.lastModifiedAt.toISOString(),
      lastModifiedBy: authorship.lastModifiedBy,
      lastModifiedByType: authorship.lastModifiedByType,
    },
  };
}

function requireString(obj: Record<string, unknown>, field: string, target: string): string {
  const v = obj[field];
  if (typeof v !== "string" || v.trim() === "") {
    throw new BadField(target, `The field '${target}' is required and must be a non-empty string.`);
  }
  return v;
}

function parseCredentials(props: Record<string, unknown>): DatastoreCredentials {
  const creds = props.credentials;
  if (!isObject(creds))
    throw new BadField("properties.credentials", "The field 'properties.credentials' is required.");
  const type = creds.credentialsType;
  const secrets = isObject(creds.secrets) ? creds.secrets : undefined;
  switch (type) {
    case "None":
      return { credentialsType: "None" };
    case "AccountKey": {
      if (!secrets || secrets.secretsType !== "AccountKey") {
        throw new BadField(
          "properties.credentials.secrets",
          "AccountKey credentials need 'properties.credentials.secrets' with secretsType 'AccountKey'.",
        );
      }
      const key = requireString(secrets, "key", "properties.credentials.secrets.key");
      return { credentialsType: "AccountKey", secrets: { secretsType: "AccountKey", key } };
    }
    case "Sas": {
      if (!secrets || secrets.secretsType !== "Sas") {
        throw new BadField(
          "properties.credentials.secrets",
          "Sas credentials need 'properties.credentials.secrets' with secretsType 'Sas'.",
        );
      }
      const sasToken = requireString(secrets, "sasToken", "properties.credentials.secrets.sasToken");
      return { credentialsType: "Sas", secrets: { secretsType: "Sas", sasToken } };
    }
    case undefined:
      throw new BadField(
        "properties.credentials.credentialsType",
        "The field 'properties.credentials.credentialsType' is required.",
      );
    default:
      throw new BadField(
        "properties.credentials.credentialsType",
        `The value '${shown(type)}' of 'properties.credentials.credentialsType' is not supported: use AccountKey, Sas or None.`,
      );
  }
}

export type DatastoreInput = Pick<
  Datastore,
  | "datastoreType"
  | "accountName"
  | "containerName"
  | "endpoint"
  | "protocol"
  | "description"
  | "tags"
  | "credentials"
>;

function parseTags(props: Record<string, unknown>): Record<string, string> {
  const tags = props.tags ?? {};
  if (!isObject(tags) || Object.values(tags).some((v) => typeof v !== "string")) {
    throw new BadField("properties.tags", "The field 'properties.tags' must map names to string values.");
  }
  return tags as Record<string, string>;
}

/** Validates a datastore PUT body like AML; throws BadField naming the field at fault. */
export function parseDatastoreBody(body: unknown): DatastoreInput {
  if (!isObject(body) || !isObject(body.properties)) {
    throw new BadField("properties", "The field 'properties' is required.");
  }
  const props = body.properties;
  const type = props.datastoreType;
  if (type === undefined)
    throw new BadField("properties.datastoreType", "The field 'properties.datastoreType' is required.");
  if (type !== "AzureBlob" && type !== "AzureFile" && type !== "AzureDataLakeGen2") {
    throw new BadField(
      "properties.datastoreType",
      `The value '${shown(type)}' of 'properties.datastoreType' is not supported: use AzureBlob, AzureFile or AzureDataLakeGen2.`,
    );
  }
  const accountName = requireString(props, "accountName", "properties.accountName");
  const field = containerField(type);
  const containerName = requireString(props, field, `properties.${field}`);
  const optional = (name: string, fallback: string): string => {
    const v = props[name];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string")
      throw new BadField(`properties.${name}`, `The field 'properties.${name}' must be a string.`);
    return v;
  };
  const description = optional("description", "");
  return {
    datastoreType: type,
    accountName,
    containerName,
    endpoint: optional("endpoint", "core.windows.net"),
    protocol: optional("protocol", "https"),
    description: description === "" ? undefined : description,
    tags: parseTags(props),
    credentials: parseCredentials(props),
  };
}

/** AML's validation of a new datastore: the account must exist and an account key must work. */
function validateAgainstStorage(estate: Estate, input: DatastoreInput, at: Date): Response | undefined {
  const account = findStorageAccountByName(estate, input.accountName);
  if (!account) {
    return userError(
      `Datastore validation failed: storage account '${input.accountName}' could not be reached. Check 'properties.accountName', or pass skipValidation=true.`,
      "properties.accountName",
    );
  }
  if (input.credentials.credentialsType === "AccountKey" && !account.allowSharedKeyAccess) {
    return userError(
      `Datastore validation failed: storage account '${account.name}' does not permit shared key access (403 KeyBasedAuthenticationNotPermitted). Use identity-based access (credentials None), or pass skipValidation=true.`,
      "properties.credentials.credentialsType",
    );
  }
  if (
    input.credentials.credentialsType === "AccountKey" &&
    !keyWorks(account, input.credentials.secrets.key, at)
  ) {
    return userError(
      `Datastore validation failed: storage account '${account.name}' refused the account key (403 AuthenticationFailed). Check 'properties.credentials.secrets.key', or pass skipValidation=true.`,
      "properties.credentials.secrets.key",
    );
  }
  // A SAS an account key signed must be signed with a live one (user delegation SAS are not checked here).
  if (input.credentials.credentialsType === "Sas") {
    const token = input.credentials.secrets.sasToken;
    if (signedWithAccountKey(token, at) && sasSigningKey(account, token, input.containerName) === undefined) {
      return userError(
        `Datastore validation failed: storage account '${account.name}' refused the SAS token (403 AuthenticationFailed). Check 'properties.credentials.secrets.sasToken', or pass skipValidation=true.`,
        "properties.credentials.secrets.sasToken",
      );
    }
  }
  return undefined;
}

/** The orders the list accepts (`orderBy`, as the SDK documents it); creation time by default. */
export type DatastoreOrder = "createdtime" | "modifiedtime" | "name";

interface DatastoreQuery {
  count: number;
  orderBy: DatastoreOrder;
  ascending: boolean;
  isDefault?: boolean;
  names?: Set<string>;
  searchText?: string;
  after?: ListPosition;
}

function parseDatastoreQuery(req: Request): DatastoreQuery {
  const countText = req.query.get("count");
  const count = countText === undefined ? DEFAULT_DATASTORE_PAGE_SIZE : Number(countText);
  if (!Number.isInteger(count) || count < 1) {
    throw new AzureError(
      400,
      "UserError",
      `The value '${countText}' of 'count' is not valid: use a positive integer.`,
    );
  }
  const orderText = req.query.get("orderby")?.toLowerCase() ?? "createdtime";
  if (orderText !== "createdtime" && orderText !== "modifiedtime" && orderText !== "name") {
    throw new AzureError(
      400,
      "UserError",
      `The value '${orderText}' of 'orderBy' is not valid: use createdtime, modifiedtime or name.`,
    );
  }
  const isDefault = req.query.get("isdefault");
  const names = req.query.get("names");
  const skip = req.query.get("$skip");
  let after: DatastoreQuery["after"];
  if (skip !== undefined) {
    const token = decodeSkipToken(skip);
    if (!isObject(token) || typeof token.t !== "number" || typeof token.n !== "string") throw invalidSkip();
    after = { t: token.t, n: token.n };
  }
  return {
    count,
    orderBy: orderText,
    ascending: req.query.get("orderbyasc")?.toLowerCase() === "true",
    isDefault: isDefault === undefined ? undefined : isDefault.toLowerCase() === "true",
    names: names ? new Set(names.split(",").map((n) => n.trim().toLowerCase())) : undefined,
    searchText: req.query.get("searchtext")?.toLowerCase() || undefined,
    after,
  };
}

/**
 * A datastore's position in a list: the ordered-by time (0 for name order), then the lower-cased
 * name. The `$skip` token is the last position served, so a page boundary stays put while other
 * datastores are created or deleted (an offset would skip or repeat items).
 */
type ListPosition = { t: number; n: string };

function comparePositions(a: ListPosition, b: ListPosition): number {
  return a.t - b.t || (a.n < b.n ? -1 : a.n > b.n ? 1 : 0);
}

function positionOf(ds: Datastore, orderBy: DatastoreOrder): ListPosition {
  const t =
    orderBy === "name" ? 0 : (orderBy === "modifiedtime" ? ds.lastModifiedAt : ds.createdAt).getTime();
  return { t, n: ds.name.toLowerCase() };
}

export function pageOfDatastores(ws: Workspace, q: DatastoreQuery): { page: Datastore[]; more: boolean } {
  const sign = q.ascending ? 1 : -1;
  const matching = [...ws.datastores.values()]
    .filter((ds) => q.isDefault === undefined || ds.isDefault === q.isDefault)
    .filter((ds) => !q.names || q.names.has(ds.name.toLowerCase()))
    .filter((ds) => !q.searchText || ds.name.toLowerCase().includes(q.searchText))
    .filter((ds) => !q.after || sign * comparePositions(positionOf(ds, q.orderBy), q.after) > 0)
    .sort((a, b) => sign * comparePositions(positionOf(a, q.orderBy), positionOf(b, q.orderBy)));
  return { page: matching.slice(0, q.count), more: matching.length > q.count };
}

export function datastoreRoutes(ctx: EmulatorContext): ArmRoute[] {
  const renderDatastore = (ds: Datastore): Record<string, unknown> => datastoreResource(ds, authorshipOf(ds));
  const datastoreOf = (p: Record<string, string>): { ws: Workspace; ds: Datastore } => {
    const ws = workspaceOf(ctx, p);
    return { ws, ds: findDatastore(ws, p.name ?? "", p.resourceGroupName ?? "") };
  };

  const putDatastore = async (req: Request, p: Record<string, string>, call: ArmCall): Promise<Response> => {
    const ws = workspaceOf(ctx, p);
    const name = p.name ?? "";
    if (!DATASTORE_NAME.test(name)) {
      return userError(
        `The datastore name '${name}' is not valid: use letters, digits, '-' and '_', starting with a letter or digit.`,
        "name",
      );
    }
    let input: DatastoreInput;
    try {
      input = parseDatastoreBody(jsonBody(req));
    } catch (e) {
      if (e instanceof BadField) return userError(e.message, e.target);
      throw e;
    }
    if (req.query.get("skipvalidation")?.toLowerCase() !== "true") {
      const rejected = validateAgainstStorage(ctx.estate, input, ctx.now());
      if (rejected) return rejected;
    }
    const existing = ws.datastores.get(name.toLowerCase());
    const now = ctx.now();
    const ds: Datastore = existing
      ? Object.assign(existing, input)
      : {
          ...input,
          id: `${ws.id}/datastores/${name}`,
          name,
          isDefault: false,
          createdAt: now,
          lastModifiedAt: now,
        };
    if (!existing) ws.datastores.set(name.toLowerCase(), ds);
    // A SAS is a credential too: its signature joins the keys the whole-run secret scan looks for.
    if (ds.credentials.credentialsType === "Sas")
      addSasSignature(ctx.issuedKeys, ds.credentials.secrets.sasToken);
    recordChange(ds, existing !== undefined, now, { by: call.principal.clientId, type: "Application" });
    await ctx.changed("datastore PUT");
    return { status: existing ? 200 : 201, body: renderDatastore(ds) };
  };

  return [
    mlRoute({
      method: "GET",
      pattern: DS,
      action: ML_ACTIONS.datastoreRead,
      kind: "read",
      operation: "datastores.list",
      handler: (req, p) => {
        const ws = workspaceOf(ctx, p);
        const q = parseDatastoreQuery(req);
        const { page, more } = pageOfDatastores(ws, q);
        const last = page.at(-1);
        const body: Record<string, unknown> = { value: page.map(renderDatastore) };
        if (more && last) {
          body.nextLink = nextLinkFor(req, {
            $skip: encodeSkipToken(positionOf(last, q.orderBy)),
            count: String(q.count),
            orderBy: req.query.get("orderby"),
            orderByAsc: String(q.ascending),
            isDefault: req.query.get("isdefault"),
            names: req.query.get("names"),
            searchText: req.query.get("searchtext"),
          });
        }
        return { status: 200, body };
      },
    }),
    mlRoute({
      method: "GET",
      pattern: `${DS}/{name}`,
      action: ML_ACTIONS.datastoreRead,
      kind: "read",
      operation: "datastores.get",
      handler: (_req, p) => ({ status: 200, body: renderDatastore(datastoreOf(p).ds) }),
    }),
    mlRoute({
      method: "PUT",
      pattern: `${DS}/{name}`,
      action: ML_ACTIONS.datastoreWrite,
      kind: "write",
      operation: "datastores.createOrUpdate",
      handler: putDatastore,
    }),
    mlRoute({
      method: "POST",
      pattern: `${DS}/{name}/listSecrets`,
      action: ML_ACTIONS.datastoreListSecrets,
      kind: "write",
      operation: "datastores.listSecrets",
      handler: (_req, p) => {
        const { ds } = datastoreOf(p);
        if (ds.credentials.credentialsType === "None") {
          return userError(
            `Datastore '${ds.name}' uses credentials of type None, which have no secrets.`,
            "credentials",
          );
        }
        return { status: 200, body: { ...ds.credentials.secrets } };
      },
    }),
    mlRoute({
      method: "DELETE",
      pattern: `${DS}/{name}`,
      action: ML_ACTIONS.datastoreDelete,
      kind: "write",
      operation: "datastores.delete",
      handler: async (_req, p) => {
        const ws = workspaceOf(ctx, p);
        if (!ws.datastores.delete((p.name ?? "").toLowerCase())) return { status: 204 };
        await ctx.changed("datastore DELETE");
        return { status: 200 };
      },
    }),
  ];
}
