import { randomBytes } from "node:crypto";
import {
  fingerprint,
  planAccount,
  type AccountNode,
  type AccountPlan,
  type BatchAutoStorageConsumer,
  type Consumer,
  type DatastoreConsumer,
  type Fingerprint,
  type IdentityDatastoreConsumer,
  type KeyName,
  type KeyVaultSecretConsumer,
  type PlanOptions,
  type SasDatastoreConsumer,
  type UntouchedSasDatastoreConsumer,
  type StorageAccountSnapshot,
  type WorkspaceConsumer,
} from "../../../shared/rotation";

export const SALT = "unit-test-salt";
export const SUBSCRIPTION = "00000000-0000-0000-0000-000000000001";
export const RESOURCE_GROUP = "rg-ml";
export const NOW = "2025-06-01T03:00:00.000Z";
export const LONG_AGO = "2025-01-01T00:00:00.000Z";

/** A fresh random key value, shaped like a storage key but never written down anywhere. */
export function newKeyValue(): string {
  return randomBytes(64).toString("base64");
}

export function fp(keyValue: string): Fingerprint {
  return fingerprint(keyValue, SALT);
}

/** Key values of the accounts built here, so tests can prove none of them leaks into plans or reports. */
export const keyValues = new Map<string, Record<KeyName, string>>();

export interface AccountOptions {
  tags?: Record<string, string>;
  key1Created?: string;
  key2Created?: string;
  subscriptionId?: string;
  resourceGroup?: string;
}

export function storageAccountId(
  name: string,
  subscriptionId = SUBSCRIPTION,
  resourceGroup = RESOURCE_GROUP,
): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Storage/storageAccounts/${name}`;
}

export function workspaceId(
  name: string,
  subscriptionId = SUBSCRIPTION,
  resourceGroup = RESOURCE_GROUP,
): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.MachineLearningServices/workspaces/${name}`;
}

export function account(name = "stdata01", options: AccountOptions = {}): StorageAccountSnapshot {
  const values = { key1: newKeyValue(), key2: newKeyValue() };
  const subscriptionId = options.subscriptionId ?? SUBSCRIPTION;
  const resourceGroup = options.resourceGroup ?? RESOURCE_GROUP;
  const id = storageAccountId(name, subscriptionId, resourceGroup);
  keyValues.set(id, values);
  const key = (value: string, created: string | undefined) => ({
    fingerprint: fp(value),
    ...(created === undefined ? {} : { creationTime: created }),
  });
  return {
    id,
    name,
    subscriptionId,
    resourceGroup,
    tags: options.tags ?? {},
    keys: {
      key1: key(values.key1, "key1Created" in options ? options.key1Created : LONG_AGO),
      key2: key(values.key2, "key2Created" in options ? options.key2Created : LONG_AGO),
    },
    blobEndpoint: `https://${name}.blob.core.windows.net/`,
  };
}

/** What a consumer holds: one of the account's keys, a key the account no longer has, or nothing. */
export type Holds = KeyName | "dead" | "nothing";

export function held(acc: StorageAccountSnapshot, holds: Holds): Fingerprint | undefined {
  if (holds === "nothing") return undefined;
  if (holds === "dead") return fp("an old key that was regenerated long ago");
  return acc.keys[holds].fingerprint;
}

function heldField(acc: StorageAccountSnapshot, holds: Holds): { heldFingerprint?: Fingerprint } {
  const value = held(acc, holds);
  return value === undefined ? {} : { heldFingerprint: value };
}

export function datastore(
  acc: StorageAccountSnapshot,
  name: string,
  holds: Holds = "key1",
  ws = "mlw-one",
): DatastoreConsumer {
  return {
    kind: "datastore",
    id: `${workspaceId(ws)}/datastores/${name}`,
    name,
    storageAccountId: acc.id,
    workspaceId: workspaceId(ws),
    datastoreType: "AzureBlob",
    ...heldField(acc, holds),
  };
}

export function workspace(
  acc: StorageAccountSnapshot,
  name = "mlw-one",
  holds: Holds = "key1",
): WorkspaceConsumer {
  return {
    kind: "workspace",
    id: workspaceId(name),
    name,
    storageAccountId: acc.id,
    ...heldField(acc, holds),
  };
}

export function batch(acc: StorageAccountSnapshot, name = "batchone"): BatchAutoStorageConsumer {
  return {
    kind: "batchAutoStorage",
    id: `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.Batch/batchAccounts/${name}`,
    name,
    storageAccountId: acc.id,
    lastKeySync: LONG_AGO,
  };
}

export function secret(
  acc: StorageAccountSnapshot,
  name: string,
  holds: Holds = "key1",
): KeyVaultSecretConsumer {
  return {
    kind: "keyVaultSecret",
    id: `https://kv-ml.vault.azure.net/secrets/${name}`,
    name,
    storageAccountId: acc.id,
    vaultUrl: "https://kv-ml.vault.azure.net/",
    secretName: name,
    ...heldField(acc, holds),
  };
}

/** A datastore whose SAS `holds` signed (the snapshot tells which key). */
export function sasDatastore(
  acc: StorageAccountSnapshot,
  name: string,
  holds: Holds = "key1",
): SasDatastoreConsumer {
  return {
    kind: "sasDatastore",
    id: `${workspaceId("mlw-one")}/datastores/${name}`,
    name,
    storageAccountId: acc.id,
    workspaceId: workspaceId("mlw-one"),
    container: name,
    ...heldField(acc, holds),
  };
}

export function untouchedSasDatastore(
  acc: StorageAccountSnapshot,
  name: string,
  why = "a user delegation SAS: signed with an Entra ID delegation key",
): UntouchedSasDatastoreConsumer {
  return {
    kind: "untouchedSasDatastore",
    id: `${workspaceId("mlw-one")}/datastores/${name}`,
    name,
    storageAccountId: acc.id,
    workspaceId: workspaceId("mlw-one"),
    why,
  };
}

export function identityDatastore(acc: StorageAccountSnapshot, name: string): IdentityDatastoreConsumer {
  return {
    kind: "identityDatastore",
    id: `${workspaceId("mlw-one")}/datastores/${name}`,
    name,
    storageAccountId: acc.id,
    workspaceId: workspaceId("mlw-one"),
  };
}

export function node(acc: StorageAccountSnapshot, ...consumers: Consumer[]): AccountNode {
  return { account: acc, consumers };
}

export const DEFAULT_PLAN_OPTIONS: PlanOptions = { now: NOW, graceSeconds: 3600 };

/** The plan for an account that policy lets through; fails the test if policy does not. */
export function planFor(n: AccountNode, options: Partial<PlanOptions> = {}): AccountPlan {
  const result = planAccount(n, { ...DEFAULT_PLAN_OPTIONS, ...options });
  if (result.action !== "rotate") throw new Error(`expected a plan, got ${result.action}: ${result.reason}`);
  return result.plan;
}

/** A small seeded PRNG so generated estates are random-looking but identical on every run. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
