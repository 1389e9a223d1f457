import {
  bearerTokenAuthenticationPolicy,
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineFromOptions,
  createPipelineRequest,
  type HttpMethods,
  type PipelineResponse,
} from "@azure/core-rest-pipeline";
import { XMLParser } from "fast-xml-parser";
import { ConfigurationError, KeyturnError } from "../errors";
import { type KeyName } from "../rotation/model";
import { parseArmId } from "../rotation/ids";
import { azureCall, listOrNoneIfUnregistered, type Operation, OPERATIONS } from "./call";
import {
  armClientOptions,
  SETTINGS,
  serviceManagementScope,
  type AdapterOptions,
  type CloudProfile,
} from "./cloud";
import { classicStorageAccountRef } from "./ids";
import { ListedKeysStorage, type ListedKey, type StorageAccountInfo } from "./storage";

/**
 * Classic storage accounts (`Microsoft.ClassicStorage/storageAccounts`): ARM lists them, Service
 * Management holds their keys (seed 002: Get Storage Keys, Regenerate Keys). Behind the same
 * StorageKeys interface as ARM accounts, so the rotation cannot tell them apart.
 */

/** The `x-ms-version` seed 002 names ("2009-10-01 or higher"): Get and Regenerate Keys answer alike since. */
export const SERVICE_MANAGEMENT_VERSION = "2009-10-01";
/** The newest api-version ARM serves Microsoft.ClassicStorage/storageAccounts with. */
export const CLASSIC_STORAGE_API_VERSION = "2016-11-01";
/** Service Management's XML namespace (the archived docs show it with `https`; the wire has `http`). */
export const SERVICE_MANAGEMENT_XMLNS = "http://schemas.microsoft.com/windowsazure";

/** Service Management calls the keys Primary and Secondary; keyturn's key1 and key2 are them, in that order. */
export const CLASSIC_KEY_TYPES: Readonly<Record<KeyName, "Primary" | "Secondary">> = {
  key1: "Primary",
  key2: "Secondary",
};

const xml = new XMLParser({
  removeNSPrefix: true,
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: true,
});

type Send = (request: Parameters<typeof createPipelineRequest>[0]) => Promise<PipelineResponse>;

interface ClassicAccountBody {
  id?: string;
  name?: string;
  tags?: Record<string, string>;
  properties?: { endpoints?: unknown };
}

export class ClassicStorageKeys extends ListedKeysStorage {
  protected readonly listKeysOperation = OPERATIONS.listClassicStorageKeys.name;
  /** ARM, for the accounts themselves. */
  private readonly arm: Send;
  /** Service Management, for their keys. */
  private readonly serviceManagement: Send | undefined;
  /** Regenerate Keys alone goes without client retries: a repeated POST that lands regenerates twice (I4). */
  private readonly serviceManagementOnce: Send | undefined;

  constructor(
    private readonly profile: CloudProfile,
    options: AdapterOptions = {},
  ) {
    super();
    this.arm = pipelineOf(profile, options, profile.armScope);
    const endpoint = profile.serviceManagementEndpoint;
    if (endpoint !== undefined) {
      const scope = profile.serviceManagementScope ?? serviceManagementScope(endpoint);
      this.serviceManagement = pipelineOf(profile, options, scope);
      this.serviceManagementOnce = pipelineOf(
        profile,
        { ...options, armRetry: { ...options.armRetry, maxRetries: 0 } },
        scope,
      );
    }
  }

  async listAccounts(subscriptionId: string): Promise<StorageAccountInfo[]> {
    const scope = `/subscriptions/${subscriptionId}`;
    return azureCall(OPERATIONS.listClassicStorageAccounts, scope, async () => {
      const accounts: StorageAccountInfo[] = [];
      let url: string | undefined =
        `${this.profile.armEndpoint}${scope}/providers/Microsoft.ClassicStorage/storageAccounts?api-version=${CLASSIC_STORAGE_API_VERSION}`;
      return listOrNoneIfUnregistered(async () => {
        while (url !== undefined) {
          const page = json(await call(this.arm, "GET", url)) as {
            value?: ClassicAccountBody[];
            nextLink?: string;
          };
          for (const account of page.value ?? []) accounts.push(classicAccountInfo(account));
          url = page.nextLink ?? undefined;
        }
        return accounts;
      });
    });
  }

