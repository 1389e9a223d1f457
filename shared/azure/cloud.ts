import { AsyncLocalStorage } from "node:async_hooks";
import { readFileSync } from "node:fs";
import { ClientSecretCredential, DefaultAzureCredential, type TokenCredential } from "@azure/identity";
import type { PipelinePolicy } from "@azure/core-rest-pipeline";
import { armPacer } from "./pacing";
import { z } from "zod";
import { ConfigurationError } from "../errors";

/** Where keyturn's ARM calls go and who makes them: Azure's public cloud, another cloud, or the emulator. */
export interface CloudProfile {
  name: "AzureCloud" | "custom" | "emulator";
  /** ARM's base URL, without a trailing slash. */
  armEndpoint: string;
  /** The token scope ARM clients ask for; differs from the public cloud's only in some custom clouds. */
  armScope: string;
  credential: TokenCredential;
  /** Subscriptions to work in when known up front (the emulator's); otherwise discovered. */
  subscriptionIds?: string[];
  /** PEM of a CA to trust for ARM, sign-in and Key Vault (the emulator's self-signed one). */
  tlsCa?: string;
  /** Every ARM HTTP request made with this profile's clients, retries included. */
  armCalls: ArmCallCounter;
  /**
   * Service Management's base URL (classic storage accounts' keys), without a trailing slash. Undefined:
   * unknown for this cloud, and a classic account's keys fail naming KEYTURN_SERVICE_MANAGEMENT_ENDPOINT.
   */
  serviceManagementEndpoint?: string;
  /** The token scope for Service Management when it is not its endpoint's (the emulator's: Azure's public one). */
  serviceManagementScope?: string;
}

export const PUBLIC_SERVICE_MANAGEMENT_ENDPOINT = "https://management.core.windows.net";

/**
 * Service Management of the sovereign clouds, by their ARM endpoint (as the Azure CLI's cloud definitions
 * pair them); a cloud not listed here (Azure Stack Hub) has none unless KEYTURN_SERVICE_MANAGEMENT_ENDPOINT names it.
 */
export const SERVICE_MANAGEMENT_BY_ARM: Readonly<Record<string, string>> = {
  "https://management.azure.com": PUBLIC_SERVICE_MANAGEMENT_ENDPOINT,
  "https://management.usgovcloudapi.net": "https://management.core.usgovcloudapi.net",
  "https://management.chinacloudapi.cn": "https://management.core.chinacloudapi.cn",
};

/** The token scope for Service Management: its own endpoint is the audience (`https://management.core.windows.net/`). */
export function serviceManagementScope(endpoint: string): string {
  return `${endpoint}/.default`;
}

export const PUBLIC_ARM_ENDPOINT = "https://management.azure.com";
export const PUBLIC_ARM_SCOPE = "https://management.azure.com/.default";

export const SETTINGS = {
  connectionFile: "KEYTURN_CONNECTION_FILE",
  armEndpoint: "KEYTURN_ARM_ENDPOINT",
  authorityHost: "KEYTURN_AUTHORITY_HOST",
  armScope: "KEYTURN_ARM_SCOPE",
  serviceManagementEndpoint: "KEYTURN_SERVICE_MANAGEMENT_ENDPOINT",
} as const;

