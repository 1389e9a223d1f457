import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Emulator } from "../../emulator";
import { CLASSIC_DEMO_ACCOUNT } from "../../emulator/estates";
import { AzureCallError, ConfigurationError, KeyturnError } from "../../shared/errors";
import { fingerprint } from "../../shared/rotation/fingerprint";
import {
  ArmCallCounter,
  ClassicStorageKeys,
  PUBLIC_SERVICE_MANAGEMENT_ENDPOINT,
  createAzure,
  loadCloudProfile,
  type Azure,
  type CloudProfile,
  type CreateAzureOptions,
} from "../../shared/azure";
import { admin, principalWith, startTestEmulator } from "../helpers/emulator";
import { regenerationCounts } from "../helpers/estate";
import { observer } from "../helpers/observed";
import { keysPath, serviceManagement, storageServiceKeys, tokenFor } from "../helpers/classic";

/**
 * The classic storage account adapter (shared/azure/classic.ts) against the emulator: ARM discovery of
 * Microsoft.ClassicStorage, keys through Service Management, behind the same StorageKeys as ARM accounts.
 * Key values are read only by the test's own raw calls, and none may appear in what the adapter returned
 * or threw (I3).
 */

const LEGACY = CLASSIC_DEMO_ACCOUNT;
const RESEARCH = "rg-ml-research";
const SALT = "classic-salt-a";
const OPTIONS: CreateAzureOptions = {
  armRetry: { retryDelayInMs: 5, maxRetryDelayInMs: 20 },
  probe: { retry: { delays: [5] } },
};

let emulator: Emulator;
let dir: string;
let connectionFile: string;
let profile: CloudProfile;
let azure: Azure;
let sub: string;
const keyValues = new Set<string>();
const { observed, observe, failure } = observer();

const legacyId = (name = LEGACY): string =>
  `/subscriptions/${sub}/resourceGroups/${RESEARCH}/providers/Microsoft.ClassicStorage/storageAccounts/${name}`;

/** The classic account's keys as Service Management answers them (key1 = Primary, key2 = Secondary). */
async function smKeys(): Promise<{ key1: string; key2: string }> {
  const answer = await serviceManagement(emulator, "GET", keysPath(emulator, LEGACY), {
    token: await tokenFor(emulator),
  });
  const { primary, secondary } = storageServiceKeys(answer);
  keyValues.add(primary).add(secondary);
  return { key1: primary, key2: secondary };
}

beforeAll(async () => {
  ({ emulator } = await startTestEmulator());
  sub = emulator.connection.subscriptionIds[0]!;
  dir = mkdtempSync(join(tmpdir(), "keyturn-classic-"));
  connectionFile = join(dir, "connection.json");
  writeFileSync(connectionFile, JSON.stringify(emulator.connection));
  profile = loadCloudProfile({ connectionFile, env: {} });
  azure = createAzure(profile, OPTIONS);
  await smKeys();
});

afterAll(async () => {
  await emulator?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the cloud profile", () => {
  it("takes Service Management's endpoint from the connection file, and knows the public and sovereign clouds'", () => {
    expect(profile.serviceManagementEndpoint).toBe(emulator.connection.serviceManagementEndpoint);
    expect(profile.serviceManagementEndpoint).not.toBe(profile.armEndpoint);
    expect(loadCloudProfile({ env: {} }).serviceManagementEndpoint).toBe(PUBLIC_SERVICE_MANAGEMENT_ENDPOINT);
    expect(PUBLIC_SERVICE_MANAGEMENT_ENDPOINT).toBe("https://management.core.windows.net");
    const cloud = (armEndpoint: string, extra: Record<string, string> = {}) =>
      loadCloudProfile({
        env: { KEYTURN_ARM_ENDPOINT: armEndpoint, KEYTURN_AUTHORITY_HOST: "https://login.example", ...extra },
      }).serviceManagementEndpoint;
    expect(cloud("https://management.usgovcloudapi.net/")).toBe("https://management.core.usgovcloudapi.net");
    expect(cloud("https://management.chinacloudapi.cn")).toBe("https://management.core.chinacloudapi.cn");
    expect(cloud("https://management.local.azurestack.external")).toBeUndefined();
    expect(
      cloud("https://management.local.azurestack.external", {
        KEYTURN_SERVICE_MANAGEMENT_ENDPOINT: "https://sm.local.azurestack.external/",
      }),
    ).toBe("https://sm.local.azurestack.external");
    expect(() =>
      cloud("https://management.azure.com", { KEYTURN_SERVICE_MANAGEMENT_ENDPOINT: "http://sm" }),
    ).toThrow(ConfigurationError);
  });
});

