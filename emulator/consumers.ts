import { createHash } from "node:crypto";
import {
  liveKeyName,
  resourceKey,
  findStorageAccountByName,
  type BatchAccount,
  type Estate,
  type KeyName,
  type KeyVaultReader,
  type Datastore,
  type RegistryPasswordName,
} from "./model";
import type { DataPlane } from "./dataplane";
import { sasSigningKey, signedWithAccountKey } from "./sas";
import { REGISTRY_PASSWORD_NAMES, liveRegistryPasswords, registryHoldings } from "./arm/registry";

/**
 * The consumers of keys in an estate, and the outage log: every moment a consumer held a key that is
 * no longer one of its resource's two live keys. This is how invariant I1 is measured. The keys are
 * storage account keys, Batch account shared keys and container registry admin passwords.
 */

export type ConsumerKind =
  | "datastore"
  | "sasDatastore"
  | "workspace"
  | "batchAutoStorage"
  | "keyVaultReader"
  /** An app reading a Key Vault secret that holds a Batch account's shared key. */
  | "batchKeyReader"
  /** A workspace holding its container registry's admin password (emulator/arm/registry.ts). */
  | "workspaceRegistry";

/** The kind of resource whose keys a holding holds. */
export type KeyResource = "storageAccount" | "batchAccount" | "containerRegistry";

/**
 * Keyturn's names for a registry's admin passwords, as for a Batch account's Primary and Secondary:
 * password = key1, password2 = key2.
 */
export const REGISTRY_KEY_NAMES: Record<RegistryPasswordName, KeyName> = {
  password: "key1",
  password2: "key2",
};

export interface ConsumerHolding {
  kind: ConsumerKind;
  /**
   * A stable id: the datastore/workspace/Batch ARM id, `vault/secret#reader`, or
   * `{workspace id}/containerRegistry`.
   */
  id: string;
  name: string;
  /** What `storageAccountId` names. */
  resource: KeyResource;
  /**
   * The resource whose keys it holds: a storage account, or (by `resource`) a Batch account or a
   * container registry. The names date from when only storage keys were held; they are kept so
   * callers that filter by them keep working (no storage account shares a name with the others).
   */
  storageAccountId: string;
  storageAccountName: string;
  /** The container a job of this consumer reads (for data-plane probes); "" for none. */
  container: string;
  heldKey: string;
}

export interface Outage {
  consumerId: string;
  kind: ConsumerKind;
  name: string;
  /** The resource whose keys it held (a storage account, Batch account or container registry). */
  storageAccountName: string;
  /** Which key the consumer held, by fingerprint (never the value). */
  heldKeyFingerprint: string;
  start: string;
  /** Undefined while the outage is still open. */
  end?: string;
  durationMs?: number;
  /** What change opened it (e.g. "regenerateKey key1"). */
  cause: string;
  /** What closed it: a change (e.g. "resyncKeys"), or time ("key propagated", "consumer key cache expired"). */
  resolvedBy?: string;
}

export interface ProbeFailure {
  consumerId: string;
  name: string;
  at: string;
  status: number;
  /** The refused key was one a job kept from before its consumer moved on (`consumerKeyCacheSeconds`). */
  cached?: true;
}

/** Fingerprints shown by the emulator: SHA-256 prefixes, never values. */
export function emulatorFingerprint(value: string): string {
  return createHash("sha256").update(value).digest("hex").slice(0, 12);
}

