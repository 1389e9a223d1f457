import { join } from "node:path";
import type { ContainerRegistryManagementClient } from "@azure/arm-containerregistry";
import type { Emulator } from "../../emulator";
import { describeEmulator } from "../../emulator/describe";
import { projectRoot } from "../../emulator/paths";
import { loadRoleDefinition } from "../../emulator/rbac";
import { admin, principalWith, startTestEmulator, type Clients } from "../helpers/emulator";
import { consumers, DEMO_BATCH_ACCOUNT as BATCH, whileEntraIdOnly } from "../helpers/estate";
import {
  DEMO_REGISTRY as REGISTRY,
  keyturnWithRegistryActions,
  registryClient,
  registryPasswordValues,
} from "../helpers/registry";

/**
 * The outage log (invariant I1) over the keys that are not storage keys: a Batch account's shared keys
 * held by an app reading a Key Vault secret (`batch-submitter` of `batchmltrain-key`), and the
 * container registry admin password a workspace holds (mlw-train's of crmlwtrain).
 */

interface Outages {
  outages: {
    consumerId: string;
    kind: string;
    name: string;
    end?: string;
    cause: string;
    resolvedBy?: string;
  }[];
  probeFailures: { consumerId: string }[];
}

const PROD = "rg-ml-prod";
const VAULT = "kv-keyturn-demo";
const SECRET = "batchmltrain-key";
const READER = "batch-submitter";
const READER_ID = `${VAULT}/${SECRET}#${READER}`;
const WORKSPACE = "mlw-train";

let emulator: Emulator;
/** keyturn (Key Vault, workspaces) */
let clients: Clients;
/** A principal that may also list and regenerate Batch keys and registry passwords. */
let operator: Clients;
let acr: ContainerRegistryManagementClient;

const registryHolderId = (): string =>
  `/subscriptions/${emulator.connection.subscriptionIds[0]!}/resourceGroups/${PROD}/providers/Microsoft.MachineLearningServices/workspaces/${WORKSPACE}/containerRegistry`;

async function outageLog(): Promise<Outages> {
  return (await admin(emulator, "GET", "/outages")).body as Outages;
}

async function outagesOf(consumerId: string): Promise<Outages["outages"]> {
  return (await outageLog()).outages.filter((o) => o.consumerId === consumerId);
}

async function held(id: string): Promise<string | null | undefined> {
  return (await consumers(emulator)).find((c) => c.id === id)?.heldKeyName;
}

async function batchKeys(): Promise<{ primary: string; secondary: string }> {
  const keys = await operator.batch.batchAccountOperations.getKeys(PROD, BATCH);
  return { primary: keys.primary!, secondary: keys.secondary! };
}

async function publish(value: string): Promise<void> {
  await clients.secrets(VAULT).setSecret(SECRET, value);
}

async function regenerateBatch(keyName: "Primary" | "Secondary"): Promise<void> {
  await operator.batch.batchAccountOperations.regenerateKey(PROD, BATCH, { keyName });
}

async function resync(registryResyncPick: "password" | "password2"): Promise<void> {
  expect((await admin(emulator, "PATCH", "/settings", { registryResyncPick })).status).toBe(200);
  await clients.ml.workspaces.beginResyncKeysAndWait(PROD, WORKSPACE, { updateIntervalInMs: 10 });
}

beforeAll(async () => {
  ({ emulator, clients } = await startTestEmulator({ settings: { resyncPolls: 1 } }));
  const batchRole = loadRoleDefinition(join(projectRoot(), "infra/keyturn-batch-role.json"));
  operator = principalWith(emulator, [...keyturnWithRegistryActions(), ...batchRole.Actions]);
  acr = registryClient(emulator, operator);
});
afterAll(async () => {
  await emulator?.stop();
});
beforeEach(async () => {
  await admin(emulator, "DELETE", "/outages");
});

