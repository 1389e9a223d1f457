import type { Estate } from "./model";
import type { Handler, Request, Response } from "./http";
import type { Identity, Principal } from "./identity";
import type { Rbac } from "./rbac";
import type { DataPlane } from "./dataplane";
import type { StorageRpKind } from "./throttle";
import type { EmulatorSettings } from "./settings";

export type ProviderName =
  | "Microsoft.Storage"
  | "Microsoft.ClassicStorage"
  | "Microsoft.MachineLearningServices"
  | "Microsoft.Batch"
  | "Microsoft.ContainerRegistry"
  | "subscriptions";

// Settings live in settings.ts (model.ts needs ResyncPolicy without importing this file back).
export {
  REGISTRY_RESYNC_PICKS,
  RESYNC_POLICIES,
  type EmulatorSettings,
  type RegistryResyncPick,
  type ResyncPolicy,
} from "./settings";

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
  /**
   * Every storage key (and container registry admin password) value the emulator ever issued, so
   * tests can prove none leaked (I3).
   */
  readonly issuedKeys: Set<string>;
  /**
   * Every key regeneration, keyturn's and out-of-band ones, in order: tests count them (I2, I4).
   * `batch`: a Batch account's shared key (key1 = Primary, key2 = Secondary), not a storage key.
   */
  readonly regenerations: {
    account: string;
    key: "key1" | "key2";
    at: string;
    outOfBand: boolean;
    batch?: true;
  }[];
  /**
   * Every container registry admin password regeneration, keyturn's and out-of-band ones, in order:
   * tests count them as they count `regenerations` (the new values also go to `issuedKeys`).
   */
  readonly registryRegenerations: RegistryRegeneration[];
  /** A pending injected LRO failure for this operation name (e.g. "resyncKeys"), consumed if present. */
  takeLroFailure(operation: string): boolean;
  /**
   * Runs `task` after `delayMs` (a timer that keeps no process alive and is cleared when the emulator
   * stops). A task that throws is reported on stderr and otherwise ignored.
   */
  schedule(delayMs: number, task: () => Promise<void>): void;
}

export interface RegistryRegeneration {
  registry: string;
  password: "password" | "password2";
  at: string;
  outOfBand: boolean;
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
