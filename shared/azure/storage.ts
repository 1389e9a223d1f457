import { StorageManagementClient, type StorageAccount, type StorageAccountKey } from "@azure/arm-storage";
import { KeyturnError, scrubError } from "../errors";
import { fingerprint, type Fingerprint } from "../rotation/fingerprint";
import { type KeyName, type KeySnapshot, type StorageAccountSnapshot } from "../rotation/model";
import { parseArmId } from "../rotation/ids";
import { azureCall, isoTime, OPERATIONS } from "./call";
import { armClientOptions, perSubscription, type AdapterOptions, type CloudProfile } from "./cloud";
import { isBatchAccountId, isClassicStorageAccountId, isRegistryId, storageAccountRef } from "./ids";

export interface StorageAccountInfo {
  id: string;
  name: string;
  subscriptionId: string;
  resourceGroup: string;
  tags: Record<string, string>;
  /** ISO 8601; a key is absent when Azure has not recorded its creation (keys older than the feature). */
  keyCreationTime: Partial<Record<KeyName, string>>;
  keyExpirationPeriodInDays?: number;
  /** As the account reports it (`primaryEndpoints`): the only URLs the data plane is reached by. */
  blobEndpoint?: string;
  fileEndpoint?: string;
  /** `allowSharedKeyAccess: false`: the data plane refuses both keys, so there is nothing to rotate. */
  sharedKeyAccessDisabled?: true;
  /** `sasPolicy.sasExpirationPeriod` ("d.hh:mm:ss"), when the account has a SAS expiration policy. */
  sasExpirationPeriod?: string;
  /**
   * Not a storage account's keys: `batch`, a Batch account's shared keys (seed 004), proved on its data
   * plane at `batchEndpoint`; `registry`, a container registry's admin passwords (seed 003), proved with
   * `GET /v2/` at `registryLoginServer`.
   */
  keyHolder?: "batch" | "registry";
  batchEndpoint?: string;
  registryLoginServer?: string;
}

/** The storage account keys: the only adapter that reads or regenerates them. */
export interface StorageKeys {
  listAccounts(subscriptionId: string): Promise<StorageAccountInfo[]>;
  getAccount(id: string): Promise<StorageAccountInfo>;
  /** The account with its keys' fingerprints; `reader`, when given, reads the keys (and keeps them for the activity). */
  snapshot(id: string, salt: string, reader?: KeyReader): Promise<StorageAccountSnapshot>;
  /** The keys' fingerprints alone: one call, for compare-and-swap guards right before a write. */
  fingerprints(id: string, salt: string): Promise<Record<KeyName, Fingerprint>>;
  /**
   * Regenerates one key and returns both keys as they are now (Azure answers with all keys). `use`,
   * when given, gets the new key's value under the same rule as `withKey` (a probe that it works).
   */
  regenerate(
    id: string,
    keyName: KeyName,
    salt: string,
    use?: (value: string) => Promise<void>,
  ): Promise<Record<KeyName, KeySnapshot>>;
  /**
   * Reads one key and hands it to `use`: the only way a key value leaves this adapter (invariant I3).
   * `use` must spend it on other adapter calls in the same activity and return nothing derived from it
   * but fingerprints and outcomes; any error it throws comes out with the key redacted.
   */
  withKey<T>(id: string, keyName: KeyName, use: (value: string) => Promise<T>): Promise<T>;
  /**
   * The account's keys read at most once, on first use: an activity that moves and verifies every
   * consumer of an account reads them one time, not once per consumer (DESIGN §10). Same rule as
   * `withKey`: values are spent inside the activity, and `scrub` takes them out of any error.
   */
  reader(id: string): KeyReader;
}

export interface KeyReader {
  value(keyName: KeyName): Promise<string>;
  fingerprints(salt: string): Promise<Record<KeyName, Fingerprint>>;
  /** Fingerprints with the creation times listKeys reports (ARM's account properties may add more). */
  snapshots(salt: string): Promise<Record<KeyName, KeySnapshot>>;
  /** Whether the keys were read (and so cost a call). */
  readonly used: boolean;
  scrub(error: unknown): Error;
}

