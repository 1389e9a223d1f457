import type { Estate } from "./model";
import type { Handler, Request, Response } from "./http";
import type { Identity, Principal } from "./identity";
import type { Rbac } from "./rbac";
import type { DataPlane } from "./dataplane";
import type { StorageRpKind } from "./throttle";

export type ProviderName =
  "Microsoft.Storage" | "Microsoft.MachineLearningServices" | "Microsoft.Batch" | "subscriptions";

/**
 * Which storage key a service-chosen consumer (workspace resync, Batch auto-storage sync) picks:
 * always key1; the key most of the account's other consumers hold; or the key it holds while that
 * key works (live and propagated), else key1.
 */
export type ResyncPolicy = "key1" | "consumers" | "keepIfLive";

export const RESYNC_POLICIES: readonly ResyncPolicy[] = ["key1", "consumers", "keepIfLive"];

export interface EmulatorSettings {
  resyncPolicy: ResyncPolicy;
  /**
   * Which key Batch takes on syncAutoStorageKeys. Also undocumented; kept apart from the workspace's
   * so each can be tested on its own. Default `consumers`.
   */
  batchSyncPolicy: ResyncPolicy;
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

/** What route modules may use: the estate and the hooks that keep Azurite and the outage log true. */
export interface EmulatorContext {
  readonly estate: Estate;
  readonly identity: Identity;
  readonly rbac: Rbac;
  readonly settings: EmulatorSettings;
  readonly dataPlane: DataPlane;
  now(): Date;
  /**
   * Call after any change to keys or to what a consumer holds: mirrors the accounts' keys into
   * Azurite (a regenerated key is refused at once) and updates the outage log. Await it before
   * answering, so the client never sees success before the data plane agrees.
   */
  changed(reason: string): Promise<void>;
  /** Every storage key value the emulator ever issued, so tests can prove none leaked (I3). */
  readonly issuedKeys: Set<string>;
  /** Every key regeneration, keyturn's and out-of-band ones, in order: tests count them (I2, I4). */
  readonly regenerations: { account: string; key: "key1" | "key2"; at: string; outOfBand: boolean }[];
  /** A pending injected LRO failure for this operation name (e.g. "resyncKeys"), consumed if present. */
  takeLroFailure(operation: string): boolean;
  /**
   * Runs `task` after `delayMs` (a timer that keeps no process alive and is cleared when the emulator
   * stops). A task that throws is reported on stderr and otherwise ignored.
   */
  schedule(delayMs: number, task: () => Promise<void>): void;
}

export interface ArmCall {
  principal: Principal;
  subscriptionId: string;
  /** The ARM scope the action is checked against (the resource path without a trailing action). */
  scope: string;
}

export interface ArmRoute {
  method: "GET" | "PUT" | "POST" | "DELETE" | "PATCH";
  /** e.g. `/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Storage/storageAccounts/{accountName}` */
  pattern: string;
  provider: ProviderName;
  /** The RBAC action, named as Azure lists it (matched case-insensitively). Undefined: no RBAC check. */
  action?: string;
  /** Which ARM token bucket the call draws from. */
  kind: "read" | "write";
  /**
   * Microsoft.Storage routes only: which Storage RP limit the call counts against, and the region
   * it counts in (the account's location; undefined when the call names no existing account).
   */
  storageRp?: { kind: StorageRpKind; region(params: Record<string, string>): string | undefined };
  /** Operation name for latency, faults and the request log, e.g. "storageAccounts.regenerateKey". */
  operation: string;
  handler: (req: Request, params: Record<string, string>, call: ArmCall) => Promise<Response> | Response;
}

export type RouteModule = (ctx: EmulatorContext) => ArmRoute[];

export type { Handler };
