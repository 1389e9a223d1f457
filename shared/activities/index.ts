import {
  creationTimesUnchanged,
  fingerprint,
  guardRegeneration,
  isServiceChosen,
  type Consumer,
  type ConsumerMove,
  type ConsumerObservation,
  type Fingerprint,
  type KeyName,
  type KeySnapshot,
  type MoveOutcome,
  type ProbeResult,
  type VerifiedDatastore,
} from "../rotation";
import { mapLimit } from "../concurrency";
import type { KeyReader, StorageAccountInfo } from "../azure/storage";
import type { DatastoreInfo } from "../azure/datastores";
import { AzureCallError, KeyturnError, scrubError } from "../errors";
import { armTimeoutMs } from "../azure/pacing";
import { isBatchAccountId, unreadSnapshot } from "../azure";
import { publishedVersion } from "../published-secret";
import { metered, sleep, type ActivityDeps } from "./deps";
import type {
  DiscoverSecretsInput,
  DiscoverSecretsOutput,
  DiscoverSubscriptionInput,
  DiscoverSubscriptionOutput,
  DiscoverWorkspaceInput,
  DiscoverWorkspaceOutput,
  FindLateDatastoresInput,
  FindLateDatastoresOutput,
  ListSubscriptionsInput,
  ListSubscriptionsOutput,
  MoveAndVerifyInput,
  MoveAndVerifyOutput,
  RegenerateKeyInput,
  RegenerateKeyOutput,
  SnapshotAccountInput,
  SnapshotAccountOutput,
} from "./contracts";

export type { ActivityDeps } from "./deps";
export { lockAccount, unlockAccount } from "./lock";
import { holdLock, lastRotatedAt, releaseLock, takeLock } from "./lock";
import { discoverSasDatastore, observeSas, resignSas, sasSignedWith } from "./sas";

/** Thrown when a key no longer has the fingerprint the plan expects: something outside keyturn changed it. */
export class KeyChangedError extends KeyturnError {}