  async getAccount(id: string): Promise<StorageAccountInfo> {
    const ref = classicStorageAccountRef(id);
    return azureCall(OPERATIONS.getClassicStorageAccount, id, async () => {
      const url = `${this.profile.armEndpoint}${ref.id}?api-version=${CLASSIC_STORAGE_API_VERSION}`;
      return classicAccountInfo(json(await call(this.arm, "GET", url)) as ClassicAccountBody);
    });
  }

  protected async listKeys(id: string): Promise<ListedKey[]> {
    return this.keysCall(OPERATIONS.listClassicStorageKeys, id, this.serviceManagement, "GET", "");
  }

  protected async regenerateKey(id: string, keyName: KeyName): Promise<ListedKey[]> {
    const body =
      `<?xml version="1.0" encoding="utf-8"?>\n` +
      `<RegenerateKeys xmlns="${SERVICE_MANAGEMENT_XMLNS}"><KeyType>${CLASSIC_KEY_TYPES[keyName]}</KeyType></RegenerateKeys>`;
    const operation = OPERATIONS.regenerateClassicStorageKey;
    return this.keysCall(operation, id, this.serviceManagementOnce, "POST", "?action=regenerate", body);
  }

  /** Get Storage Keys or Regenerate Keys: both answer with a StorageService naming both keys. */
  private async keysCall(
    operation: Operation,
    id: string,
    send: Send | undefined,
    method: HttpMethods,
    query: string,
    body?: string,
  ): Promise<ListedKey[]> {
    const ref = classicStorageAccountRef(id);
    const endpoint = this.profile.serviceManagementEndpoint;
    if (endpoint === undefined || send === undefined) {
      throw new ConfigurationError(
        SETTINGS.serviceManagementEndpoint,
        `${operation.name} on ${id} needs Service Management, whose endpoint is unknown for this cloud: set ${SETTINGS.serviceManagementEndpoint} (e.g. https://management.core.usgovcloudapi.net), or leave the classic account out of scope`,
      );
    }
    const url = `${endpoint}/${encodeURIComponent(ref.subscriptionId)}/services/storageservices/${encodeURIComponent(ref.name)}/keys${query}`;
    const headers = { accept: "application/xml", "x-ms-version": SERVICE_MANAGEMENT_VERSION };
    return azureCall(operation, id, async () =>
      storageServiceKeys(
        operation,
        id,
        await call(
          send,
          method,
          url,
          body === undefined ? headers : { ...headers, "content-type": "application/xml" },
          body,
        ),
      ),
    );
  }
}
/** One request; a non-2xx answer is thrown as the SDKs throw it (status, Azure's code and message). */
async function call(
  send: Send,
  method: HttpMethods,
  url: string,
  headers: Record<string, string> = { accept: "application/json" },
  body?: string,
): Promise<PipelineResponse> {
  const response = await send({
    url,
    method,
    headers: createHttpHeaders(headers),
    ...(body !== undefined ? { body } : {}),
  });
  if (response.status >= 200 && response.status < 300) return response;
  const error = errorOf(response);
  throw Object.assign(new Error(error.message ?? `status ${response.status}`), {
    name: "RestError",
    statusCode: response.status,
    ...(error.code !== undefined ? { code: error.code } : {}),
    request: { url },
  });
}

/**
 * A pipeline like the ARM clients': the pacer, the call counter, the per-attempt deadline and the
 * SDK's retry policy, signing with a token for `scope` (ARM's, or Service Management's own).
 */
