import { randomBytes } from "node:crypto";
import {
  AzureMachineLearningWorkspaces,
  type AccountKeyDatastoreSecrets,
  type AzureBlobDatastore,
  type Datastore,
  type DatastorePropertiesUnion,
} from "@azure/arm-machinelearning";
import type { Emulator } from "../../emulator";
import { admin, clientOptions, principalWith, startTestEmulator, type Clients } from "../helpers/emulator";

/**
 * Contract: Microsoft.MachineLearningServices as @azure/arm-machinelearning 2.1.1 sees it. Driven only
 * through the real SDK clients (plus the emulator's admin API for settings and fault injection).
 * Key values are never printed: comparisons are asserted as booleans.
 */

const PROD = "rg-ml-prod";
const RESEARCH = "rg-ml-research";
const ML = "Microsoft.MachineLearningServices/workspaces";

/** A storage-key-shaped value that no account holds. */
const deadKey = (): string => randomBytes(64).toString("base64");

let emulator: Emulator;
let clients: Clients;

beforeAll(async () => {
  ({ emulator, clients } = await startTestEmulator({ settings: { resyncPolls: 2 } }));
});

afterAll(async () => {
  await emulator?.stop();
});

async function storageKeys(resourceGroup: string, account: string): Promise<{ key1: string; key2: string }> {
  const { keys } = await clients.storage.storageAccounts.listKeys(resourceGroup, account);
  const value = (name: string): string => {
    const found = keys?.find((k) => k.keyName === name)?.value;
    if (!found) throw new Error(`storage listKeys returned no ${name} for ${account}`);
    return found;
  };
  return { key1: value("key1"), key2: value("key2") };
}

async function setResyncPolicy(resyncPolicy: "key1" | "consumers"): Promise<void> {
  const answer = await admin(emulator, "PATCH", "/settings", { resyncPolicy });
  expect(answer).toMatchObject({ status: 200, body: { resyncPolicy } });
}

async function heldKey(resourceGroup: string, workspace: string): Promise<string | undefined> {
  return (await clients.ml.workspaces.listKeys(resourceGroup, workspace)).userStorageKey;
}

function blobDatastore(accountName: string, containerName: string, key: string): Datastore {
  const properties: AzureBlobDatastore = {
    datastoreType: "AzureBlob",
    accountName,
    containerName,
    credentials: {
      credentialsType: "AccountKey",
      secrets: { secretsType: "AccountKey", key },
    },
  };
  return { properties };
}

/** The same datastore with new account-key secrets (a GET never carries them, so a PUT must). */
function withKey(ds: Datastore, key: string): Datastore {
  const properties = {
    ...ds.properties,
    credentials: { credentialsType: "AccountKey", secrets: { secretsType: "AccountKey", key } },
  } as DatastorePropertiesUnion;
  return { properties };
}

async function putStatus(
  ml: AzureMachineLearningWorkspaces,
  resourceGroup: string,
  workspace: string,
  name: string,
  body: Datastore,
  skipValidation?: boolean,
): Promise<{ status: number; result: Datastore }> {
  let status = 0;
  const result = await ml.datastores.createOrUpdate(resourceGroup, workspace, name, body, {
    skipValidation,
    onResponse: (raw) => (status = raw.status),
  });
  return { status, result };
}

async function listSecretKey(
  resourceGroup: string,
  workspace: string,
  name: string,
): Promise<string | undefined> {
  const secrets = await clients.ml.datastores.listSecrets(resourceGroup, workspace, name);
  expect(secrets.secretsType).toBe("AccountKey");
  return (secrets as AccountKeyDatastoreSecrets).key;
}

/** Points both default datastores of mlw-research (the only ones on stmlresearch) at one key. */
async function defaultDatastoresHold(key: string): Promise<void> {
  for (const name of ["workspaceblobstore", "workspacefilestore"]) {
    const ds = await clients.ml.datastores.get(RESEARCH, "mlw-research", name);
    await clients.ml.datastores.createOrUpdate(RESEARCH, "mlw-research", name, withKey(ds, key));
  }
}

async function resync(resourceGroup: string, workspace: string, ml = clients.ml): Promise<void> {
  await ml.workspaces.beginResyncKeysAndWait(resourceGroup, workspace, { updateIntervalInMs: 10 });
}

