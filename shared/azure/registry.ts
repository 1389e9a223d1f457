import { request } from "node:https";
import { AzureMachineLearningWorkspaces } from "@azure/arm-machinelearning";
import {
  ContainerRegistryManagementClient,
  type Registry,
  type RegistryListCredentialsResult,
} from "@azure/arm-containerregistry";
import { KeyturnError, scrubError } from "../errors";
import { fingerprint, type Fingerprint } from "../rotation/fingerprint";
import { parseArmId } from "../rotation/ids";
import { azureCall, listOrNoneIfUnregistered, OPERATIONS } from "./call";
import { armClientOptions, perSubscription, type AdapterOptions, type CloudProfile } from "./cloud";
import { registryRef, workspaceRef } from "./ids";
import { armTimeoutMs } from "./pacing";
import type { ProbeOptions, ProbeOutcome } from "./probe";
import { withRetry, type RetryOptions } from "./retry";
import { ListedKeysStorage, type ListedKey, type StorageAccountInfo } from "./storage";
import type { KeyName } from "../rotation/model";

/**
 * Container registry admin passwords (seed 003; opt-in, `--registry-passwords`): the registry's two
 * passwords, the one a workspace holds (its `listKeys().containerRegistryCredentials`), and the
 * registry's data plane (`GET /v2/` with the admin user's basic auth). As with storage keys, values
 * never leave this file: callers get fingerprints and outcomes, or a value inside a callback whose
 * errors come out scrubbed (invariant I3).
 *
 * Not wired into `createAzure` yet; the actions it needs are in infra/keyturn-registry-role.json.
 */

export type RegistryPasswordName = "password" | "password2";
export const REGISTRY_PASSWORD_NAMES: readonly RegistryPasswordName[] = ["password", "password2"];

export interface RegistryInfo {
  id: string;
  name: string;
  subscriptionId: string;
  resourceGroup: string;
  /** `{name}.azurecr.io` (the emulator's `127.0.0.1:{port}`): where `/v2/` is. Empty if ARM omits it. */
  loginServer: string;
  /** false: ARM refuses the credential operations, and there is no admin password to rotate. */
  adminUserEnabled: boolean;
}

/** A registry's admin user and both its passwords, by fingerprint. */
export interface RegistryPasswordFingerprints {
  username: string;
  passwords: Record<RegistryPasswordName, Fingerprint>;
}

/**
 * What a workspace's `listKeys` shows it holds of its registry: the username and every password it
 * lists (the emulator lists the one the workspace holds; Azure's sample lists two), by fingerprint.
 */
export interface HeldRegistryPasswords {
  username: string;
  passwords: { name: string; fingerprint: Fingerprint }[];
}

/** A held password checked on the registry's data plane. */
export interface VerifiedRegistryPassword {
  name: string;
  fingerprint: Fingerprint;
  probe: ProbeOutcome;
}

const DEFAULT_PROBE_RETRY: Omit<RetryOptions, "isRetryable"> = { retries: 2, delays: [500, 2_000] };

/** `host` or `host:port`, nothing else: what ARM's `loginServer` is. */
const LOGIN_SERVER = /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?$/;

/** The most of a `/v2/` answer that is read (an error body is a few hundred bytes). */
const MAX_PROBE_BODY = 64 * 1024;

class RegistryProbeFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
  ) {
    super(`registry probe failed with ${status}`);
  }
}

export class RegistryPasswords {
  private readonly client: (subscriptionId: string) => ContainerRegistryManagementClient;
  /**
   * For regenerateCredential only: the SDK would send the POST again after a lost answer or a 5xx, and
   * a second request that lands regenerates the password twice (I4), as with storage keys (see
   * ArmStorageKeys.regenerateClient). Throttling is still waited out by the pacer.
   */
  private readonly regenerateClient: (subscriptionId: string) => ContainerRegistryManagementClient;
  private readonly ml: (subscriptionId: string) => AzureMachineLearningWorkspaces;
  private readonly tlsCa: string | undefined;
  private readonly probeRetry: Partial<RetryOptions>;

