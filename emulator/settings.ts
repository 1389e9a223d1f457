/** The emulator's settings (the admin API's `/settings`); no imports, so every module may use them. */

/**
 * Which storage key a service-chosen consumer (workspace resync, Batch auto-storage sync) picks:
 * always key1; the key most of the account's other consumers hold; or the key it holds while that
 * key works (live and propagated), else key1.
 */
export type ResyncPolicy = "key1" | "consumers" | "keepIfLive";

export const RESYNC_POLICIES: readonly ResyncPolicy[] = ["key1", "consumers", "keepIfLive"];

/**
 * Which admin password of its container registry a workspace takes on a resync (Microsoft does not
 * document it; the workspace's `listKeys` shows the one it holds): always `password` (the first the
 * registry lists); always `password2`; the one it holds while that one is still live, else `password`;
 * or either, at random, on each resync.
 */
export type RegistryResyncPick = "password" | "password2" | "keepIfLive" | "random";

export const REGISTRY_RESYNC_PICKS: readonly RegistryResyncPick[] = [
  "password",
  "password2",
  "keepIfLive",
  "random",
];

export interface EmulatorSettings {
  resyncPolicy: ResyncPolicy;
  /**
   * Which key Batch takes on syncAutoStorageKeys. Also undocumented; kept apart from the workspace's
   * so each can be tested on its own. Default `consumers`.
   */
  batchSyncPolicy: ResyncPolicy;
  /**
   * Which container registry admin password a workspace resync takes (see `RegistryResyncPick`).
   * Default `password`.
   */
  registryResyncPick: RegistryResyncPick;
  /** How many polls a resyncKeys long-running operation answers 202 before it completes. */
  resyncPolls: number;
  /** Seconds clients are told to wait between LRO polls (Retry-After). */
  lroRetryAfterSeconds: number;
  latency: "off" | "realistic";
  /** Multiplies every modelled latency (0.1 makes a realistic model ten times faster). */
  latencyScale: number;
  /** ARM's token buckets per principal and subscription (reads 250 / +25 per s, writes 200 / +10 per s). */
  throttling: boolean;
  /**
   * The Storage resource provider's own limits per subscription and region, on top of ARM's:
   * writes 10 per second and 1,200 per hour, reads 800 and lists 100 per 5 minutes.
   */
  storageRpLimits: boolean;
  /**
   * A workspace resync (and a workspace auto-sync) also writes the key it picked into the workspace's
   * `workspaceblobstore` and `workspacefilestore` (AccountKey datastores on its own storage account).
   */
  resyncRewritesDefaultDatastores: boolean;
  /**
   * Seconds a regenerated key is refused by the data plane and by datastore validation after the
   * regeneration (the old key dies at once; listKeys shows the new value at once).
   */
  keyPropagationSeconds: number;
  /**
   * 0: off. Else the seconds after a regeneration of a storage account's key at which every workspace
   * on that account resyncs itself by its resync policy (Azure's "after an hour").
   */
  workspaceAutoSyncSeconds: number;
  /** Seconds each simulated consumer job keeps using the key it read after its consumer moved on. */
  consumerKeyCacheSeconds: number;
  /** false: storage accounts show `keyCreationTime` as nulls and keys without creationTime (older accounts). */
  keyCreationTimeKnown: boolean;
}
