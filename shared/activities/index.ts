import {
  fingerprint,
  moveGuard,
  regenerationGuard,
  type Consumer,
  type ConsumerObservation,
  type Fingerprint,
  type KeyName,
  type KeySnapshot,
  type MoveConsumersStep,
  type ProbeResult,
} from "../rotation";
import type { KeyturnConfig } from "../config";
import { KeyturnError, scrubError } from "../errors";
import { countArmCalls, unreadSnapshot, type Azure } from "../azure";
import type { AuditStore } from "../audit";
import type {
  DiscoverSecretsInput,
  DiscoverSecretsOutput,
  DiscoverSubscriptionInput,
  DiscoverSubscriptionOutput,
  DiscoverWorkspaceInput,
  DiscoverWorkspaceOutput,
  FindNewConsumersInput,
  FindNewConsumersOutput,
  ListSubscriptionsInput,
  ListSubscriptionsOutput,
  MoveConsumerInput,
  MoveConsumerOutput,
  RegenerateKeyInput,
  RegenerateKeyOutput,
  SnapshotAccountInput,
  SnapshotAccountOutput,
  VerifyConsumersInput,
  VerifyConsumersOutput,
} from "./contracts";

/**
 * The activities' work, each a few adapter calls. They read keys themselves (through
 * `storage.withKey`) and hand back fingerprints only (I3); every write is guarded by the fingerprints
 * the orchestrator passes in (I4), so a retried or replayed activity never writes twice.
 */
export interface ActivityDeps {
  azure: Azure;
  config: KeyturnConfig;
  audit: AuditStore;
}

/** Thrown when a key no longer has the fingerprint the plan expects: something outside keyturn changed it. */
export class KeyChangedError extends KeyturnError {}

async function metered<T extends object>(
  _deps: ActivityDeps,
  work: () => Promise<T>,
): Promise<T & { armCalls: number }> {
  const { result, armCalls } = await countArmCalls(work);
  return { ...result, armCalls };
}

/**
 * Every subscription the identity can see is searched for consumers, whatever the scope and whatever
 * KEYTURN_SUBSCRIPTIONS says (that setting is the timer's rotation scope): a consumer missed is a
 * consumer broken.
 */
export async function listSubscriptions(
  deps: ActivityDeps,
  input: ListSubscriptionsInput,
): Promise<ListSubscriptionsOutput> {
  return metered(deps, async () => {
    const all = [
      ...(await deps.azure.subscriptions()),
      ...deps.config.subscriptions,
      ...(input.scope.subscriptions ?? []),
    ];
    const unique = all.filter((s, i) => all.findIndex((t) => t.toLowerCase() === s.toLowerCase()) === i);
    return { subscriptionIds: unique };
  });
}

export async function discoverSubscription(
  deps: ActivityDeps,
  input: DiscoverSubscriptionInput,
): Promise<DiscoverSubscriptionOutput> {
  return metered(deps, async () => {
    const [accounts, workspaces, batchAccounts] = await Promise.all([
      deps.azure.storage.listAccounts(input.subscriptionId),
      deps.azure.workspaces.list(input.subscriptionId),
      deps.azure.batch.list(input.subscriptionId),
    ]);
    const consumers: Consumer[] = [];
    for (const b of batchAccounts) {
      if (!b.autoStorage || b.autoStorage.authenticationMode !== "StorageKeys") continue;
      consumers.push({
        kind: "batchAutoStorage",
        id: b.id,
        name: b.name,
        storageAccountId: b.autoStorage.storageAccountId,
        ...(b.autoStorage.lastKeySync ? { lastKeySync: b.autoStorage.lastKeySync } : {}),
      });
    }
    return {
      // Keys are not read here: only accounts with consumers are snapshotted, by snapshotAccount.
      accounts: accounts.map(unreadSnapshot),
      workspaces: workspaces.map((w) => ({
        id: w.id,
        name: w.name,
        subscriptionId: w.subscriptionId,
        resourceGroup: w.resourceGroup,
        ...(w.storageAccountId ? { storageAccountId: w.storageAccountId } : {}),
      })),
      consumers,
    };
  });
}

/** Published Key Vault secrets: those tagged with the storage account they hold a key of. */
export async function discoverSecrets(
  deps: ActivityDeps,
  input: DiscoverSecretsInput,
): Promise<DiscoverSecretsOutput> {
  return metered(deps, async () => {
    const consumers: Consumer[] = [];
    for (const vaultUrl of deps.config.keyVaultUrls) {
      for (const secret of await deps.azure.secrets.listPublished(vaultUrl)) {
        const held = await deps.azure.secrets.heldFingerprint(vaultUrl, secret.name, input.salt);
        consumers.push({
          kind: "keyVaultSecret",
          id: `${vaultUrl.replace(/\/$/, "")}/secrets/${secret.name}`,
          name: `${new URL(vaultUrl).host}/${secret.name}`,
          storageAccountId: secret.storageAccountId,
          vaultUrl,
          secretName: secret.name,
          ...(held ? { heldFingerprint: held } : {}),
        });
      }
    }
    return { consumers };
  });
}