/** A key as a key listing shows it: ARM's `{keyName: "key1", value, creationTime}`, or Service Management's mapped to it. */
export interface ListedKey {
  keyName?: string;
  value?: string;
  creationTime?: Date | string;
}

/**
 * Everything a key service's adapter derives from two calls, listing the keys and regenerating one
 * (both answer with all keys): snapshots, guards, the single read per activity and key scrubbing, the
 * same for ARM's Microsoft.Storage accounts and for classic ones behind Service Management.
 */
export abstract class ListedKeysStorage implements StorageKeys {
  /** keyturn's name for the listing call, for "… returned no key2". */
  protected abstract readonly listKeysOperation: string;

  abstract listAccounts(subscriptionId: string): Promise<StorageAccountInfo[]>;
  abstract getAccount(id: string): Promise<StorageAccountInfo>;
  protected abstract listKeys(id: string): Promise<ListedKey[]>;
  /** One request, never retried by a client library (I4: see the regenerateKey activity). */
  protected abstract regenerateKey(id: string, keyName: KeyName): Promise<ListedKey[]>;

  async snapshot(id: string, salt: string, reader = this.reader(id)): Promise<StorageAccountSnapshot> {
    const [account, listed] = await Promise.all([this.getAccount(id), reader.snapshots(salt)]);
    const snapshots = { ...listed };
    for (const name of ["key1", "key2"] as const) {
      const time = account.keyCreationTime[name];
      if (snapshots[name].creationTime === undefined && time !== undefined)
        snapshots[name] = { ...snapshots[name], creationTime: time };
    }
    const { keyCreationTime: _, ...rest } = account;
    return { ...rest, keys: snapshots };
  }

  async fingerprints(id: string, salt: string): Promise<Record<KeyName, Fingerprint>> {
    const keys = this.keySnapshots(id, await this.listKeys(id), salt);
    return { key1: keys.key1.fingerprint, key2: keys.key2.fingerprint };
  }

  async regenerate(
    id: string,
    keyName: KeyName,
    salt: string,
    use?: (value: string) => Promise<void>,
  ): Promise<Record<KeyName, KeySnapshot>> {
    const keys = await this.regenerateKey(id, keyName);
    if (use) {
      const value = this.keyValue(id, keys, keyName);
      try {
        await use(value);
      } catch (e) {
        throw scrubError(
          e,
          keys.flatMap((k) => (k.value ? [k.value] : [])),
        );
      }
    }
    return this.keySnapshots(id, keys, salt);
  }

  async withKey<T>(id: string, keyName: KeyName, use: (value: string) => Promise<T>): Promise<T> {
    const value = this.keyValue(id, await this.listKeys(id), keyName);
    try {
      return await use(value);
    } catch (e) {
      throw scrubError(e, [value]);
    }
  }

  reader(id: string): KeyReader {
    let keys: Promise<ListedKey[]> | undefined;
    const values: string[] = [];
    const read = () => {
      keys ??= this.listKeys(id).then((k) => {
        for (const key of k) if (key.value) values.push(key.value);
        return k;
      });
      return keys;
    };
    return {
      value: async (keyName) => this.keyValue(id, await read(), keyName),
      fingerprints: async (salt) => {
        const snapshots = this.keySnapshots(id, await read(), salt);
        return { key1: snapshots.key1.fingerprint, key2: snapshots.key2.fingerprint };
      },
      snapshots: async (salt) => this.keySnapshots(id, await read(), salt),
      get used() {
        return keys !== undefined;
      },
      scrub: (error) => scrubError(error, values),
    };
  }

  private keyValue(id: string, keys: readonly ListedKey[], keyName: KeyName): string {
    const value = keys.find((k) => k.keyName?.toLowerCase() === keyName)?.value;
    if (!value) {
      throw new KeyturnError(
        `${this.listKeysOperation} on ${id} returned no ${keyName}: the account may not allow shared key access`,
      );
    }
    return value;
  }

