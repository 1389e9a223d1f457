import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { BatchManagementClient, type BatchAccount, type BatchAccountKeys } from "@azure/arm-batch";
import { BatchServiceClient, BatchSharedKeyCredentials, type BatchServiceModels } from "@azure/batch";
import { KeyturnError, scrubError } from "../errors";
import { fingerprint, type Fingerprint } from "../rotation/fingerprint";
import type { KeyName } from "../rotation/model";
import { parseArmId } from "../rotation/ids";
import { azureCall, listOrNoneIfUnregistered, OPERATIONS } from "./call";
import { armClientOptions, perSubscription, type AdapterOptions, type CloudProfile } from "./cloud";
import { batchAccountRef } from "./ids";
import { armTimeoutMs } from "./pacing";
import type { ProbeOptions, ProbeOutcome } from "./probe";
import { ListedKeysStorage, type ListedKey, type StorageAccountInfo } from "./storage";
import { withRetry } from "./retry";

/**
 * Batch account shared keys (seed 004, opt-in): the app setting that turns their rotation on, the
 * second role file that grants what this adapter calls (infra/keyturn-batch-role.json), and the
 * adapter itself. keyturn's names: key1 is Batch's Primary key, key2 its Secondary.
 */
export const BATCH_KEYS_SETTING = "KEYTURN_BATCH_KEYS";
export const BATCH_ROLE_FILE = "infra/keyturn-batch-role.json";

/** Batch's name of each key, as `regenerateKeys` takes it. */
export const BATCH_KEY_NAMES: Record<KeyName, "Primary" | "Secondary"> = {
  key1: "Primary",
  key2: "Secondary",
};

export interface BatchSharedKeyAccount {
  id: string;
  name: string;
  subscriptionId: string;
  resourceGroup: string;
  /** The data plane as ARM reports it: `host[:port]` without a scheme (`{name}.{region}.batch.azure.com`). */
  accountEndpoint?: string;
  /** As ARM reports them; empty when the account reports none. */
  allowedAuthenticationModes: string[];
  /**
   * Whether the data plane takes shared keys. False: "Entra ID only: nothing to rotate" (ARM also
   * refuses to list or regenerate the keys). An account that reports no modes predates them: true.
   */
  sharedKeyAllowed: boolean;
}

type AbortSignalLike = NonNullable<BatchServiceModels.ApplicationListOptionalParams["abortSignal"]>;

/** A probe attempt's answer: the status (0: none) and Batch's error code, nothing of the request. */
class ProbeFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
  ) {
    super(`Batch data-plane probe failed with ${status}`);
  }
}

/**
 * The Batch accounts' shared keys: the only adapter that reads or regenerates them. Key values never
 * leave it except into `use` callbacks (the `withKey` rule of shared/azure/storage.ts, invariant I3):
 * callers get fingerprints and outcomes, and any error comes out with the keys redacted.
 */
export class BatchSharedKeys {
  private readonly client: (subscriptionId: string) => BatchManagementClient;
  /**
   * For regenerateKey only, with no SDK retries: a POST sent again after a lost answer or a 5xx would
   * regenerate the key twice (I4); see `regenerateClient` in shared/azure/storage.ts.
   */
  private readonly regenerateClient: (subscriptionId: string) => BatchManagementClient;
  private readonly agents: { http: HttpAgent; https: HttpsAgent } | undefined;

  constructor(
    profile: CloudProfile,
    private readonly options: AdapterOptions & ProbeOptions = {},
  ) {
    const make = (retry: AdapterOptions["armRetry"]) =>
      perSubscription(
        (subscriptionId) =>
          new BatchManagementClient(profile.credential, subscriptionId, {
            ...armClientOptions(profile, options),
            ...(retry ? { retryOptions: retry } : {}),
          }),
      );
    this.client = make(undefined);
    this.regenerateClient = make({ maxRetries: 0 });
    // The emulator's data plane has its self-signed CA, as ARM does; Azure's needs none.
    this.agents =
      profile.tlsCa !== undefined
        ? { http: new HttpAgent(), https: new HttpsAgent({ ca: profile.tlsCa }) }
        : undefined;
  }

