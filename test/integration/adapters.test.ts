import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import type { AzureBlobDatastore } from "@azure/arm-machinelearning";
import type { Emulator } from "../../emulator";
import {
  AzureCallError,
  ConfigurationError,
  InvalidResourceIdError,
  KeyturnError,
  redact,
} from "../../shared/errors";
import { fingerprint } from "../../shared/rotation/fingerprint";
import { signSas } from "../../shared/azure/sas";
import type { KeyName } from "../../shared/rotation/model";
import {
  ArmCallCounter,
  armOperationOf,
  createAzure,
  discoverSubscriptions,
  loadCloudProfile,
  withRetry,
  type Azure,
  type CloudProfile,
  type CreateAzureOptions,
} from "../../shared/azure";
import { admin, principalWith, startTestEmulator, type Clients } from "../helpers/emulator";

/**
 * The adapters (shared/azure) against the emulator, through a profile loaded from a connection file as
 * `keyturn --connection-file` loads it. The test reads key values only through its own SDK clients, to
 * check at the end that none of them reached anything the adapters returned or threw (invariant I3).
 */

const PROD = "rg-ml-prod";
const RESEARCH = "rg-ml-research";
const VAULT = "kv-keyturn-demo";
const SALT = "integration-salt-a";
const OTHER_SALT = "integration-salt-b";
const KV_GET = "Microsoft.KeyVault/vaults/secrets/getSecret/action";
const KV_SET = "Microsoft.KeyVault/vaults/secrets/setSecret/action";
const KV_READ_METADATA = "Microsoft.KeyVault/vaults/secrets/readMetadata/action";
const ADAPTER_OPTIONS: CreateAzureOptions = {
  lroPollIntervalMs: 10,
  armRetry: { retryDelayInMs: 5, maxRetryDelayInMs: 20 },
  probe: { retry: { delays: [5] } },
};

/** A storage-key-shaped value no account holds. */
const deadKey = (): string => randomBytes(64).toString("base64");

let emulator: Emulator;
let clients: Clients;
let dir: string;
let connectionFile: string;
let profile: CloudProfile;
let azure: Azure;
let sub: string;
let vaultUrl: string;

/** Every key value the test saw through the SDK: none may appear in `observed`. */
const keyValues = new Set<string>();
/** Everything the adapters returned or threw, as text. */
const observed: string[] = [];

function observe<T>(value: T): T {
  observed.push(JSON.stringify(value) ?? String(value));
  return value;
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (e) {
    observed.push(String(e), (e as Error).stack ?? "", inspect(e, { depth: 5 }), JSON.stringify(e));
    return e as Error;
  }
  throw new Error("expected the call to fail");
}

const accountId = (rg: string, name: string): string =>
  `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Storage/storageAccounts/${name}`;
const workspaceId = (rg: string, name: string): string =>
  `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.MachineLearningServices/workspaces/${name}`;
const datastoreId = (rg: string, ws: string, name: string): string =>
  `${workspaceId(rg, ws)}/datastores/${name}`;
const batchId = (): string =>
  `/subscriptions/${sub}/resourceGroups/${PROD}/providers/Microsoft.Batch/batchAccounts/batchmltrain`;

/** The account's keys as the SDK reads them; remembered for the hygiene check. */
async function sdkKeys(rg: string, account: string): Promise<Record<KeyName, string>> {
  const { keys } = await clients.storage.storageAccounts.listKeys(rg, account);
  const value = (name: KeyName): string => {
    const found = keys?.find((k) => k.keyName === name)?.value;
    if (!found) throw new Error(`listKeys returned no ${name} for ${account}`);
    keyValues.add(found);
    return found;
  };
  return { key1: value("key1"), key2: value("key2") };
}

function blobDatastore(accountName: string, containerName: string, key: string): AzureBlobDatastore {
  return {
    datastoreType: "AzureBlob",
    accountName,
    containerName,
    credentials: { credentialsType: "AccountKey", secrets: { secretsType: "AccountKey", key } },
  };
}

function profileFor(principal: Clients): CloudProfile {
  return { ...profile, credential: principal.credential, armCalls: new ArmCallCounter() };
}