export interface LoadCloudProfileOptions {
  /** JSON written by `keyturn emulator --connection-file`; `KEYTURN_CONNECTION_FILE` when absent. */
  connectionFile?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * The one place keyturn decides which cloud it talks to. Everything is validated here, before any
 * client exists, so a typo in a setting fails with the setting's name instead of a DNS error mid-rotation.
 */
export function loadCloudProfile(options: LoadCloudProfileOptions = {}): CloudProfile {
  const env = options.env ?? process.env;
  const connectionFile = options.connectionFile ?? nonEmpty(env[SETTINGS.connectionFile]);
  if (connectionFile !== undefined) return emulatorProfile(connectionFile);

  const armEndpoint = nonEmpty(env[SETTINGS.armEndpoint]);
  const authorityHost = nonEmpty(env[SETTINGS.authorityHost]);
  const armScope = nonEmpty(env[SETTINGS.armScope]);
  const serviceManagement = nonEmpty(env[SETTINGS.serviceManagementEndpoint]);
  const serviceManagementEndpoint =
    serviceManagement !== undefined
      ? httpsUrl(SETTINGS.serviceManagementEndpoint, serviceManagement)
      : SERVICE_MANAGEMENT_BY_ARM[trimSlash(armEndpoint ?? PUBLIC_ARM_ENDPOINT).toLowerCase()];
  if (armEndpoint === undefined) {
    if (authorityHost !== undefined || armScope !== undefined) {
      const setting = authorityHost !== undefined ? SETTINGS.authorityHost : SETTINGS.armScope;
      throw new ConfigurationError(
        setting,
        `${setting} is set but ${SETTINGS.armEndpoint} is not: set both for a cloud other than Azure's public cloud, or neither`,
      );
    }
    return {
      name: "AzureCloud",
      armEndpoint: PUBLIC_ARM_ENDPOINT,
      armScope: PUBLIC_ARM_SCOPE,
      credential: new DefaultAzureCredential(),
      armCalls: new ArmCallCounter(),
      ...(serviceManagementEndpoint !== undefined ? { serviceManagementEndpoint } : {}),
    };
  }

  const endpoint = httpsUrl(SETTINGS.armEndpoint, armEndpoint);
  // A sovereign cloud signs in somewhere else too; silently using the public authority fails much later.
  const authority = authorityHost ?? nonEmpty(env.AZURE_AUTHORITY_HOST);
  if (authority === undefined) {
    throw new ConfigurationError(
      SETTINGS.authorityHost,
      `${SETTINGS.armEndpoint} is set but ${SETTINGS.authorityHost} is not: set it to the cloud's sign-in endpoint, e.g. https://login.microsoftonline.us for Azure Government`,
    );
  }
  const authoritySetting = authorityHost !== undefined ? SETTINGS.authorityHost : "AZURE_AUTHORITY_HOST";
  return {
    name: "custom",
    armEndpoint: endpoint,
    // Azure Government and China accept their ARM endpoint as the token audience; Azure Stack Hub does not.
    armScope: armScope !== undefined ? scopeOf(SETTINGS.armScope, armScope) : `${endpoint}/.default`,
    credential: new DefaultAzureCredential({ authorityHost: httpsUrl(authoritySetting, authority) }),
    armCalls: new ArmCallCounter(),
    ...(serviceManagementEndpoint !== undefined ? { serviceManagementEndpoint } : {}),
  };
}

const httpsString = z.string().refine((v) => isHttpsUrl(v), { message: "must be an https URL" });

const connectionSchema = z.object({
  armEndpoint: httpsString,
  authorityHost: httpsString,
  tenantId: z.string().min(1),
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  subscriptionIds: z.array(z.string().min(1)).min(1),
  caCertFile: z.string().min(1),
  /** Absent in connection files written before classic storage accounts: their keys are then unreachable. */
  serviceManagementEndpoint: httpsString.optional(),
});

function emulatorProfile(file: string): CloudProfile {
  const text = readText(
    file,
    "connection file",
    "start the emulator with `keyturn emulator --connection-file <path>`",
  );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConfigurationError(
      "connectionFile",
      `connection file ${file} is not JSON: write it with \`keyturn emulator --connection-file ${file}\``,
    );
  }
  const parsed = connectionSchema.safeParse(json);
  if (!parsed.success) {
    // Paths and zod's wording only: the file holds a client secret, and values are never echoed.
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new ConfigurationError(
      "connectionFile",
      `connection file ${file} is invalid (${problems.join("; ")}): write it with \`keyturn emulator --connection-file ${file}\``,
    );
  }
  const c = parsed.data;
  const tlsCa = readText(
    c.caCertFile,
    "CA certificate",
    `the emulator writes it at start; is the emulator of ${file} still running?`,
  );
  const tlsOptions = { ca: tlsCa };
  return {
    name: "emulator",
    armEndpoint: trimSlash(c.armEndpoint),
    armScope: PUBLIC_ARM_SCOPE,
    credential: new ClientSecretCredential(c.tenantId, c.clientId, c.clientSecret, {
      authorityHost: c.authorityHost,
      // Instance discovery asks login.microsoftonline.com about the authority, which does not know the emulator.
      disableInstanceDiscovery: true,
      tlsOptions,
    }),
    subscriptionIds: c.subscriptionIds,
    tlsCa,
    armCalls: new ArmCallCounter(),
    ...(c.serviceManagementEndpoint !== undefined
      ? {
          serviceManagementEndpoint: trimSlash(c.serviceManagementEndpoint),
          // Like ARM's, the emulator's tokens are for the public cloud's audience.
          serviceManagementScope: serviceManagementScope(PUBLIC_SERVICE_MANAGEMENT_ENDPOINT),
        }
      : {}),
  };
}

function readText(file: string, what: string, hint: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "unreadable";
    throw new ConfigurationError("connectionFile", `cannot read ${what} ${file} (${code}): ${hint}`);
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

function isHttpsUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "https:" && url.username === "" && url.password === "";
  } catch {
    return false;
  }
}

function httpsUrl(setting: string, value: string): string {
  if (!isHttpsUrl(value)) {
    // A URL with user:password@ is refused too, and then not echoed.
    const shown = value.includes("@") ? "a URL with credentials" : `'${value}'`;
    throw new ConfigurationError(
      setting,
      `${setting} must be an https URL without credentials, such as https://management.usgovcloudapi.net; got ${shown}`,
    );
  }
  return trimSlash(value);
}