  async list(subscriptionId: string): Promise<BatchSharedKeyAccount[]> {
    return listOrNoneIfUnregistered(() =>
      azureCall(OPERATIONS.listBatchAccounts, `/subscriptions/${subscriptionId}`, async () => {
        const accounts: BatchSharedKeyAccount[] = [];
        for await (const account of this.client(subscriptionId).batchAccountOperations.list()) {
          accounts.push(sharedKeyAccount(account));
        }
        return accounts;
      }),
    );
  }

  async get(id: string): Promise<BatchSharedKeyAccount> {
    const ref = batchAccountRef(id);
    const account = await azureCall(OPERATIONS.getBatchAccount, id, () =>
      this.client(ref.subscriptionId).batchAccountOperations.get(ref.resourceGroup, ref.name),
    );
    return sharedKeyAccount(account);
  }

  /** Both keys' fingerprints: one `listKeys`, for the snapshot and compare-and-swap guards. */
  async fingerprints(id: string, salt: string): Promise<Record<KeyName, Fingerprint>> {
    return keyFingerprints(id, await this.keys(id), salt);
  }

  /**
   * Reads one key and hands it to `use`, the only way a key value leaves this adapter: `use` spends it
   * (a probe, a Key Vault secret version) and returns nothing derived from it but fingerprints and
   * outcomes; any error it throws comes out with both keys redacted.
   */
  async withKey<T>(id: string, keyName: KeyName, use: (value: string) => Promise<T>): Promise<T> {
    const keys = await this.keys(id);
    const value = keyValue(id, keys, keyName);
    try {
      return await use(value);
    } catch (e) {
      throw scrubError(e, [keys.primary, keys.secondary]);
    }
  }

  /**
   * Regenerates one key (never retried by the SDK) and returns both keys' fingerprints as Azure
   * answers them. `use`, when given, gets the new key's value under the rule of `withKey`.
   */
  async regenerate(
    id: string,
    keyName: KeyName,
    salt: string,
    use?: (value: string) => Promise<void>,
  ): Promise<Record<KeyName, Fingerprint>> {
    const keys = await this.regenerateOnce(id, keyName);
    if (use) {
      try {
        await use(keyValue(id, keys, keyName));
      } catch (e) {
        throw scrubError(e, [keys.primary, keys.secondary]);
      }
    }
    return keyFingerprints(id, keys, salt);
  }

  /**
   * Proves a key works by using it: one Batch service call (`GET /applications`, the cheapest listing
   * `@azure/batch` makes) signed with the key. A dead or wrong key: `{ok: false, status: 403}`. Only
   * the status and Batch's error code are kept (the SDK's error holds the signed request); network
   * failures and 5xx are retried, a refusal is the answer.
   */
  async probeSharedKey(accountEndpoint: string, accountName: string, key: string): Promise<ProbeOutcome> {
    const url = /^https?:\/\//i.test(accountEndpoint) ? accountEndpoint : `https://${accountEndpoint}`;
    const client = new BatchServiceClient(new BatchSharedKeyCredentials(accountName, key), url, {
      noRetryPolicy: true,
      ...(this.agents ? { agentSettings: this.agents } : {}),
    });
    try {
      await withRetry(
        async () => {
          // Each try has the ARM calls' deadline: a data plane that never answers is a failed probe.
          // Not the SDK's own `timeout`: its timer outlives the request and keeps the process up.
          const deadline = new AbortController();
          const timer = setTimeout(() => deadline.abort(), armTimeoutMs());
          try {
            await client.application.list({ abortSignal: deadline.signal as unknown as AbortSignalLike });
          } catch (e) {
            const err = e as { statusCode?: unknown; code?: unknown };
            throw new ProbeFailure(
              typeof err.statusCode === "number" ? err.statusCode : 0,
              typeof err.code === "string" ? err.code : undefined,
            );
          } finally {
            clearTimeout(timer);
          }
        },
        {
          retries: 2,
          delays: [500, 2_000],
          ...this.options.retry,
          isRetryable: (e) => e instanceof ProbeFailure && (e.status === 0 || e.status >= 500),
        },
      );
      return { ok: true };
    } catch (e) {
      if (!(e instanceof ProbeFailure)) throw e;
      return { ok: false, status: e.status, ...(e.code ? { code: e.code } : {}) };
    }
  }