beforeAll(async () => {
  ({ emulator, clients } = await startTestEmulator({ settings: { resyncPolls: 1 } }));
  sub = emulator.connection.subscriptionIds[0]!;
  vaultUrl = emulator.connection.vaults[VAULT]!;
  dir = mkdtempSync(join(tmpdir(), "keyturn-adapters-"));
  connectionFile = join(dir, "connection.json");
  writeFileSync(connectionFile, JSON.stringify(emulator.connection));
  profile = loadCloudProfile({ connectionFile, env: {} });
  azure = createAzure(profile, ADAPTER_OPTIONS);

  for (const [rg, account] of [
    [PROD, "stmlshared"],
    [PROD, "stmlbatch"],
    [RESEARCH, "stmlresearch"],
    [RESEARCH, "stmllake"],
  ] as const) {
    await sdkKeys(rg, account);
  }
  for await (const ws of clients.ml.workspaces.listBySubscription()) {
    const rg = ws.id!.split("/")[4]!;
    const held = (await clients.ml.workspaces.listKeys(rg, ws.name!)).userStorageKey;
    if (held) keyValues.add(held);
    for await (const ds of clients.ml.datastores.list(rg, ws.name!)) {
      if (ds.properties.credentials.credentialsType === "None") continue;
      const secrets = (await clients.ml.datastores.listSecrets(rg, ws.name!, ds.name!)) as {
        key?: string;
        sasToken?: string;
      };
      for (const v of [secrets.key, secrets.sasToken]) if (v) keyValues.add(v);
    }
  }
  const published = await clients.secrets(VAULT).getSecret("stmlbatch-key");
  if (published.value) keyValues.add(published.value);
});

