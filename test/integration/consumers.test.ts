import type { Emulator } from "../../emulator";
import { admin, startTestEmulator, type Clients } from "../helpers/emulator";

interface State {
  consumers: {
    kind: string;
    id: string;
    name: string;
    storageAccountName: string;
    heldKeyName: string | null;
  }[];
}
interface Outages {
  outages: { consumerId: string; kind: string; start: string; end?: string; cause: string }[];
  probeFailures: { consumerId: string }[];
  probes: number;
}

let emulator: Emulator;
let clients: Clients;

beforeAll(async () => {
  ({ emulator, clients } = await startTestEmulator());
});
afterAll(async () => {
  await emulator?.stop();
});
beforeEach(async () => {
  await admin(emulator, "DELETE", "/outages");
});

describe("consumers and the outage log", () => {
  it("starts with every AccountKey consumer of the demo estate on a live key and no outage", async () => {
    const state = (await admin(emulator, "GET", "/state")).body as State;
    const kinds = new Set(state.consumers.map((c) => c.kind));
    // SAS datastores hold the key that signed their SAS (user delegation and expired SAS hold none).
    // batchKeyReader holds a Batch shared key, workspaceRegistry a registry admin password (both key1 at
    // start): consumers-keys.test.ts covers them.
    expect(kinds).toEqual(
      new Set([
        "workspace",
        "datastore",
        "sasDatastore",
        "batchAutoStorage",
        "keyVaultReader",
        "batchKeyReader",
        "workspaceRegistry",
      ]),
    );
    expect(
      state.consumers
        .filter((c) => c.kind === "sasDatastore")
        .map((c) => c.name)
        .sort(),
    ).toEqual(["mlw-research/partner_drop", "mlw-score/vendor_features"]);
    expect(state.consumers.every((c) => c.heldKeyName === "key1")).toBe(true);
    expect(((await admin(emulator, "GET", "/outages")).body as Outages).outages).toEqual([]);
  });

  it("opens an outage for every consumer of a key regenerated behind their back, and the jobs see 403", async () => {
    const before = (await admin(emulator, "GET", "/state")).body as State;
    const onBatch = before.consumers.filter((c) => c.storageAccountName === "stmlbatch").map((c) => c.id);
    expect(onBatch.length).toBe(3); // a datastore, Batch auto-storage, the Key Vault reader

    expect(
      (await admin(emulator, "POST", "/storageAccounts/stmlbatch/regenerateKey", { keyName: "key1" })).status,
    ).toBe(204);
    const log = (await admin(emulator, "GET", "/outages")).body as Outages;
    expect(log.outages.map((o) => o.consumerId).sort()).toEqual([...onBatch].sort());
    expect(log.outages.every((o) => o.end === undefined && o.cause.includes("stmlbatch/key1"))).toBe(true);

    await admin(emulator, "POST", "/consumers/tick");
    const probed = (await admin(emulator, "GET", "/outages")).body as Outages;
    // The datastore job probes its container with the dead key and is refused by Azurite.
    expect(probed.probeFailures.map((f) => f.consumerId)).toEqual(
      expect.arrayContaining([onBatch.find((id) => id.includes("/datastores/"))]),
    );
  });

  it("closes an outage when the consumer is moved to a live key", async () => {
    await admin(emulator, "POST", "/storageAccounts/stmlresearch/regenerateKey", { keyName: "key1" });
    const keys = await clients.storage.storageAccounts.listKeys("rg-ml-research", "stmlresearch");
    const key2 = keys.keys!.find((k) => k.keyName === "key2")!.value!;
    const ds = await clients.ml.datastores.get("rg-ml-research", "mlw-research", "workspaceblobstore");
    const properties = {
      ...ds.properties,
      credentials: { credentialsType: "AccountKey", secrets: { secretsType: "AccountKey", key: key2 } },
    };
    await clients.ml.datastores.createOrUpdate("rg-ml-research", "mlw-research", "workspaceblobstore", {
      properties: properties as typeof ds.properties,
    });
    const log = (await admin(emulator, "GET", "/outages")).body as Outages;
    const moved = log.outages.find((o) =>
      o.consumerId.endsWith("mlw-research/datastores/workspaceblobstore"),
    );
    expect(moved?.end).toBeDefined();
    const open = log.outages.filter((o) => o.end === undefined).map((o) => o.consumerId);
    expect(open.some((id) => id.endsWith("/workspaces/mlw-research"))).toBe(true);
  });

  it("rejects invalid settings as a whole and changes nothing", async () => {
    const res = await admin(emulator, "PATCH", "/settings", { resyncPolicy: "consumers", latency: "slow" });
    expect(res.status).toBe(400);
    expect(((await admin(emulator, "GET", "/settings")).body as { resyncPolicy: string }).resyncPolicy).toBe(
      "key1",
    );
  });

  it("answers bad admin input with 400/404 and keeps serving", async () => {
    expect((await admin(emulator, "POST", "/faults", { action: {} })).status).toBe(400);
    expect(
      (await admin(emulator, "POST", "/storageAccounts/nope/regenerateKey", { keyName: "key1" })).status,
    ).toBe(404);
    expect((await admin(emulator, "DELETE", "/workspaces/mlw-train/datastores/nope")).status).toBe(404);
    expect((await admin(emulator, "GET", "/state")).status).toBe(200);
  });
});
