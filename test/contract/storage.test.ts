import { StorageSharedKeyCredential, BlobServiceClient } from "@azure/storage-blob";
import { SubscriptionClient } from "@azure/arm-subscriptions";
import type { Emulator } from "../../emulator";
import {
  admin,
  armToken,
  clientOptions,
  principalWith,
  raw,
  startTestEmulator,
  type Clients,
} from "../helpers/emulator";

const RG = "rg-ml-prod";
const SHARED = "stmlshared";

let emulator: Emulator;
let clients: Clients;

beforeAll(async () => {
  ({ emulator, clients } = await startTestEmulator({ optInRoleFiles: [] }));
});
afterAll(async () => {
  await emulator?.stop();
});

async function blobProbe(accountName: string, key: string, blobEndpoint: string): Promise<number> {
  const client = new BlobServiceClient(blobEndpoint, new StorageSharedKeyCredential(accountName, key), {
    retryOptions: { maxTries: 1 },
  });
  try {
    await client.getProperties();
    return 200;
  } catch (e) {
    return (e as { statusCode?: number }).statusCode ?? -1;
  }
}

describe("Microsoft.Storage through @azure/arm-storage", () => {
  it("lists every storage account of the demo estate", async () => {
    const names: string[] = [];
    for await (const account of clients.storage.storageAccounts.list()) names.push(account.name!);
    expect(names.sort()).toEqual(["stmlbatch", "stmlgoverned", "stmllake", "stmlresearch", "stmlshared"]);
  });

  it("reports key creation times, the key policy and the data-plane endpoint", async () => {
    const account = await clients.storage.storageAccounts.getProperties(RG, SHARED);
    expect(account.keyCreationTime?.key1).toBeInstanceOf(Date);
    expect(account.keyCreationTime?.key2).toBeInstanceOf(Date);
    expect(account.keyPolicy?.keyExpirationPeriodInDays).toBe(90);
    expect(account.primaryEndpoints?.blob).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/stmlshared\/$/);
  });

  it("regenerates one key: the old key is refused by the data plane at once, the other still works", async () => {
    const account = await clients.storage.storageAccounts.getProperties(RG, SHARED);
    const blob = account.primaryEndpoints!.blob!;
    const before = await clients.storage.storageAccounts.listKeys(RG, SHARED);
    const oldKey1 = before.keys!.find((k) => k.keyName === "key1")!.value!;
    const key2 = before.keys!.find((k) => k.keyName === "key2")!.value!;
    expect(await blobProbe(SHARED, oldKey1, blob)).toBe(200);

    const after = await clients.storage.storageAccounts.regenerateKey(RG, SHARED, { keyName: "key1" });
    const newKey1 = after.keys!.find((k) => k.keyName === "key1")!.value!;
    expect(newKey1).not.toBe(oldKey1);
    expect(after.keys!.find((k) => k.keyName === "key2")!.value).toBe(key2);

    expect(await blobProbe(SHARED, oldKey1, blob)).toBe(403);
    expect(await blobProbe(SHARED, key2, blob)).toBe(200);
    expect(await blobProbe(SHARED, newKey1, blob)).toBe(200);
    const props = await clients.storage.storageAccounts.getProperties(RG, SHARED);
    expect(props.keyCreationTime!.key1!.getTime()).toBeGreaterThan(account.keyCreationTime!.key1!.getTime());
  });

  it("answers an unknown account with 404 ResourceNotFound", async () => {
    await expect(clients.storage.storageAccounts.getProperties(RG, "nosuchaccount")).rejects.toMatchObject({
      statusCode: 404,
      code: "ResourceNotFound",
    });
  });

  it("rejects a regenerate body with an unknown key name with 400", async () => {
    await expect(
      clients.storage.storageAccounts.regenerateKey(RG, SHARED, { keyName: "key3" }),
    ).rejects.toMatchObject({
      statusCode: 400,
    });
  });

  it("refuses a principal without the action with 403 AuthorizationFailed", async () => {
    const reader = principalWith(emulator, ["Microsoft.Storage/storageAccounts/read"]);
    await expect(reader.storage.storageAccounts.getProperties(RG, SHARED)).resolves.toMatchObject({
      name: SHARED,
    });
    await expect(reader.storage.storageAccounts.listKeys(RG, SHARED)).rejects.toMatchObject({
      statusCode: 403,
      code: "AuthorizationFailed",
    });
  });

  it("throttles with 429 and Retry-After, which the SDK waits out and retries", async () => {
    const sub = emulator.connection.subscriptionIds[0]!;
    await admin(emulator, "POST", "/throttle/drain", { subscriptionId: sub, kind: "read" });
    const logged = emulator.requestLog.length;
    const account = await clients.storage.storageAccounts.getProperties(RG, SHARED);
    expect(account.name).toBe(SHARED);
    // The first answer was a 429 with Retry-After; the SDK waited it out and the retry succeeded.
    const calls = emulator.requestLog
      .slice(logged)
      .filter((r) => r.operation === "storageAccounts.getProperties");
    expect(calls.map((c) => c.status)).toEqual([429, 200]);
  });
});

