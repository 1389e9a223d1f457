import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import type { ContainerRegistryManagementClient } from "@azure/arm-containerregistry";
import type { Emulator } from "../../emulator";
import { KEYTURN_ROLE_FILE } from "../../emulator/paths";
import { loadRoleDefinition } from "../../emulator/rbac";
import { AzureCallError, KeyturnError } from "../../shared/errors";
import { fingerprint } from "../../shared/rotation/fingerprint";
import { ArmCallCounter, loadCloudProfile, type CloudProfile } from "../../shared/azure";
import { RegistryPasswords } from "../../shared/azure/registry";
import { observer } from "../helpers/observed";
import { admin, principalWith, startTestEmulator, type Clients } from "../helpers/emulator";
import {
  DEMO_REGISTRY as REGISTRY,
  keyturnWithRegistryActions,
  registryClient,
  registryPasswordValues,
} from "../helpers/registry";

/**
 * The registry adapter (shared/azure/registry.ts) against the emulator, through a profile loaded from
 * a connection file. The test reads password values only through its own SDK client, and checks at
 * the end that none reached anything the adapter returned or threw (invariant I3).
 */

const PROD = "rg-ml-prod";
const SALT = "registry-salt-a";
const OPTIONS = {
  lroPollIntervalMs: 10,
  armRetry: { retryDelayInMs: 5, maxRetryDelayInMs: 20 },
  probe: { retry: { delays: [5] } },
};

let emulator: Emulator;
let dir: string;
let profile: CloudProfile;
/** keyturn with the feature on: the main role's and the registry role's actions. */
let keyturn: Clients;
let registries: RegistryPasswords;
let acr: ContainerRegistryManagementClient;
let sub: string;

/** Everything the adapter returned or threw, as text. */
const { observed, observe, failure } = observer();

const registryId = (): string =>
  `/subscriptions/${sub}/resourceGroups/${PROD}/providers/Microsoft.ContainerRegistry/registries/${REGISTRY}`;
const workspaceId = (name: string): string =>
  `/subscriptions/${sub}/resourceGroups/${PROD}/providers/Microsoft.MachineLearningServices/workspaces/${name}`;

function adapterFor(principal: Clients): RegistryPasswords {
  return new RegistryPasswords(
    { ...profile, credential: principal.credential, armCalls: new ArmCallCounter() },
    OPTIONS,
  );
}

/** Both passwords as the SDK reads them. */
const sdkPasswords = (): Promise<{ password: string; password2: string }> =>
  registryPasswordValues(acr, PROD, REGISTRY);

async function loginServer(): Promise<string> {
  return (await registries.get(registryId())).loginServer;
}

async function resync(name: string): Promise<void> {
  await keyturn.ml.workspaces.beginResyncKeysAndWait(PROD, name, { updateIntervalInMs: 10 });
}

beforeAll(async () => {
  ({ emulator } = await startTestEmulator({ settings: { resyncPolls: 1, registryResyncPick: "password" } }));
  sub = emulator.connection.subscriptionIds[0]!;
  dir = mkdtempSync(join(tmpdir(), "keyturn-registry-"));
  const connectionFile = join(dir, "connection.json");
  writeFileSync(connectionFile, JSON.stringify(emulator.connection));
  profile = loadCloudProfile({ connectionFile, env: {} });
  keyturn = principalWith(emulator, keyturnWithRegistryActions());
  registries = adapterFor(keyturn);
  acr = registryClient(emulator, keyturn);
});