/** Calls in flight for one account or workspace; the ARM pacer sets the pace across them. */
const PER_ACCOUNT_CONCURRENCY = 8;

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
    const [accounts, workspaces, batchAccounts, batchKeyHolders, registries] = await Promise.all([
      deps.azure.storage.listAccounts(input.subscriptionId),
      deps.azure.workspaces.list(input.subscriptionId),
      deps.azure.batch.list(input.subscriptionId),
      // Batch accounts' own shared keys, opted in (seed 004): key holders like storage accounts.
      input.batchKeys ? deps.azure.batchKeys.listAccounts(input.subscriptionId) : Promise.resolve([]),
      // Container registries' admin passwords, opted in (seed 003).
      input.registryPasswords
        ? deps.azure.registries.listAccounts(input.subscriptionId)
        : Promise.resolve([]),
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
      accounts: [...accounts, ...batchKeyHolders, ...registries].map(unreadSnapshot),
      workspaces: workspaces.map((w) => ({
        id: w.id,
        name: w.name,
        subscriptionId: w.subscriptionId,
        resourceGroup: w.resourceGroup,
        ...(w.storageAccountId ? { storageAccountId: w.storageAccountId } : {}),
        ...(w.containerRegistryId ? { containerRegistryId: w.containerRegistryId } : {}),
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
        // A Batch key's secret is a consumer only when Batch keys are rotated (--batch-keys).
        if (!input.batchKeys && isBatchAccountId(secret.storageAccountId)) continue;
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
    // Its registry's admin password, opted in (seed 003): the workspace holds one, the service picks which.
    if (input.registryPasswords && workspace.containerRegistryId) {
      const held = await deps.azure.registries.heldFingerprints(workspace.id, salt);
      const fingerprint = held?.passwords[0]?.fingerprint;
      // A registry whose admin user is off gives the workspace no password: it holds nothing to move.
      if (held !== undefined)
        consumers.push({
          kind: "registryWorkspace",
          id: `${workspace.id}#containerRegistry`,
          name: `${workspace.name} (registry)`,
          storageAccountId: workspace.containerRegistryId,
          workspaceId: workspace.id,
          ...(fingerprint ? { heldFingerprint: fingerprint } : {}),
        });
    }
    const datastores = (await deps.azure.datastores.list(workspace.id)).filter((ds) => ds.accountName);
    // Secrets are read a few at a time: one workspace's datastores should not wait on each other.
    const found = await mapLimit(datastores, PER_ACCOUNT_CONCURRENCY, async (ds): Promise<Consumer> => {
      const base = {
        id: ds.id,
        name: `${workspace.name}/${ds.name}`,
        storageAccountId: ds.accountName!,
        workspaceId: workspace.id,
      };
      if (ds.credentialsType === "AccountKey") {
        const held = await deps.azure.datastores.heldFingerprint(ds.id, salt);
        return {
          ...base,
          kind: "datastore",
          datastoreType: ds.datastoreType,
          isDefault: ds.isDefault,
          ...(ds.container ? { container: ds.container } : {}),
          ...(held ? { heldFingerprint: held } : {}),
        };
      }
      if (ds.credentialsType === "Sas") return discoverSasDatastore(deps, base, ds, new Date());
      return { ...base, kind: "identityDatastore" };
    });
    consumers.push(...found);
    return { consumers };
  });
}

export async function snapshotAccount(
  deps: ActivityDeps,
  input: SnapshotAccountInput,
): Promise<SnapshotAccountOutput> {
  return metered(deps, async () => {
    const reader = deps.azure.storage.reader(input.accountId);
    const account = await deps.azure.storage.snapshot(input.accountId, input.salt, reader);
    const held = await observeAtSnapshot(deps, input.observe ?? [], reader, account.keys);
    const observed = Object.keys(held).length > 0 ? { held } : {};
    const lock = input.lock ? { lock: await takeLock(deps, account, reader, input.lock) } : {};
    // Keys with no creation time in Azure (classic accounts): their age is keyturn's own record.
    if (account.keys.key1.creationTime === undefined || account.keys.key2.creationTime === undefined) {
      const last =
        lock.lock === undefined
          ? await lastRotatedAt(account, reader, deps)
          : lock.lock.acquired
            ? lock.lock.lastRotatedAt
            : undefined;
      if (last !== undefined) account.lastRotatedAt = last;
    }
    return { account, ...observed, ...lock };
  });
}

/**
 * Consumers whose held key can only be told with the account's keys in hand (`heldKnownAtSnapshot`):
 * the fingerprint of the key each holds, for those that hold one of the account's keys.
 */
async function observeAtSnapshot(
  deps: ActivityDeps,
  consumers: Consumer[],
  keys: KeyReader,
  snapshot: Record<KeyName, KeySnapshot>,
): Promise<Record<string, Fingerprint>> {
  const held: Record<string, Fingerprint> = {};
  await mapLimit(consumers, PER_ACCOUNT_CONCURRENCY, async (consumer) => {
    if (consumer.kind !== "sasDatastore") return;
    const signedWith = await sasSignedWith(deps, consumer, keys, snapshot);
    if (signedWith !== undefined) held[consumer.id] = signedWith;
  });
  return held;
}

export async function regenerateKey(
  deps: ActivityDeps,
  input: RegenerateKeyInput,
): Promise<RegenerateKeyOutput> {
  return metered(deps, () => regenerateGuarded(deps, input));
}

async function regenerateGuarded(
  deps: ActivityDeps,
  input: RegenerateKeyInput,
): Promise<Omit<RegenerateKeyOutput, "armCalls">> {
  const { accountId, expect, keep, salt } = input;
  const storage = deps.azure.storage;
  // Azure's creation times let the guard cost a read; the fingerprints decide whenever they do not.
  const times =
    expect.creationTime !== undefined && keep.creationTime !== undefined
      ? (await storage.getAccount(accountId)).keyCreationTime
      : {};
  let notLive: string | undefined;
  let regeneratedAt: string | undefined;
  const awaitLive = async (value: string): Promise<void> => {
    regeneratedAt ??= new Date().toISOString();
    notLive = await untilKeyWorks(deps, accountId, expect.key, value);
  };
  if (!creationTimesUnchanged(expect, keep, times)) {
    const current = await storage.fingerprints(accountId, salt);
    const decision = guardRegeneration(expect, keep, current);
    // Done before a crash: Azure's record says when; the key may still be on its way to the data plane.
    if (decision.action === "already-done") {
      regeneratedAt = times[expect.key];
      await storage.withKey(accountId, expect.key, awaitLive);
    }
    if (decision.action !== "regenerate")
      return {
        decision: decision.action,
        reason: decision.reason,
        keys: current,
        creationTimes: times,
        ...(notLive !== undefined ? { notLive } : {}),
        ...(regeneratedAt !== undefined ? { regeneratedAt } : {}),
      };
  }
  const keys = await regenerateOnce(deps, input, awaitLive);
  let creationTimes = timesOf(keys);
  // The next guard is a read only if the new key's creation time is known.
  if (creationTimes[expect.key] === undefined)
    creationTimes = (await storage.getAccount(accountId)).keyCreationTime;
  return {
    decision: "regenerate",
    keys: fingerprintsOf(keys),
    creationTimes,
    ...(notLive !== undefined ? { notLive } : {}),
    ...(regeneratedAt !== undefined ? { regeneratedAt } : {}),
  };
}

/** Tries of one regeneration whose earlier tries are known not to have landed. */
const REGENERATE_TRIES = 4;

/**
 * Regenerates `expect.key` exactly once. A try that ends without an answer or with a 5xx may still land:
 * wait until it no longer can (the ARM deadline), then ask Azure. Landed: done. Not landed: try again,
 * which is safe now. Anything else (the key consumers hold changed) is thrown for the guard to judge.
 */
async function regenerateOnce(
  deps: ActivityDeps,
  input: RegenerateKeyInput,
  awaitLive: (value: string) => Promise<void>,
): Promise<Record<KeyName, KeySnapshot>> {
  const { accountId, expect, keep, salt } = input;
  const storage = deps.azure.storage;
  for (let attempt = 1; ; attempt++) {
    try {
      return await storage.regenerate(accountId, expect.key, salt, awaitLive);
    } catch (e) {
      if (!outcomeUnknown(e)) throw e;
      await sleep(deps.armTimeoutMs?.() ?? armTimeoutMs());
      const current = await storage.fingerprints(accountId, salt);
      if (current[keep.key] !== keep.fingerprint) throw e;
      if (current[expect.key] !== expect.fingerprint) {
        // It landed: the key is new and the one consumers hold is unchanged.
        await storage.withKey(accountId, expect.key, awaitLive);
        return { key1: { fingerprint: current.key1 }, key2: { fingerprint: current.key2 } };
      }
      if (attempt >= REGENERATE_TRIES) throw e;
    }
  }
}

/** A failed call that may have taken effect: no answer at all, or a server error. */
function outcomeUnknown(e: unknown): boolean {
  if (!(e instanceof AzureCallError)) return false;
  return e.statusCode === undefined || e.statusCode >= 500;
}

/** Waits between probes of a key just regenerated: short first, as most keys work within seconds. */
const PROPAGATION_DELAYS_MS = [500, 1_000, 2_000, 4_000, 8_000];

/**
 * A regenerated key can take a while to be accepted everywhere, and a consumer moved to it before then
 * holds a key that does not work (I1). Probes the account's blob service with it until Azure stops
 * answering 403, within KEYTURN_KEY_PROPAGATION_SECONDS. Returns why it gave up, or undefined once the
 * key works (or when no probe can tell: no blob endpoint, a network that never answers).
 */
async function untilKeyWorks(
  deps: ActivityDeps,
  accountId: string,
  key: KeyName,
  value: string,
): Promise<string | undefined> {
  const account = await deps.azure.storage.getAccount(accountId);
  const limitMs = deps.config.keyPropagationSeconds * 1000;
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const outcome = await deps.azure.probe.probe({
      ...probeSite(account),
      accountName: account.name,
      key: value,
    });
    // A refusal (a registry answers 401) means not yet; anything else is no answer a probe can use.
    if (outcome.ok !== false || !refused(outcome.status)) return undefined;
    const elapsed = Date.now() - started;
    if (elapsed >= limitMs)
      return `the new ${key} of ${account.name} was still refused by the data plane (403${outcome.code ? ` ${outcome.code}` : ""}) ${Math.round(elapsed / 1000)} s after it was regenerated (KEYTURN_KEY_PROPAGATION_SECONDS=${deps.config.keyPropagationSeconds})`;
    const delay = PROPAGATION_DELAYS_MS[Math.min(attempt, PROPAGATION_DELAYS_MS.length - 1)]!;
    await sleep(Math.min(delay, limitMs - elapsed));
  }
}

/**
 * Moves an account's consumers to `to` and verifies every check, reading the account's keys at most
 * once (DESIGN §10): datastores re-registered in place, Key Vault secret versions, then the services
 * that pick their own key (workspace resync, Batch sync), which may follow the others. Every write uses
 * the key only if it still has the fingerprint the plan moved consumers to (I4).
 */
export async function moveAndVerify(
  deps: ActivityDeps,
  input: MoveAndVerifyInput,
): Promise<MoveAndVerifyOutput> {
  return metered(deps, async (): Promise<Omit<MoveAndVerifyOutput, "armCalls">> => {
    const { accountId, to, salt } = input;
    const keys = deps.azure.storage.reader(accountId);
    try {
      const target = async (): Promise<string> => {
        const value = await keys.value(to.key);
        if (fingerprint(value, salt) !== to.fingerprint) {
          throw new KeyChangedError(
            `${to.key} of ${accountId} is no longer the key this rotation moved consumers to (expected ${to.fingerprint}): it was regenerated outside keyturn. Nothing was written; run keyturn again to start from the keys as they are.`,
          );
        }
        return value;
      };
      const lock = { accountId, rotationId: input.rotationId, key: to.key, holdSeconds: input.holdSeconds };
      // Still this rotation's account (a holder silent past its expiry loses it): checked before any move.
      if (input.moves.length > 0 || input.releaseLock) await holdLock(deps, lock, keys);
      const written = input.moves.filter((m) => !isServiceChosen(m.consumer.kind));
      const chosen = input.moves.filter((m) => isServiceChosen(m.consumer.kind));
      const moveOne = (move: ConsumerMove) => moveConsumer(deps, input, move, target, keys);
      const moves = await mapLimit(written, PER_ACCOUNT_CONCURRENCY, moveOne);
      moves.push(
        ...(await mapLimit(chosen, PER_ACCOUNT_CONCURRENCY, (move) =>
          move.operation === "resyncKeys" ? resyncAndRestore(deps, input, move, target, keys) : moveOne(move),
        )),
      );
      if (moves.some((m) => m.error !== undefined))
        return { moves, observations: [], current: input.keys, verified: {} };
      if (input.phase === "retireActive" && input.checks.length > 0) await targetUnchanged(deps, input, keys);
      const { observations, verified } = await verifyChecks(deps, input, target, keys);
      const current = keys.used ? await keys.fingerprints(salt) : input.keys;
      // The last phase lets the lock go with the keys it read anyway (an unlock of its own costs a listKeys).
      // Both keys were regenerated by now (the last phase): the lock records when.
      if (input.releaseLock) await releaseLock(deps, lock, keys, true);
      return { moves, observations, current, verified, ...(input.releaseLock ? { lockReleased: true } : {}) };
    } catch (e) {
      throw keys.scrub(e);
    }
  });
}

async function moveConsumer(
  deps: ActivityDeps,
  input: MoveAndVerifyInput,
  move: ConsumerMove,
  target: () => Promise<string>,
  keys: KeyReader,
): Promise<MoveOutcome> {
  const consumer = move.consumer;
  try {
    switch (move.operation) {
      case "putDatastore":
        // No read first: writing the same key twice is harmless, and the read would cost a write.
        try {
          await deps.azure.datastores.putKey(consumer.id, await target());
        } catch (e) {
          // Deleted before its move: nothing holds a key through it any more.
          if (e instanceof AzureCallError && e.statusCode === 404)
            return { consumerId: consumer.id, gone: true };
          throw e;
        }
        return { consumerId: consumer.id };
      case "setSecretVersion": {
        if (consumer.kind !== "keyVaultSecret")
          throw new KeyturnError(`${consumer.name} is not a Key Vault secret`);
        const held = await deps.azure.secrets.heldFingerprint(
          consumer.vaultUrl,
          consumer.secretName,
          input.salt,
        );
        // A retried move does not add a second version.
        if (held !== input.to.fingerprint) {
          // An expiry (schedule's interval + KEYTURN_KEY_VAULT_EXPIRY_MARGIN_DAYS), a content type and the sample's tags.
          const version = publishedVersion(
            { storageAccountId: input.accountId, keyName: input.to.key, rotationId: input.rotationId },
            deps.config,
            new Date(),
          );
          await deps.azure.secrets.publish(
            consumer.vaultUrl,
            consumer.secretName,
            await target(),
            version.tags,
            version,
          );
        }
        return { consumerId: consumer.id };
      }
      case "resignSas":
        if (consumer.kind !== "sasDatastore")
          throw new KeyturnError(`${consumer.name} is not a SAS datastore`);
        try {
          await resignSas(deps, consumer, target);
        } catch (e) {
          if (e instanceof AzureCallError && e.statusCode === 404)
            return { consumerId: consumer.id, gone: true };
          throw e;
        }
        return { consumerId: consumer.id };
      case "syncAutoStorageKeys": {
        const before = await deps.azure.batch.get(consumer.id);
        await deps.azure.batch.syncAutoStorageKeys(consumer.id);
        const lastKeySync = before.autoStorage?.lastKeySync;
        return { consumerId: consumer.id, ...(lastKeySync ? { lastKeySyncBefore: lastKeySync } : {}) };
      }
      case "resyncKeys":
        // The service picks the key; verification checks it picked a live one. A resync that ends
        // Failed is tried once more: the operation is idempotent, and a workspace left behind after
        // a regeneration holds a dead key until it succeeds.
        try {
          await deps.azure.workspaces.resync(workspaceOf(consumer));
        } catch {
          await deps.azure.workspaces.resync(workspaceOf(consumer));
        }
        return { consumerId: consumer.id };
      default:
        // A new MoveOperation (kinds.ts) is a compile error here until it has its case.
        throw new KeyturnError(`unknown move operation ${String(move.operation satisfies never)}`);
    }
  } catch (e) {
    return { consumerId: consumer.id, error: keys.scrub(e).message };
  }
}

/**
 * A workspace resync may also write the key it picked into the workspace's default datastores
 * (Microsoft's how-to asks for a resync after changing them, and does not say what a resync does to
 * them). A datastore of this account that the resync changed, and that no longer holds the key
 * consumers are moving to, is registered again with it: the resync may have picked the key that dies
 * next. Two datastore lists (reads) when the resync touches nothing.
 */
async function resyncAndRestore(
  deps: ActivityDeps,
  input: MoveAndVerifyInput,
  move: ConsumerMove,
  target: () => Promise<string>,
  keys: KeyReader,
): Promise<MoveOutcome> {
  const workspaceId = workspaceOf(move.consumer);
  const ours = (ds: DatastoreInfo) =>
    ds.credentialsType === "AccountKey" && ds.accountName?.toLowerCase() === accountNameOf(input.accountId);
  try {
    const before = new Map(
      (await deps.azure.datastores.list(workspaceId))
        .filter(ours)
        .map((ds) => [ds.id.toLowerCase(), ds.modifiedAt]),
    );
    const outcome = await moveConsumer(deps, input, move, target, keys);
    if (outcome.error !== undefined) return outcome;
    const rewritten = (await deps.azure.datastores.list(workspaceId)).filter(
      (ds) =>
        ours(ds) && (!before.has(ds.id.toLowerCase()) || before.get(ds.id.toLowerCase()) !== ds.modifiedAt),
    );
    for (const ds of rewritten) {
      if ((await deps.azure.datastores.heldFingerprint(ds.id, input.salt)) === input.to.fingerprint) continue;
      await deps.azure.datastores.putKey(ds.id, await target());
    }
    return outcome;
  } catch (e) {
    return {
      consumerId: workspaceId,
      error: `resynced, then could not restore the datastores the resync rewrote: ${keys.scrub(e).message}`,
    };
  }
}

/** The workspace a resync is for: the workspace itself, or the one holding its registry's password. */
function workspaceOf(consumer: Consumer): string {
  return consumer.kind === "registryWorkspace" ? consumer.workspaceId : consumer.id;
}

/** Where a key holder's keys are proved: its blob service, Batch data plane or registry. */
function probeSite(
  account: Pick<StorageAccountInfo, "blobEndpoint" | "batchEndpoint" | "registryLoginServer">,
): { blobEndpoint?: string; batchEndpoint?: string; registryLoginServer?: string } {
  return {
    ...(account.blobEndpoint ? { blobEndpoint: account.blobEndpoint } : {}),
    ...(account.batchEndpoint ? { batchEndpoint: account.batchEndpoint } : {}),
    ...(account.registryLoginServer ? { registryLoginServer: account.registryLoginServer } : {}),
  };
}

/** A data plane's refusal of a key: storage and Batch answer 403, a registry 401. */
function refused(status: number): boolean {
  return status === 403 || status === 401;
}

function accountNameOf(accountId: string): string {
  return (accountId.split("/").pop() ?? "").toLowerCase();
}

/**
 * After the old active key died, consumers verified earlier and unchanged since are not read again; that
 * holds only while the key they hold is the one keyturn moved them to. Azure's creation time says so
 * for a read (the fingerprints when it is not recorded); a key regenerated outside keyturn is named,
 * with the time Azure records.
 */
async function targetUnchanged(
  deps: ActivityDeps,
  input: MoveAndVerifyInput,
  keys: KeyReader,
): Promise<void> {
  const { accountId, to, salt } = input;
  const info = await deps.azure.storage.getAccount(accountId);
  const created = info.keyCreationTime[to.key];
  const changed =
    to.creationTime !== undefined && created !== undefined
      ? created !== to.creationTime
      : (await keys.fingerprints(salt))[to.key] !== to.fingerprint;
  if (changed) {
    throw new KeyChangedError(
      `${to.key} of ${info.name}, the key its consumers were moved to, was regenerated outside keyturn${created !== undefined ? ` at ${created} (Azure's record)` : ""}: they hold a dead key now. Run keyturn again to move them to a live key.`,
    );
  }
}

async function verifyChecks(
  deps: ActivityDeps,
  input: MoveAndVerifyInput,
  target: () => Promise<string>,
  keys: KeyReader,
): Promise<{ observations: ConsumerObservation[]; verified: Record<string, VerifiedDatastore> }> {
  const { accountId, to, salt } = input;
  // Listed before any secret is read: a write after this shows as a newer lastModifiedAt later.
  const listed = new Map<string, string | undefined>();
  const workspaceIds = [
    ...new Set(
      input.checks.flatMap((c) => (c.consumer.kind === "datastore" ? [c.consumer.workspaceId] : [])),
    ),
  ];
  for (const workspaceId of workspaceIds) {
    for (const ds of await deps.azure.datastores.list(workspaceId))
      listed.set(ds.id.toLowerCase(), ds.modifiedAt);
  }
  let account: Promise<StorageAccountInfo> | undefined;
  // A datastore found holding the target key lends it to the probes: no account listKeys (a write).
  let lent: string | undefined;
  const seen: string[] = [];
  const probes = new Map<string, Promise<ProbeResult>>();
  const probe = (container: string | undefined): Promise<ProbeResult> => {
    const cacheKey = container ?? "";
    let result = probes.get(cacheKey);
    if (!result) {
      result = (async (): Promise<ProbeResult> => {
        account ??= deps.azure.storage.getAccount(accountId);
        const info = await account;
        const site = probeSite(info);
        if (Object.keys(site).length === 0) return "not-probed";
        const outcome = await deps.azure.probe.probe({
          ...site,
          accountName: info.name,
          key: lent ?? (await target()),
          ...(container ? { container } : {}),
        });
        if (outcome.ok === true) return "ok";
        if (outcome.ok === "skipped") return "not-probed";
        return refused(outcome.status) ? "denied" : "failed";
      })();
      probes.set(cacheKey, result);
    }
    return result;
  };
  const verified: Record<string, VerifiedDatastore> = {};
  const observe = async ({
    consumer,
    expect,
  }: MoveAndVerifyInput["checks"][number]): Promise<ConsumerObservation> => {
    try {
      switch (consumer.kind) {
        case "datastore": {
          // Its workspace no longer lists it: deleted during the rotation, so nothing to verify.
          if (!listed.has(consumer.id.toLowerCase())) return { consumerId: consumer.id, gone: true };
          const modifiedAt = listed.get(consumer.id.toLowerCase());
          const before = input.verified[consumer.id];
          if (
            before &&
            modifiedAt !== undefined &&
            before.modifiedAt === modifiedAt &&
            before.fingerprint === to.fingerprint
          )
            return {
              consumerId: consumer.id,
              heldFingerprint: before.fingerprint,
              probe: "unchanged" as const,
            };
          const value = await deps.azure.datastores.heldKey(consumer.id);
          if (value) seen.push(value);
          const held = value ? fingerprint(value, salt) : undefined;
          if (held === to.fingerprint) lent ??= value;
          // File shares have no probe of their own here: the account's blob service proves the key instead.
          const container = consumer.datastoreType === "AzureFile" ? undefined : consumer.container;
          const observed: ConsumerObservation = {
            consumerId: consumer.id,
            ...(held ? { heldFingerprint: held } : {}),
            ...(held === to.fingerprint ? { probe: await probe(container) } : {}),
          };
          if (held !== undefined && modifiedAt !== undefined && observed.probe === "ok")
            verified[consumer.id] = { modifiedAt, fingerprint: held };
          return observed;
        }
        case "keyVaultSecret": {
          const held = await deps.azure.secrets.heldFingerprint(consumer.vaultUrl, consumer.secretName, salt);
          return {
            consumerId: consumer.id,
            ...(held ? { heldFingerprint: held } : {}),
            ...(held === to.fingerprint && input.phase !== "retireActive"
              ? { probe: await probe(undefined) }
              : {}),
          };
        }
        case "sasDatastore":
          return {
            consumerId: consumer.id,
            ...(await observeSas(deps, consumer, to, keys, salt, async () => {
              account ??= deps.azure.storage.getAccount(accountId);
              return (await account).blobEndpoint;
            })),
          };
        case "registryWorkspace": {
          // What the workspace's listKeys shows, each password tried on the registry's /v2/.
          account ??= deps.azure.storage.getAccount(accountId);
          const loginServer = (await account).registryLoginServer;
          if (!loginServer)
            return { consumerId: consumer.id, error: `registry ${accountId} reports no loginServer` };
          const held = await deps.azure.registries.verifyHeld(consumer.workspaceId, loginServer, salt);
          const accepted = held.find((p) => p.probe.ok === true) ?? held[0];
          return { consumerId: consumer.id, ...(accepted ? { heldFingerprint: accepted.fingerprint } : {}) };
        }
        case "workspace": {
          const held = await deps.azure.workspaces.heldFingerprint(consumer.id, salt);
          return { consumerId: consumer.id, ...(held ? { heldFingerprint: held } : {}) };
        }
        case "batchAutoStorage": {
          const after = (await deps.azure.batch.get(consumer.id)).autoStorage?.lastKeySync;
          const before = input.lastKeySyncBefore[consumer.id] ?? consumer.lastKeySync;
          const moved =
            after !== undefined && (before === undefined || Date.parse(after) > Date.parse(before));
          return { consumerId: consumer.id, keySynced: moved };
        }
        case "untouchedSasDatastore":
        case "identityDatastore":
          // Report-only kinds get no checks: one that did is a plan this code does not know.
          return {
            consumerId: consumer.id,
            error: `${consumer.kind} consumers are not verified (expected ${expect})`,
          };
        default:
          // A new ConsumerKind is a compile error here until it says how it is observed.
          throw new KeyturnError(
            `unknown consumer kind ${String((consumer satisfies never as Consumer).kind)}`,
          );
      }
    } catch (e) {
      return { consumerId: consumer.id, error: scrubError(keys.scrub(e), seen).message };
    }
  };
  // Datastores first: one of them holding the target key lends it to every later probe.
  const datastores = input.checks.filter((c) => c.consumer.kind === "datastore");
  const others = input.checks.filter((c) => c.consumer.kind !== "datastore");
  const observations = await mapLimit(datastores, PER_ACCOUNT_CONCURRENCY, observe);
  observations.push(...(await mapLimit(others, PER_ACCOUNT_CONCURRENCY, observe)));
  return { observations, verified };
}

function fingerprintsOf(keys: Record<KeyName, KeySnapshot>): Record<KeyName, Fingerprint> {
  return { key1: keys.key1.fingerprint, key2: keys.key2.fingerprint };
}

function timesOf(keys: Record<KeyName, KeySnapshot>): Partial<Record<KeyName, string>> {
  const times: Partial<Record<KeyName, string>> = {};
  for (const key of ["key1", "key2"] as const) {
    const t = keys[key].creationTime;
    if (t !== undefined) times[key] = t;
  }
  return times;
}

/** Datastores on the account that the plan does not know, or that changed since they were verified. */
export async function findLateDatastores(
  deps: ActivityDeps,
  input: FindLateDatastoresInput,
): Promise<FindLateDatastoresOutput> {
  return metered(deps, async () => {
    const found: FindLateDatastoresOutput["datastores"] = [];
    for (const workspaceId of input.workspaceIds) {
      for (const ds of await deps.azure.datastores.list(workspaceId)) {
        if (
          ds.credentialsType !== "AccountKey" ||
          ds.accountName?.toLowerCase() !== input.accountName.toLowerCase()
        )
          continue;
        const known =
          input.known[ds.id] ??
          input.known[Object.keys(input.known).find((id) => id.toLowerCase() === ds.id.toLowerCase()) ?? ""];
        // Unchanged since it was verified: list metadata says so without reading its secret.
        if (known && ds.modifiedAt !== undefined && known.modifiedAt === ds.modifiedAt) continue;
        const held = await deps.azure.datastores.heldFingerprint(ds.id, input.salt);
        found.push({
          id: ds.id,
          name: `${workspaceId.split("/").pop() ?? ""}/${ds.name}`,
          changed: known !== undefined,
          workspaceId,
          ...(ds.datastoreType ? { datastoreType: ds.datastoreType } : {}),
          ...(ds.container ? { container: ds.container } : {}),
          ...(held ? { heldFingerprint: held } : {}),
        });
      }
    }
    return { datastores: found };
  });
}