export async function discoverWorkspace(
  deps: ActivityDeps,
  input: DiscoverWorkspaceInput,
): Promise<DiscoverWorkspaceOutput> {
  return metered(deps, async () => {
    const { workspace, salt } = input;
    const consumers: Consumer[] = [];
    if (workspace.storageAccountId) {
      const held = await deps.azure.workspaces.heldFingerprint(workspace.id, salt);
      consumers.push({
        kind: "workspace",
        id: workspace.id,
        name: workspace.name,
        storageAccountId: workspace.storageAccountId,
        ...(held ? { heldFingerprint: held } : {}),
      });
    }
    for (const ds of await deps.azure.datastores.list(workspace.id)) {
      if (!ds.accountName) continue; // not a storage-account datastore
      const base = {
        id: ds.id,
        name: `${workspace.name}/${ds.name}`,
        storageAccountId: ds.accountName,
        workspaceId: workspace.id,
      };
      if (ds.credentialsType === "AccountKey") {
        const held = await deps.azure.datastores.heldFingerprint(ds.id, salt);
        consumers.push({
          ...base,
          kind: "datastore",
          datastoreType: ds.datastoreType,
          isDefault: ds.isDefault,
          ...(ds.container ? { container: ds.container } : {}),
          ...(held ? { heldFingerprint: held } : {}),
        });
      } else if (ds.credentialsType === "Sas") {
        consumers.push({ ...base, kind: "sasDatastore" });
      } else {
        consumers.push({ ...base, kind: "identityDatastore" });
      }
    }
    return { consumers };
  });
}

export async function snapshotAccount(
  deps: ActivityDeps,
  input: SnapshotAccountInput,
): Promise<SnapshotAccountOutput> {
  return metered(deps, async () => ({
    account: await deps.azure.storage.snapshot(input.accountId, input.salt),
  }));
}

export async function regenerateKey(
  deps: ActivityDeps,
  input: RegenerateKeyInput,
): Promise<RegenerateKeyOutput> {
  return metered(deps, async () => {
    const current = await deps.azure.storage.fingerprints(input.accountId, input.salt);
    const decision = regenerationGuard(input.step, current, input.learned);
    if (decision.action !== "regenerate")
      return { decision: decision.action, reason: decision.reason, keys: current };
    const keys = await deps.azure.storage.regenerate(input.accountId, input.step.key, input.salt);
    return { decision: decision.action, keys: fingerprintsOf(keys) };
  });
}

export async function moveConsumer(
  deps: ActivityDeps,
  input: MoveConsumerInput,
): Promise<MoveConsumerOutput> {
  return metered(deps, async (): Promise<Omit<MoveConsumerOutput, "armCalls">> => {
    const { move, to, salt, accountId } = input;
    const consumer = move.consumer;
    const alreadyThere = (held: Fingerprint | undefined) =>
      moveGuard(
        { to: { key: to.key, source: "snapshot", fingerprint: to.fingerprint } } as MoveConsumersStep,
        held,
        {},
      ) === "already-done";
    switch (move.operation) {
      case "putDatastore": {
        if (alreadyThere(await deps.azure.datastores.heldFingerprint(consumer.id, salt)))
          return { result: "already-done" };
        await withExpectedKey(deps, accountId, to, salt, (key) =>
          deps.azure.datastores.putKey(consumer.id, key),
        );
        return { result: "written" };
      }
      case "setSecretVersion": {
        if (consumer.kind !== "keyVaultSecret")
          throw new KeyturnError(`${consumer.name} is not a Key Vault secret`);
        if (
          alreadyThere(await deps.azure.secrets.heldFingerprint(consumer.vaultUrl, consumer.secretName, salt))
        ) {
          return { result: "already-done" };
        }
        await withExpectedKey(deps, accountId, to, salt, (key) =>
          deps.azure.secrets.publish(consumer.vaultUrl, consumer.secretName, key, {
            "keyturn-storage-account": accountId,
            "keyturn-key-name": to.key,
            "keyturn-rotation-id": input.rotationId,
          }),
        );
        return { result: "written" };
      }
      case "syncAutoStorageKeys": {
        const before = await deps.azure.batch.get(consumer.id);
        await deps.azure.batch.syncAutoStorageKeys(consumer.id);
        return {
          result: "written",
          ...(before.autoStorage?.lastKeySync ? { lastKeySyncBefore: before.autoStorage.lastKeySync } : {}),
        };
      }
      case "resyncKeys": {
        // The service picks the key; verification checks it picked a live one.
        await deps.azure.workspaces.resync(consumer.id);
        return { result: "written" };
      }
    }
  });
}