afterAll(async () => {
  await emulator?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("RegistryPasswords", () => {
  it("get: the registry's loginServer and whether its admin user is enabled", async () => {
    const info = observe(await registries.get(registryId()));
    expect(info).toEqual({
      id: registryId(),
      name: REGISTRY,
      subscriptionId: sub,
      resourceGroup: PROD,
      loginServer: expect.stringMatching(/^127\.0\.0\.1:\d+$/) as unknown,
      adminUserEnabled: true,
    });
  });

  it("fingerprints: both passwords, salted, and the admin username", async () => {
    const live = await sdkPasswords();
    const fingerprints = observe(await registries.fingerprints(registryId(), SALT));
    expect(fingerprints).toEqual({
      username: REGISTRY,
      passwords: { password: fingerprint(live.password, SALT), password2: fingerprint(live.password2, SALT) },
    });
  });

  it("regenerate: the old password is refused by /v2/ at once and the new one accepted", async () => {
    const before = await sdkPasswords();
    const server = await loginServer();
    expect(observe(await registries.probeRegistry(server, REGISTRY, before.password2))).toEqual({ ok: true });

    const after = observe(await registries.regenerate(registryId(), "password2", SALT));
    const live = await sdkPasswords();
    expect(after.passwords).toEqual({
      password: fingerprint(before.password, SALT),
      password2: fingerprint(live.password2, SALT),
    });
    expect(after.passwords.password2 === fingerprint(before.password2, SALT)).toBe(false);
    expect(observe(await registries.probeRegistry(server, REGISTRY, before.password2))).toEqual({
      ok: false,
      status: 401,
      code: "UNAUTHORIZED",
    });
    const fresh = await registries.withPassword(registryId(), "password2", (username, password) =>
      registries.probeRegistry(server, username, password),
    );
    expect(observe(fresh)).toEqual({ ok: true });
  });

  it("regenerate is sent once: a lost answer is not retried by the SDK (I4)", async () => {
    const count = emulator.ctx.registryRegenerations.length;
    const rule = await admin(emulator, "POST", "/faults", {
      operation: "registries.regenerateCredential",
      action: { type: "status", status: 503, when: "after" },
    });
    expect(rule.status).toBe(201);
    const error = await failure(registries.regenerate(registryId(), "password2", SALT));
    expect(error).toBeInstanceOf(AzureCallError);
    expect((error as AzureCallError).statusCode).toBe(503);
    expect((error as AzureCallError).retryable).toBe(true);
    expect(emulator.ctx.registryRegenerations.length).toBe(count + 1);
  });

  it("heldFingerprints: the password the workspace holds; undefined when it shows none", async () => {
    await resync("mlw-train");
    const live = await sdkPasswords();
    expect(observe(await registries.heldFingerprints(workspaceId("mlw-train"), SALT))).toEqual({
      username: REGISTRY,
      passwords: [{ name: "password", fingerprint: fingerprint(live.password, SALT) }],
    });
    expect(await registries.heldFingerprints(workspaceId("mlw-score"), SALT)).toBeUndefined();
  });

  it("verifyHeld: a held password that was regenerated fails on /v2/ until the workspace resyncs", async () => {
    const server = await loginServer();
    await resync("mlw-train");
    expect(observe(await registries.verifyHeld(workspaceId("mlw-train"), server, SALT))).toMatchObject([
      { name: "password", probe: { ok: true } },
    ]);
    await registries.regenerate(registryId(), "password", SALT);
    const stale = observe(await registries.verifyHeld(workspaceId("mlw-train"), server, SALT));
    expect(stale).toMatchObject([{ name: "password", probe: { ok: false, status: 401 } }]);
    await resync("mlw-train");
    const healed = observe(await registries.verifyHeld(workspaceId("mlw-train"), server, SALT));
    expect(healed).toEqual([
      {
        name: "password",
        fingerprint: fingerprint((await sdkPasswords()).password, SALT),
        probe: { ok: true },
      },
    ]);
    expect(await registries.verifyHeld(workspaceId("mlw-score"), server, SALT)).toEqual([]);
  });

  it("probeRegistry: no answer is status 0; a loginServer that is not a host is refused before any request", async () => {
    const live = await sdkPasswords();
    // A port nothing listens on: one the OS just handed out and took back.
    const closed = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    const outcome = observe(await registries.probeRegistry(`127.0.0.1:${closed}`, REGISTRY, live.password));
    expect(outcome).toMatchObject({ ok: false, status: 0, code: "ECONNREFUSED" });
    const error = await failure(
      registries.probeRegistry(`https://${REGISTRY}.azurecr.io/v2/`, REGISTRY, live.password),
    );
    expect(error).toBeInstanceOf(KeyturnError);
    expect(error.message).toMatch(/is not a host name/);
  });

  it("withPassword: an error thrown with the password in it comes out without it", async () => {
    const error = await failure(
      registries.withPassword(registryId(), "password", async (_username, password) => {
        throw new Error(`the registry refused ${password}`);
      }),
    );
    expect(error).toBeInstanceOf(KeyturnError);
    expect(error.message).toMatch(/^the registry refused /);
  });

  it("a registry whose admin user is disabled: listCredentials is refused in ACR's words, naming no password", async () => {
    const registry = emulator.ctx.estate.registries.get(registryId().toLowerCase())!;
    registry.adminUserEnabled = false;
    try {
      expect((await registries.get(registryId())).adminUserEnabled).toBe(false);
      const error = await failure(registries.fingerprints(registryId(), SALT));
      expect(error).toBeInstanceOf(AzureCallError);
      expect((error as AzureCallError).statusCode).toBe(400);
      expect(error.message).toContain("admin user is disabled");
    } finally {
      registry.adminUserEnabled = true;
    }
  });

  it("without the registry role, a 403 names the action and the registry role file", async () => {
    const mainOnly = adapterFor(principalWith(emulator, loadRoleDefinition(KEYTURN_ROLE_FILE).Actions));
    const error = await failure(mainOnly.regenerate(registryId(), "password", SALT));
    expect(error).toBeInstanceOf(AzureCallError);
    expect((error as AzureCallError).statusCode).toBe(403);
    expect(error.message).toContain("Microsoft.ContainerRegistry/registries/regenerateCredential/action");
    expect(error.message).toContain("infra/keyturn-registry-role.json");
  });

  it("no password the emulator ever issued appears in anything the adapter returned or threw (I3)", () => {
    const issued = [...emulator.ctx.issuedKeys].filter((k) => k.length === 52 && k.includes("+ACR"));
    // The registry's first two and one per regeneration this file made.
    expect(issued.length).toBe(2 + emulator.ctx.registryRegenerations.length);
    expect(emulator.ctx.registryRegenerations.length).toBeGreaterThanOrEqual(3);
    expect(observed.length).toBeGreaterThan(10);
    const leaks = observed.filter((text) => issued.some((password) => text.includes(password)));
    expect(leaks).toEqual([]);
  });
});
