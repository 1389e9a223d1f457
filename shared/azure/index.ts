import { SubscriptionClient } from "@azure/arm-subscriptions";
import { azureCall, OPERATIONS } from "./call";
import { armClientOptions, type AdapterOptions, type ArmCallCounter, type CloudProfile } from "./cloud";
import { ArmBatchAccounts, type BatchAccounts } from "./batch";
import { ArmDatastores, type Datastores } from "./datastores";
import { BlobDataPlaneProbe, type DataPlaneProbe, type ProbeOptions } from "./probe";
import { BlobAccountLocks, type AccountLocks } from "./lock";
import { KeyVaultSecretStore, type SecretStore } from "./secrets";
import { ArmStorageKeys, StorageKeysByProvider, type StorageKeys } from "./storage";
import { ClassicStorageKeys } from "./classic";
import { BatchKeyService, BatchSharedKeys } from "./batch-keys";
import { RegistryKeyService, RegistryPasswords } from "./registry";
import { ArmWorkspaces, type Workspaces } from "./workspaces";

export * from "./cloud";
export * from "./call";
export * from "./ids";
export * from "./retry";
export * from "./storage";
export * from "./classic";
export * from "./workspaces";
export * from "./datastores";
export * from "./batch";
export * from "./batch-keys";
export * from "./registry";
export * from "./secrets";
export * from "./probe";
export * from "./lock";

/** Everything activities touch Azure through; fakes of these interfaces stand in for Azure in unit tests. */
export interface Azure {
  /** Every key holder's keys, routed by provider: storage accounts (ARM, classic) and Batch accounts. */
  storage: StorageKeys;
  /** Batch accounts as key holders (`--batch-keys`): their listing for discovery. */
  batchKeys: Pick<StorageKeys, "listAccounts">;
  /** Container registries as key holders (`--registry-passwords`): their listing, and what a workspace holds. */
  registries: Pick<StorageKeys, "listAccounts"> &
    Pick<RegistryPasswords, "heldFingerprints" | "verifyHeld" | "probeRegistry">;
  workspaces: Workspaces;
  datastores: Datastores;
  batch: BatchAccounts;
  secrets: SecretStore;
  probe: DataPlaneProbe;
  /** The account lock: a blob lease in each storage account (I5 across processes and machines). */
  locks: AccountLocks;
  /** The subscriptions to work in (see `discoverSubscriptions`). */
  subscriptions(): Promise<string[]>;
  /** The profile's ARM request counter (shared by every adapter built from it). */
  armCalls: ArmCallCounter;
}

export interface CreateAzureOptions extends AdapterOptions {
  probe?: ProbeOptions;
}

export function createAzure(profile: CloudProfile, options: CreateAzureOptions = {}): Azure {
  const batchSharedKeys = new BatchSharedKeys(profile, { ...options, ...options.probe });
  const batchKeys = new BatchKeyService(batchSharedKeys);
  const registryPasswords = new RegistryPasswords(profile, options);
  const registryKeys = new RegistryKeyService(registryPasswords);
  return {
    storage: new StorageKeysByProvider(
      new ArmStorageKeys(profile, options),
      new ClassicStorageKeys(profile, options),
      batchKeys,
      registryKeys,
    ),
    batchKeys,
    registries: {
      listAccounts: (subscriptionId) => registryKeys.listAccounts(subscriptionId),
      heldFingerprints: (workspaceId, salt) => registryPasswords.heldFingerprints(workspaceId, salt),
      verifyHeld: (workspaceId, loginServer, salt) =>
        registryPasswords.verifyHeld(workspaceId, loginServer, salt),
      probeRegistry: (loginServer, username, password) =>
        registryPasswords.probeRegistry(loginServer, username, password),
    },
    workspaces: new ArmWorkspaces(profile, options),
    datastores: new ArmDatastores(profile, options),
    batch: new ArmBatchAccounts(profile, options),
    secrets: new KeyVaultSecretStore(profile),
    probe: new BlobDataPlaneProbe(options.probe, {
      batch: (endpoint, accountName, key) => batchSharedKeys.probeSharedKey(endpoint, accountName, key),
      // A registry's admin username is the registry's name.
      registry: (loginServer, registryName, password) =>
        registryPasswords.probeRegistry(loginServer, registryName, password),
    }),
    locks: new BlobAccountLocks(),
    subscriptions: () => discoverSubscriptions(profile, options),
    armCalls: profile.armCalls,
  };
}

/** States in which a subscription still serves reads and writes (Disabled and Deleted ones do not). */
const USABLE_STATES = new Set(["enabled", "warned", "pastdue"]);

/**
 * The subscriptions to work in: the profile's own list when it has one (the emulator's), otherwise
 * every usable subscription the identity has a role assignment in (Subscriptions - List needs no action).
 */
export async function discoverSubscriptions(
  profile: CloudProfile,
  options: AdapterOptions = {},
): Promise<string[]> {
  if (profile.subscriptionIds !== undefined) return [...profile.subscriptionIds];
  const client = new SubscriptionClient(profile.credential, armClientOptions(profile, options));
  return azureCall(OPERATIONS.listSubscriptions, "the tenant", async () => {
    const ids: string[] = [];
    for await (const subscription of client.subscriptions.list()) {
      const state = (subscription.state ?? "Enabled").toLowerCase();
      if (subscription.subscriptionId && USABLE_STATES.has(state)) ids.push(subscription.subscriptionId);
    }
    return ids;
  });
}
