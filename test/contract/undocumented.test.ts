import { setTimeout as sleep } from "node:timers/promises";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import type { AccountKeyDatastoreSecrets, Datastore } from "@azure/arm-machinelearning";
import { DEFAULT_SETTINGS, type Emulator } from "../../emulator";
import { emulatorFingerprint, type Outage } from "../../emulator/consumers";
import { admin, raw, armToken, startTestEmulator, type Clients } from "../helpers/emulator";
import { consumers } from "../helpers/estate";

/**
 * Contract: where Microsoft does not document what Azure does (DESIGN §11), the emulator offers each
 * plausible answer as a setting. Each test turns one on through the admin API and drives the emulator
 * through the real SDK clients, as keyturn would; the storage data plane is Azurite itself. Key
 * values are compared, never printed.
 */

const PROD = "rg-ml-prod";
const RESEARCH = "rg-ml-research";
/** mlw-research is the only workspace on stmlresearch, and its default datastores the only key holders there. */
const WS = "mlw-research";
const ACCOUNT = "stmlresearch";

let emulator: Emulator;
let clients: Clients;

beforeAll(async () => {
  ({ emulator, clients } = await startTestEmulator());
});
afterAll(async () => {
  await emulator?.stop();
});
beforeEach(async () => {
  expect((await admin(emulator, "PATCH", "/settings", DEFAULT_SETTINGS)).status).toBe(200);
  expect((await admin(emulator, "DELETE", "/outages")).status).toBe(204);
});

async function settings(body: Record<string, unknown>): Promise<void> {
  const answer = await admin(emulator, "PATCH", "/settings", body);
  expect(answer).toMatchObject({ status: 200, body });
}

async function outagesOf(name: string): Promise<Outage[]> {
  const { body } = await admin(emulator, "GET", "/outages");
  return (body as { outages: Outage[] }).outages.filter((o) => o.name === name);
}

async function storageKeys(resourceGroup: string, account: string): Promise<{ key1: string; key2: string }> {
  const { keys } = await clients.storage.storageAccounts.listKeys(resourceGroup, account);
  const value = (name: string) => keys!.find((k) => k.keyName === name)!.value!;
  return { key1: value("key1"), key2: value("key2") };
}

/** Regenerates a key through ARM; returns the new value (from the answer) and when it was made. */
async function regenerate(
  resourceGroup: string,
  account: string,
  keyName: "key1" | "key2",
): Promise<{ value: string; at: number }> {
  const { keys } = await clients.storage.storageAccounts.regenerateKey(resourceGroup, account, { keyName });
  const state = (await admin(emulator, "GET", "/state")).body as {
    storageAccounts: { name: string; keys: Record<string, { creationTime: string }> }[];
  };
  const made = state.storageAccounts.find((a) => a.name === account)!.keys[keyName]!.creationTime;
  return { value: keys!.find((k) => k.keyName === keyName)!.value!, at: Date.parse(made) };
}

async function heldKeyName(name: string): Promise<string | null | undefined> {
  return (await consumers(emulator)).find((c) => c.name === name)?.heldKeyName;
}

async function workspaceKey(workspace = WS, resourceGroup = RESEARCH): Promise<string | undefined> {
  return (await clients.ml.workspaces.listKeys(resourceGroup, workspace)).userStorageKey;
}

async function resync(workspace = WS, resourceGroup = RESEARCH): Promise<void> {
  await clients.ml.workspaces.beginResyncKeysAndWait(resourceGroup, workspace, { updateIntervalInMs: 10 });
}

async function datastoreKey(
  name: string,
  workspace = WS,
  resourceGroup = RESEARCH,
): Promise<string | undefined> {
  const secrets = await clients.ml.datastores.listSecrets(resourceGroup, workspace, name);
  return (secrets as AccountKeyDatastoreSecrets).key;
}

/** Re-registers a datastore in place with new account-key secrets; returns the HTTP status. */
async function putKey(
  name: string,
  key: string,
  { skipValidation = false, workspace = WS, resourceGroup = RESEARCH } = {},
): Promise<number> {
  const ds = await clients.ml.datastores.get(resourceGroup, workspace, name);
  const body: Datastore = {
    properties: {
      ...ds.properties,
      credentials: { credentialsType: "AccountKey", secrets: { secretsType: "AccountKey", key } },
    },
  };
  try {
    let status = 0;
    await clients.ml.datastores.createOrUpdate(resourceGroup, workspace, name, body, {
      skipValidation,
      onResponse: (r) => (status = r.status),
    });
    return status;
  } catch (e) {
    return (e as { statusCode?: number }).statusCode ?? -1;
  }
}