  /** Both keys (`listKeys`); for `BatchKeyService`, which keeps them in the activity as `withKey` does. */
  async keys(id: string): Promise<BatchAccountKeys> {
    const ref = batchAccountRef(id);
    return azureCall(OPERATIONS.getBatchKeys, id, () =>
      this.client(ref.subscriptionId).batchAccountOperations.getKeys(ref.resourceGroup, ref.name),
    );
  }

  /** One `regenerateKeys` request, never retried by the SDK; answers both keys. */
  async regenerateOnce(id: string, keyName: KeyName): Promise<BatchAccountKeys> {
    const ref = batchAccountRef(id);
    return azureCall(OPERATIONS.regenerateBatchKey, id, () =>
      this.regenerateClient(ref.subscriptionId).batchAccountOperations.regenerateKey(
        ref.resourceGroup,
        ref.name,
        { keyName: BATCH_KEY_NAMES[keyName] },
      ),
    );
  }
}

/**
 * Batch accounts as key holders of the rotation (`--batch-keys`): behind the same `StorageKeys`
 * interface as storage accounts, so the procedure, guards and single key read per activity are the same.
 * Batch records no key creation times; its keys are proved on its data plane (`batchEndpoint`).
 */
export class BatchKeyService extends ListedKeysStorage {
  protected readonly listKeysOperation = "batchAccounts.listKeys";

  constructor(private readonly batch: BatchSharedKeys) {
    super();
  }

  async listAccounts(subscriptionId: string): Promise<StorageAccountInfo[]> {
    return (await this.batch.list(subscriptionId)).map(holderInfo);
  }

  async getAccount(id: string): Promise<StorageAccountInfo> {
    return holderInfo(await this.batch.get(id));
  }

  protected async listKeys(id: string): Promise<ListedKey[]> {
    return listed(await this.batch.keys(id));
  }

  protected async regenerateKey(id: string, keyName: KeyName): Promise<ListedKey[]> {
    return listed(await this.batch.regenerateOnce(id, keyName));
  }
}

function listed(keys: BatchAccountKeys): ListedKey[] {
  return [
    { keyName: "key1", ...(keys.primary ? { value: keys.primary } : {}) },
    { keyName: "key2", ...(keys.secondary ? { value: keys.secondary } : {}) },
  ];
}

function holderInfo(account: BatchSharedKeyAccount): StorageAccountInfo {
  return {
    id: account.id,
    name: account.name,
    subscriptionId: account.subscriptionId,
    resourceGroup: account.resourceGroup,
    tags: {},
    keyCreationTime: {},
    keyHolder: "batch",
    ...(account.accountEndpoint ? { batchEndpoint: account.accountEndpoint } : {}),
    // Entra ID only: ARM refuses the keys and the data plane would too; nothing to rotate.
    ...(account.sharedKeyAllowed ? {} : { sharedKeyAccessDisabled: true as const }),
  };
}

function sharedKeyAccount(account: BatchAccount): BatchSharedKeyAccount {
  const id = account.id ?? "";
  const { subscriptionId, resourceGroup } = parseArmId(id);
  const modes = account.allowedAuthenticationModes;
  return {
    id,
    name: account.name ?? "",
    subscriptionId: subscriptionId ?? "",
    resourceGroup: resourceGroup ?? "",
    ...(account.accountEndpoint ? { accountEndpoint: account.accountEndpoint } : {}),
    allowedAuthenticationModes: [...(modes ?? [])],
    sharedKeyAllowed: modes === undefined || modes.some((m) => m.toLowerCase() === "sharedkey"),
  };
}

function keyValue(id: string, keys: BatchAccountKeys, keyName: KeyName): string {
  const value = keyName === "key1" ? keys.primary : keys.secondary;
  if (!value) {
    throw new KeyturnError(
      `batchAccounts.getKeys on ${id} returned no ${BATCH_KEY_NAMES[keyName]} key: the account may not allow SharedKey authentication`,
    );
  }
  return value;
}

function keyFingerprints(id: string, keys: BatchAccountKeys, salt: string): Record<KeyName, Fingerprint> {
  return {
    key1: fingerprint(keyValue(id, keys, "key1"), salt),
    key2: fingerprint(keyValue(id, keys, "key2"), salt),
  };
}