  private keySnapshots(id: string, keys: readonly ListedKey[], salt: string): Record<KeyName, KeySnapshot> {
    const snapshot = (keyName: KeyName): KeySnapshot => {
      const key = keys.find((k) => k.keyName?.toLowerCase() === keyName);
      const result: KeySnapshot = { fingerprint: fingerprint(this.keyValue(id, keys, keyName), salt) };
      const creationTime = isoTime(key?.creationTime);
      if (creationTime !== undefined) result.creationTime = creationTime;
      return result;
    };
    return { key1: snapshot("key1"), key2: snapshot("key2") };
  }
}

export class ArmStorageKeys extends ListedKeysStorage {
  protected readonly listKeysOperation = OPERATIONS.listStorageKeys.name;
  private readonly client: (subscriptionId: string) => StorageManagementClient;
  /**
   * For regenerateKey only: the SDK would send a POST again after a lost answer or a 5xx, and a second
   * request that lands regenerates the key twice (I4). keyturn resolves an unknown outcome itself, from
   * Azure's record (see the regenerateKey activity). Throttling is still waited out by the pacer.
   */
  private readonly regenerateClient: (subscriptionId: string) => StorageManagementClient;

  constructor(profile: CloudProfile, options: AdapterOptions = {}) {
    super();
    this.client = perSubscription(
      (subscriptionId) =>
        new StorageManagementClient(profile.credential, subscriptionId, armClientOptions(profile, options)),
    );
    this.regenerateClient = perSubscription(
      (subscriptionId) =>
        new StorageManagementClient(profile.credential, subscriptionId, {
          ...armClientOptions(profile, options),
          retryOptions: { maxRetries: 0 },
        }),
    );
  }

  async listAccounts(subscriptionId: string): Promise<StorageAccountInfo[]> {
    return azureCall(OPERATIONS.listStorageAccounts, `/subscriptions/${subscriptionId}`, async () => {
      const accounts: StorageAccountInfo[] = [];
      for await (const account of this.client(subscriptionId).storageAccounts.list()) {
        accounts.push(accountInfo(account));
      }
      return accounts;
    });
  }

  async getAccount(id: string): Promise<StorageAccountInfo> {
    const ref = storageAccountRef(id);
    const account = await azureCall(OPERATIONS.getStorageAccount, id, () =>
      this.client(ref.subscriptionId).storageAccounts.getProperties(ref.resourceGroup, ref.name),
    );
    return accountInfo(account);
  }

  protected async regenerateKey(id: string, keyName: KeyName): Promise<ListedKey[]> {
    const ref = storageAccountRef(id);
    const result = await azureCall(OPERATIONS.regenerateStorageKey, id, () =>
      this.regenerateClient(ref.subscriptionId).storageAccounts.regenerateKey(ref.resourceGroup, ref.name, {
        keyName,
      }),
    );
    return result.keys ?? [];
  }

  protected async listKeys(id: string): Promise<StorageAccountKey[]> {
    const ref = storageAccountRef(id);
    const result = await azureCall(OPERATIONS.listStorageKeys, id, () =>
      this.client(ref.subscriptionId).storageAccounts.listKeys(ref.resourceGroup, ref.name),
    );
    return result.keys ?? [];
  }
}

function accountInfo(account: StorageAccount): StorageAccountInfo {
  const id = account.id ?? "";
  const { subscriptionId, resourceGroup } = parseArmId(id);
  const created = account.keyCreationTime;
  const keyCreationTime: Partial<Record<KeyName, string>> = {};
  for (const keyName of ["key1", "key2"] as const) {
    const time = isoTime(created?.[keyName]);
    if (time !== undefined) keyCreationTime[keyName] = time;
  }
  const info: StorageAccountInfo = {
    id,
    name: account.name ?? "",
    subscriptionId: subscriptionId ?? "",
    resourceGroup: resourceGroup ?? "",
    tags: { ...account.tags },
    keyCreationTime,
  };
  if (account.keyPolicy?.keyExpirationPeriodInDays !== undefined) {
    info.keyExpirationPeriodInDays = account.keyPolicy.keyExpirationPeriodInDays;
  }
  if (account.primaryEndpoints?.blob) info.blobEndpoint = account.primaryEndpoints.blob;
  if (account.primaryEndpoints?.file) info.fileEndpoint = account.primaryEndpoints.file;
  if (account.allowSharedKeyAccess === false) info.sharedKeyAccessDisabled = true;
  if (account.sasPolicy?.sasExpirationPeriod)
    info.sasExpirationPeriod = account.sasPolicy.sasExpirationPeriod;
  return info;
}