describe("Batch shared keys and registry passwords in the outage log", () => {
  it("starts with the Batch key reader and the workspace's registry password on key1, and no outage", async () => {
    const state = await consumers(emulator);
    expect(state.find((c) => c.id === READER_ID)).toMatchObject({
      kind: "batchKeyReader",
      name: READER,
      resource: "batchAccount",
      storageAccountName: BATCH,
      heldKeyName: "key1",
    });
    expect(state.find((c) => c.id === registryHolderId())).toMatchObject({
      kind: "workspaceRegistry",
      resource: "containerRegistry",
      storageAccountName: REGISTRY,
      heldKeyName: "key1",
    });
    expect((await outageLog()).outages).toEqual([]);
    // The description names what they hold, never a value.
    const text = describeEmulator(emulator);
    expect(text).toMatch(new RegExp(`Batch account ${BATCH}: .*; ${READER} holds key1`));
    expect(text).toMatch(
      new RegExp(
        `Key Vault reader ${READER}: reads ${VAULT}/${SECRET} \\(Batch account ${BATCH}\\), holds key1`,
      ),
    );
    expect(text).toMatch(
      new RegExp(`Container registry ${REGISTRY} .*; ${WORKSPACE} holds password \\(key1\\)`),
    );
    const keys = await batchKeys();
    expect(text.includes(keys.primary) || text.includes(keys.secondary)).toBe(false);
  });

  it("regenerating the Batch primary while the reader's secret holds it opens an outage, closed by a new version", async () => {
    await regenerateBatch("Primary");
    const [open] = await outagesOf(READER_ID);
    expect(open).toMatchObject({
      kind: "batchKeyReader",
      name: READER,
      cause: `regenerateKeys ${BATCH}/primary`,
    });
    expect(open!.end).toBeUndefined();
    expect(await held(READER_ID)).toBeNull();

    // The jobs probe storage containers only: the reader holds no blob container, so no probe of it.
    await admin(emulator, "POST", "/consumers/tick");
    expect((await outageLog()).probeFailures.filter((f) => f.consumerId === READER_ID)).toEqual([]);

    await publish((await batchKeys()).primary);
    const [closed] = await outagesOf(READER_ID);
    expect(closed?.end).toBeDefined();
    expect(closed?.resolvedBy).toBe("key vault secret set");
    expect(await held(READER_ID)).toBe("key1");
  });

  it("publishing the secondary first, then regenerating the primary, opens no outage", async () => {
    await publish((await batchKeys()).secondary);
    expect(await held(READER_ID)).toBe("key2");
    await regenerateBatch("Primary");
    expect(await held(READER_ID)).toBe("key2");
    expect((await outageLog()).outages).toEqual([]);
  });

  it("an Entra-ID-only Batch account's keys are not live: its key readers are in an outage until SharedKey is back", async () => {
    await whileEntraIdOnly(emulator, BATCH, async () => {
      const [open] = await outagesOf(READER_ID);
      expect(open).toMatchObject({
        kind: "batchKeyReader",
        cause: expect.stringContaining("allowedAuthenticationModes") as string,
      });
      expect(open!.end).toBeUndefined();
      // It still holds key2 (the name is the key's, whether or not the account accepts it).
      expect(await held(READER_ID)).toBe("key2");
    });
    const [closed] = await outagesOf(READER_ID);
    expect(closed?.end).toBeDefined();
    // Only the shared-key reader: auto-storage holds a storage key, which the mode does not touch.
    expect((await outageLog()).outages.map((o) => o.consumerId)).toEqual([READER_ID]);
  });

  it("regenerating the password the workspace holds opens an outage for it, closed by a resync", async () => {
    await resync("password");
    expect(await held(registryHolderId())).toBe("key1");
    await acr.registries.regenerateCredential(PROD, REGISTRY, { name: "password" });
    const [open] = await outagesOf(registryHolderId());
    expect(open).toMatchObject({
      kind: "workspaceRegistry",
      name: `${WORKSPACE}/registry ${REGISTRY}`,
      cause: `regenerateCredential ${REGISTRY}/password`,
    });
    expect(open!.end).toBeUndefined();
    expect(await held(registryHolderId())).toBeNull();
    expect(describeEmulator(emulator)).toContain(`${WORKSPACE} holds a dead password`);

    await resync("password");
    const [closed] = await outagesOf(registryHolderId());
    expect(closed?.end).toBeDefined();
    expect(await held(registryHolderId())).toBe("key1");
  });

  it("a resync to the other password first, then regenerating the first, opens no outage", async () => {
    await resync("password2");
    expect(await held(registryHolderId())).toBe("key2");
    const before = await registryPasswordValues(acr, PROD, REGISTRY);
    await acr.registries.regenerateCredential(PROD, REGISTRY, { name: "password" });
    const after = await registryPasswordValues(acr, PROD, REGISTRY);
    expect(after.password).not.toBe(before.password);
    expect(await held(registryHolderId())).toBe("key2");
    expect((await outageLog()).outages).toEqual([]);
  });

  it("no registry password is live while the admin user is disabled", async () => {
    const registry = [...emulator.ctx.estate.registries.values()].find((r) => r.name === REGISTRY)!;
    registry.adminUserEnabled = false;
    try {
      await emulator.ctx.changed("admin user disabled");
      expect((await outagesOf(registryHolderId())).map((o) => o.end)).toEqual([undefined]);
    } finally {
      registry.adminUserEnabled = true;
      await emulator.ctx.changed("admin user enabled");
    }
    expect((await outagesOf(registryHolderId()))[0]?.resolvedBy).toBe("admin user enabled");
  });
});