  constructor(profile: CloudProfile, options: AdapterOptions & { probe?: ProbeOptions } = {}) {
    this.client = perSubscription(
      (subscriptionId) =>
        new ContainerRegistryManagementClient(
          profile.credential,
          subscriptionId,
          armClientOptions(profile, options),
        ),
    );
    this.regenerateClient = perSubscription(
      (subscriptionId) =>
        new ContainerRegistryManagementClient(profile.credential, subscriptionId, {
          ...armClientOptions(profile, options),
          retryOptions: { maxRetries: 0 },
        }),
    );
    this.ml = perSubscription(
      (subscriptionId) =>
        new AzureMachineLearningWorkspaces(
          profile.credential,
          subscriptionId,
          armClientOptions(profile, options),
        ),
    );
    this.tlsCa = profile.tlsCa;
    this.probeRetry = options.probe?.retry ?? {};
  }

  /** Every registry of the subscription (a provider never registered there: none). */
  async list(subscriptionId: string): Promise<RegistryInfo[]> {
    return listOrNoneIfUnregistered(() =>
      azureCall(OPERATIONS.listRegistries, `/subscriptions/${subscriptionId}`, async () => {
        const registries: RegistryInfo[] = [];
        for await (const registry of this.client(subscriptionId).registries.list()) {
          registries.push(registryInfo(registry));
        }
        return registries;
      }),
    );
  }

  async get(id: string): Promise<RegistryInfo> {
    const ref = registryRef(id);
    const registry = await azureCall(OPERATIONS.getRegistry, id, () =>
      this.client(ref.subscriptionId).registries.get(ref.resourceGroup, ref.name),
    );
    return registryInfo(registry);
  }

  /** Both passwords' fingerprints (listCredentials): one call, for compare-and-swap guards. */
  async fingerprints(id: string, salt: string): Promise<RegistryPasswordFingerprints> {
    return passwordFingerprints(id, await this.listCredentials(id), salt);
  }

  /**
   * Regenerates one password, without the SDK's retries, and returns both as they are now (Azure
   * answers with the credentials), by fingerprint.
   */
  async regenerate(
    id: string,
    name: RegistryPasswordName,
    salt: string,
  ): Promise<RegistryPasswordFingerprints> {
    return passwordFingerprints(id, await this.regenerateOnce(id, name), salt);
  }

  /** One `regenerateCredential` request, never retried by the SDK; answers both passwords. */
  async regenerateOnce(id: string, name: RegistryPasswordName): Promise<RegistryListCredentialsResult> {
    const ref = registryRef(id);
    return azureCall(OPERATIONS.regenerateRegistryCredential, id, () =>
      this.regenerateClient(ref.subscriptionId).registries.regenerateCredential(ref.resourceGroup, ref.name, {
        name,
      }),
    );
  }

  /**
   * Reads the credentials and hands the admin username and one password to `use`: the only way a
   * registry password leaves this adapter. Any error `use` throws comes out with both passwords redacted.
   */
  async withPassword<T>(
    id: string,
    name: RegistryPasswordName,
    use: (username: string, password: string) => Promise<T>,
  ): Promise<T> {
    const credentials = await this.listCredentials(id);
    const values = (credentials.passwords ?? []).map((p) => p.value);
    try {
      return await use(credentials.username ?? "", passwordValue(id, credentials, name));
    } catch (e) {
      throw scrubError(e, values);
    }
  }

  /**
   * What the workspace holds of its registry, by fingerprint (`listKeys().containerRegistryCredentials`);
   * undefined when it shows none.
   */
  async heldFingerprints(workspaceId: string, salt: string): Promise<HeldRegistryPasswords | undefined> {
    return this.withHeld(workspaceId, async (held) =>
      held
        ? {
            username: held.username,
            passwords: held.passwords.map((p) => ({ name: p.name, fingerprint: fingerprint(p.value, salt) })),
          }
        : undefined,
    );
  }

