import { BatchManagementClient, type BatchAccount } from "@azure/arm-batch";
import { parseArmId } from "../rotation/ids";
import { azureCall, listOrNoneIfUnregistered, isoTime, OPERATIONS } from "./call";
import { armClientOptions, perSubscription, type AdapterOptions, type CloudProfile } from "./cloud";
import { batchAccountRef } from "./ids";

export interface AutoStorageInfo {
  storageAccountId: string;
  /** `StorageKeys` (Batch holds a storage key: a consumer) or `BatchAccountManagedIdentity` (no key). */
  authenticationMode: string;
  /** ISO 8601: when Batch last read the storage account's keys. */
  lastKeySync?: string;
}

export interface BatchAccountInfo {
  id: string;
  name: string;
  subscriptionId: string;
  resourceGroup: string;
  autoStorage?: AutoStorageInfo;
}

/**
 * Batch auto-storage. Batch has no API that shows which storage key it holds, so verification is
 * "`lastKeySync` moved past its value before `syncAutoStorageKeys`".
 */
export interface BatchAccounts {
  list(subscriptionId: string): Promise<BatchAccountInfo[]>;
  get(id: string): Promise<BatchAccountInfo>;
  syncAutoStorageKeys(id: string): Promise<void>;
}

export class ArmBatchAccounts implements BatchAccounts {
  private readonly client: (subscriptionId: string) => BatchManagementClient;

  constructor(profile: CloudProfile, options: AdapterOptions = {}) {
    this.client = perSubscription(
      (subscriptionId) =>
        new BatchManagementClient(profile.credential, subscriptionId, armClientOptions(profile, options)),
    );
  }

  async list(subscriptionId: string): Promise<BatchAccountInfo[]> {
    return listOrNoneIfUnregistered(() =>
      azureCall(OPERATIONS.listBatchAccounts, `/subscriptions/${subscriptionId}`, async () => {
        const accounts: BatchAccountInfo[] = [];
        for await (const account of this.client(subscriptionId).batchAccountOperations.list()) {
          accounts.push(batchInfo(account));
        }
        return accounts;
      }),
    );
  }

  async get(id: string): Promise<BatchAccountInfo> {
    const ref = batchAccountRef(id);
    const account = await azureCall(OPERATIONS.getBatchAccount, id, () =>
      this.client(ref.subscriptionId).batchAccountOperations.get(ref.resourceGroup, ref.name),
    );
    return batchInfo(account);
  }

  async syncAutoStorageKeys(id: string): Promise<void> {
    const ref = batchAccountRef(id);
    await azureCall(OPERATIONS.syncAutoStorageKeys, id, () =>
      this.client(ref.subscriptionId).batchAccountOperations.synchronizeAutoStorageKeys(
        ref.resourceGroup,
        ref.name,
      ),
    );
  }
}

function batchInfo(account: BatchAccount): BatchAccountInfo {
  const id = account.id ?? "";
  const { subscriptionId, resourceGroup } = parseArmId(id);
  const info: BatchAccountInfo = {
    id,
    name: account.name ?? "",
    subscriptionId: subscriptionId ?? "",
    resourceGroup: resourceGroup ?? "",
  };
  const auto = account.autoStorage;
  if (auto?.storageAccountId) {
    info.autoStorage = {
      storageAccountId: auto.storageAccountId,
      // Azure's default when the field is absent.
      authenticationMode: auto.authenticationMode ?? "StorageKeys",
    };
    const lastKeySync = isoTime(auto.lastKeySync);
    if (lastKeySync !== undefined) info.autoStorage.lastKeySync = lastKeySync;
  }
  return info;
}