/**
 * An account's properties in snapshot form, keys unread: empty fingerprints, creation times only.
 * For discovery, key-age telemetry and anything else that must not touch a key.
 */
export function unreadSnapshot(info: StorageAccountInfo): StorageAccountSnapshot {
  const key = (name: KeyName): KeySnapshot => ({
    fingerprint: "",
    ...(info.keyCreationTime[name] ? { creationTime: info.keyCreationTime[name] } : {}),
  });
  return {
    id: info.id,
    name: info.name,
    subscriptionId: info.subscriptionId,
    resourceGroup: info.resourceGroup,
    tags: info.tags,
    keys: { key1: key("key1"), key2: key("key2") },
    ...(info.keyExpirationPeriodInDays !== undefined
      ? { keyExpirationPeriodInDays: info.keyExpirationPeriodInDays }
      : {}),
    ...(info.blobEndpoint ? { blobEndpoint: info.blobEndpoint } : {}),
    ...(info.sharedKeyAccessDisabled ? { sharedKeyAccessDisabled: true as const } : {}),
    ...(info.sasExpirationPeriod ? { sasExpirationPeriod: info.sasExpirationPeriod } : {}),
    ...(info.keyHolder ? { keyHolder: info.keyHolder } : {}),
    ...(info.batchEndpoint ? { batchEndpoint: info.batchEndpoint } : {}),
    ...(info.registryLoginServer ? { registryLoginServer: info.registryLoginServer } : {}),
  };
}

/**
 * The keys of every key holder, each through its own key service: classic accounts
 * (`Microsoft.ClassicStorage`, keys in Service Management) through `classic`, Batch accounts' shared
 * keys through `batch`, all others through ARM. Discovery lists the storage accounts of both kinds (Batch
 * accounts only with `--batch-keys`, through `batch` itself); every per-account call is routed by the
 * id's provider namespace.
 */
export class StorageKeysByProvider implements StorageKeys {
  constructor(
    private readonly arm: StorageKeys,
    private readonly classic: StorageKeys,
    private readonly batch?: StorageKeys,
    private readonly registry?: StorageKeys,
  ) {}

  private of(id: string): StorageKeys {
    if (this.batch && isBatchAccountId(id)) return this.batch;
    if (this.registry && isRegistryId(id)) return this.registry;
    return isClassicStorageAccountId(id) ? this.classic : this.arm;
  }

  async listAccounts(subscriptionId: string): Promise<StorageAccountInfo[]> {
    const [arm, classic] = await Promise.all([
      this.arm.listAccounts(subscriptionId),
      this.classic.listAccounts(subscriptionId),
    ]);
    return [...arm, ...classic];
  }

  getAccount(id: string): Promise<StorageAccountInfo> {
    return this.of(id).getAccount(id);
  }

  snapshot(id: string, salt: string, reader?: KeyReader): Promise<StorageAccountSnapshot> {
    return this.of(id).snapshot(id, salt, reader);
  }

  fingerprints(id: string, salt: string): Promise<Record<KeyName, Fingerprint>> {
    return this.of(id).fingerprints(id, salt);
  }

  regenerate(
    id: string,
    keyName: KeyName,
    salt: string,
    use?: (value: string) => Promise<void>,
  ): Promise<Record<KeyName, KeySnapshot>> {
    return this.of(id).regenerate(id, keyName, salt, use);
  }

  withKey<T>(id: string, keyName: KeyName, use: (value: string) => Promise<T>): Promise<T> {
    return this.of(id).withKey(id, keyName, use);
  }

  reader(id: string): KeyReader {
    return this.of(id).reader(id);
  }
}