describe("Microsoft.Batch through @azure/arm-batch", () => {
  // keyturn's main role has no Batch key actions (they are in the opt-in infra/keyturn-batch-role.json): a Batch operator does.
  const operator = () => principalWith(emulator, ["Microsoft.Batch/batchAccounts/*"]);

  it("reads the account with its auto-storage and lists its keys", async () => {
    const batch = await clients.batch.batchAccountOperations.get(RG, "batchmltrain");
    expect(batch.autoStorage?.storageAccountId).toMatch(/stmlbatch$/);
    expect(batch.autoStorage?.authenticationMode).toBe("StorageKeys");
    await expect(clients.batch.batchAccountOperations.getKeys(RG, "batchmltrain")).rejects.toMatchObject({
      statusCode: 403,
    });
    const keys = await operator().batch.batchAccountOperations.getKeys(RG, "batchmltrain");
    expect(keys.accountName).toBe("batchmltrain");
    expect(keys.primary).not.toBe(keys.secondary);
  });

  it("regenerates one Batch key", async () => {
    const batch = operator().batch;
    const before = await batch.batchAccountOperations.getKeys(RG, "batchmltrain");
    const after = await batch.batchAccountOperations.regenerateKey(RG, "batchmltrain", {
      keyName: "Secondary",
    });
    expect(after.primary).toBe(before.primary);
    expect(after.secondary).not.toBe(before.secondary);
  });

  it("syncs auto-storage keys (204) and moves lastKeySync", async () => {
    const before = await clients.batch.batchAccountOperations.get(RG, "batchmltrain");
    await clients.batch.batchAccountOperations.synchronizeAutoStorageKeys(RG, "batchmltrain");
    const after = await clients.batch.batchAccountOperations.get(RG, "batchmltrain");
    expect(after.autoStorage!.lastKeySync.getTime()).toBeGreaterThan(
      before.autoStorage!.lastKeySync.getTime(),
    );
  });
});

describe("Subscriptions - List through @azure/arm-subscriptions", () => {
  it("lists the subscriptions the principal has a role in", async () => {
    const client = new SubscriptionClient(
      clients.credential,
      clientOptions(emulator.connection, emulator.caCert),
    );
    const subs: string[] = [];
    for await (const s of client.subscriptions.list()) subs.push(s.subscriptionId!);
    expect(subs).toEqual(emulator.connection.subscriptionIds);
  });
});

describe("bad input gets Azure's 4xx and the emulator keeps serving", () => {
  let token: string;
  const base = `/subscriptions/SUB/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/${SHARED}`;
  const path = (p: string) => p.replace("SUB", emulator.connection.subscriptionIds[0]!);
  beforeAll(async () => {
    token = await armToken(clients);
  });

  it.each([
    ["a missing api-version", "GET", base, undefined, 400, "MissingApiVersionParameter"],
    [
      "an unsupported api-version",
      "GET",
      `${base}?api-version=2099-01-01`,
      undefined,
      400,
      "NoRegisteredProviderFound",
    ],
    [
      "malformed JSON",
      "POST",
      `${base}/regenerateKey?api-version=2025-08-01`,
      "{not json",
      400,
      "InvalidRequestContent",
    ],
    ["an unknown resource", "GET", `${base}x?api-version=2025-08-01`, undefined, 404, "ResourceNotFound"],
    [
      "an unknown resource group",
      "GET",
      `${base.replace(RG, "rg-nope")}?api-version=2025-08-01`,
      undefined,
      404,
      "ResourceGroupNotFound",
    ],
    [
      "an unknown namespace",
      "GET",
      `${base.replace("Microsoft.Storage", "Microsoft.Nope")}?api-version=2025-08-01`,
      undefined,
      400,
      "InvalidResourceNamespace",
    ],
    [
      "an unknown resource type",
      "GET",
      `${base.replace("storageAccounts", "nopes")}?api-version=2025-08-01`,
      undefined,
      404,
      "InvalidResourceType",
    ],
    [
      "an unknown subscription",
      "GET",
      `${base.replace("SUB", "00000000-0000-0000-0000-000000000000")}?api-version=2025-08-01`,
      undefined,
      404,
      "SubscriptionNotFound",
    ],
    [
      "an unsupported method",
      "DELETE",
      `${base}/listKeys?api-version=2025-08-01`,
      undefined,
      405,
      "MethodNotAllowed",
    ],
  ])("answers %s with Azure's status and error body", async (_what, method, p, body, status, code) => {
    const res = await raw(emulator, method, path(p), { token, body });
    expect(res.status).toBe(status);
    expect(res.body).toMatchObject({ error: { code } });
    expect(typeof (res.body as { error: { message: unknown } }).error.message).toBe("string");
  });

  it("answers a call without a token with 401 and a bad token with 401", async () => {
    expect((await raw(emulator, "GET", path(`${base}?api-version=2025-08-01`))).status).toBe(401);
    const bad = await raw(emulator, "GET", path(`${base}?api-version=2025-08-01`), {
      token: `${token.slice(0, -4)}AAAA`,
    });
    expect(bad.status).toBe(401);
    expect(bad.body).toMatchObject({ error: { code: "InvalidAuthenticationToken" } });
  });

  it("answers an unknown route outside ARM with 404 and still serves afterwards", async () => {
    const res = await raw(emulator, "GET", "/no/such/route");
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ error: { code: "NotFound" } });
    await expect(clients.storage.storageAccounts.getProperties(RG, SHARED)).resolves.toMatchObject({
      name: SHARED,
    });
  });

  it("survives a dropped connection and a closed socket mid-request", async () => {
    await admin(emulator, "POST", "/faults", {
      operation: "storageAccounts.getProperties",
      action: { type: "drop" },
    });
    // The SDK retries a dropped connection; the second attempt succeeds.
    await expect(clients.storage.storageAccounts.getProperties(RG, SHARED)).resolves.toMatchObject({
      name: SHARED,
    });
  });

  it("injects a status fault once, then serves normally", async () => {
    await admin(emulator, "POST", "/faults", {
      operation: "storageAccounts.listKeys",
      action: { type: "status", status: 409, code: "Conflict", message: "injected" },
    });
    await expect(clients.storage.storageAccounts.listKeys(RG, SHARED)).rejects.toMatchObject({
      statusCode: 409,
    });
    await expect(clients.storage.storageAccounts.listKeys(RG, SHARED)).resolves.toHaveProperty("keys");
  });
});
