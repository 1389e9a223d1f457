import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Emulator } from "../../emulator";
import { projectRoot } from "../../emulator/paths";
import type { RoleDefinition } from "../../emulator/rbac";
import { AzureCallError } from "../../shared/errors";
import { fingerprint } from "../../shared/rotation/fingerprint";
import { ArmCallCounter, loadCloudProfile, type CloudProfile } from "../../shared/azure";
import { BATCH_ROLE_FILE, BatchSharedKeys } from "../../shared/azure/batch-keys";
import { OPERATIONS } from "../../shared/azure/call";
import { admin, clientsFor, startTestEmulator, type Clients } from "../helpers/emulator";
import { batchRegenerationCounts, whileEntraIdOnly } from "../helpers/estate";
import { observer } from "../helpers/observed";

/**
 * The Batch shared-key adapter (shared/azure/batch-keys.ts) against the emulator, signed in with a
 * profile loaded from a connection file, as a principal holding exactly infra/keyturn-batch-role.json.
 * Key values are read only through the test's own SDK clients, and none may reach anything the adapter
 * returned or threw (invariant I3).
 */

const PROD = "rg-ml-prod";
const BATCH = "batchmltrain";
const SALT = "batch-keys-salt";
const OPTIONS = { armRetry: { retryDelayInMs: 5, maxRetryDelayInMs: 20 }, retry: { delays: [5] } };
const batchRole = JSON.parse(readFileSync(join(projectRoot(), BATCH_ROLE_FILE), "utf8")) as RoleDefinition;

let emulator: Emulator;
let dir: string;
let profile: CloudProfile;
/** The SDK clients of the principal that holds the Batch role: how the test itself reads keys. */
let sdk: Clients;
let keys: BatchSharedKeys;
let sub: string;

const { observed, observe, failure } = observer();

const batchId = (rg: string, name: string): string =>
  `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Batch/batchAccounts/${name}`;

/** An adapter signed in as a new principal with this role (the profile's endpoints and CA). */
function adapterWith(role: RoleDefinition): { adapter: BatchSharedKeys; clientId: string } {
  const principal = emulator.addPrincipal(`batch-${role.Name}`, role);
  const credential = clientsFor(emulator, principal).credential;
  return {
    adapter: new BatchSharedKeys({ ...profile, credential, armCalls: new ArmCallCounter() }, OPTIONS),
    clientId: principal.clientId,
  };
}

async function sdkKeys(): Promise<{ key1: string; key2: string }> {
  const k = await sdk.batch.batchAccountOperations.getKeys(PROD, BATCH);
  return { key1: k.primary!, key2: k.secondary! };
}

