import { createHash } from "node:crypto";
import { liveKeyName, resourceKey, findStorageAccountByName, type Estate, type KeyName } from "./model";
import type { DataPlane } from "./dataplane";

/**
 * The consumers of storage keys in an estate, and the outage log: every moment a consumer held a
 * key that is no longer one of its account's two live keys. This is how invariant I1 is measured.
 */

export type ConsumerKind = "datastore" | "workspace" | "batchAutoStorage" | "keyVaultReader";

export interface ConsumerHolding {
  kind: ConsumerKind;
  /** A stable id: the datastore/workspace/Batch ARM id, or `vault/secret#reader`. */
  id: string;
  name: string;
  storageAccountId: string;
  storageAccountName: string;
  /** The container a job of this consumer reads (for data-plane probes). */
  container: string;
  heldKey: string;
}

export interface Outage {
  consumerId: string;
  kind: ConsumerKind;
  name: string;
  storageAccountName: string;
  /** Which key the consumer held, by fingerprint (never the value). */
  heldKeyFingerprint: string;
  start: string;
  /** Undefined while the outage is still open. */
  end?: string;
  durationMs?: number;
  /** What change opened it (e.g. "regenerateKey key1"). */
  cause: string;
}

export interface ProbeFailure {
  consumerId: string;
  name: string;
  at: string;
  status: number;
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
        id: ws.id,
        name: ws.name,
        storageAccountId: account.id,
        storageAccountName: account.name,
        container: firstBlobContainer(estate, ws.id, account.name) ?? "",
        heldKey: ws.userStorageKey,
      });
    }
    for (const ds of ws.datastores.values()) {
      if (ds.credentials.credentialsType !== "AccountKey") continue;
      const dsAccount = findStorageAccountByName(estate, ds.accountName);
      if (!dsAccount) continue;
      holdings.push({
        kind: "datastore",
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
      id: batch.id,
      name: batch.name,
      storageAccountId: account.id,
      storageAccountName: account.name,
      container: "",
      heldKey: auto.heldKey,
    });
  }
  for (const reader of estate.keyVaultReaders) {
    const vault = [...estate.vaults.values()].find((v) => v.name === reader.vaultName);
    const latest = vault?.secrets
      .get(reader.secretName)
      ?.filter((v) => v.enabled)
      .at(-1);
    const account = estate.storageAccounts.get(resourceKey(reader.storageAccountId));
    if (!latest || !account) continue;
    holdings.push({
      kind: "keyVaultReader",
      id: `${reader.vaultName}/${reader.secretName}#${reader.name}`,
      name: reader.name,
      storageAccountId: account.id,
      storageAccountName: account.name,
      container: "",
      heldKey: latest.value,
    });
  }
  return holdings;
}

function firstBlobContainer(estate: Estate, workspaceId: string, accountName: string): string | undefined {
  const ws = estate.workspaces.get(resourceKey(workspaceId));
  for (const ds of ws?.datastores.values() ?? []) {
    if (ds.accountName === accountName && ds.datastoreType !== "AzureFile") return ds.containerName;
  }
  return undefined;
}

export function heldKeyName(estate: Estate, holding: ConsumerHolding): KeyName | undefined {
  const account = estate.storageAccounts.get(resourceKey(holding.storageAccountId));
  return account ? liveKeyName(account, holding.heldKey) : undefined;
}

export class OutageLog {
  private readonly open = new Map<string, Outage>();
  readonly closed: Outage[] = [];
  readonly probeFailures: ProbeFailure[] = [];

  constructor(
    private readonly estate: Estate,
    private readonly now: () => Date,
  ) {}

  /** Opens an outage for every consumer that now holds a dead key, closes those that recovered. */
  evaluate(cause: string): void {
    const seen = new Set<string>();
    const at = this.now();
    for (const holding of consumerHoldings(this.estate)) {
      seen.add(holding.id);
      const dead = heldKeyName(this.estate, holding) === undefined;
      const current = this.open.get(holding.id);
      if (dead && !current) {
        this.open.set(holding.id, {
          consumerId: holding.id,
          kind: holding.kind,
          name: holding.name,
          storageAccountName: holding.storageAccountName,
          heldKeyFingerprint: emulatorFingerprint(holding.heldKey),
          start: at.toISOString(),
          cause,
        });
      } else if (!dead && current) {
        this.close(current, at);
      }
    }
    // A consumer that disappeared (a datastore deleted) no longer holds anything.
    for (const [id, outage] of this.open) if (!seen.has(id)) this.close(outage, at);
  }

  private close(outage: Outage, at: Date): void {
    this.open.delete(outage.consumerId);
    this.closed.push({
      ...outage,
      end: at.toISOString(),
      durationMs: at.getTime() - Date.parse(outage.start),
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

  async tick(): Promise<void> {
    for (const holding of consumerHoldings(this.estate)) {
      if (holding.container === "") continue;
      const result = await this.dataPlane.probe(
        holding.storageAccountName,
        holding.heldKey,
        holding.container,
      );
      this.probes++;
      if (!result.ok && result.status === 403) {
        this.log.probeFailures.push({
          consumerId: holding.id,
          name: holding.name,
          at: this.now().toISOString(),
          status: result.status,
        });
      }
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
