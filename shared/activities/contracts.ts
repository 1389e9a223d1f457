import type { Trigger } from "../telemetry/events";
import type {
  Consumer,
  ConsumerCheck,
  ConsumerMove,
  FindLateResult,
  Fingerprint,
  KeyName,
  KeyRef,
  MoveAndVerifyResult,
  PlanPhase,
  RegenerateResult,
  RotationScope,
  StorageAccountSnapshot,
  ValidRotationRequest,
  VerifiedDatastore,
} from "../rotation";
import type { KeyturnConfig } from "../config";
import { armTimeoutMs } from "../azure/pacing";

/**
 * What crosses the orchestration boundary: names, ids and fingerprints, never key values (I3).
 * Every activity reads the keys it needs itself and returns fingerprints salted with the rotation id.
 */
export const ACTIVITY = {
  listSubscriptions: "listSubscriptions",
  discoverSubscription: "discoverSubscription",
  discoverWorkspace: "discoverWorkspace",
  discoverSecrets: "discoverSecrets",
  snapshotAccount: "snapshotAccount",
  regenerateKey: "regenerateKey",
  moveAndVerify: "moveAndVerify",
  recordRotation: "recordRotation",
  findLateDatastores: "findLateDatastores",
  lockAccount: "lockAccount",
  unlockAccount: "unlockAccount",
} as const;

export const ORCHESTRATOR = {
  rotateAll: "rotateAll",
  rotateStorageAccount: "rotateStorageAccount",
  rotateLane: "rotateLane",
} as const;

/** Every activity reports the ARM calls it made, so a report can say what a rotation cost. */
export interface Metered {
  armCalls: number;
}

export interface ListSubscriptionsInput {
  scope: RotationScope;
}
export interface ListSubscriptionsOutput extends Metered {
  subscriptionIds: string[];
}

export interface WorkspaceRef {
  id: string;
  name: string;
  subscriptionId: string;
  resourceGroup: string;
  storageAccountId?: string;
  containerRegistryId?: string;
}

export interface DiscoverSubscriptionInput {
  subscriptionId: string;
  salt: string;
  /** List the subscription's Batch accounts as key holders too (`batchKeys` in the scope). */
  batchKeys?: boolean;
  /** List the subscription's container registries as key holders too (`registryPasswords`). */
  registryPasswords?: boolean;
}
/** Accounts are listed without keys here: only the accounts that matter are snapshotted later. */
export interface DiscoverSubscriptionOutput extends Metered {
  accounts: StorageAccountSnapshot[];
  workspaces: WorkspaceRef[];
  /** Batch auto-storage and published Key Vault secrets found in the subscription. */
  consumers: Consumer[];
}

export interface DiscoverWorkspaceInput {
  workspace: WorkspaceRef;
  salt: string;
  /** The workspace is a consumer of its registry's admin password too (`registryPasswords`). */
  registryPasswords?: boolean;
}
export interface DiscoverWorkspaceOutput extends Metered {
  /** The workspace itself (its userStorageKey) and all its datastores, of every credential type. */
  consumers: Consumer[];
}

export interface DiscoverSecretsInput {
  salt: string;
  /** Secrets tagged `keyturn-batch-account` are consumers too (`batchKeys` in the scope). */
  batchKeys?: boolean;
}
export interface DiscoverSecretsOutput extends Metered {
  /** Secrets in the configured vaults tagged with the storage account whose key they hold. */
  consumers: Consumer[];
}

export interface SnapshotAccountInput {
  accountId: string;
  salt: string;
  /**
   * For a rotation (not a plan): take the account lock with the keys the snapshot reads, so the plan
   * is made from keys no other rotation can change meanwhile, at no extra ARM call.
   */
  lock?: { rotationId: string; holdSeconds: number };
  /** Consumers whose held key only the account's keys can tell (`heldKnownAtSnapshot`, e.g. a SAS's signing key). */
  observe?: Consumer[];
}
export interface SnapshotAccountOutput extends Metered {
  account: StorageAccountSnapshot;
  lock?: AccountLockOutcome;
  /** For `observe`: the fingerprint of the key each consumer holds, where it holds one of the account's. */
  held?: Record<string, Fingerprint>;
}

/**
 * Takes the account lock again (or keeps it) when the hold the snapshot took may run out before the
 * account's first write: the account waited long in its lane.
 */