export function consumerHoldings(estate: Estate): ConsumerHolding[] {
  const holdings: ConsumerHolding[] = [];
  for (const ws of estate.workspaces.values()) {
    const account = estate.storageAccounts.get(resourceKey(ws.storageAccountId));
    if (account) {
      holdings.push({
        kind: "workspace",
        resource: "storageAccount",
        id: ws.id,
        name: ws.name,
        storageAccountId: account.id,
        storageAccountName: account.name,
        container: firstBlobContainer(estate, ws.id, account.name) ?? "",
        heldKey: ws.userStorageKey,
      });
    }
    for (const ds of ws.datastores.values()) {
      const sas = sasHolding(estate, ws.name, ds);
      if (sas) holdings.push(sas);
      if (ds.credentials.credentialsType !== "AccountKey") continue;
      const dsAccount = findStorageAccountByName(estate, ds.accountName);
      if (!dsAccount) continue;
      holdings.push({
        kind: "datastore",
        resource: "storageAccount",
        id: ds.id,
        name: `${ws.name}/${ds.name}`,
        storageAccountId: dsAccount.id,
        storageAccountName: dsAccount.name,
        container: ds.datastoreType === "AzureFile" ? "" : ds.containerName,
        heldKey: ds.credentials.secrets.key,
      });
    }
  }
  for (const batch of estate.batchAccounts.values()) {
    const auto = batch.autoStorage;
    if (!auto || auto.authenticationMode !== "StorageKeys") continue;
    const account = estate.storageAccounts.get(resourceKey(auto.storageAccountId));
    if (!account) continue;
    holdings.push({
      kind: "batchAutoStorage",
      resource: "storageAccount",
      id: batch.id,
      name: batch.name,
      storageAccountId: account.id,
      storageAccountName: account.name,
      container: "",
      heldKey: auto.heldKey,
    });
  }
  for (const reader of estate.keyVaultReaders) {
    const holding = readerHolding(estate, reader);
    if (holding) holdings.push(holding);
  }
  for (const h of registryHoldings(estate)) {
    holdings.push({
      kind: h.kind,
      id: h.id,
      name: h.name,
      resource: "containerRegistry",
      storageAccountId: h.registryId,
      storageAccountName: h.registryName,
      container: "",
      heldKey: h.heldPassword,
    });
  }
  return holdings;
}

/** A Key Vault reader holds its secret's latest enabled value, a key of a storage or Batch account. */
function readerHolding(estate: Estate, reader: KeyVaultReader): ConsumerHolding | undefined {
  const vault = [...estate.vaults.values()].find((v) => v.name === reader.vaultName);
  const latest = vault?.secrets
    .get(reader.secretName)
    ?.filter((v) => v.enabled)
    .at(-1);
  const owner =
    reader.batchAccountId !== undefined
      ? estate.batchAccounts.get(resourceKey(reader.batchAccountId))
      : estate.storageAccounts.get(resourceKey(reader.storageAccountId));
  if (!latest || !owner) return undefined;
  return {
    kind: reader.batchAccountId !== undefined ? "batchKeyReader" : "keyVaultReader",
    id: `${reader.vaultName}/${reader.secretName}#${reader.name}`,
    name: reader.name,
    resource: reader.batchAccountId !== undefined ? "batchAccount" : "storageAccount",
    storageAccountId: owner.id,
    storageAccountName: owner.name,
    container: "",
    heldKey: latest.value,
  };
}

/**
 * A SAS datastore whose SAS an account key signed holds that key: the live key that signed it, or (once
 * that key is regenerated) a value no account has. User delegation and expired SAS hold no key.
 */
function sasHolding(estate: Estate, workspaceName: string, ds: Datastore): ConsumerHolding | undefined {
  if (ds.credentials.credentialsType !== "Sas") return undefined;
  const token = ds.credentials.secrets.sasToken;
  if (!token || !signedWithAccountKey(token, new Date())) return undefined;
  const account = findStorageAccountByName(estate, ds.accountName);
  if (!account) return undefined;
  const signedWith = sasSigningKey(account, token, ds.containerName);
  return {
    kind: "sasDatastore",
    resource: "storageAccount",
    id: ds.id,
    name: `${workspaceName}/${ds.name}`,
    storageAccountId: account.id,
    storageAccountName: account.name,
    container: ds.containerName,
    heldKey: signedWith
      ? account.keys[signedWith].value
      : `sas signed with a dead key ${emulatorFingerprint(token)}`,
  };
}

