import { AzureMachineLearningWorkspaces, type Workspace } from "@azure/arm-machinelearning";
import { scrubError } from "../errors";
import { fingerprint, type Fingerprint } from "../rotation/fingerprint";
import { parseArmId } from "../rotation/ids";
import { azureCall, listOrNoneIfUnregistered, OPERATIONS } from "./call";
import { armClientOptions, perSubscription, type AdapterOptions, type CloudProfile } from "./cloud";
import { workspaceRef } from "./ids";

export interface WorkspaceInfo {
  id: string;
  name: string;
  resourceGroup: string;
  subscriptionId: string;
  /** The workspace's own storage account (ARM id); absent only if ARM omits it. */
  storageAccountId?: string;
  /** Its container registry (ARM id), whose admin password it holds when the admin user is on. */
  containerRegistryId?: string;
}

export interface Workspaces {
  list(subscriptionId: string): Promise<WorkspaceInfo[]>;
  get(id: string): Promise<WorkspaceInfo>;
  /** Fingerprint of `listKeys().userStorageKey`; undefined when the service shows none (identity-based storage). */
  heldFingerprint(id: string, salt: string): Promise<Fingerprint | undefined>;
  /**
   * Hands the workspace's storage key (or undefined) to `use`, as `StorageKeys.withKey` does: key values
   * leave adapters only into a callback, never as a return value (invariant I3).
   */
  withHeldKey<T>(id: string, use: (value: string | undefined) => Promise<T>): Promise<T>;
  /** `resyncKeys`, waited out: the workspace re-reads its storage account's keys (DESIGN §2 step 4). */
  resync(id: string): Promise<void>;
}

/** Without a Retry-After the SDK polls every 30 s; a resync usually ends well within that. */
const DEFAULT_LRO_POLL_MS = 5_000;

export class ArmWorkspaces implements Workspaces {
  private readonly client: (subscriptionId: string) => AzureMachineLearningWorkspaces;
  private readonly pollMs: number;

  constructor(profile: CloudProfile, options: AdapterOptions = {}) {
    this.client = perSubscription(
      (subscriptionId) =>
        new AzureMachineLearningWorkspaces(
          profile.credential,
          subscriptionId,
          armClientOptions(profile, options),
        ),
    );
    this.pollMs = options.lroPollIntervalMs ?? DEFAULT_LRO_POLL_MS;
  }

  async list(subscriptionId: string): Promise<WorkspaceInfo[]> {
    return listOrNoneIfUnregistered(() =>
      azureCall(OPERATIONS.listWorkspaces, `/subscriptions/${subscriptionId}`, async () => {
        const workspaces: WorkspaceInfo[] = [];
        for await (const ws of this.client(subscriptionId).workspaces.listBySubscription()) {
          workspaces.push(workspaceInfo(ws));
        }
        return workspaces;
      }),
    );
  }

  async get(id: string): Promise<WorkspaceInfo> {
    const ref = workspaceRef(id);
    const ws = await azureCall(OPERATIONS.getWorkspace, id, () =>
      this.client(ref.subscriptionId).workspaces.get(ref.resourceGroup, ref.name),
    );
    return workspaceInfo(ws);
  }

  async heldFingerprint(id: string, salt: string): Promise<Fingerprint | undefined> {
    return this.withHeldKey(id, async (value) => (value ? fingerprint(value, salt) : undefined));
  }

  async withHeldKey<T>(id: string, use: (value: string | undefined) => Promise<T>): Promise<T> {
    const ref = workspaceRef(id);
    // listKeys also returns the ACR passwords and the App Insights key: only the storage key is kept.
    const { userStorageKey } = await azureCall(OPERATIONS.listWorkspaceKeys, id, () =>
      this.client(ref.subscriptionId).workspaces.listKeys(ref.resourceGroup, ref.name),
    );
    const value = userStorageKey ? userStorageKey : undefined;
    try {
      return await use(value);
    } catch (e) {
      throw scrubError(e, [value]);
    }
  }

  async resync(id: string): Promise<void> {
    const ref = workspaceRef(id);
    await azureCall(OPERATIONS.resyncWorkspaceKeys, id, () =>
      this.client(ref.subscriptionId).workspaces.beginResyncKeysAndWait(ref.resourceGroup, ref.name, {
        updateIntervalInMs: this.pollMs,
      }),
    );
  }
}

function workspaceInfo(ws: Workspace): WorkspaceInfo {
  const id = ws.id ?? "";
  const { subscriptionId, resourceGroup } = parseArmId(id);
  const info: WorkspaceInfo = {
    id,
    name: ws.name ?? "",
    resourceGroup: resourceGroup ?? "",
    subscriptionId: subscriptionId ?? "",
  };
  if (ws.storageAccount) info.storageAccountId = ws.storageAccount;
  if (ws.containerRegistry) info.containerRegistryId = ws.containerRegistry;
  return info;
}