export interface LockAccountInput {
  accountId: string;
  rotationId: string;
  /** The key the lock is opened with first (the other is tried if the data plane refuses it). */
  key: KeyName;
  /** How long the rotation may go on from here without another write (its graces); margins are added. */
  holdSeconds: number;
}
export type AccountLockOutcome =
  | {
      acquired: true;
      /** When the hold runs out unless a step renews it (keyturn's own expiry, in the lock's metadata). */
      expiresAt?: string;
      /** A rotation whose expiry had passed (it died), whose lock was broken. */
      tookOverFrom?: string;
      /** Why no lock could be taken, when the account has no blob service to hold one. */
      unlocked?: string;
      /** When the last rotation the lock records regenerated both keys and let go. */
      lastRotatedAt?: string;
    }
  | { acquired: false; holder: string; since?: string; expiresAt?: string };
export type LockAccountOutput = Metered & AccountLockOutcome;

export interface UnlockAccountInput {
  accountId: string;
  rotationId: string;
  /** The key to open the lock with first (the other is tried if this one is refused). */
  key: KeyName;
}
export type UnlockAccountOutput = Metered;

export interface RegenerateKeyInput {
  accountId: string;
  /** The key to regenerate, as the snapshot saw it. */
  expect: KeyRef;
  /** The key consumers were moved to: it must be unchanged (I2). */
  keep: KeyRef;
  salt: string;
}
export type RegenerateKeyOutput = RegenerateResult;

export interface MoveAndVerifyInput {
  accountId: string;
  phase: PlanPhase;
  moves: ConsumerMove[];
  checks: ConsumerCheck[];
  to: KeyRef;
  /** The account's keys as the last regeneration left them: used when no key needs to be read. */
  keys: Record<KeyName, Fingerprint>;
  verified: Record<string, VerifiedDatastore>;
  lastKeySyncBefore: Record<string, string>;
  salt: string;
  rotationId: string;
  /** How long the rotation may go on after this step: the lock's expiry moves on by this before any move. */
  holdSeconds: number;
  /** The rotation's last phase: let the account lock go once verified (a later round takes it again). */
  releaseLock?: boolean;
}
export type MoveAndVerifyOutput = MoveAndVerifyResult;

/** Before the old active key is regenerated: datastores on the account added or changed during the grace. */
export interface FindLateDatastoresInput {
  accountName: string;
  /** Workspaces known to use the account: where a datastore added during the grace most likely is. */
  workspaceIds: string[];
  /** Datastores verified earlier, with the list metadata seen then. */
  known: Record<string, VerifiedDatastore>;
  /** Consumer ids in the plan (datastores the plan knows but did not verify count as unknown). */
  salt: string;
}
export type FindLateDatastoresOutput = FindLateResult;

/** Input of rotateAll, from the timer, the HTTP API or the CLI. */
export interface RotateAllInput {
  scope: RotationScope;
  dryRun: boolean;
  force: boolean;
  graceSeconds: number;
  minKeyAgeDays: number;
  parallelism: number;
  trigger: Trigger;
  startedBy: string;
  /**
   * KEYTURN_ARM_TIMEOUT_SECONDS where the rotation was started: a regeneration is tried again only
   * after a lost request of the failed try can no longer land. Absent in older inputs: 60.
   */
  armTimeoutSeconds?: number;
}

/** The one way a starter (HTTP, timer, CLI) turns a validated request and the settings into rotateAll's input. */
export function rotateAllInput(
  request: Pick<ValidRotationRequest, "scope" | "dryRun" | "force" | "graceSeconds">,
  settings: Pick<KeyturnConfig, "minKeyAgeDays" | "parallelism"> &
    Partial<Pick<KeyturnConfig, "batchKeys" | "registryPasswords">>,
  origin: Pick<RotateAllInput, "trigger" | "startedBy">,
): RotateAllInput {
  return {
    // KEYTURN_BATCH_KEYS and KEYTURN_ROTATE_REGISTRIES turn them on for every rotation; a request can only add them.
    scope: {
      ...request.scope,
      ...(settings.batchKeys === true ? { batchKeys: true } : {}),
      ...(settings.registryPasswords === true ? { registryPasswords: true } : {}),
    },
    dryRun: request.dryRun,
    force: request.force,
    graceSeconds: request.graceSeconds,
    minKeyAgeDays: settings.minKeyAgeDays,
    parallelism: settings.parallelism,
    armTimeoutSeconds: armTimeoutMs() / 1000,
    ...origin,
  };
}