  /**
   * Every password the workspace holds, checked on the registry's `/v2/` with the username it holds:
   * the verification after a resync. Empty when the workspace shows none.
   */
  async verifyHeld(
    workspaceId: string,
    loginServer: string,
    salt: string,
  ): Promise<VerifiedRegistryPassword[]> {
    return this.withHeld(workspaceId, async (held) => {
      const verified: VerifiedRegistryPassword[] = [];
      for (const p of held?.passwords ?? []) {
        verified.push({
          name: p.name,
          fingerprint: fingerprint(p.value, salt),
          probe: await this.probeRegistry(loginServer, held!.username, p.value),
        });
      }
      return verified;
    });
  }

  /**
   * `GET https://{loginServer}/v2/` with basic auth: `{ok: true}` when the registry accepts the
   * credentials, `{ok: false, status: 401, code: "UNAUTHORIZED"}` when it refuses them, status 0 when
   * it does not answer. Network failures and 5xx are retried; a 401 is the answer.
   */
  async probeRegistry(loginServer: string, username: string, password: string): Promise<ProbeOutcome> {
    if (!LOGIN_SERVER.test(loginServer)) {
      throw new KeyturnError(
        `registry loginServer '${loginServer}' is not a host name (optionally with a port): expected e.g. myregistry.azurecr.io`,
      );
    }
    const authorization = `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`;
    const retry: RetryOptions = {
      ...DEFAULT_PROBE_RETRY,
      ...this.probeRetry,
      isRetryable: (e) => e instanceof RegistryProbeFailure && (e.status === 0 || e.status >= 500),
    };
    return azureCall(
      OPERATIONS.probeRegistry,
      loginServer,
      async () => {
        try {
          await withRetry(() => this.getV2(loginServer, authorization), retry);
          return { ok: true } as const;
        } catch (e) {
          if (!(e instanceof RegistryProbeFailure)) throw e;
          return e.code === undefined
            ? { ok: false as const, status: e.status }
            : { ok: false as const, status: e.status, code: e.code };
        }
      },
      [password, authorization],
    );
  }

  /** One `/v2/` request; anything but 200 throws a RegistryProbeFailure (status 0: no answer). */
  private getV2(loginServer: string, authorization: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request(
        `https://${loginServer}/v2/`,
        {
          method: "GET",
          headers: { authorization, accept: "application/json" },
          timeout: armTimeoutMs(),
          ...(this.tlsCa !== undefined ? { ca: this.tlsCa } : {}),
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            if (body.length < MAX_PROBE_BODY) body += chunk;
          });
          res.on("error", () => reject(new RegistryProbeFailure(0, "ResponseAborted")));
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            if (status === 200) resolve();
            else reject(new RegistryProbeFailure(status, registryErrorCode(body)));
          });
        },
      );
      req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
      // Only the error's code is kept: the request carries the credentials.
      req.on("error", (e: NodeJS.ErrnoException) =>
        reject(new RegistryProbeFailure(0, e.code ?? "NetworkError")),
      );
      req.end();
    });
  }

  /** Both passwords (`listCredentials`); for `RegistryKeyService`, which keeps them in the activity. */
  async listCredentials(id: string): Promise<RegistryListCredentialsResult> {
    const ref = registryRef(id);
    return azureCall(OPERATIONS.listRegistryCredentials, id, () =>
      this.client(ref.subscriptionId).registries.listCredentials(ref.resourceGroup, ref.name),
    );
  }

  /** The workspace's registry credentials from its listKeys, handed to `use` as `withPassword` does. */
  private async withHeld<T>(
    workspaceId: string,
    use: (held: { username: string; passwords: { name: string; value: string }[] } | undefined) => Promise<T>,
  ): Promise<T> {
    const ref = workspaceRef(workspaceId);
    // listKeys also returns the storage key and the App Insights key: only the registry's part is kept.
    const { containerRegistryCredentials: credentials } = await azureCall(
      OPERATIONS.listWorkspaceKeys,
      workspaceId,
      () => this.ml(ref.subscriptionId).workspaces.listKeys(ref.resourceGroup, ref.name),
    );
    const passwords = (credentials?.passwords ?? []).flatMap((p) =>
      p.value ? [{ name: p.name ?? "", value: p.value }] : [],
    );
    const held = passwords.length > 0 ? { username: credentials?.username ?? "", passwords } : undefined;
    try {
      return await use(held);
    } catch (e) {
      throw scrubError(
        e,
        passwords.map((p) => p.value),
      );
    }
  }
}