async function defaultDatastoresHold(key: string, options: { skipValidation?: boolean } = {}): Promise<void> {
  for (const name of ["workspaceblobstore", "workspacefilestore"])
    expect(await putKey(name, key, options)).toBe(200);
}

/** A data-plane call with the key on the container of mlw-research's workspaceblobstore: 200 or the HTTP status. */
async function blobStatus(key: string, account = ACCOUNT, resourceGroup = RESEARCH): Promise<number> {
  const props = await clients.storage.storageAccounts.getProperties(resourceGroup, account);
  const ds = await clients.ml.datastores.get(RESEARCH, WS, "workspaceblobstore");
  const container = (ds.properties as { containerName: string }).containerName;
  const client = new BlobServiceClient(
    props.primaryEndpoints!.blob!,
    new StorageSharedKeyCredential(account, key),
    {
      retryOptions: { maxTries: 1 },
    },
  );
  try {
    await client.getContainerClient(container).getProperties();
    return 200;
  } catch (e) {
    return (e as { statusCode?: number }).statusCode ?? -1;
  }
}

/** Waits until `check` holds, up to `ms`; returns whether it did. */
async function eventually(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

describe("settings for Azure's undocumented behaviour", () => {
  it("shows every behaviour setting, each defaulting to the emulator's earlier behaviour", async () => {
    const { status, body } = await admin(emulator, "GET", "/settings");
    expect(status).toBe(200);
    expect(body).toMatchObject({
      resyncPolicy: "key1",
      batchSyncPolicy: "consumers",
      resyncRewritesDefaultDatastores: false,
      keyPropagationSeconds: 0,
      workspaceAutoSyncSeconds: 0,
      consumerKeyCacheSeconds: 0,
      keyCreationTimeKnown: true,
    });
  });

  it("accepts every new setting in one request", async () => {
    await settings({
      resyncPolicy: "keepIfLive",
      batchSyncPolicy: "keepIfLive",
      resyncRewritesDefaultDatastores: true,
      keyPropagationSeconds: 1.5,
      workspaceAutoSyncSeconds: 3600,
      consumerKeyCacheSeconds: 86_400,
      keyCreationTimeKnown: false,
    });
  });

  it("refuses a request with any bad value as a whole, naming each bad field and what it allows", async () => {
    const before = (await admin(emulator, "GET", "/settings")).body;
    const answer = await admin(emulator, "PATCH", "/settings", {
      resyncPolicy: "keepIfLive", // good, but must not be applied
      batchSyncPolicy: "key2",
      resyncRewritesDefaultDatastores: "yes",
      keyPropagationSeconds: -1,
      workspaceAutoSyncSeconds: 1e12,
      consumerKeyCacheSeconds: "20",
      keyCreationTimeKnown: 0,
      keyPropagationSecs: 10,
    });
    expect(answer.status).toBe(400);
    const message = (answer.body as { error: { code: string; message: string } }).error.message;
    expect((answer.body as { error: { code: string } }).error.code).toBe("InvalidSettings");
    for (const expected of [
      "batchSyncPolicy must be 'key1', 'consumers' or 'keepIfLive'",
      "resyncRewritesDefaultDatastores must be a boolean",
      "keyPropagationSeconds must be a number of seconds from 0 to 31536000",
      "workspaceAutoSyncSeconds must be a number of seconds from 0 to 31536000",
      "consumerKeyCacheSeconds must be a number of seconds from 0 to 31536000",
      "keyCreationTimeKnown must be a boolean",
      "unknown setting 'keyPropagationSecs'",
    ]) {
      expect(message).toContain(expected);
    }
    expect(message).not.toContain("resyncPolicy must");
    expect((await admin(emulator, "GET", "/settings")).body).toEqual(before);
  });
});

describe("resyncPolicy keepIfLive", () => {
  it("keeps the key the workspace holds while it works, even when its datastores vote for the other", async () => {
    const keys = await storageKeys(RESEARCH, ACCOUNT);
    // Put the workspace on key2 the only way a service-chosen key moves: a resync that follows the datastores.
    await settings({ resyncPolicy: "consumers" });
    await defaultDatastoresHold(keys.key2);
    await resync();
    expect((await workspaceKey()) === keys.key2).toBe(true);

    await defaultDatastoresHold(keys.key1);
    await settings({ resyncPolicy: "keepIfLive" });
    await resync();
    expect((await workspaceKey()) === keys.key2).toBe(true); // "consumers" would take key1 now, "key1" too
  });

  it("falls back to key1 once the key the workspace holds is regenerated", async () => {
    await settings({ resyncPolicy: "consumers" });
    const keys = await storageKeys(RESEARCH, ACCOUNT);
    await defaultDatastoresHold(keys.key2);
    await resync();
    expect((await workspaceKey()) === keys.key2).toBe(true);

    await settings({ resyncPolicy: "keepIfLive" });
    await defaultDatastoresHold(keys.key1);
    const key2 = await regenerate(RESEARCH, ACCOUNT, "key2");
    await resync();
    const held = await workspaceKey();
    expect(held === keys.key1).toBe(true);
    expect(held === key2.value).toBe(false);
  });

  it("treats a key that has not propagated yet as not working", async () => {
    await settings({ keyPropagationSeconds: 30 });
    const fresh = await regenerate(RESEARCH, ACCOUNT, "key2");
    // The datastores vote for the new key2 (written without validation, which would refuse it).
    await defaultDatastoresHold(fresh.value, { skipValidation: true });
    await settings({ resyncPolicy: "consumers" });
    await resync();
    expect((await workspaceKey()) === fresh.value).toBe(true);

    await settings({ resyncPolicy: "keepIfLive" });
    await resync();
    expect((await workspaceKey()) === (await storageKeys(RESEARCH, ACCOUNT)).key1).toBe(true);

    // Leave the account with a key2 that works, for the tests after this one.
    await settings({ keyPropagationSeconds: 0 });
    await regenerate(RESEARCH, ACCOUNT, "key2");
  });
});

describe("batchSyncPolicy keepIfLive", () => {
  const BATCH = "batchmltrain";
  const sync = () => clients.batch.batchAccountOperations.synchronizeAutoStorageKeys(PROD, BATCH);
  /** The Batch account's voters: the datastore batch_outputs and the Key Vault secret its reader reads. */
  async function votersHold(key: string, keyName: string): Promise<void> {
    expect(await putKey("batch_outputs", key, { workspace: "mlw-score", resourceGroup: PROD })).toBe(200);
    await clients.secrets("kv-keyturn-demo").setSecret("stmlbatch-key", key, {
      tags: { "keyturn-key-name": keyName },
    });
  }

  it("keeps the key auto-storage holds while it works, and takes key1 once it is regenerated", async () => {
    const keys = await storageKeys(PROD, "stmlbatch");
    await settings({ batchSyncPolicy: "consumers" });
    await votersHold(keys.key2, "key2");
    await sync();
    expect(await heldKeyName(BATCH)).toBe("key2");

    await votersHold(keys.key1, "key1");
    await settings({ batchSyncPolicy: "keepIfLive" });
    await sync();
    expect(await heldKeyName(BATCH)).toBe("key2");

    await regenerate(PROD, "stmlbatch", "key2");
    expect(await heldKeyName(BATCH)).toBeNull();
    await sync();
    expect(await heldKeyName(BATCH)).toBe("key1");
  });
});

describe("resyncRewritesDefaultDatastores", () => {
  it("off: a resync leaves the default datastores' keys alone", async () => {
    const keys = await storageKeys(RESEARCH, ACCOUNT);
    await defaultDatastoresHold(keys.key2);
    await resync();
    expect((await workspaceKey()) === keys.key1).toBe(true);
    expect((await datastoreKey("workspaceblobstore")) === keys.key2).toBe(true);
  });

  it("on: a resync writes the key it picked into workspaceblobstore and workspacefilestore, as a change", async () => {
    await settings({ resyncRewritesDefaultDatastores: true });
    const keys = await storageKeys(RESEARCH, ACCOUNT);
    await defaultDatastoresHold(keys.key2);
    const lakeKey = await datastoreKey("raw_lake");
    const before = await clients.ml.datastores.get(RESEARCH, WS, "workspaceblobstore");

    await resync();
    expect((await workspaceKey()) === keys.key1).toBe(true);
    expect((await datastoreKey("workspaceblobstore")) === keys.key1).toBe(true);
    expect((await datastoreKey("workspacefilestore")) === keys.key1).toBe(true);
    // Only the defaults on the workspace's own account: raw_lake (on stmllake) is untouched.
    expect((await datastoreKey("raw_lake")) === lakeKey).toBe(true);
    const after = await clients.ml.datastores.get(RESEARCH, WS, "workspaceblobstore");
    expect(after.systemData!.lastModifiedAt!.getTime()).toBeGreaterThan(
      before.systemData!.lastModifiedAt!.getTime(),
    );
    expect(after.systemData!.lastModifiedBy).toBe("Microsoft.MachineLearningServices");
  });

  it("the outage log sees the rewrite: default datastores on a dead key recover when the resync rewrites them", async () => {
    await settings({ resyncRewritesDefaultDatastores: true });
    const keys = await storageKeys(RESEARCH, ACCOUNT);
    await defaultDatastoresHold(keys.key2);
    await regenerate(RESEARCH, ACCOUNT, "key2");
    expect((await outagesOf(`${WS}/workspaceblobstore`)).map((o) => o.end)).toEqual([undefined]);

    await resync();
    const [outage] = await outagesOf(`${WS}/workspaceblobstore`);
    expect(outage?.end).toBeDefined();
    expect(outage?.resolvedBy).toBe("resyncKeys");
  });
});

describe("keyPropagationSeconds", () => {
  it("a regenerated key is refused by the data plane and datastore validation until it propagates; the old dies at once", async () => {
    const seconds = 1.5;
    await settings({ keyPropagationSeconds: seconds });
    const old = await storageKeys(RESEARCH, ACCOUNT);
    expect(await blobStatus(old.key2)).toBe(200);

    const fresh = await regenerate(RESEARCH, ACCOUNT, "key2");
    expect((await storageKeys(RESEARCH, ACCOUNT)).key2 === fresh.value).toBe(true); // listKeys shows it at once
    expect(await blobStatus(old.key2)).toBe(403);
    expect(await blobStatus(fresh.value)).toBe(403);
    expect(await blobStatus(old.key1)).toBe(200);
    expect(await putKey("workspaceblobstore", fresh.value)).toBe(400);
    expect(Date.now()).toBeLessThan(fresh.at + seconds * 1000); // all of the above inside the window

    expect(await eventually(async () => (await blobStatus(fresh.value)) === 200, seconds * 1000 + 3000)).toBe(
      true,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(fresh.at + seconds * 1000);
    expect(await putKey("workspaceblobstore", fresh.value)).toBe(200);
  });

  it("a consumer moved to a key that has not propagated is in an outage that ends exactly when it propagates", async () => {
    const seconds = 1;
    await settings({ keyPropagationSeconds: seconds });
    await defaultDatastoresHold((await storageKeys(RESEARCH, ACCOUNT)).key1);
    const fresh = await regenerate(RESEARCH, ACCOUNT, "key2");
    expect(await putKey("workspaceblobstore", fresh.value, { skipValidation: true })).toBe(200);
    const [open] = await outagesOf(`${WS}/workspaceblobstore`);
    expect(open).toMatchObject({ heldKeyFingerprint: emulatorFingerprint(fresh.value) });
    expect(open!.end).toBeUndefined();
    expect(open!.cause).toContain("has not propagated yet");

    // No change happens meanwhile: the emulator's own timer closes the outage, at the exact moment.
    await sleep(seconds * 1000 + 500);
    const [closed] = await outagesOf(`${WS}/workspaceblobstore`);
    expect(closed!.end).toBe(new Date(fresh.at + seconds * 1000).toISOString());
    expect(closed!.resolvedBy).toBe("key propagated");
  });
});

describe("workspaceAutoSyncSeconds", () => {
  it("the workspace moves to a live key by itself that long after a regeneration, by its resync policy", async () => {
    await resync(); // policy key1: the workspace holds key1
    await settings({ workspaceAutoSyncSeconds: 1 });
    const fresh = await regenerate(RESEARCH, ACCOUNT, "key1");
    expect(await heldKeyName(WS)).toBeNull();
    await sleep(500);
    expect(await heldKeyName(WS)).toBeNull(); // not before its time

    expect(await eventually(async () => (await workspaceKey()) === fresh.value, 3000)).toBe(true);
    const [outage] = await outagesOf(WS);
    expect(outage!.durationMs).toBeGreaterThanOrEqual(1000);
    expect(outage!.resolvedBy).toMatch(
      /^workspace auto-sync mlw-research \(1s after regenerateKey stmlresearch\/key1\)/,
    );
  });

  it("off (0): the workspace keeps its dead key until someone resyncs it", async () => {
    await resync();
    await regenerate(RESEARCH, ACCOUNT, "key1");
    await sleep(1200);
    expect(await heldKeyName(WS)).toBeNull();
    await resync();
    expect(await heldKeyName(WS)).toBe("key1");
  });

  it("rewrites the default datastores too when resyncs do", async () => {
    await settings({ workspaceAutoSyncSeconds: 0.5, resyncRewritesDefaultDatastores: true });
    const keys = await storageKeys(RESEARCH, ACCOUNT);
    await defaultDatastoresHold(keys.key2);
    const fresh = await regenerate(RESEARCH, ACCOUNT, "key1");
    expect(
      await eventually(async () => (await datastoreKey("workspacefilestore")) === fresh.value, 3000),
    ).toBe(true);
  });
});

describe("consumerKeyCacheSeconds", () => {
  /**
   * Puts workspaceblobstore on key1 with no cache time, then with `cacheSeconds` moves it to key2, and
   * regenerates key1 `gapMs` later.
   */
  async function moveThenRegenerate(
    gapMs: number,
    cacheSeconds: number,
  ): Promise<{ movedAt: number; regeneratedAt: number }> {
    const keys = await storageKeys(RESEARCH, ACCOUNT);
    expect(await putKey("workspaceblobstore", keys.key1)).toBe(200);
    await settings({ consumerKeyCacheSeconds: cacheSeconds });
    expect(await putKey("workspaceblobstore", keys.key2)).toBe(200);
    const moved = await clients.ml.datastores.get(RESEARCH, WS, "workspaceblobstore");
    await sleep(gapMs);
    const regenerated = await regenerate(RESEARCH, ACCOUNT, "key1");
    return { movedAt: moved.systemData!.lastModifiedAt!.getTime(), regeneratedAt: regenerated.at };
  }

  it("off (0): a consumer moved off a key is not hurt when that key is regenerated", async () => {
    await moveThenRegenerate(200, 0);
    expect(await outagesOf(`${WS}/workspaceblobstore`)).toEqual([]);
  });

  it("a job keeps the key it read: regenerating it within the cache time is an outage until the cache expires", async () => {
    const seconds = 1.5;
    const { movedAt, regeneratedAt } = await moveThenRegenerate(300, seconds);
    const [open] = await outagesOf(`${WS}/workspaceblobstore`);
    expect(open!.end).toBeUndefined();
    // From the regeneration (logged once the data plane refuses the key, a moment after it was made).
    const start = Date.parse(open!.start);
    expect(start - regeneratedAt).toBeGreaterThanOrEqual(0);
    expect(start - regeneratedAt).toBeLessThan(100);
    expect(open!.cause).toContain(
      "regenerateKey stmlresearch/key1; consumer key cache (consumerKeyCacheSeconds 1.5)",
    );

    // The jobs still use the cached key: their probe of it is refused.
    await admin(emulator, "POST", "/consumers/tick");
    const { body } = await admin(emulator, "GET", "/outages");
    const failures = (body as { probeFailures: { name: string; cached?: boolean }[] }).probeFailures;
    expect(failures.filter((f) => f.name === `${WS}/workspaceblobstore` && f.cached)).not.toEqual([]);

    await sleep(seconds * 1000);
    const [closed] = await outagesOf(`${WS}/workspaceblobstore`);
    expect(closed!.resolvedBy).toBe("consumer key cache expired");
    // It ends when the cache does: the move (logged a moment after its PUT's timestamp) plus the cache time.
    const end = Date.parse(closed!.end!);
    expect(end - movedAt).toBeGreaterThanOrEqual(seconds * 1000);
    expect(end - movedAt).toBeLessThan(seconds * 1000 + 100);
    expect(closed!.durationMs).toBe(end - start);
    expect(closed!.durationMs).toBeLessThan(seconds * 1000 - 300 + 100);
  });

  it("applies to Key Vault readers: a reader keeps the secret version it read", async () => {
    const vault = clients.secrets("kv-keyturn-demo");
    const keys = await storageKeys(PROD, "stmlbatch");
    await vault.setSecret("stmlbatch-key", keys.key1);
    await settings({ consumerKeyCacheSeconds: 1 });
    await vault.setSecret("stmlbatch-key", keys.key2);
    await regenerate(PROD, "stmlbatch", "key1");
    const [open] = await outagesOf("scoring-app");
    expect(open).toMatchObject({
      kind: "keyVaultReader",
      heldKeyFingerprint: emulatorFingerprint(keys.key1),
    });
    expect(open!.end).toBeUndefined();
    expect(open!.cause).toContain("consumer key cache");
    await sleep(1300);
    expect((await outagesOf("scoring-app"))[0]!.end).toBeDefined();
  });
});

describe("keyCreationTimeKnown", () => {
  it("false: accounts show null key creation times and keys without creationTime, as older accounts do", async () => {
    await settings({ keyCreationTimeKnown: false });
    const token = await armToken(clients);
    const props = await raw(
      emulator,
      "GET",
      `/subscriptions/${emulator.connection.subscriptionIds[0]}/resourceGroups/${RESEARCH}/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}?api-version=2025-08-01`,
      { token },
    );
    expect((props.body as { properties: { keyCreationTime: unknown } }).properties.keyCreationTime).toEqual({
      key1: null,
      key2: null,
    });
    const account = await clients.storage.storageAccounts.getProperties(RESEARCH, ACCOUNT);
    expect(account.keyCreationTime?.key1 ?? null).toBeNull();
    const { keys } = await clients.storage.storageAccounts.listKeys(RESEARCH, ACCOUNT);
    expect(keys!.map((k) => k.creationTime)).toEqual([undefined, undefined]);
    const regenerated = await clients.storage.storageAccounts.regenerateKey(RESEARCH, ACCOUNT, {
      keyName: "key2",
    });
    expect(regenerated.keys!.map((k) => k.creationTime)).toEqual([undefined, undefined]);
  });

  it("true (the default): both are dates", async () => {
    const account = await clients.storage.storageAccounts.getProperties(RESEARCH, ACCOUNT);
    expect(account.keyCreationTime?.key1).toBeInstanceOf(Date);
    const { keys } = await clients.storage.storageAccounts.listKeys(RESEARCH, ACCOUNT);
    expect(keys!.every((k) => k.creationTime instanceof Date)).toBe(true);
  });
});

describe("an account without shared-key access (stmlgoverned in the demo estate)", () => {
  const GOVERNED = "stmlgoverned";

  it("says so, and still lists and regenerates its keys through ARM", async () => {
    const account = await clients.storage.storageAccounts.getProperties(RESEARCH, GOVERNED);
    expect(account.allowSharedKeyAccess).toBe(false);
    expect(
      (await clients.storage.storageAccounts.getProperties(RESEARCH, ACCOUNT)).allowSharedKeyAccess,
    ).toBe(true);
    const before = await storageKeys(RESEARCH, GOVERNED);
    const fresh = await regenerate(RESEARCH, GOVERNED, "key2");
    expect(fresh.value === before.key2).toBe(false);
  });

  it("its keys are refused by the data plane and by datastore validation", async () => {
    const keys = await storageKeys(RESEARCH, GOVERNED);
    const props = await clients.storage.storageAccounts.getProperties(RESEARCH, GOVERNED);
    for (const key of [keys.key1, keys.key2]) {
      const client = new BlobServiceClient(
        props.primaryEndpoints!.blob!,
        new StorageSharedKeyCredential(GOVERNED, key),
        { retryOptions: { maxTries: 1 } },
      );
      await expect(client.getContainerClient("features").getProperties()).rejects.toMatchObject({
        statusCode: 403,
      });
    }
    const ds = await clients.ml.datastores.get(RESEARCH, WS, "governed_features");
    await expect(
      clients.ml.datastores.createOrUpdate(RESEARCH, WS, "governed_features", {
        properties: {
          ...ds.properties,
          credentials: {
            credentialsType: "AccountKey",
            secrets: { secretsType: "AccountKey", key: keys.key1 },
          },
        },
      }),
    ).rejects.toMatchObject({
      statusCode: 400,
      message: expect.stringContaining("shared key access") as unknown,
    });
  });

  it("no consumer holds its keys: only an identity-based datastore uses it", async () => {
    expect((await consumers(emulator)).filter((c) => c.storageAccountName === GOVERNED)).toEqual([]);
    const ds = await clients.ml.datastores.get(RESEARCH, WS, "governed_features");
    expect(ds.properties.credentials.credentialsType).toBe("None");
  });
});