describe("workspaces", () => {
  it("lists every workspace of the subscription, and those of one resource group", async () => {
    const all: string[] = [];
    for await (const ws of clients.ml.workspaces.listBySubscription()) all.push(ws.name ?? "");
    expect(all.sort()).toEqual(["mlw-research", "mlw-score", "mlw-train"]);

    const prod: string[] = [];
    for await (const ws of clients.ml.workspaces.listByResourceGroup(PROD)) prod.push(ws.name ?? "");
    expect(prod.sort()).toEqual(["mlw-score", "mlw-train"]);
  });

  it("get shows the linked resources, a workspace id and provisioningState Succeeded", async () => {
    const account = await clients.storage.storageAccounts.getProperties(PROD, "stmlshared");
    const ws = await clients.ml.workspaces.get(PROD, "mlw-train");
    expect(ws.type).toBe(ML);
    expect(ws.id?.toLowerCase()).toMatch(
      /\/resourcegroups\/rg-ml-prod\/providers\/microsoft\.machinelearningservices\/workspaces\/mlw-train$/,
    );
    expect(ws.storageAccount).toBe(account.id);
    expect(ws.keyVault).toMatch(/\/providers\/Microsoft\.KeyVault\/vaults\//);
    expect(ws.applicationInsights).toMatch(/\/providers\/Microsoft\.Insights\/components\//);
    expect(ws.containerRegistry).toMatch(/\/providers\/Microsoft\.ContainerRegistry\/registries\//);
    expect(ws.provisioningState).toBe("Succeeded");
    expect(ws.workspaceId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it("treats workspace names as case-insensitive", async () => {
    const ws = await clients.ml.workspaces.get(PROD, "MLW-Train");
    expect(ws.name).toBe("mlw-train");
  });

  it("answers 404 ResourceNotFound in ARM's words for an unknown workspace", async () => {
    await expect(clients.ml.workspaces.get(PROD, "mlw-missing")).rejects.toMatchObject({
      statusCode: 404,
      code: "ResourceNotFound",
      message: expect.stringContaining(
        `The Resource '${ML}/mlw-missing' under resource group '${PROD}' was not found`,
      ) as unknown,
    });
    await expect(clients.ml.workspaces.listKeys(PROD, "mlw-missing")).rejects.toMatchObject({
      statusCode: 404,
    });
  });

  it("listKeys returns the storage key the workspace holds and its storage account", async () => {
    const account = await clients.storage.storageAccounts.getProperties(PROD, "stmlshared");
    const live = await storageKeys(PROD, "stmlshared");
    const keys = await clients.ml.workspaces.listKeys(PROD, "mlw-score");
    expect(keys.userStorageResourceId).toBe(account.id);
    expect(keys.userStorageKey === live.key1).toBe(true);
    // Its registry is not in the demo estate (mlw-train's is: test/contract/registry.test.ts).
    expect(keys.containerRegistryCredentials ?? null).toBeNull();
  });
});

describe("workspaces.resyncKeys (long-running operation)", () => {
  it("answers 202 with a Location on this server and Retry-After, and changes the key only when the operation ends", async () => {
    // Policy key1: after key1 is regenerated the workspace holds a dead key until a resync.
    await setResyncPolicy("key1");
    await clients.storage.storageAccounts.regenerateKey(PROD, "stmlshared", { keyName: "key1" });
    const before = await heldKey(PROD, "mlw-score");
    const live = await storageKeys(PROD, "stmlshared");
    expect(before === live.key1 || before === live.key2).toBe(false);

    const initial: { status?: number; location?: string; retryAfter?: string } = {};
    const poller = await clients.ml.workspaces.beginResyncKeys(PROD, "mlw-score", {
      updateIntervalInMs: 10,
      onResponse: (raw) => {
        initial.status ??= raw.status;
        initial.location ??= raw.headers.get("location");
        initial.retryAfter ??= raw.headers.get("retry-after");
      },
    });
    expect(initial.status).toBe(202);
    expect(initial.location?.startsWith(`${emulator.connection.armEndpoint}/subscriptions/`)).toBe(true);
    expect(initial.location).toMatch(
      /\/providers\/Microsoft\.MachineLearningServices\/locations\/[^/]+\/workspaceOperationsStatus\//,
    );
    expect(initial.retryAfter).toBe("0");

    await poller.poll(); // first status poll: still 202 (resyncPolls = 2)
    expect(poller.isDone()).toBe(false);
    expect((await heldKey(PROD, "mlw-score")) === before).toBe(true);

    await poller.pollUntilDone();
    expect(poller.isDone()).toBe(true);
    expect((await heldKey(PROD, "mlw-score")) === live.key1).toBe(true);
  });

  it("with policy 'consumers' takes the key most of the workspace's datastores on its account hold", async () => {
    await setResyncPolicy("consumers");
    const live = await storageKeys(RESEARCH, "stmlresearch");
    expect((await heldKey(RESEARCH, "mlw-research")) === live.key1).toBe(true);

    await defaultDatastoresHold(live.key2);
    await resync(RESEARCH, "mlw-research");
    expect((await heldKey(RESEARCH, "mlw-research")) === live.key2).toBe(true);

    // Policy key1 on the same workspace goes back to key1 whatever the datastores hold.
    await setResyncPolicy("key1");
    await resync(RESEARCH, "mlw-research");
    expect((await heldKey(RESEARCH, "mlw-research")) === live.key1).toBe(true);
  });

  it("a failed operation makes the SDK poller throw and leaves the held key alone", async () => {
    await setResyncPolicy("key1");
    const live = await storageKeys(RESEARCH, "stmlresearch");
    await resync(RESEARCH, "mlw-research");
    await defaultDatastoresHold(live.key2);
    await setResyncPolicy("consumers");
    const fault = await admin(emulator, "POST", "/faults", {
      operation: "resyncKeys",
      action: { type: "failLro" },
    });
    expect(fault.status).toBe(201);
    const before = await heldKey(RESEARCH, "mlw-research");
    expect(before === live.key1).toBe(true); // a successful resync would now pick key2 (consumers)

    // The failure is a 5xx the SDK retries; keep its retries short.
    const fastRetry = new AzureMachineLearningWorkspaces(
      clients.credential,
      emulator.connection.subscriptionIds[0]!,
      {
        ...clientOptions(emulator.connection, emulator.caCert),
        retryOptions: { retryDelayInMs: 5, maxRetryDelayInMs: 20 },
      },
    );
    await expect(resync(RESEARCH, "mlw-research", fastRetry)).rejects.toMatchObject({
      statusCode: 500,
      code: "InternalServerError",
    });
    expect((await heldKey(RESEARCH, "mlw-research")) === before).toBe(true);

    // The fault was one-shot: the next resync succeeds.
    await resync(RESEARCH, "mlw-research");
    expect((await heldKey(RESEARCH, "mlw-research")) === live.key2).toBe(true);
  });
});

describe("datastores", () => {
  it("lists past one page: 30 per page with a $skip nextLink, every datastore once, defaults included", async () => {
    const { key1 } = await storageKeys(RESEARCH, "stmllake");
    const created = Array.from({ length: 33 }, (_, i) => `paged_${String(i).padStart(2, "0")}`);
    for (const name of created) {
      await clients.ml.datastores.createOrUpdate(
        PROD,
        "mlw-train",
        name,
        blobDatastore("stmllake", "curated", key1),
      );
    }

    const pages: Datastore[][] = [];
    for await (const page of clients.ml.datastores.list(PROD, "mlw-train").byPage()) pages.push(page);
    expect(pages.length).toBeGreaterThan(1);
    expect(pages[0]).toHaveLength(30);

    const names = pages.flat().map((d) => d.name ?? "");
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining([...created, "workspaceblobstore", "workspacefilestore"]));
    const blobstore = pages.flat().find((d) => d.name === "workspaceblobstore");
    expect(blobstore?.properties.isDefault).toBe(true);
  });

  it("get never includes secrets", async () => {
    const ds = await clients.ml.datastores.get(PROD, "mlw-train", "workspaceblobstore");
    expect(ds.type).toBe(`${ML}/datastores`);
    expect(ds.properties.datastoreType).toBe("AzureBlob");
    expect(ds.properties.credentials.credentialsType).toBe("AccountKey");
    expect(ds.properties.credentials).not.toHaveProperty("secrets");
    expect(ds.systemData?.createdAt).toBeInstanceOf(Date);
  });

  it("treats datastore names as case-insensitive", async () => {
    const ds = await clients.ml.datastores.get(PROD, "MLW-TRAIN", "WorkspaceBlobStore");
    expect(ds.name).toBe("workspaceblobstore");
  });

  it("PUT creates (201), then updates in place (200): the new secret is stored and createdAt kept", async () => {
    const live = await storageKeys(PROD, "stmlbatch");
    const first = await putStatus(
      clients.ml,
      PROD,
      "mlw-train",
      "rotating",
      blobDatastore("stmlbatch", "outputs", live.key1),
    );
    expect(first.status).toBe(201);
    expect(first.result.properties.credentials).not.toHaveProperty("secrets");
    const createdAt = first.result.systemData?.createdAt?.getTime();
    expect(typeof createdAt).toBe("number");
    expect((await listSecretKey(PROD, "mlw-train", "rotating")) === live.key1).toBe(true);

    const current = await clients.ml.datastores.get(PROD, "mlw-train", "rotating");
    const second = await putStatus(clients.ml, PROD, "mlw-train", "rotating", withKey(current, live.key2));
    expect(second.status).toBe(200);
    expect(second.result.systemData?.createdAt?.getTime()).toBe(createdAt);
    expect((await listSecretKey(PROD, "mlw-train", "rotating")) === live.key2).toBe(true);
    const after = await clients.ml.datastores.get(PROD, "mlw-train", "rotating");
    expect(after.systemData?.createdAt?.getTime()).toBe(createdAt);
    expect(after.systemData?.lastModifiedAt?.getTime()).toBeGreaterThanOrEqual(createdAt ?? Infinity);
  });

  it("every PUT moves systemData.lastModifiedAt, as list and get show it, even two PUTs in one millisecond", async () => {
    const live = await storageKeys(PROD, "stmlbatch");
    await clients.ml.datastores.createOrUpdate(
      PROD,
      "mlw-score",
      "changing",
      blobDatastore("stmlbatch", "outputs", live.key1),
    );
    const listed = async (): Promise<number | undefined> => {
      for await (const ds of clients.ml.datastores.list(PROD, "mlw-score"))
        if (ds.name === "changing") return ds.systemData?.lastModifiedAt?.getTime();
      return undefined;
    };
    const before = await listed();
    expect(typeof before).toBe("number");
    const current = await clients.ml.datastores.get(PROD, "mlw-score", "changing");
    expect(current.systemData?.lastModifiedAt?.getTime()).toBe(before);
    // Two PUTs at once: each still moves the time (keyturn compares it to find changed datastores).
    const [a, b] = await Promise.all([
      clients.ml.datastores.createOrUpdate(PROD, "mlw-score", "changing", withKey(current, live.key2)),
      clients.ml.datastores.createOrUpdate(PROD, "mlw-score", "changing", withKey(current, live.key1)),
    ]);
    const times = [a, b].map((d) => d.systemData?.lastModifiedAt?.getTime() ?? 0).sort((x, y) => x - y);
    expect(times[0]).toBeGreaterThan(before!);
    expect(times[1]).toBeGreaterThan(times[0]!);
    expect(await listed()).toBe(times[1]);
    const untouched = await clients.ml.datastores.get(PROD, "mlw-score", "workspaceblobstore");
    expect(untouched.systemData?.lastModifiedAt?.getTime()).toBeLessThanOrEqual(before!);
  });

  it("PUT with a key that is not live on the account is rejected 400 without echoing it, and nothing is saved", async () => {
    const key = deadKey();
    const attempt = putStatus(
      clients.ml,
      PROD,
      "mlw-train",
      "dead_key",
      blobDatastore("stmlbatch", "outputs", key),
    );
    const error = (await attempt.catch((e: unknown) => e)) as { statusCode?: number; message?: string };
    expect(error.statusCode).toBe(400);
    expect(error.message).toContain("properties.credentials.secrets.key");
    expect(error.message?.includes(key)).toBe(false);
    await expect(clients.ml.datastores.get(PROD, "mlw-train", "dead_key")).rejects.toMatchObject({
      statusCode: 404,
    });
  });

  it("PUT with skipValidation=true saves a key Azure could not check", async () => {
    const key = deadKey();
    const saved = await putStatus(
      clients.ml,
      PROD,
      "mlw-train",
      "unchecked",
      blobDatastore("stmlbatch", "outputs", key),
      true,
    );
    expect(saved.status).toBe(201);
    expect((await listSecretKey(PROD, "mlw-train", "unchecked")) === key).toBe(true);
  });

  it("PUT without a container name is rejected 400 naming the field", async () => {
    const { key1 } = await storageKeys(PROD, "stmlbatch");
    const body = blobDatastore("stmlbatch", "outputs", key1);
    delete (body.properties as AzureBlobDatastore).containerName;
    await expect(
      clients.ml.datastores.createOrUpdate(PROD, "mlw-train", "no_container", body),
    ).rejects.toMatchObject({
      statusCode: 400,
      message: expect.stringContaining("properties.containerName") as unknown,
    });
  });

  it("listSecrets returns the account key of an AccountKey datastore and refuses one with no credentials", async () => {
    const live = await storageKeys(RESEARCH, "stmllake");
    const key = await listSecretKey(PROD, "mlw-train", "curated_lake");
    expect(key === live.key1 || key === live.key2).toBe(true);
    await expect(
      clients.ml.datastores.listSecrets(PROD, "mlw-train", "identity_scratch"),
    ).rejects.toMatchObject({
      statusCode: 400,
    });
  });

  it("answers 404 ResourceNotFound for an unknown datastore, and for a datastore of an unknown workspace", async () => {
    await expect(clients.ml.datastores.get(PROD, "mlw-train", "no_such_store")).rejects.toMatchObject({
      statusCode: 404,
      code: "ResourceNotFound",
      message: expect.stringContaining(
        `'${ML}/mlw-train/datastores/no_such_store' under resource group '${PROD}'`,
      ) as unknown,
    });
    await expect(clients.ml.datastores.listSecrets(PROD, "mlw-train", "no_such_store")).rejects.toMatchObject(
      {
        statusCode: 404,
        code: "ResourceNotFound",
      },
    );
    await expect(clients.ml.datastores.get(PROD, "mlw-missing", "workspaceblobstore")).rejects.toMatchObject({
      statusCode: 404,
      code: "ResourceNotFound",
    });
  });

  it("checks the Azure action names: datastores/read alone can get but not listSecrets or write", async () => {
    const reader = principalWith(emulator, [
      "Microsoft.MachineLearningServices/workspaces/read",
      "Microsoft.MachineLearningServices/workspaces/datastores/read",
    ]);
    const ds = await reader.ml.datastores.get(PROD, "mlw-train", "workspaceblobstore");
    expect(ds.name).toBe("workspaceblobstore");
    await expect(
      reader.ml.datastores.listSecrets(PROD, "mlw-train", "workspaceblobstore"),
    ).rejects.toMatchObject({
      statusCode: 403,
    });
    await expect(reader.ml.workspaces.listKeys(PROD, "mlw-train")).rejects.toMatchObject({ statusCode: 403 });
  });

  it("delete removes a datastore (200) and is idempotent (204)", async () => {
    const deleter = principalWith(emulator, [
      "Microsoft.MachineLearningServices/workspaces/datastores/delete",
    ]);
    await putStatus(
      clients.ml,
      PROD,
      "mlw-train",
      "to_delete",
      blobDatastore("stmlbatch", "outputs", deadKey()),
      true,
    );
    const statuses: number[] = [];
    const onResponse = (raw: { status: number }): number => statuses.push(raw.status);
    await deleter.ml.datastores.delete(PROD, "mlw-train", "to_delete", { onResponse });
    await deleter.ml.datastores.delete(PROD, "mlw-train", "to_delete", { onResponse });
    expect(statuses).toEqual([200, 204]);
    await expect(clients.ml.datastores.get(PROD, "mlw-train", "to_delete")).rejects.toMatchObject({
      statusCode: 404,
    });
  });
});