function firstBlobContainer(estate: Estate, workspaceId: string, accountName: string): string | undefined {
  const ws = estate.workspaces.get(resourceKey(workspaceId));
  for (const ds of ws?.datastores.values() ?? []) {
    if (ds.accountName === accountName && ds.datastoreType !== "AzureFile") return ds.containerName;
  }
  return undefined;
}

/**
 * Which of its resource's two keys a holding holds now, by keyturn's names (a Batch account's Primary
 * = key1 and Secondary = key2; a registry's password = key1 and password2 = key2), or undefined if
 * it is neither (a dead key). As for a storage account without shared-key access, the name is given
 * whether or not the resource accepts its keys at the moment: the outage log tells that.
 */
export function heldKeyName(estate: Estate, holding: ConsumerHolding): KeyName | undefined {
  const key = resourceKey(holding.storageAccountId);
  switch (holding.resource) {
    case "storageAccount": {
      const account = estate.storageAccounts.get(key);
      return account ? liveKeyName(account, holding.heldKey) : undefined;
    }
    case "batchAccount": {
      const batch = estate.batchAccounts.get(key);
      return batch ? batchKeyName(batch, holding.heldKey) : undefined;
    }
    case "containerRegistry": {
      const registry = estate.registries.get(key);
      const name = REGISTRY_PASSWORD_NAMES.find((n) => registry?.passwords[n] === holding.heldKey);
      return name ? REGISTRY_KEY_NAMES[name] : undefined;
    }
  }
}

function batchKeyName(batch: BatchAccount, value: string): KeyName | undefined {
  if (batch.keys.primary === value) return "key1";
  if (batch.keys.secondary === value) return "key2";
  return undefined;
}

/** Whether a Batch account accepts its shared keys (`allowedAuthenticationModes` has SharedKey). */
function batchAllowsSharedKey(batch: BatchAccount): boolean {
  return batch.allowedAuthenticationModes.includes("SharedKey");
}

/** A key a consumer's jobs still use after the consumer moved on (`consumerKeyCacheSeconds`). */
export interface CachedKey {
  value: string;
  /** Epoch ms: the jobs use it until then. */
  until: number;
  /** The cache time it was kept for, for the outage's cause. */
  seconds: number;
}

/** A consumer as the log last saw it: what it holds, and the keys its jobs still use from before. */
interface ConsumerView {
  holding: ConsumerHolding;
  cached: CachedKey[];
}

/** Why a consumer cannot work at a moment: the key that fails, and whether it is a cached one. */
interface Failing {
  value: string;
  cached?: CachedKey;
  /** The key is one of its account's keys but has not propagated yet. */
  propagating: boolean;
}

export class OutageLog {
  private readonly open = new Map<string, Outage>();
  readonly closed: Outage[] = [];
  readonly probeFailures: ProbeFailure[] = [];
  /** Every consumer as of the last evaluation. */
  private consumers = new Map<string, ConsumerView>();
  /**
   * Every key that works now, as of the last evaluation: each key of a storage account that allows
   * shared-key access, each shared key of a Batch account that allows SharedKey, and each admin
   * password of a registry whose admin user is enabled. With its resource (lower-cased id, as
   * `accountKey`) and the epoch ms from which it works (Batch keys and passwords: at once).
   */
  private keys = new Map<string, { accountKey: string; worksFrom: number }>();
  private lastAt: number | undefined;

  constructor(
    private readonly estate: Estate,
    private readonly now: () => Date,
    /** How long a consumer's jobs keep the key they read after the consumer moves on. */
    private readonly cacheSeconds: () => number = () => 0,
  ) {}