function registryInfo(registry: Registry): RegistryInfo {
  const id = registry.id ?? "";
  const { subscriptionId, resourceGroup } = parseArmId(id);
  return {
    id,
    name: registry.name ?? "",
    subscriptionId: subscriptionId ?? "",
    resourceGroup: resourceGroup ?? "",
    loginServer: registry.loginServer ?? "",
    adminUserEnabled: registry.adminUserEnabled === true,
  };
}

function passwordValue(
  id: string,
  credentials: RegistryListCredentialsResult,
  name: RegistryPasswordName,
): string {
  const value = credentials.passwords?.find((p) => p.name?.toLowerCase() === name)?.value;
  if (!value) {
    throw new KeyturnError(
      `registries.listCredentials on ${id} returned no ${name}: is the admin user enabled?`,
    );
  }
  return value;
}

function passwordFingerprints(
  id: string,
  credentials: RegistryListCredentialsResult,
  salt: string,
): RegistryPasswordFingerprints {
  return {
    username: credentials.username ?? "",
    passwords: {
      password: fingerprint(passwordValue(id, credentials, "password"), salt),
      password2: fingerprint(passwordValue(id, credentials, "password2"), salt),
    },
  };
}

/** The first error code of a registry's `{errors: [{code, …}]}` body, if it is one. */
function registryErrorCode(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { errors?: { code?: unknown }[] };
    const code = parsed.errors?.[0]?.code;
    return typeof code === "string" ? code : undefined;
  } catch {
    return undefined;
  }
}

/** keyturn's names for a registry's two admin passwords. */
const PASSWORD_OF: Record<KeyName, RegistryPasswordName> = { key1: "password", key2: "password2" };

/**
 * Container registries as key holders of the rotation (`--registry-passwords`): behind the same
 * `StorageKeys` interface as storage accounts; `password` is key1, `password2` key2. Registries record
 * no password creation times; passwords are proved with `GET /v2/` at `registryLoginServer`.
 */
export class RegistryKeyService extends ListedKeysStorage {
  protected readonly listKeysOperation = "registries.listCredentials";

  constructor(private readonly registries: RegistryPasswords) {
    super();
  }

  async listAccounts(subscriptionId: string): Promise<StorageAccountInfo[]> {
    return (await this.registries.list(subscriptionId)).map(holderInfo);
  }

  async getAccount(id: string): Promise<StorageAccountInfo> {
    return holderInfo(await this.registries.get(id));
  }

  protected async listKeys(id: string): Promise<ListedKey[]> {
    return listed(await this.registries.listCredentials(id));
  }

  protected async regenerateKey(id: string, keyName: KeyName): Promise<ListedKey[]> {
    return listed(await this.registries.regenerateOnce(id, PASSWORD_OF[keyName]));
  }
}

function listed(credentials: RegistryListCredentialsResult): ListedKey[] {
  return (["key1", "key2"] as const).map((keyName) => {
    const value = credentials.passwords?.find((p) => p.name === PASSWORD_OF[keyName])?.value;
    return { keyName, ...(value ? { value } : {}) };
  });
}

function holderInfo(registry: RegistryInfo): StorageAccountInfo {
  return {
    id: registry.id,
    name: registry.name,
    subscriptionId: registry.subscriptionId,
    resourceGroup: registry.resourceGroup,
    tags: {},
    keyCreationTime: {},
    keyHolder: "registry",
    ...(registry.loginServer ? { registryLoginServer: registry.loginServer } : {}),
    // Admin user off: ARM refuses the credential operations and /v2/ any admin password.
    ...(registry.adminUserEnabled ? {} : { sharedKeyAccessDisabled: true as const }),
  };
}
