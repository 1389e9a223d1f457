import type {
  Consumer,
  ConsumerMove,
  ConsumerObservation,
  Fingerprint,
  KeyName,
  LearnedFingerprints,
  RegenerateKeyStep,
  RegenerationDecision,
  RotationScope,
  StorageAccountSnapshot,
  VerifyConsumersStep,
  ValidRotationRequest,
} from "../rotation";
import type { KeyturnConfig } from "../config";

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
  moveConsumer: "moveConsumer",
  verifyConsumers: "verifyConsumers",
  recordRotation: "recordRotation",
  findNewConsumers: "findNewConsumers",
} as const;

export const ORCHESTRATOR = {
  rotateAll: "rotateAll",
  rotateStorageAccount: "rotateStorageAccount",
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
}

export interface DiscoverSubscriptionInput {
  subscriptionId: string;
  salt: string;
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
}
export interface DiscoverWorkspaceOutput extends Metered {
  /** The workspace itself (its userStorageKey) and all its datastores, of every credential type. */
  consumers: Consumer[];
}

export interface DiscoverSecretsInput {
  salt: string;
}
export interface DiscoverSecretsOutput extends Metered {
  /** Secrets in the configured vaults tagged with the storage account whose key they hold. */
  consumers: Consumer[];
}

export interface SnapshotAccountInput {
  accountId: string;
  salt: string;
}
export interface SnapshotAccountOutput extends Metered {
  account: StorageAccountSnapshot;
}

export interface RegenerateKeyInput {
  accountId: string;
  step: RegenerateKeyStep;
  learned: LearnedFingerprints;
  salt: string;
}
export interface RegenerateKeyOutput extends Metered {
  decision: RegenerationDecision["action"];
  reason?: string;
  keys: Record<KeyName, Fingerprint>;
}

/** A key as the activity must find it: by name, with the fingerprint the plan expects it to have. */
export interface KeyRef {
  key: KeyName;
  fingerprint: Fingerprint;
}

export interface MoveConsumerInput {
  accountId: string;
  move: ConsumerMove;
  to: KeyRef;
  salt: string;
  rotationId: string;
}
export interface MoveConsumerOutput extends Metered {
  result: "written" | "already-done";
  /** Batch: `autoStorage.lastKeySync` read just before the sync, so verification can see it move. */
  lastKeySyncBefore?: string;
}

export interface VerifyConsumersInput {
  accountId: string;
  step: VerifyConsumersStep;
  on: KeyRef;
  salt: string;
  /** Batch lastKeySync values before the moves, by consumer id: verification looks for them to move. */
  lastKeySyncBefore: Record<string, string | undefined>;
}
export interface VerifyConsumersOutput extends Metered {
  observations: ConsumerObservation[];
  current: Record<KeyName, Fingerprint>;
}

/** Input of rotateAll, from the timer, the HTTP API or the CLI. */
export interface RotateAllInput {
  scope: RotationScope;
  dryRun: boolean;
  force: boolean;
  graceSeconds: number;
  minKeyAgeDays: number;
  parallelism: number;
  trigger: "timer" | "http" | "cli";
  startedBy: string;
}

/** Before the old active key is regenerated: datastores on the account that the plan does not know. */
export interface FindNewConsumersInput {
  accountName: string;
  /** Workspaces known to use the account: where a datastore added during the grace most likely is. */
  workspaceIds: string[];
  /** Consumer ids in the plan. */
  known: string[];
  salt: string;
}
export interface FindNewConsumersOutput extends Metered {
  consumers: { id: string; name: string; heldFingerprint?: string }[];
}

/** The one way a starter (HTTP, timer, CLI) turns a validated request and the settings into rotateAll's input. */
export function rotateAllInput(
  request: Pick<ValidRotationRequest, "scope" | "dryRun" | "force" | "graceSeconds">,
  settings: Pick<KeyturnConfig, "minKeyAgeDays" | "parallelism">,
  origin: Pick<RotateAllInput, "trigger" | "startedBy">,
): RotateAllInput {
  return {
    scope: request.scope,
    dryRun: request.dryRun,
    force: request.force,
    graceSeconds: request.graceSeconds,
    minKeyAgeDays: settings.minKeyAgeDays,
    parallelism: settings.parallelism,
    ...origin,
  };
}