describe("discovery", () => {
  it("lists the classic account beside the ARM ones, with its blob endpoint and no key creation times", async () => {
    const accounts = observe(await azure.storage.listAccounts(sub));
    const legacy = accounts.find((a) => a.name === LEGACY);
    expect(legacy).toEqual({
      id: legacyId(),
      name: LEGACY,
      subscriptionId: sub,
      resourceGroup: RESEARCH,
      tags: {},
      keyCreationTime: {},
      blobEndpoint: legacy?.blobEndpoint,
    });
    expect(legacy?.blobEndpoint).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/${LEGACY}/$`));
    expect(accounts.filter((a) => a.name === LEGACY)).toHaveLength(1);
    expect(accounts.map((a) => a.name)).toEqual(expect.arrayContaining(["stmlshared", "stmlresearch"]));
    await expect(azure.storage.getAccount(legacyId())).resolves.toEqual(legacy);
  });
});

describe("keys through Service Management", () => {
  it("fingerprints Primary as key1 and Secondary as key2, with no creation times", async () => {
    const keys = await smKeys();
    const snapshot = observe(await azure.storage.snapshot(legacyId(), SALT));
    expect(snapshot.keys).toEqual({
      key1: { fingerprint: fingerprint(keys.key1, SALT) },
      key2: { fingerprint: fingerprint(keys.key2, SALT) },
    });
    expect(snapshot).toMatchObject({ name: LEGACY, resourceGroup: RESEARCH });
    await expect(azure.storage.fingerprints(legacyId(), SALT)).resolves.toEqual({
      key1: snapshot.keys.key1.fingerprint,
      key2: snapshot.keys.key2.fingerprint,
    });
  });

  it("regenerates exactly one key with Regenerate Keys; the old one is refused by the data plane at once", async () => {
    const before = await smKeys();
    const counts = regenerationCounts(emulator)[LEGACY] ?? { key1: 0, key2: 0 };
    const keys = observe(await azure.storage.regenerate(legacyId(), "key2", SALT));
    const after = await smKeys();
    expect(after.key1).toBe(before.key1);
    expect(after.key2).not.toBe(before.key2);
    expect(keys).toEqual({
      key1: { fingerprint: fingerprint(before.key1, SALT) },
      key2: { fingerprint: fingerprint(after.key2, SALT) },
    });
    expect(regenerationCounts(emulator)[LEGACY]).toEqual({ key1: counts.key1, key2: counts.key2 + 1 });
    const last = emulator.requestLog.filter((e) => e.operation === "storageServices.regenerateKeys").at(-1);
    expect(last).toMatchObject({ method: "POST", status: 200, clientId: emulator.connection.clientId });

    const { blobEndpoint } = await azure.storage.getAccount(legacyId());
    const target = { blobEndpoint, accountName: LEGACY, container: "archive" };
    await expect(azure.probe.probe({ ...target, key: before.key2 })).resolves.toMatchObject({
      ok: false,
      status: 403,
    });
    const live = await azure.storage.withKey(legacyId(), "key2", (key) =>
      azure.probe.probe({ ...target, key }),
    );
    expect(observe(live)).toEqual({ ok: true });
  });

  it("hands regenerate's `use` the new key and reads the keys once per reader", async () => {
    const logged = () => emulator.requestLog.filter((e) => e.operation === "storageServices.getKeys").length;
    const reader = azure.storage.reader(legacyId());
    const calls = logged();
    const [one, two] = [await reader.value("key1"), await reader.value("key2")];
    expect(reader.used).toBe(true);
    expect(logged()).toBe(calls + 1);
    const probed: boolean[] = [];
    await azure.storage.regenerate(legacyId(), "key1", SALT, async (value) => {
      probed.push(value !== one && value !== two);
    });
    expect(probed).toEqual([true]);
  });

  it("an error thrown with a key inside comes out redacted", async () => {
    const error = await failure(
      azure.storage.withKey(legacyId(), "key1", async (key) => {
        throw new Error(`a careless message with ${key} in it`);
      }),
    );
    expect(error).toBeInstanceOf(KeyturnError);
    expect(error.message).toBe("a careless message with [redacted] in it");
  });

  it("counts Service Management calls with the profile's ARM calls, labelled without names", async () => {
    const own = loadCloudProfile({ connectionFile });
    const adapters = createAzure(own, OPTIONS);
    await adapters.storage.snapshot(legacyId(), SALT);
    expect(own.armCalls.toJSON()).toEqual({
      count: 2,
      byOperation: {
        "GET Microsoft.ClassicStorage/storageAccounts/{name}": 1,
        "GET ServiceManagement/storageservices/{name}/keys": 1,
      },
    });
  });
});

describe("errors", () => {
  it("a classic account Service Management does not know is a 404 naming it", async () => {
    const error = await failure(azure.storage.fingerprints(legacyId("stmlgone"), SALT));
    expect(error).toBeInstanceOf(AzureCallError);
    expect(error).toMatchObject({
      statusCode: 404,
      code: "ResourceNotFound",
      operation: "storageServices.getKeys",
    });
    expect(error.message).toContain(legacyId("stmlgone"));
    expect(error.message).toMatch(/was not found/);
  });

  it("without Service Management's endpoint the keys fail naming the setting, before any request", async () => {
    const { serviceManagementEndpoint: _, ...withoutEndpoint } = profile;
    const adapter = new ClassicStorageKeys({ ...withoutEndpoint, armCalls: new ArmCallCounter() }, OPTIONS);
    const error = await failure(adapter.fingerprints(legacyId(), SALT));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toContain("KEYTURN_SERVICE_MANAGEMENT_ENDPOINT");
    expect(error.message).toContain(legacyId());
  });

  it("a denied regeneration names the Microsoft.ClassicStorage action and the role, and changes nothing", async () => {
    const lacking = principalWith(emulator, [
      "Microsoft.ClassicStorage/storageAccounts/read",
      "Microsoft.ClassicStorage/storageAccounts/listKeys/action",
    ]);
    const adapters = createAzure(
      { ...profile, credential: lacking.credential, armCalls: new ArmCallCounter() },
      OPTIONS,
    );
    const counts = regenerationCounts(emulator)[LEGACY];
    const error = await failure(adapters.storage.regenerate(legacyId(), "key1", SALT));
    expect(error).toBeInstanceOf(AzureCallError);
    expect(error).toMatchObject({ statusCode: 403 });
    expect(error.message).toContain("Microsoft.ClassicStorage/storageAccounts/regenerateKey/action");
    expect(error.message).toContain("infra/keyturn-role.json");
    expect(regenerationCounts(emulator)[LEGACY]).toEqual(counts);
  });

  it("a 5xx on Regenerate Keys is not retried by the client (I4), and is retryable for the activity", async () => {
    await admin(emulator, "POST", "/faults", {
      operation: "storageServices.regenerateKeys",
      action: { type: "status", status: 503, code: "ServerBusy" },
    });
    const before = emulator.requestLog.filter((e) => e.operation === "storageServices.regenerateKeys").length;
    const counts = regenerationCounts(emulator)[LEGACY];
    const error = await failure(azure.storage.regenerate(legacyId(), "key1", SALT));
    expect(error).toMatchObject({ statusCode: 503, retryable: true });
    expect(emulator.requestLog.filter((e) => e.operation === "storageServices.regenerateKeys")).toHaveLength(
      before + 1,
    );
    expect(regenerationCounts(emulator)[LEGACY]).toEqual(counts);
  });

  it("reads are retried after a 5xx like ARM reads", async () => {
    const keys = await smKeys();
    await admin(emulator, "POST", "/faults", {
      operation: "storageServices.getKeys",
      action: { type: "status", status: 500, code: "InternalError" },
    });
    const before = emulator.requestLog.filter((e) => e.operation === "storageServices.getKeys").length;
    await expect(azure.storage.fingerprints(legacyId(), SALT)).resolves.toEqual({
      key1: fingerprint(keys.key1, SALT),
      key2: fingerprint(keys.key2, SALT),
    });
    const after = emulator.requestLog.filter((e) => e.operation === "storageServices.getKeys").slice(before);
    expect(after.map((e) => e.status)).toEqual([500, 200]);
  });
});

describe("secret hygiene (I3)", () => {
  it("no classic key value appears in anything the adapter returned or threw", async () => {
    await smKeys();
    expect(keyValues.size).toBeGreaterThanOrEqual(4);
    expect(observed.length).toBeGreaterThan(8);
    expect(observed.filter((text) => [...keyValues].some((key) => text.includes(key)))).toEqual([]);
  });
});