afterAll(async () => {
  await emulator?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("cloud profile", () => {
  it("loads the emulator's connection file: its subscriptions, CA and a working credential", async () => {
    expect(profile).toMatchObject({
      name: "emulator",
      armEndpoint: emulator.connection.armEndpoint,
      armScope: "https://management.azure.com/.default",
      subscriptionIds: [sub],
    });
    expect(profile.tlsCa).toBe(emulator.caCert);
    const token = await profile.credential.getToken(profile.armScope);
    expect(token?.token.split(".")).toHaveLength(3);
  });

  it("defaults to Azure's public cloud, and takes another cloud from KEYTURN_ARM_ENDPOINT/KEYTURN_AUTHORITY_HOST", () => {
    expect(loadCloudProfile({ env: {} })).toMatchObject({
      name: "AzureCloud",
      armEndpoint: "https://management.azure.com",
      armScope: "https://management.azure.com/.default",
    });
    const gov = loadCloudProfile({
      env: {
        KEYTURN_ARM_ENDPOINT: "https://management.usgovcloudapi.net/",
        KEYTURN_AUTHORITY_HOST: "https://login.microsoftonline.us",
      },
    });
    expect(gov).toMatchObject({
      name: "custom",
      armEndpoint: "https://management.usgovcloudapi.net",
      armScope: "https://management.usgovcloudapi.net/.default",
    });
    expect(gov.subscriptionIds).toBeUndefined();
  });

  it.each([
    [
      { KEYTURN_ARM_ENDPOINT: "http://management.example", KEYTURN_AUTHORITY_HOST: "https://login.example" },
      "KEYTURN_ARM_ENDPOINT",
    ],
    [{ KEYTURN_ARM_ENDPOINT: "management.example" }, "KEYTURN_ARM_ENDPOINT"],
    [{ KEYTURN_ARM_ENDPOINT: "https://management.example" }, "KEYTURN_AUTHORITY_HOST"],
    [
      { KEYTURN_ARM_ENDPOINT: "https://management.example", KEYTURN_AUTHORITY_HOST: "ftp://login" },
      "KEYTURN_AUTHORITY_HOST",
    ],
    [{ KEYTURN_AUTHORITY_HOST: "https://login.example" }, "KEYTURN_AUTHORITY_HOST"],
  ])("rejects %j naming %s", (env, setting) => {
    let error: unknown;
    try {
      loadCloudProfile({ env });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error).toMatchObject({ setting });
    expect((error as Error).message).toContain(setting);
  });

  it("names a missing or invalid connection file and the field to fix, never the client secret", () => {
    const missing = join(dir, "nope.json");
    expect(() => loadCloudProfile({ connectionFile: missing })).toThrow(
      new RegExp(`cannot read connection file ${missing} \\(ENOENT\\)`),
    );
    const bad = join(dir, "bad.json");
    const secret = `not-a-real-secret-${randomBytes(8).toString("hex")}`;
    writeFileSync(
      bad,
      JSON.stringify({ ...emulator.connection, clientSecret: secret, armEndpoint: "http://x" }),
    );
    expect(() => loadCloudProfile({ connectionFile: bad })).toThrow(/armEndpoint: must be an https URL/);
    writeFileSync(bad, JSON.stringify({ ...emulator.connection, clientSecret: 42, tenantId: undefined }));
    let message = "";
    try {
      loadCloudProfile({ connectionFile: bad });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/clientSecret/);
    expect(message).toMatch(/tenantId/);
    expect(message).not.toContain(secret);
    expect(message).not.toContain(emulator.connection.clientSecret);
    expect(() => loadCloudProfile({ env: { KEYTURN_CONNECTION_FILE: missing } })).toThrow(/nope\.json/);
  });

  it("discovers subscriptions from the profile, or with Subscriptions - List", async () => {
    await expect(discoverSubscriptions(profile)).resolves.toEqual([sub]);
    const { subscriptionIds: _, ...withoutList } = profile;
    await expect(discoverSubscriptions(withoutList)).resolves.toEqual([sub]);
    await expect(azure.subscriptions()).resolves.toEqual([sub]);
  });
});

describe("discovery of the demo estate", () => {
  it("lists the storage accounts with key creation times, key policy and reported endpoints", async () => {
    const accounts = observe(await azure.storage.listAccounts(sub));
    expect(accounts.map((a) => a.name).sort()).toEqual([
      "stmlbatch",
      "stmlgoverned",
      "stmllake",
      "stmllegacy", // classic (Microsoft.ClassicStorage): test/integration/classic.test.ts
      "stmlresearch",
      "stmlshared",
    ]);
    // Shared-key access disabled: Azure refuses both keys, and keyturn reads that from the account.
    expect(accounts.find((a) => a.name === "stmlgoverned")?.sharedKeyAccessDisabled).toBe(true);
    expect(accounts.find((a) => a.name === "stmlshared")?.sharedKeyAccessDisabled).toBeUndefined();
    const shared = observe(await azure.storage.getAccount(accountId(PROD, "stmlshared")));
    expect(shared).toMatchObject({
      name: "stmlshared",
      subscriptionId: sub,
      resourceGroup: PROD,
      keyExpirationPeriodInDays: 90,
    });
    expect(shared.blobEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/stmlshared\/$/);
    expect(Date.parse(shared.keyCreationTime.key1!)).toBeLessThan(Date.now() - 100 * 86_400_000);
    expect(shared.keyCreationTime.key2).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
  });

  it("lists the workspaces with their storage accounts", async () => {
    const workspaces = observe(await azure.workspaces.list(sub));
    expect(
      workspaces.map((w) => [w.name, w.resourceGroup, w.storageAccountId?.split("/").pop()]).sort(),
    ).toEqual([
      ["mlw-research", RESEARCH, "stmlresearch"],
      ["mlw-score", PROD, "stmlshared"],
      ["mlw-train", PROD, "stmlshared"],
    ]);
    await expect(azure.workspaces.get(workspaceId(PROD, "mlw-train"))).resolves.toMatchObject({
      name: "mlw-train",
    });
  });

  it("lists datastores with their credential types, containers and the defaults", async () => {
    const research = observe(await azure.datastores.list(workspaceId(RESEARCH, "mlw-research")));
    const byName = Object.fromEntries(research.map((d) => [d.name, d]));
    expect(byName.partner_drop).toMatchObject({
      credentialsType: "Sas",
      accountName: "stmllake",
      container: "partner",
    });
    expect(byName.shared_features).toMatchObject({
      credentialsType: "AccountKey",
      datastoreType: "AzureBlob",
      accountName: "stmlshared",
      container: "features",
      isDefault: false,
    });
    expect(byName.raw_lake).toMatchObject({ datastoreType: "AzureDataLakeGen2", container: "raw" });
    expect(byName.workspaceblobstore).toMatchObject({ isDefault: true, credentialsType: "AccountKey" });
    expect(byName.workspacefilestore?.datastoreType).toBe("AzureFile");
    expect(byName.workspacefilestore?.container).toMatch(/^azureml-filestore-/);
    expect(byName.shared_features?.id).toBe(datastoreId(RESEARCH, "mlw-research", "shared_features"));
    expect(byName.shared_features?.workspaceId).toBe(workspaceId(RESEARCH, "mlw-research"));

    const train = observe(await azure.datastores.list(workspaceId(PROD, "mlw-train")));
    expect(train.find((d) => d.name === "identity_scratch")?.credentialsType).toBe("None");
  });

  it("follows every page of a workspace's datastores", async () => {
    const { key1 } = await sdkKeys(RESEARCH, "stmllake");
    const before = (await azure.datastores.list(workspaceId(PROD, "mlw-score"))).length;
    expect(before).toBeGreaterThanOrEqual(3);
    const names = Array.from({ length: 32 }, (_, i) => `paged_${String(i).padStart(2, "0")}`);
    for (const name of names) {
      await clients.ml.datastores.createOrUpdate(PROD, "mlw-score", name, {
        properties: blobDatastore("stmllake", "curated", key1),
      });
    }
    const listed = observe(await azure.datastores.list(workspaceId(PROD, "mlw-score")));
    expect(listed.length).toBe(names.length + before);
    expect(new Set(listed.map((d) => d.name)).size).toBe(listed.length);
    expect(listed.map((d) => d.name)).toEqual(
      expect.arrayContaining([...names, "workspaceblobstore", "batch_outputs"]),
    );
  });

  it("lists the Batch account with its auto-storage", async () => {
    const batch = observe(await azure.batch.list(sub));
    expect(batch).toHaveLength(1);
    expect(batch[0]).toMatchObject({
      name: "batchmltrain",
      resourceGroup: PROD,
      autoStorage: { storageAccountId: accountId(PROD, "stmlbatch"), authenticationMode: "StorageKeys" },
    });
    expect(batch[0]!.autoStorage!.lastKeySync).toMatch(/Z$/);
  });
});

describe("storage keys", () => {
  const research = () => accountId(RESEARCH, "stmlresearch");

  it("fingerprints both keys: stable for one salt, different across salts, never the values", async () => {
    const keys = await sdkKeys(RESEARCH, "stmlresearch");
    const first = observe(await azure.storage.snapshot(research(), SALT));
    const again = observe(await azure.storage.snapshot(research(), SALT));
    const other = observe(await azure.storage.snapshot(research(), OTHER_SALT));
    expect(again).toEqual(first);
    expect(first.keys.key1.fingerprint).toBe(fingerprint(keys.key1, SALT));
    expect(first.keys.key2.fingerprint).toBe(fingerprint(keys.key2, SALT));
    expect(first.keys.key1.fingerprint).not.toBe(first.keys.key2.fingerprint);
    expect(other.keys.key1.fingerprint).not.toBe(first.keys.key1.fingerprint);
    expect(other.keys.key2.fingerprint).not.toBe(first.keys.key2.fingerprint);
    expect(first).toMatchObject({ name: "stmlresearch", resourceGroup: RESEARCH, subscriptionId: sub });
    expect(first.keys.key1.creationTime).toMatch(/Z$/);
    expect(first.blobEndpoint).toMatch(/\/stmlresearch\/$/);
    await expect(azure.storage.fingerprints(research(), SALT)).resolves.toEqual({
      key1: first.keys.key1.fingerprint,
      key2: first.keys.key2.fingerprint,
    });
  });

  it("regenerates exactly one key; the old one is refused by the data plane with 403 at once", async () => {
    const before = await sdkKeys(RESEARCH, "stmlresearch");
    const snapshot = await azure.storage.snapshot(research(), SALT);
    const keys = observe(await azure.storage.regenerate(research(), "key2", SALT));
    const after = await sdkKeys(RESEARCH, "stmlresearch");
    expect(keys.key1).toEqual(snapshot.keys.key1);
    expect(keys.key2.fingerprint).not.toBe(snapshot.keys.key2.fingerprint);
    expect(keys.key2.fingerprint).toBe(fingerprint(after.key2, SALT));
    expect(Date.parse(keys.key2.creationTime!)).toBeGreaterThan(Date.parse(snapshot.keys.key2.creationTime!));

    const { blobEndpoint } = await azure.storage.getAccount(research());
    const target = { blobEndpoint, accountName: "stmlresearch", container: "scratch" };
    await expect(azure.probe.probe({ ...target, key: before.key2 })).resolves.toMatchObject({
      ok: false,
      status: 403,
    });
    const live = await azure.storage.withKey(research(), "key2", (key) =>
      azure.probe.probe({ ...target, key }),
    );
    expect(observe(live)).toEqual({ ok: true });
    const service = await azure.storage.withKey(research(), "key1", (key) =>
      azure.probe.probe({ blobEndpoint, accountName: "stmlresearch", key }),
    );
    expect(observe(service)).toEqual({ ok: true });
  });

  it("probes report a missing container, and skip file shares and accounts without a blob endpoint", async () => {
    const id = accountId(PROD, "stmlshared");
    const { blobEndpoint } = await azure.storage.getAccount(id);
    const results = await azure.storage.withKey(id, "key1", async (key) => [
      await azure.probe.probe({
        blobEndpoint,
        accountName: "stmlshared",
        key,
        container: "no-such-container",
      }),
      await azure.probe.probe({ blobEndpoint, accountName: "stmlshared", key, fileShare: "share" }),
      await azure.probe.probe({ accountName: "stmlshared", key }),
    ]);
    observe(results);
    expect(results[0]).toMatchObject({ ok: false, status: 404 });
    expect(results[1]).toMatchObject({ ok: "skipped" });
    expect(results[2]).toMatchObject({ ok: "skipped" });
    expect(results[1]?.ok === "skipped" && results[1].reason).toMatch(/file share 'share'/);
    expect(results[2]?.ok === "skipped" && results[2].reason).toMatch(/no blob endpoint/);
  });

  it("withKey redacts its key from anything the callback throws", async () => {
    const id = accountId(RESEARCH, "stmllake");
    const error = await failure(
      azure.storage.withKey(id, "key1", async (key) => {
        throw new Error(`a careless message with ${key} in it`);
      }),
    );
    expect(error).toBeInstanceOf(KeyturnError);
    expect(error.message).toBe("a careless message with [redacted] in it");
  });
});

describe("datastores", () => {
  const features = () => datastoreId(RESEARCH, "mlw-research", "shared_features");
  const shared = () => accountId(PROD, "stmlshared");

  it("putKey re-registers in place: the stored key moves, createdAt and the other properties stay", async () => {
    const keys = await sdkKeys(PROD, "stmlshared");
    const snapshot = await azure.storage.snapshot(shared(), SALT);
    const before = await clients.ml.datastores.get(RESEARCH, "mlw-research", "shared_features");
    expect(observe(await azure.datastores.heldFingerprint(features(), SALT))).toBe(
      snapshot.keys.key1.fingerprint,
    );

    await azure.storage.withKey(shared(), "key2", (key) => azure.datastores.putKey(features(), key));

    expect(observe(await azure.datastores.heldFingerprint(features(), SALT))).toBe(
      snapshot.keys.key2.fingerprint,
    );
    const after = await clients.ml.datastores.get(RESEARCH, "mlw-research", "shared_features");
    expect(after.systemData?.createdAt?.getTime()).toBe(before.systemData?.createdAt?.getTime());
    expect(after.systemData?.lastModifiedAt?.getTime()).toBeGreaterThanOrEqual(
      before.systemData!.lastModifiedAt!.getTime(),
    );
    expect(after.properties).toEqual(before.properties);
    const secrets = (await clients.ml.datastores.listSecrets(
      RESEARCH,
      "mlw-research",
      "shared_features",
    )) as {
      key?: string;
    };
    expect(secrets.key === keys.key2).toBe(true);
  });

  it("putKey refuses a datastore without account-key credentials and writes nothing", async () => {
    const partner = datastoreId(RESEARCH, "mlw-research", "partner_drop");
    const before = await clients.ml.datastores.get(RESEARCH, "mlw-research", "partner_drop");
    const error = await failure(
      azure.storage.withKey(accountId(RESEARCH, "stmllake"), "key1", (key) =>
        azure.datastores.putKey(partner, key),
      ),
    );
    expect(error.message).toMatch(/uses Sas credentials, not AccountKey/);
    const after = await clients.ml.datastores.get(RESEARCH, "mlw-research", "partner_drop");
    expect(after.systemData?.lastModifiedAt).toEqual(before.systemData?.lastModifiedAt);
    await expect(azure.datastores.heldFingerprint(partner, SALT)).resolves.toBeUndefined();
  });

  it("putSas re-signs a SAS datastore in place; the data plane takes the new SAS and Azure refuses one a dead key signed", async () => {
    const partner = datastoreId(RESEARCH, "mlw-research", "partner_drop");
    const lake = accountId(RESEARCH, "stmllake");
    const target = { accountName: "stmllake", container: "partner" };
    const token = (await azure.datastores.heldSas(partner))!;
    expect(token).toMatch(/sig=/);
    const { blobEndpoint } = await azure.storage.getAccount(lake);
    const probe = (sas: string) =>
      azure.probe.probe({ blobEndpoint, accountName: "stmllake", container: "partner", sas });
    await expect(probe(token)).resolves.toEqual({ ok: true });

    const resigned = (await azure.storage.withKey(lake, "key2", async (key) => signSas(token, target, key)))!;
    keyValues.add(resigned);
    await azure.datastores.putSas(partner, resigned);
    expect((await azure.datastores.heldSas(partner)) === resigned).toBe(true);
    await expect(probe(resigned)).resolves.toEqual({ ok: true });

    const dead = signSas(token, target, deadKey())!;
    keyValues.add(dead);
    await expect(probe(dead)).resolves.toMatchObject({ ok: false, status: 403 });
    const error = await failure(azure.datastores.putSas(partner, dead));
    expect(error).toMatchObject({ statusCode: 400 });
    expect(error.message).toMatch(/refused the SAS token/);
    expect((await azure.datastores.heldSas(partner)) === resigned).toBe(true);
    await expect(azure.datastores.heldKey(partner)).resolves.toBeUndefined();
  });

  it("a key Azure's validation refuses comes back as a 400 that does not contain it", async () => {
    const dead = deadKey();
    keyValues.add(dead);
    const error = await failure(azure.datastores.putKey(features(), dead));
    expect(error).toBeInstanceOf(AzureCallError);
    expect(error).toMatchObject({
      statusCode: 400,
      code: "UserError",
      operation: "datastores.createOrUpdate",
    });
    expect(error.message).toMatch(/refused the account key/);
  });
});

describe("workspaces and Batch", () => {
  it("resync makes the workspace take the account's new key1", async () => {
    const ws = workspaceId(RESEARCH, "mlw-research");
    const account = accountId(RESEARCH, "stmlresearch");
    await admin(emulator, "PATCH", "/settings", { resyncPolicy: "key1" });
    const regenerated = await azure.storage.regenerate(account, "key1", SALT);
    await sdkKeys(RESEARCH, "stmlresearch");
    const stale = observe(await azure.workspaces.heldFingerprint(ws, SALT));
    expect(stale).toBeDefined();
    expect(stale).not.toBe(regenerated.key1.fingerprint);

    await azure.workspaces.resync(ws);

    expect(observe(await azure.workspaces.heldFingerprint(ws, SALT))).toBe(regenerated.key1.fingerprint);
    const sameKey = await azure.workspaces.withHeldKey(ws, async (held) =>
      azure.storage.withKey(account, "key1", async (key1) => held === key1),
    );
    expect(sameKey).toBe(true);
  });

  it("syncAutoStorageKeys moves lastKeySync", async () => {
    const before = observe(await azure.batch.get(batchId()));
    await azure.batch.syncAutoStorageKeys(batchId());
    const after = observe(await azure.batch.get(batchId()));
    expect(Date.parse(after.autoStorage!.lastKeySync!)).toBeGreaterThan(
      Date.parse(before.autoStorage!.lastKeySync!),
    );
  });
});

describe("Key Vault secrets", () => {
  it("publishes a new version with keyturn's tags; heldFingerprint follows it", async () => {
    const account = accountId(PROD, "stmlbatch");
    const snapshot = await azure.storage.snapshot(account, SALT);
    expect(observe(await azure.secrets.heldFingerprint(vaultUrl, "stmlbatch-key", SALT))).toBe(
      snapshot.keys.key1.fingerprint,
    );
    const { version } = observe(
      await azure.storage.withKey(account, "key2", (key) =>
        azure.secrets.publish(vaultUrl, "stmlbatch-key", key, {
          "keyturn-storage-account": account,
          "keyturn-key-name": "key2",
          "keyturn-rotation-id": "rotation-1",
        }),
      ),
    );
    expect(version).toMatch(/^[0-9a-f]{32}$/);
    expect(observe(await azure.secrets.heldFingerprint(vaultUrl, "stmlbatch-key", SALT))).toBe(
      snapshot.keys.key2.fingerprint,
    );
    const stored = await clients.secrets(VAULT).getSecret("stmlbatch-key");
    expect(stored.properties.version).toBe(version);
    expect(stored.properties.tags).toMatchObject({
      "keyturn-storage-account": account,
      "keyturn-key-name": "key2",
      "keyturn-rotation-id": "rotation-1",
    });
    expect(stored.properties.tags?.["keyturn-time"]).toMatch(/Z$/);
    await expect(azure.secrets.heldFingerprint(vaultUrl, "never-published", SALT)).resolves.toBeUndefined();
  });

  it("lists the secrets tagged keyturn-storage-account or keyturn-batch-account; without readMetadata a 403 names that action", async () => {
    const published = observe(await azure.secrets.listPublished(vaultUrl));
    // The Batch account's secret names its holder under its own tag (seed 004, --batch-keys).
    expect(published).toEqual([
      {
        name: "batchmltrain-key",
        storageAccountId: expect.stringMatching(
          /\/providers\/Microsoft\.Batch\/batchAccounts\/batchmltrain$/i,
        ) as string,
        keyName: "key1",
      },
      { name: "stmlbatch-key", storageAccountId: accountId(PROD, "stmlbatch"), keyName: "key2" },
    ]);

    const getSet = createAzure(profileFor(principalWith(emulator, [], [KV_GET, KV_SET])));
    const error = await failure(getSet.secrets.listPublished(vaultUrl));
    expect(error).toBeInstanceOf(AzureCallError);
    expect(error).toMatchObject({ statusCode: 403, operation: "secrets.listPropertiesOfSecrets" });
    expect(error.message).toContain(`the identity lacks ${KV_READ_METADATA} on ${vaultUrl}`);
  });

  it("refuses a vault URL that is not https and a secret name Key Vault would reject, before any call", async () => {
    await expect(azure.secrets.heldFingerprint("http://vault.example", "x", SALT)).rejects.toBeInstanceOf(
      ConfigurationError,
    );
    await expect(azure.secrets.heldFingerprint(vaultUrl, "bad_name", SALT)).rejects.toThrow(
      /not a Key Vault secret name/,
    );
  });
});

describe("ARM call counting", () => {
  it("counts every ARM request of the profile, retries after throttling included", async () => {
    const own = loadCloudProfile({ connectionFile });
    const adapters = createAzure(own, ADAPTER_OPTIONS);
    const id = accountId(PROD, "stmlshared");
    const logged = emulator.requestLog.length;

    await adapters.storage.getAccount(id);
    expect(own.armCalls.toJSON()).toEqual({
      count: 1,
      byOperation: { "GET Microsoft.Storage/storageAccounts/{name}": 1 },
    });

    await admin(emulator, "POST", "/throttle/drain", { subscriptionId: sub, kind: "read" });
    await adapters.storage.getAccount(id);
    await adapters.storage.snapshot(id, SALT);
    await adapters.workspaces.resync(workspaceId(PROD, "mlw-score"));
    expect(own.armCalls.byOperation).toMatchObject({
      "GET Microsoft.Storage/storageAccounts/{name}": 4,
      "POST Microsoft.Storage/storageAccounts/{name}/listKeys": 1,
      "POST Microsoft.MachineLearningServices/workspaces/{name}/resyncKeys": 1,
    });
    expect(own.armCalls.count).toBe(emulator.requestLog.length - logged);
    expect(own.armCalls.count).toBeGreaterThanOrEqual(8); // 4 gets (one throttled), listKeys, resync + polls
    expect(profile.armCalls.count).toBeGreaterThan(0);
    expect(adapters.armCalls).toBe(own.armCalls);
  });

  it("labels operations without resource names", () => {
    expect(
      armOperationOf(
        "get",
        "https://h/subscriptions/s/providers/Microsoft.Batch/batchAccounts?api-version=1",
      ),
    ).toBe("GET Microsoft.Batch/batchAccounts");
    expect(armOperationOf("GET", "https://h/subscriptions?api-version=1")).toBe("GET subscriptions");
    expect(
      armOperationOf(
        "POST",
        "https://h/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w/datastores/d/listSecrets",
      ),
    ).toBe("POST Microsoft.MachineLearningServices/workspaces/{name}/datastores/{name}/listSecrets");
  });
});

describe("errors", () => {
  it("an RBAC denial names the missing action and the resource, and says which role to assign", async () => {
    const reader = createAzure(
      profileFor(principalWith(emulator, ["Microsoft.Storage/storageAccounts/read"])),
    );
    const id = accountId(PROD, "stmlshared");
    await expect(reader.storage.getAccount(id)).resolves.toMatchObject({ name: "stmlshared" });
    const error = await failure(reader.storage.snapshot(id, SALT));
    expect(error).toBeInstanceOf(AzureCallError);
    expect(error).toMatchObject({
      statusCode: 403,
      code: "AuthorizationFailed",
      operation: "storageAccounts.listKeys",
      resourceId: id,
      retryable: false,
    });
    expect(error.message).toContain(
      `the identity lacks Microsoft.Storage/storageAccounts/listKeys/action on ${id}`,
    );
    expect(error.message).toContain("infra/keyturn-role.json");
  });

  it("a denied datastore write, with the key in its request body, names datastores/write and not the key", async () => {
    const writer = createAzure(
      profileFor(
        principalWith(emulator, [
          "Microsoft.Storage/storageAccounts/listKeys/action",
          "Microsoft.MachineLearningServices/workspaces/datastores/read",
        ]),
      ),
    );
    const ds = datastoreId(PROD, "mlw-train", "curated_lake");
    const error = await failure(
      writer.storage.withKey(accountId(RESEARCH, "stmllake"), "key2", (key) =>
        writer.datastores.putKey(ds, key),
      ),
    );
    expect(error).toMatchObject({ statusCode: 403, operation: "datastores.createOrUpdate", resourceId: ds });
    expect(error.message).toContain("Microsoft.MachineLearningServices/workspaces/datastores/write");
  });

  it("a denied Key Vault write names the data action", async () => {
    const noKv = createAzure(
      profileFor(principalWith(emulator, ["Microsoft.Storage/storageAccounts/listKeys/action"])),
    );
    const account = accountId(PROD, "stmlbatch");
    const error = await failure(
      noKv.storage.withKey(account, "key1", (key) =>
        noKv.secrets.publish(vaultUrl, "stmlbatch-key", key, {
          "keyturn-storage-account": account,
          "keyturn-key-name": "key1",
          "keyturn-rotation-id": "denied",
        }),
      ),
    );
    expect(error).toMatchObject({ statusCode: 403, operation: "secrets.setSecret" });
    expect(error.message).toContain(KV_SET);
    expect(error.message).toContain(`${vaultUrl}secrets/stmlbatch-key`);
  });

  it("a 404 names the resource that was not found", async () => {
    const gone = accountId(PROD, "stnosuchaccount");
    const error = await failure(azure.storage.snapshot(gone, SALT));
    expect(error).toMatchObject({ statusCode: 404, code: "ResourceNotFound", resourceId: gone });
    expect(error.message).toContain(`the storage account ${gone} was not found`);

    const ds = datastoreId(RESEARCH, "mlw-research", "no_such_datastore");
    const dsError = await failure(azure.datastores.heldFingerprint(ds, SALT));
    expect(dsError.message).toContain(`the datastore ${ds} was not found`);

    const groupError = await failure(azure.workspaces.resync(workspaceId("rg-gone", "mlw-x")));
    expect(groupError).toMatchObject({ statusCode: 404, code: "ResourceGroupNotFound" });
    expect(groupError.message).toContain("resource group of workspace");
  });

  it("an id of the wrong shape is refused before any request", async () => {
    const before = profile.armCalls.count;
    const error = await failure(azure.storage.getAccount(workspaceId(PROD, "mlw-train")));
    expect(error).toBeInstanceOf(InvalidResourceIdError);
    expect(error.message).toMatch(/is not the ARM id of a storage account: expected \/subscriptions\/\{id\}/);
    await expect(azure.datastores.putKey(workspaceId(PROD, "mlw-train"), "x")).rejects.toBeInstanceOf(
      InvalidResourceIdError,
    );
    expect(profile.armCalls.count).toBe(before);
  });

  it("a 5xx is retryable and keeps Azure's reason; a dropped connection names the host", async () => {
    const id = accountId(PROD, "stmlshared");
    await admin(emulator, "POST", "/faults", {
      operation: "storageAccounts.getProperties",
      count: 10,
      action: { type: "status", status: 503, code: "ServiceUnavailable", message: "try later" },
    });
    const error = await failure(azure.storage.getAccount(id));
    await admin(emulator, "DELETE", "/faults");
    expect(error).toMatchObject({ statusCode: 503, code: "ServiceUnavailable", retryable: true });
    expect(error.message).toMatch(/the service failed; retry later\. Azure said: try later/);

    await admin(emulator, "POST", "/faults", {
      operation: "storageAccounts.getProperties",
      count: 10,
      action: { type: "drop" },
    });
    const dropped = await failure(azure.storage.getAccount(id));
    await admin(emulator, "DELETE", "/faults");
    expect(dropped).toMatchObject({ retryable: true, statusCode: undefined });
    expect(dropped.message).toContain(`no answer from ${new URL(emulator.connection.armEndpoint).host}`);
  });

  it("a provider never registered in a subscription means none of its resources there; other errors still fail", async () => {
    const unregistered = (operation: string, code: string, status: number) =>
      admin(emulator, "POST", "/faults", {
        operation,
        count: 5,
        action: { type: "status", status, code, message: "injected" },
      });
    await unregistered("batchAccounts.list", "MissingSubscriptionRegistration", 409);
    await unregistered("workspaces.listBySubscription", "MissingSubscriptionRegistration", 409);
    const [batch, workspaces] = [await azure.batch.list(sub), await azure.workspaces.list(sub)];
    await admin(emulator, "DELETE", "/faults");
    expect(batch).toEqual([]);
    expect(workspaces).toEqual([]);
    await unregistered("batchAccounts.list", "AuthorizationFailed", 403);
    const error = await failure(azure.batch.list(sub));
    await admin(emulator, "DELETE", "/faults");
    expect(error).toMatchObject({ statusCode: 403 });
  });
});

describe("helpers", () => {
  it("withRetry retries what is retryable, with the injected delays, and gives up after `retries`", async () => {
    const waits: number[] = [];
    const sleep = async (ms: number) => {
      waits.push(ms);
    };
    let calls = 0;
    const flaky = () => {
      calls++;
      return calls < 3 ? Promise.reject(new Error("transient")) : Promise.resolve("done");
    };
    await expect(
      withRetry(flaky, { retries: 3, delays: [10, 20], isRetryable: () => true, sleep }),
    ).resolves.toBe("done");
    expect(waits).toEqual([10, 20]);

    waits.length = 0;
    calls = 0;
    await expect(
      withRetry(() => (calls++, Promise.reject(new Error("always"))), {
        retries: 2,
        delays: [5],
        isRetryable: () => true,
        sleep,
      }),
    ).rejects.toThrow("always");
    expect(calls).toBe(3);
    expect(waits).toEqual([5, 5]);

    calls = 0;
    await expect(
      withRetry(() => (calls++, Promise.reject(new Error("fatal"))), {
        retries: 5,
        delays: [1],
        isRetryable: () => false,
        sleep,
      }),
    ).rejects.toThrow("fatal");
    expect(calls).toBe(1);
  });

  it("redact removes known values and key-shaped text, and leaves ARM ids and sentences alone", () => {
    const key = deadKey();
    const id = accountId(PROD, "stmlshared");
    expect(redact(`key ${key} on ${id}`)).toBe(`key [redacted] on ${id}`);
    expect(redact("short secret-value here", ["secret-value"])).toBe("short [redacted] here");
    const sentence = "The client with object id does not have authorization to perform action over scope";
    expect(redact(sentence)).toBe(sentence);
    const longPath = "/resourceGroups/rg2024production/providers/Microsoft/storageAccounts/stmlshared2024";
    expect(redact(longPath)).toBe(longPath);
  });
});

describe("secret hygiene (I3)", () => {
  it("no key value read through the SDK appears in anything the adapters returned or threw", async () => {
    // Keys as they are at the end, too: the regenerated ones were read by the adapters as well.
    for (const [rg, account] of [
      [PROD, "stmlshared"],
      [PROD, "stmlbatch"],
      [RESEARCH, "stmlresearch"],
      [RESEARCH, "stmllake"],
    ] as const) {
      await sdkKeys(rg, account);
    }
    const published = await clients.secrets(VAULT).getSecret("stmlbatch-key");
    if (published.value) keyValues.add(published.value);
    expect(keyValues.size).toBeGreaterThanOrEqual(12);
    expect(observed.length).toBeGreaterThan(30);
    const leaks = observed.filter((text) => [...keyValues].some((key) => text.includes(key)));
    expect(leaks).toEqual([]);
  });
});