beforeAll(async () => {
  ({ emulator } = await startTestEmulator({ optInRoleFiles: [] }));
  sub = emulator.connection.subscriptionIds[0]!;
  dir = mkdtempSync(join(tmpdir(), "keyturn-batch-keys-"));
  const connectionFile = join(dir, "connection.json");
  writeFileSync(connectionFile, JSON.stringify(emulator.connection));
  profile = loadCloudProfile({ connectionFile, env: {} });
  const principal = emulator.addPrincipal("keyturn-batch", batchRole);
  sdk = clientsFor(emulator, principal);
  keys = new BatchSharedKeys({ ...profile, credential: sdk.credential }, OPTIONS);
});
afterAll(async () => {
  await emulator?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("BatchSharedKeys", () => {
  it("lists and gets accounts with their authentication modes and data-plane endpoint", async () => {
    const listed = observe(await keys.list(sub));
    expect(listed.map((a) => [a.name, a.sharedKeyAllowed])).toEqual([[BATCH, true]]);
    const batch = observe(await keys.get(batchId(PROD, BATCH)));
    expect(batch).toEqual({
      id: batchId(PROD, BATCH),
      name: BATCH,
      subscriptionId: sub,
      resourceGroup: PROD,
      accountEndpoint: expect.stringMatching(/^127\.0\.0\.1:\d+$/) as unknown,
      allowedAuthenticationModes: ["SharedKey", "AAD", "TaskAuthenticationToken"],
      sharedKeyAllowed: true,
    });
    const entraOnly = observe(await whileEntraIdOnly(emulator, BATCH, () => keys.get(batchId(PROD, BATCH))));
    expect(entraOnly.allowedAuthenticationModes).toEqual(["AAD"]);
    expect(entraOnly.sharedKeyAllowed).toBe(false);
  });

  it("fingerprints both keys with the salt, as the keys the SDK reads", async () => {
    const values = await sdkKeys();
    expect(observe(await keys.fingerprints(batchId(PROD, BATCH), SALT))).toEqual({
      key1: fingerprint(values.key1, SALT),
      key2: fingerprint(values.key2, SALT),
    });
  });

  it("probes a live key on the Batch data plane: both keys work, a made-up one gets 403", async () => {
    const { accountEndpoint } = await keys.get(batchId(PROD, BATCH));
    for (const keyName of ["key1", "key2"] as const) {
      const outcome = await keys.withKey(batchId(PROD, BATCH), keyName, (value) =>
        keys.probeSharedKey(accountEndpoint!, BATCH, value),
      );
      expect(observe(outcome)).toEqual({ ok: true });
    }
    const made = Buffer.alloc(64, 9).toString("base64");
    expect(observe(await keys.probeSharedKey(accountEndpoint!, BATCH, made))).toEqual({
      ok: false,
      status: 403,
      code: "AuthenticationFailed",
    });
  });

  it("regenerate kills the old key on the Batch data plane at once; the new one and the other key work", async () => {
    const id = batchId(PROD, BATCH);
    const { accountEndpoint } = await keys.get(id);
    const before = await sdkKeys();
    const counts = batchRegenerationCounts(emulator)[BATCH] ?? { key1: 0, key2: 0 };
    let probedNew: unknown;
    const after = observe(
      await keys.regenerate(id, "key2", SALT, async (value) => {
        probedNew = await keys.probeSharedKey(accountEndpoint!, BATCH, value);
      }),
    );
    expect(probedNew).toEqual({ ok: true });
    expect(after.key1).toBe(fingerprint(before.key1, SALT));
    expect(after.key2).not.toBe(fingerprint(before.key2, SALT));
    expect(after.key2).toBe(fingerprint((await sdkKeys()).key2, SALT));
    expect(observe(await keys.probeSharedKey(accountEndpoint!, BATCH, before.key2))).toEqual({
      ok: false,
      status: 403,
      code: "AuthenticationFailed",
    });
    expect(observe(await keys.probeSharedKey(accountEndpoint!, BATCH, before.key1))).toEqual({ ok: true });
    expect(batchRegenerationCounts(emulator)[BATCH]).toEqual({ ...counts, key2: counts.key2 + 1 });
  });

  it("regenerates once even when the answer is lost: the SDK does not send the POST again", async () => {
    const counts = batchRegenerationCounts(emulator)[BATCH] ?? { key1: 0, key2: 0 };
    await admin(emulator, "POST", "/faults", {
      operation: "batchAccounts.regenerateKey",
      action: { type: "status", status: 503, when: "after" },
    });
    const error = await failure(keys.regenerate(batchId(PROD, BATCH), "key1", SALT));
    expect(error).toBeInstanceOf(AzureCallError);
    expect(error).toMatchObject({
      statusCode: 503,
      retryable: true,
      operation: "batchAccounts.regenerateKey",
    });
    expect(batchRegenerationCounts(emulator)[BATCH]).toEqual({ ...counts, key1: counts.key1 + 1 });
  });

  it("withKey and regenerate take the keys out of any error their callback throws", async () => {
    const id = batchId(PROD, BATCH);
    const leaky = async (value: string): Promise<never> => {
      throw new Error(`the app refused ${value} (${Buffer.from(value).toString("hex").slice(0, 8)})`);
    };
    const viaWithKey = await failure(keys.withKey(id, "key1", leaky));
    expect(viaWithKey.message).toMatch(/the app refused/);
    const viaRegenerate = await failure(keys.regenerate(id, "key1", SALT, leaky));
    expect(viaRegenerate.message).toMatch(/the app refused/);
    const values = await sdkKeys();
    for (const e of [viaWithKey, viaRegenerate]) {
      expect(e.message).not.toContain(values.key1);
      expect(e.message).not.toContain(values.key2);
    }
  });

  it("an Entra-ID-only account: no key to read or regenerate, and its data plane refuses a live key", async () => {
    const id = batchId(PROD, BATCH);
    const { accountEndpoint } = await keys.get(id);
    const live = (await sdkKeys()).key1;
    const counts = batchRegenerationCounts(emulator)[BATCH];
    await whileEntraIdOnly(emulator, BATCH, async () => {
      for (const call of [keys.fingerprints(id, SALT), keys.regenerate(id, "key1", SALT)]) {
        const error = await failure(call);
        expect(error).toBeInstanceOf(AzureCallError);
        expect(error).toMatchObject({ statusCode: 400, code: "SharedKeyAuthenticationNotAllowed" });
        expect(error.message).toMatch(/does not allow SharedKey/);
      }
      expect(await keys.probeSharedKey(accountEndpoint!, BATCH, live)).toMatchObject({
        ok: false,
        status: 403,
      });
    });
    expect(batchRegenerationCounts(emulator)[BATCH]).toEqual(counts);
    expect(await keys.probeSharedKey(accountEndpoint!, BATCH, live)).toEqual({ ok: true });
  });

  it("a data plane that does not answer is status 0 after the probe's retries", async () => {
    const outcome = observe(
      await keys.probeSharedKey("127.0.0.1:1", BATCH, Buffer.alloc(64).toString("base64")),
    );
    expect(outcome).toMatchObject({ ok: false, status: 0 });
  });

  it("without the Batch role, a 403 names the action and the second role file", async () => {
    const mainOnly = new BatchSharedKeys(profile, OPTIONS);
    const error = await failure(mainOnly.fingerprints(batchId(PROD, BATCH), SALT));
    expect(error).toMatchObject({ statusCode: 403, operation: "batchAccounts.getKeys" });
    expect(error.message).toContain("Microsoft.Batch/batchAccounts/listkeys/action");
    expect(error.message).toContain(BATCH_ROLE_FILE);
  });

  it("no key value the emulator ever issued reached anything the adapter returned or threw", () => {
    expect(observed.length).toBeGreaterThan(10);
    const text = observed.join("\n");
    const leaked = [...emulator.ctx.issuedKeys].filter(
      (k) => text.includes(k) || text.includes(k.replace(/=+$/, "")),
    );
    expect(leaked).toHaveLength(0);
  });
});

describe("infra/keyturn-batch-role.json", () => {
  /** Each adapter call once, on the account that allows shared keys. */
  async function everyCall(adapter: BatchSharedKeys): Promise<void> {
    const id = batchId(PROD, BATCH);
    await adapter.list(sub);
    await adapter.get(id);
    await adapter.fingerprints(id, SALT);
    await adapter.withKey(id, "key1", async () => undefined);
    await adapter.regenerate(id, "key2", SALT);
  }

  it("grants every action the adapter uses and nothing it does not", async () => {
    const { adapter, clientId } = adapterWith(batchRole);
    await everyCall(adapter);
    const mine = emulator.requestLog.filter((e) => e.clientId === clientId);
    expect(mine.filter((e) => e.status >= 400)).toEqual([]);
    const used = [...new Set(mine.map((e) => e.action!.toLowerCase()))].sort();
    expect(used).toEqual(batchRole.Actions.map((a) => a.toLowerCase()).sort());
    // The adapter's operations name the same actions the emulator checked.
    expect(
      [OPERATIONS.getBatchAccount, OPERATIONS.getBatchKeys, OPERATIONS.regenerateBatchKey]
        .map((o) => o.action.toLowerCase())
        .sort(),
    ).toEqual(used);
    expect(batchRole.DataActions ?? []).toEqual([]);
  });

  it.each(batchRole.Actions)(
    "is needed whole: without %s the adapter is refused, naming it",
    async (missing) => {
      const { adapter, clientId } = adapterWith({
        ...batchRole,
        Name: `${batchRole.Name} minus ${missing}`,
        Actions: batchRole.Actions.filter((a) => a !== missing),
      });
      const error = await failure(everyCall(adapter));
      expect(error).toMatchObject({ statusCode: 403 });
      expect(error.message).toContain(missing);
      const refused = emulator.requestLog.filter((e) => e.clientId === clientId && e.status === 403);
      expect(refused.map((e) => e.action)).toEqual([missing]);
    },
  );
});