function scopeOf(setting: string, value: string): string {
  const url = httpsUrl(setting, value);
  return url.endsWith("/.default") ? url : `${url}/.default`;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

// ---------------------------------------------------------------------------------------------
// ARM clients

/** Options every ARM client of a profile is built with. */
export interface ArmClientOptions {
  endpoint: string;
  /** What the classic (core-client) SDKs read: arm-machinelearning, arm-batch, arm-subscriptions. */
  credentialScopes: string[];
  /** What the modular (@azure-rest/core-client) SDKs read: arm-storage 20. */
  credentials: { scopes: string[] };
  tlsOptions?: { ca: string };
  additionalPolicies: { policy: PipelinePolicy; position: "perCall" | "perRetry" }[];
  userAgentOptions: { userAgentPrefix: string };
}

export function clientOptions(profile: CloudProfile): ArmClientOptions {
  return {
    endpoint: profile.armEndpoint,
    credentialScopes: [profile.armScope],
    credentials: { scopes: [profile.armScope] },
    ...(profile.tlsCa !== undefined ? { tlsOptions: { ca: profile.tlsCa } } : {}),
    // perRetry: a throttled call the SDK retries costs ARM budget twice, and reports should say so.
    // The pacer's patience wraps the SDK's own retries; its pace runs before every attempt.
    additionalPolicies: [
      { policy: armPacer.patiencePolicy, position: "perCall" },
      { policy: armPacer.pacePolicy, position: "perRetry" },
      { policy: profile.armCalls.policy, position: "perRetry" },
      // Last, next to the wire: each attempt has its own deadline, which the SDK retries past.
      { policy: armPacer.deadlinePolicy, position: "perRetry" },
    ],
    userAgentOptions: { userAgentPrefix: "keyturn" },
  };
}

/** Counts ARM requests as they leave the client, so reports can show "ARM calls made" against ARM's limits. */
/**
 * The ARM calls of one unit of work (an activity). Activities run in parallel in one process and
 * share the profile's counter, so a difference of totals would count each other's calls.
 */
const workScope = new AsyncLocalStorage<{ count: number }>();

export async function countArmCalls<T>(work: () => Promise<T>): Promise<{ result: T; armCalls: number }> {
  const scope = { count: 0 };
  const result = await workScope.run(scope, work);
  return { result, armCalls: scope.count };
}

export class ArmCallCounter {
  private total = 0;
  private readonly operations = new Map<string, number>();

  readonly policy: PipelinePolicy = {
    name: "keyturnArmCallCounter",
    sendRequest: (request, next) => {
      this.record(request.method, request.url);
      return next(request);
    },
  };

  get count(): number {
    return this.total;
  }

  /** Calls per `METHOD Namespace/type/…` (see `armOperationOf`), sorted by label. */
  get byOperation(): Record<string, number> {
    return Object.fromEntries(
      [...this.operations.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
  }

  record(method: string, url: string): void {
    this.total++;
    const scope = workScope.getStore();
    if (scope) scope.count++;
    const label = armOperationOf(method, url);
    this.operations.set(label, (this.operations.get(label) ?? 0) + 1);
  }

  toJSON(): { count: number; byOperation: Record<string, number> } {
    return { count: this.count, byOperation: this.byOperation };
  }
}

/**
 * A request's operation without its names: `POST Microsoft.Storage/storageAccounts/{name}/listKeys`.
 * Names are dropped so a report over 500 accounts has a handful of lines, not 500.
 */
export function armOperationOf(method: string, url: string): string {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    path = url.split("?")[0] ?? "";
  }
  const segments = path.split("/").filter((s) => s !== "");
  // Service Management: /{subscriptionId}/services/storageservices/{name}/keys
  if (segments[1]?.toLowerCase() === "services") {
    const rest = segments.slice(2).map((s, i) => (i % 2 === 0 ? s : "{name}"));
    return `${method.toUpperCase()} ServiceManagement/${rest.join("/")}`;
  }
  const providers = segments.map((s) => s.toLowerCase()).lastIndexOf("providers");
  const start = providers >= 0 ? providers + 2 : 0;
  const prefix = providers >= 0 ? [segments[providers + 1] ?? ""] : [];
  const rest = segments.slice(start).map((s, i) => (i % 2 === 0 ? s : "{name}"));
  return `${method.toUpperCase()} ${[...prefix, ...rest].join("/")}`;
}

/** How the adapters tune the SDKs: short LRO polls against the emulator, quick retries in fault tests. */
export interface AdapterOptions {
  /** Poll interval for long-running operations (workspace resync) when the service sends no Retry-After. */
  lroPollIntervalMs?: number;
  /** For the ARM clients' retry policy; the SDK's defaults (3 retries, exponential backoff) otherwise. */
  armRetry?: { maxRetries?: number; retryDelayInMs?: number; maxRetryDelayInMs?: number };
}

/** `clientOptions` plus the adapter's retry tuning. */
export function armClientOptions(
  profile: CloudProfile,
  options: AdapterOptions = {},
): ArmClientOptions & { retryOptions?: AdapterOptions["armRetry"] } {
  return { ...clientOptions(profile), ...(options.armRetry ? { retryOptions: options.armRetry } : {}) };
}

/** ARM clients are bound to one subscription; build each once and reuse its connection pool. */
export function perSubscription<T>(make: (subscriptionId: string) => T): (subscriptionId: string) => T {
  const clients = new Map<string, T>();
  return (subscriptionId) => {
    const key = subscriptionId.toLowerCase();
    let client = clients.get(key);
    if (client === undefined) {
      client = make(subscriptionId);
      clients.set(key, client);
    }
    return client;
  };
}