  /**
   * Brings the log up to now: first the moments since the last evaluation at which a consumer got
   * better by itself (a key propagated, a job's cached key expired), each at its exact time; then the
   * estate as it is now, opening an outage for every consumer that now uses a key that does not work
   * (dead, not yet propagated, or on an account without shared-key access), closing those that recovered.
   */
  evaluate(cause: string): void {
    const now = this.now().getTime();
    if (this.lastAt !== undefined) {
      for (const at of this.transitions(this.lastAt, now)) this.assess(at, undefined, this.healedAt(at));
    }
    this.snapshot(now);
    this.assess(now, cause, cause);
    this.lastAt = now;
  }

  /** The next moment (epoch ms) at which a consumer may get better by itself, if any. */
  nextTransition(): number | undefined {
    return this.lastAt === undefined ? undefined : this.transitions(this.lastAt, Infinity)[0];
  }

  /** The keys a consumer's jobs still use besides the one it holds (empty without a cache time). */
  cachedKeys(consumerId: string): string[] {
    const at = this.now().getTime();
    return (this.consumers.get(consumerId)?.cached ?? []).filter((c) => c.until > at).map((c) => c.value);
  }

  /** Sorted distinct moments in (from, to] when a key starts to work or a cached key expires. */
  private transitions(from: number, to: number): number[] {
    const moments = new Set<number>();
    const add = (t: number) => {
      if (t > from && t <= to) moments.add(t);
    };
    for (const key of this.keys.values()) add(key.worksFrom);
    for (const view of this.consumers.values()) for (const c of view.cached) add(c.until);
    return [...moments].sort((a, b) => a - b);
  }

  /** What happens by itself at a transition moment, for the outages it closes. */
  private healedAt(at: number): string {
    const what: string[] = [];
    if ([...this.keys.values()].some((k) => k.worksFrom === at)) what.push("key propagated");
    if ([...this.consumers.values()].some((v) => v.cached.some((c) => c.until === at)))
      what.push("consumer key cache expired");
    return what.join(", ");
  }

  private snapshot(now: number): void {
    const seconds = this.cacheSeconds();
    const consumers = new Map<string, ConsumerView>();
    for (const holding of consumerHoldings(this.estate)) {
      const prior = this.consumers.get(holding.id);
      const cached = (prior?.cached ?? []).filter((c) => c.until > now);
      if (prior && prior.holding.heldKey !== holding.heldKey && seconds > 0) {
        cached.push({ value: prior.holding.heldKey, until: now + seconds * 1000, seconds });
      }
      consumers.set(holding.id, { holding, cached });
    }
    this.consumers = consumers;
    this.keys.clear();
    for (const account of this.estate.storageAccounts.values()) {
      if (!account.allowSharedKeyAccess) continue;
      for (const key of Object.values(account.keys)) {
        this.keys.set(key.value, {
          accountKey: resourceKey(account.id),
          worksFrom: key.propagatedAt?.getTime() ?? -Infinity,
        });
      }
    }
    for (const batch of this.estate.batchAccounts.values()) {
      if (!batchAllowsSharedKey(batch)) continue;
      for (const value of [batch.keys.primary, batch.keys.secondary])
        this.keys.set(value, { accountKey: resourceKey(batch.id), worksFrom: -Infinity });
    }
    for (const { value, registryKey } of liveRegistryPasswords(this.estate))
      this.keys.set(value, { accountKey: registryKey, worksFrom: -Infinity });
  }

  private failing(view: ConsumerView, at: number): Failing | undefined {
    const check = (value: string, cached?: CachedKey): Failing | undefined => {
      const key = this.keys.get(value);
      const ofAccount = key?.accountKey === resourceKey(view.holding.storageAccountId);
      if (ofAccount && key.worksFrom <= at) return undefined;
      return { value, propagating: ofAccount, ...(cached ? { cached } : {}) };
    };
    return (
      check(view.holding.heldKey) ??
      view.cached
        .filter((c) => c.until > at)
        .reduce<Failing | undefined>((f, c) => f ?? check(c.value, c), undefined)
    );
  }

