import { SecretClient } from "@azure/keyvault-secrets";
import { startTestEmulator, admin, type Clients } from "../helpers/emulator";
import { regenerationCounts } from "../helpers/estate";
import type { Emulator } from "../../emulator";

/**
 * The fault kinds the chaos matrix needs beyond status codes before the service: an answer lost after
 * the write took effect, and Key Vault data-plane faults. Real SDK clients, so retries are the SDK's.
 */
let emulator: Emulator;
let clients: Clients;
const RG = "rg-ml-prod";

beforeAll(async () => {
  ({ emulator, clients } = await startTestEmulator());
});
afterAll(async () => {
  await emulator?.stop();
});
afterEach(async () => {
  await admin(emulator, "DELETE", "/faults");
});

describe("a fault that strikes after the work (when: after)", () => {
  it("regenerates the key and then loses the answer, so a client that retries regenerates twice", async () => {
    const before = regenerationCounts(emulator).stmlbatch ?? { key1: 0, key2: 0 };
    await admin(emulator, "POST", "/faults", {
      operation: "storageAccounts.regenerateKey",
      action: { type: "drop", when: "after" },
    });
    // The SDK retries a dropped connection: the second POST regenerates again.
    await clients.storage.storageAccounts.regenerateKey(RG, "stmlbatch", { keyName: "key2" });
    expect(regenerationCounts(emulator).stmlbatch).toEqual({ key1: before.key1, key2: before.key2 + 2 });
  });

  it("answers the injected status after the service wrote, where a before-fault writes nothing", async () => {
    const before = regenerationCounts(emulator).stmlbatch ?? { key1: 0, key2: 0 };
    await admin(emulator, "POST", "/faults", {
      operation: "storageAccounts.regenerateKey",
      action: { type: "status", status: 409, code: "Conflict" },
    });
    await expect(
      clients.storage.storageAccounts.regenerateKey(RG, "stmlbatch", { keyName: "key1" }),
    ).rejects.toMatchObject({ statusCode: 409 });
    expect(regenerationCounts(emulator).stmlbatch).toEqual(before);
    await admin(emulator, "POST", "/faults", {
      operation: "storageAccounts.regenerateKey",
      action: { type: "status", status: 409, code: "Conflict", when: "after" },
    });
    await expect(
      clients.storage.storageAccounts.regenerateKey(RG, "stmlbatch", { keyName: "key1" }),
    ).rejects.toMatchObject({ statusCode: 409 });
    expect(regenerationCounts(emulator).stmlbatch).toEqual({ ...before, key1: before.key1 + 1 });
  });
});

describe("a held request (action hold)", () => {
  it("waits unanswered until released, then does its work even though its caller gave up", async () => {
    const before = regenerationCounts(emulator).stmlbatch ?? { key1: 0, key2: 0 };
    await admin(emulator, "POST", "/faults", {
      operation: "storageAccounts.regenerateKey",
      action: { type: "hold" },
    });
    const abort = new AbortController();
    const call = clients.storage.storageAccounts.regenerateKey(
      RG,
      "stmlbatch",
      { keyName: "key2" },
      { abortSignal: abort.signal },
    );
    let held: { id: string; operation?: string }[] = [];
    while (held.length === 0) {
      await new Promise((r) => setTimeout(r, 10));
      held = (await admin(emulator, "GET", "/holds")).body as typeof held;
    }
    expect(held[0]!.operation).toBe("storageAccounts.regenerateKey");
    abort.abort(); // the caller is gone, as a killed process is
    await expect(call).rejects.toThrow();
    expect(regenerationCounts(emulator).stmlbatch).toEqual(before);
    const released = await admin(emulator, "POST", "/holds/release", { id: held[0]!.id });
    expect(released.body).toHaveLength(1);
    while ((regenerationCounts(emulator).stmlbatch?.key2 ?? 0) === before.key2)
      await new Promise((r) => setTimeout(r, 10));
    expect(regenerationCounts(emulator).stmlbatch).toEqual({ ...before, key2: before.key2 + 1 });
    expect((await admin(emulator, "GET", "/holds")).body).toEqual([]);
  });
});

describe("Key Vault data-plane faults (operation keyVault.*)", () => {
  it("answers 503 to the vault's callers while the rule lasts, and never strikes ARM", async () => {
    await admin(emulator, "POST", "/faults", {
      operation: "keyVault",
      count: 10,
      action: { type: "status", status: 503, code: "ServiceUnavailable" },
    });
    // ARM is untouched by a Key Vault rule.
    await expect(clients.storage.storageAccounts.getProperties(RG, "stmlbatch")).resolves.toBeDefined();
    // Without retries, so the test sees the first answer.
    const secrets = new SecretClient(emulator.connection.vaults["kv-keyturn-demo"]!, clients.credential, {
      disableChallengeResourceVerification: true,
      tlsOptions: { ca: emulator.caCert },
      retryOptions: { maxRetries: 0 },
    });
    await expect(secrets.getSecret("stmlbatch-key")).rejects.toMatchObject({ statusCode: 503 });
    const left = (await admin(emulator, "GET", "/faults")).body as { count: number }[];
    expect(left[0]?.count).toBe(9);
  });

  it("picks calls by operation: a rule for setSecret leaves reads alone", async () => {
    await admin(emulator, "POST", "/faults", {
      operation: "keyVault.setSecret",
      count: 1,
      action: { type: "status", status: 503 },
    });
    const secrets = clients.secrets("kv-keyturn-demo");
    await expect(secrets.getSecret("stmlbatch-key")).resolves.toMatchObject({ name: "stmlbatch-key" });
    expect(((await admin(emulator, "GET", "/faults")).body as unknown[]).length).toBe(1);
  });
});

describe("the fault rules the admin API accepts", () => {
  it.each([
    [{ action: { type: "status", status: 200 } }, /status must be an HTTP error status/],
    [{ action: { type: "explode" } }, /unknown action.type 'explode'/],
    [{ action: { type: "drop", when: "later" } }, /action.when must be 'before' or 'after'/],
    [{ action: { type: "drop" }, count: 0 }, /count must be an integer >= 1/],
  ])("refuses %j naming what to fix", async (rule, message) => {
    const res = await admin(emulator, "POST", "/faults", rule);
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toMatch(message);
    expect((await admin(emulator, "GET", "/faults")).body).toEqual([]);
  });
});