/** Reads the key by name and uses it only if it still is the key the plan moved consumers to (I4). */
async function withExpectedKey(
  deps: ActivityDeps,
  accountId: string,
  expected: { key: KeyName; fingerprint: Fingerprint },
  salt: string,
  use: (key: string) => Promise<unknown>,
): Promise<void> {
  await deps.azure.storage.withKey(accountId, expected.key, async (key) => {
    if (fingerprint(key, salt) !== expected.fingerprint) {
      throw new KeyChangedError(
        `${expected.key} of ${accountId} is no longer the key this rotation moved consumers to (expected ${expected.fingerprint}): it was regenerated outside keyturn. Nothing was written; run keyturn again to start from the keys as they are.`,
      );
    }
    await use(key);
  });
}

export async function verifyConsumers(
  deps: ActivityDeps,
  input: VerifyConsumersInput,
): Promise<VerifyConsumersOutput> {
  return metered(deps, async () => {
    const { accountId, step, on, salt } = input;
    const [current, account] = await Promise.all([
      deps.azure.storage.fingerprints(accountId, salt),
      deps.azure.storage.getAccount(accountId),
    ]);
    const probe = async (container: string | undefined): Promise<ProbeResult> => {
      if (!account.blobEndpoint) return "not-probed";
      if (current[on.key] !== on.fingerprint) return "not-probed";
      return deps.azure.storage.withKey(accountId, on.key, async (key) => {
        const result = await deps.azure.probe.probe({
          blobEndpoint: account.blobEndpoint!,
          accountName: account.name,
          key,
          ...(container ? { container } : {}),
        });
        if (result.ok === true) return "ok";
        if (result.ok === "skipped") return "not-probed";
        return result.status === 403 ? "denied" : "failed";
      });
    };
    const observations: ConsumerObservation[] = [];
    for (const { consumer, expect } of step.checks) {
      try {
        observations.push(await observe(deps, consumer, expect, salt, on, probe, input.lastKeySyncBefore));
      } catch (e) {
        observations.push({ consumerId: consumer.id, error: scrubError(e).message });
      }
    }
    return { observations, current };
  });
}

async function observe(
  deps: ActivityDeps,
  consumer: Consumer,
  expect: string,
  salt: string,
  on: { key: KeyName; fingerprint: Fingerprint },
  probe: (container: string | undefined) => Promise<ProbeResult>,
  lastKeySyncBefore: Record<string, string | undefined>,
): Promise<ConsumerObservation> {
  switch (consumer.kind) {
    case "datastore": {
      const held = await deps.azure.datastores.heldFingerprint(consumer.id, salt);
      // File shares have no probe of their own here: the account's blob service proves the key instead.
      const container = consumer.datastoreType === "AzureFile" ? undefined : consumer.container;
      return {
        consumerId: consumer.id,
        ...(held ? { heldFingerprint: held } : {}),
        ...(held === on.fingerprint ? { probe: await probe(container) } : {}),
      };
    }
    case "keyVaultSecret": {
      const held = await deps.azure.secrets.heldFingerprint(consumer.vaultUrl, consumer.secretName, salt);
      return {
        consumerId: consumer.id,
        ...(held ? { heldFingerprint: held } : {}),
        ...(held === on.fingerprint ? { probe: await probe(undefined) } : {}),
      };
    }
    case "workspace": {
      const held = await deps.azure.workspaces.heldFingerprint(consumer.id, salt);
      return { consumerId: consumer.id, ...(held ? { heldFingerprint: held } : {}) };
    }
    case "batchAutoStorage": {
      const after = (await deps.azure.batch.get(consumer.id)).autoStorage?.lastKeySync;
      const before = lastKeySyncBefore[consumer.id] ?? consumer.lastKeySync;
      const moved = after !== undefined && (before === undefined || Date.parse(after) > Date.parse(before));
      return { consumerId: consumer.id, keySynced: moved };
    }
    default:
      return {
        consumerId: consumer.id,
        error: `${consumer.kind} consumers are not verified (expected ${expect})`,
      };
  }
}

function fingerprintsOf(keys: Record<KeyName, KeySnapshot>): Record<KeyName, Fingerprint> {
  return { key1: keys.key1.fingerprint, key2: keys.key2.fingerprint };
}

export async function findNewConsumers(
  deps: ActivityDeps,
  input: FindNewConsumersInput,
): Promise<FindNewConsumersOutput> {
  return metered(deps, async () => {
    const known = new Set(input.known.map((id) => id.toLowerCase()));
    const found: FindNewConsumersOutput["consumers"] = [];
    for (const workspaceId of input.workspaceIds) {
      for (const ds of await deps.azure.datastores.list(workspaceId)) {
        if (
          ds.credentialsType !== "AccountKey" ||
          ds.accountName?.toLowerCase() !== input.accountName.toLowerCase()
        )
          continue;
        if (known.has(ds.id.toLowerCase())) continue;
        const held = await deps.azure.datastores.heldFingerprint(ds.id, input.salt);
        found.push({
          id: ds.id,
          name: `${workspaceId.split("/").pop() ?? ""}/${ds.name}`,
          ...(held ? { heldFingerprint: held } : {}),
        });
      }
    }
    return { consumers: found };
  });
}