function pipelineOf(profile: CloudProfile, options: AdapterOptions, scope: string): Send {
  const client = armClientOptions(profile, options);
  const pipeline = createPipelineFromOptions({
    ...(client.tlsOptions ? { tlsOptions: client.tlsOptions } : {}),
    ...(client.retryOptions ? { retryOptions: client.retryOptions } : {}),
    userAgentOptions: client.userAgentOptions,
  });
  pipeline.addPolicy(bearerTokenAuthenticationPolicy({ credential: profile.credential, scopes: [scope] }), {
    phase: "Sign",
  });
  for (const { policy, position } of client.additionalPolicies) {
    pipeline.addPolicy(policy, position === "perRetry" ? { afterPhase: "Retry" } : {});
  }
  const http = createDefaultHttpClient();
  return (request) => pipeline.sendRequest(http, createPipelineRequest(request));
}

function json(response: PipelineResponse): unknown {
  try {
    return JSON.parse(response.bodyAsText ?? "") as unknown;
  } catch {
    throw new KeyturnError(`ARM answered ${response.request.url.split("?")[0]} with a body that is not JSON`);
  }
}

/**
 * Keys from a StorageService answer. Its text is never quoted in an error: it holds both keys.
 */
function storageServiceKeys(operation: Operation, id: string, response: PipelineResponse): ListedKey[] {
  let parsed: unknown;
  try {
    parsed = xml.parse(response.bodyAsText ?? "");
  } catch {
    parsed = undefined;
  }
  const keys = (parsed as { StorageService?: { StorageServiceKeys?: Record<string, unknown> } } | undefined)
    ?.StorageService?.StorageServiceKeys;
  if (typeof keys !== "object" || keys === null) {
    throw new KeyturnError(
      `${operation.name} on ${id}: Service Management answered without a StorageService/StorageServiceKeys element; check ${SETTINGS.serviceManagementEndpoint} points at Service Management`,
    );
  }
  return (["key1", "key2"] as const).flatMap((keyName) => {
    const value = keys[CLASSIC_KEY_TYPES[keyName]];
    return typeof value === "string" && value !== "" ? [{ keyName, value }] : [];
  });
}

function classicAccountInfo(account: ClassicAccountBody): StorageAccountInfo {
  const id = account.id ?? "";
  const { subscriptionId, resourceGroup } = parseArmId(id);
  const endpoints = Array.isArray(account.properties?.endpoints)
    ? account.properties.endpoints.filter((e): e is string => typeof e === "string")
    : [];
  // Listed blob, queue, table, file (Azure's order); named by their host where Azure names them.
  const service = (name: string) =>
    endpoints.find((e) => new RegExp(`^https?://[^./]+\\.${name}\\.`, "i").test(e));
  const blobEndpoint = service("blob") ?? endpoints[0];
  const fileEndpoint = service("file");
  return {
    id,
    name: account.name ?? "",
    subscriptionId: subscriptionId ?? "",
    resourceGroup: resourceGroup ?? "",
    tags: { ...account.tags },
    // Service Management records no key creation times: the guards decide from fingerprints alone.
    keyCreationTime: {},
    ...(blobEndpoint ? { blobEndpoint } : {}),
    ...(fileEndpoint ? { fileEndpoint } : {}),
  };
}

function errorOf(response: PipelineResponse): { code?: string; message?: string } {
  const text = response.bodyAsText ?? "";
  try {
    if (text.trimStart().startsWith("<")) {
      const error = (xml.parse(text) as { Error?: { Code?: unknown; Message?: unknown } }).Error;
      return {
        ...(typeof error?.Code === "string" ? { code: error.Code } : {}),
        ...(typeof error?.Message === "string" ? { message: error.Message } : {}),
      };
    }
    const error = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
    return {
      ...(typeof error?.code === "string" ? { code: error.code } : {}),
      ...(typeof error?.message === "string" ? { message: error.message } : {}),
    };
  } catch {
    return {};
  }
}