  /**
   * Opens and closes outages as of `at`; without a cause (a moment that only heals) it only closes.
   * `resolvedBy` names what closes them.
   */
  private assess(at: number, cause: string | undefined, resolvedBy: string): void {
    for (const [id, view] of this.consumers) {
      const failing = this.failing(view, at);
      const current = this.open.get(id);
      if (failing && !current && cause !== undefined) {
        this.open.set(id, {
          consumerId: id,
          kind: view.holding.kind,
          name: view.holding.name,
          storageAccountName: view.holding.storageAccountName,
          heldKeyFingerprint: emulatorFingerprint(failing.value),
          start: new Date(at).toISOString(),
          cause: describeCause(cause, failing),
        });
      } else if (!failing && current) {
        this.close(current, at, resolvedBy);
      }
    }
    // A consumer that disappeared (a datastore deleted) no longer holds anything.
    for (const [id, outage] of this.open) if (!this.consumers.has(id)) this.close(outage, at, resolvedBy);
  }

  private close(outage: Outage, at: number, resolvedBy: string): void {
    this.open.delete(outage.consumerId);
    this.closed.push({
      ...outage,
      end: new Date(at).toISOString(),
      durationMs: at - Date.parse(outage.start),
      resolvedBy,
    });
  }

  /** Every outage so far, open ones last (with no end). */
  all(): Outage[] {
    return [...this.closed, ...this.open.values()];
  }

  clear(): void {
    this.open.clear();
    this.closed.length = 0;
    this.probeFailures.length = 0;
  }
}

/** The change that opened an outage, and why the key the consumer uses does not work when that is not plain. */
function describeCause(cause: string, failing: Failing): string {
  if (failing.cached) {
    return `${cause}; consumer key cache (consumerKeyCacheSeconds ${failing.cached.seconds}): a job still uses the key it read before, until ${new Date(failing.cached.until).toISOString()}`;
  }
  if (failing.propagating) return `${cause}; the key it holds has not propagated yet (keyPropagationSeconds)`;
  return cause;
}

/**
 * Simulated jobs: each tick, every consumer uses the key it holds on the real data plane. A 403
 * here is the outage a user would see; it complements the exact log above.
 */
export class ConsumerJobs {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  probes = 0;

  constructor(
    private readonly estate: Estate,
    private readonly dataPlane: DataPlane,
    private readonly log: OutageLog,
    private readonly now: () => Date,
  ) {}

  start(intervalMs: number): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => {
      this.running ??= this.tick().finally(() => (this.running = undefined));
    }, intervalMs);
    this.timer.unref();
  }

  /**
   * Every consumer's jobs use the key it holds, and any key they still keep from before (`cached`).
   * Only storage keys with a blob container to read are probed (not Batch keys or registry passwords).
   */
  async tick(): Promise<void> {
    for (const holding of consumerHoldings(this.estate)) {
      if (holding.resource !== "storageAccount" || holding.container === "") continue;
      const cached = this.log.cachedKeys(holding.id).filter((k) => k !== holding.heldKey);
      for (const key of [holding.heldKey, ...new Set(cached)]) {
        const result = await this.dataPlane.probe(holding.storageAccountName, key, holding.container);
        this.probes++;
        // The consumer moved to another key while this probe was on its way (the holdings were read at
        // the tick's start): its jobs no longer use this key, so its refusal is no failure of theirs.
        if (!result.ok && result.status === 403 && this.stillUses(holding.id, key)) {
          this.log.probeFailures.push({
            consumerId: holding.id,
            name: holding.name,
            at: this.now().toISOString(),
            status: result.status,
            ...(key === holding.heldKey ? {} : { cached: true }),
          });
        }
      }
    }
  }

  private stillUses(consumerId: string, key: string): boolean {
    const now = consumerHoldings(this.estate).find((h) => h.id === consumerId);
    return now?.heldKey === key || this.log.cachedKeys(consumerId).includes(key);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
