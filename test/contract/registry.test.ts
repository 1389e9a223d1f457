import { randomBytes } from "node:crypto";
import { request } from "node:https";
import type { ContainerRegistryManagementClient, PasswordName } from "@azure/arm-containerregistry";
import type { Emulator } from "../../emulator";
import {
  liveRegistryPasswords,
  registryHoldings,
  registryHoldingWorks,
  REGISTRY_ACTIONS,
} from "../../emulator/arm/registry";
import { KEYTURN_ROLE_FILE } from "../../emulator/paths";
import { loadRoleDefinition } from "../../emulator/rbac";
import type { ContainerRegistry } from "../../emulator/model";
import { describeEmulator } from "../../emulator/describe";
import { admin, armToken, principalWith, raw, startTestEmulator, type Clients } from "../helpers/emulator";
import {
  DEMO_REGISTRY as REGISTRY,
  keyturnWithRegistryActions,
  registryClient,
  registryPasswordValues,
  registryRoleActions,
} from "../helpers/registry";

/**
 * Contract: Microsoft.ContainerRegistry registries (get, listCredentials, regenerateCredential) as
 * @azure/arm-containerregistry 12 sees them, the registry's `/v2/` data plane, the workspace's
 * `listKeys().containerRegistryCredentials`, and which password a workspace resync takes under each
 * `registryResyncPick` (DESIGN §11). Password values are compared as booleans, never printed.
 */

const PROD = "rg-ml-prod";

let emulator: Emulator;
/** A principal with the main role's and the registry role's actions: keyturn with the feature on. */
let clients: Clients;
let acr: ContainerRegistryManagementClient;
let sub: string;

const registryArmId = (): string =>
  `/subscriptions/${sub}/resourceGroups/${PROD}/providers/Microsoft.ContainerRegistry/registries/${REGISTRY}`;

const acrClientFor = (principal: Clients, retries?: number): ContainerRegistryManagementClient =>
  registryClient(emulator, principal, retries);

function registry(): ContainerRegistry {
  return emulator.ctx.estate.registries.get(registryArmId().toLowerCase())!;
}

const passwords = (): Promise<{ password: string; password2: string }> =>
  registryPasswordValues(acr, PROD, REGISTRY);

/** What mlw-train's listKeys shows of its registry. */
async function held(): Promise<{ username?: string; passwords: { name?: string; value?: string }[] } | null> {
  const keys = await clients.ml.workspaces.listKeys(PROD, "mlw-train");
  const credentials = keys.containerRegistryCredentials;
  return credentials ? { username: credentials.username, passwords: credentials.passwords ?? [] } : null;
}

async function resync(): Promise<void> {
  await clients.ml.workspaces.beginResyncKeysAndWait(PROD, "mlw-train", { updateIntervalInMs: 10 });
}

async function setPick(registryResyncPick: string): Promise<void> {
  const answer = await admin(emulator, "PATCH", "/settings", { registryResyncPick });
  expect(answer).toMatchObject({ status: 200, body: { registryResyncPick } });
}

/** `GET https://{loginServer}{path}` with the given Authorization header (none when undefined). */
async function v2(
  authorization: string | undefined,
  path = "/v2/",
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: unknown }> {
  const headers: Record<string, string> = authorization ? { authorization } : {};
  return new Promise((resolve, reject) => {
    const req = request(
      `https://${registry().loginServer}${path}`,
      { method: "GET", headers, ca: emulator.caCert, agent: false },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text ? (JSON.parse(text) as unknown) : undefined,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

const basic = (username: string, password: string): string =>
  `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;

beforeAll(async () => {
  ({ emulator } = await startTestEmulator({ settings: { resyncPolls: 1 } }));
  sub = emulator.connection.subscriptionIds[0]!;
  clients = principalWith(emulator, keyturnWithRegistryActions());
  acr = acrClientFor(clients);
});

afterAll(async () => {
  await emulator?.stop();
});

describe("registries.get", () => {
  it("shows the registry with its loginServer (this emulator's listener) and adminUserEnabled", async () => {
    const got = await acr.registries.get(PROD, REGISTRY);
    expect(got.id).toBe(registryArmId());
    expect(got.name).toBe(REGISTRY);
    expect(got.type).toBe("Microsoft.ContainerRegistry/registries");
    expect(got.location).toBe("westeurope");
    expect(got.adminUserEnabled).toBe(true);
    expect(got.provisioningState).toBe("Succeeded");
    expect(got.loginServer).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(got.loginServer).toBe(registry().loginServer);
  });

  it("is the registry the workspace names in properties.containerRegistry", async () => {
    const ws = await clients.ml.workspaces.get(PROD, "mlw-train");
    expect(ws.containerRegistry).toBe(registryArmId());
  });

  it("answers 404 ResourceNotFound in ARM's words for a registry the estate does not hold", async () => {
    await expect(acr.registries.get(PROD, "crmlwscore")).rejects.toMatchObject({
      statusCode: 404,
      code: "ResourceNotFound",
      message: expect.stringContaining(
        `The Resource 'Microsoft.ContainerRegistry/registries/crmlwscore' under resource group '${PROD}' was not found`,
      ) as unknown,
    });
  });

  it("refuses an api-version the provider does not know, naming the type", async () => {
    const token = await armToken(clients);
    const answer = await raw(emulator, "GET", `${registryArmId()}?api-version=2001-01-01`, { token });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: { code: "NoRegisteredProviderFound" } });
    expect(answer.text).toContain("'registries'");
  });
});

describe("registries.listCredentials", () => {
  it("returns the admin username (the registry's name) and password, password2, in that order", async () => {
    const result = await acr.registries.listCredentials(PROD, REGISTRY);
    expect(result.username).toBe(REGISTRY);
    expect(result.passwords?.map((p) => p.name)).toEqual(["password", "password2"]);
    const [first, second] = result.passwords!.map((p) => p.value ?? "");
    expect(first === second).toBe(false);
    // Azure's shape (52 base64 characters with +ACR inside), so the whole-run secret scan knows one.
    for (const value of [first!, second!]) {
      expect(/^[A-Za-z0-9+/]{40}\+ACR[A-Za-z0-9+/]{8}$/.test(value)).toBe(true);
      expect(emulator.ctx.issuedKeys.has(value)).toBe(true);
    }
  });
});

describe("registries.regenerateCredential", () => {
  it("replaces only the named password, answers with both, and is recorded once", async () => {
    const before = await passwords();
    const count = emulator.ctx.registryRegenerations.length;
    const result = await acr.registries.regenerateCredential(PROD, REGISTRY, { name: "password2" });
    const after = await passwords();
    expect(result.username).toBe(REGISTRY);
    expect(result.passwords?.map((p) => p.name)).toEqual(["password", "password2"]);
    expect(result.passwords?.[1]?.value === after.password2).toBe(true);
    expect(after.password === before.password).toBe(true);
    expect(after.password2 === before.password2).toBe(false);
    expect(emulator.ctx.issuedKeys.has(after.password2)).toBe(true);
    expect(emulator.ctx.registryRegenerations.slice(count)).toEqual([
      { registry: REGISTRY, password: "password2", at: expect.any(String) as unknown, outOfBand: false },
    ]);
  });

  it("answers 400 for a password name other than password or password2, changing nothing", async () => {
    const before = await passwords();
    const count = emulator.ctx.registryRegenerations.length;
    await expect(
      acr.registries.regenerateCredential(PROD, REGISTRY, { name: "password3" as PasswordName }),
    ).rejects.toMatchObject({ statusCode: 400, code: "InvalidRequestBody" });
    expect((await passwords()).password === before.password).toBe(true);
    expect(emulator.ctx.registryRegenerations.length).toBe(count);
  });

  it("an out-of-band regeneration (admin API) is recorded as such", async () => {
    const count = emulator.ctx.registryRegenerations.length;
    const answer = await admin(emulator, "POST", `/registries/${REGISTRY}/regenerateCredential`, {
      name: "password2",
    });
    expect(answer.status).toBe(204);
    expect(emulator.ctx.registryRegenerations.slice(count)).toMatchObject([
      { registry: REGISTRY, password: "password2", outOfBand: true },
    ]);
  });
});

describe("a registry whose admin user is disabled", () => {
  afterEach(() => {
    registry().adminUserEnabled = true;
  });

  it("refuses listCredentials and regenerateCredential with ACR's 400 and refuses the admin user on /v2/", async () => {
    const live = await passwords();
    registry().adminUserEnabled = false;
    const count = emulator.ctx.registryRegenerations.length;
    const refusal = {
      statusCode: 400,
      code: "UnAuthorizedForCredentialOperations",
      message: expect.stringContaining(
        `Cannot perform credential operations for ${registryArmId()} as admin user is disabled`,
      ) as unknown,
    };
    await expect(acr.registries.listCredentials(PROD, REGISTRY)).rejects.toMatchObject(refusal);
    await expect(
      acr.registries.regenerateCredential(PROD, REGISTRY, { name: "password" }),
    ).rejects.toMatchObject(refusal);
    expect(emulator.ctx.registryRegenerations.length).toBe(count);
    expect((await acr.registries.get(PROD, REGISTRY)).adminUserEnabled).toBe(false);
    expect((await v2(basic(REGISTRY, live.password))).status).toBe(401);
  });
});

describe("registry routes as ARM routes", () => {
  it("each names its RBAC action and draws from the bucket of its method", () => {
    const logged = new Map<string, string | undefined>();
    for (const entry of emulator.requestLog) logged.set(entry.operation, entry.action);
    expect(logged.get("registries.get")).toBe(REGISTRY_ACTIONS.read);
    expect(logged.get("registries.listCredentials")).toBe(REGISTRY_ACTIONS.listCredentials);
    expect(logged.get("registries.regenerateCredential")).toBe(REGISTRY_ACTIONS.regenerateCredential);
    expect(registryRoleActions().sort()).toEqual(Object.values(REGISTRY_ACTIONS).sort());
  });

  it("refuses keyturn's main role alone with AuthorizationFailed naming the action", async () => {
    const mainOnly = acrClientFor(principalWith(emulator, loadRoleDefinition(KEYTURN_ROLE_FILE).Actions));
    await expect(mainOnly.registries.listCredentials(PROD, REGISTRY)).rejects.toMatchObject({
      statusCode: 403,
      code: "AuthorizationFailed",
      message: expect.stringContaining(REGISTRY_ACTIONS.listCredentials) as unknown,
    });
    await expect(
      mainOnly.registries.regenerateCredential(PROD, REGISTRY, { name: "password" }),
    ).rejects.toMatchObject({ statusCode: 403 });
    await expect(mainOnly.registries.get(PROD, REGISTRY)).rejects.toMatchObject({ statusCode: 403 });
  });

  it("takes injected faults by operation name", async () => {
    const noRetry = acrClientFor(clients, 0);
    const rule = await admin(emulator, "POST", "/faults", {
      operation: "registries.listCredentials",
      action: { type: "status", status: 503, code: "ServiceUnavailable" },
    });
    expect(rule.status).toBe(201);
    await expect(noRetry.registries.listCredentials(PROD, REGISTRY)).rejects.toMatchObject({
      statusCode: 503,
    });
    await expect(noRetry.registries.listCredentials(PROD, REGISTRY)).resolves.toMatchObject({
      username: REGISTRY,
    });
  });
});

describe("the registry's /v2/ endpoint", () => {
  it("answers 200 {} to the admin user with either live password", async () => {
    const live = await passwords();
    for (const password of [live.password, live.password2]) {
      const answer = await v2(basic(REGISTRY, password));
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({});
      expect(answer.headers["docker-distribution-api-version"]).toBe("registry/2.0");
    }
  });

  it("answers 401 with ACR's challenge and error body without credentials", async () => {
    const answer = await v2(undefined);
    expect(answer.status).toBe(401);
    const login = registry().loginServer;
    expect(answer.headers["www-authenticate"]).toBe(
      `Bearer realm="https://${login}/oauth2/token",service="${login}"`,
    );
    expect(answer.body).toEqual({
      errors: [
        {
          code: "UNAUTHORIZED",
          message: "authentication required, visit https://aka.ms/acr/authorization for more information.",
          detail: null,
        },
      ],
    });
  });

  it("answers 401 to a wrong password, a wrong username and a regenerated password", async () => {
    const live = await passwords();
    expect((await v2(basic(REGISTRY, randomBytes(39).toString("base64")))).status).toBe(401);
    expect((await v2(basic("someoneelse", live.password))).status).toBe(401);
    expect((await v2(`Bearer ${live.password}`)).status).toBe(401);
    await acr.registries.regenerateCredential(PROD, REGISTRY, { name: "password" });
    expect((await v2(basic(REGISTRY, live.password))).status).toBe(401);
    expect((await v2(basic(REGISTRY, (await passwords()).password))).status).toBe(200);
    // The admin username is the registry's name, matched case-insensitively.
    expect((await v2(basic(REGISTRY.toUpperCase(), live.password2))).status).toBe(200);
  });

  it("logs every call with its answer, never its credentials", async () => {
    const live = await passwords();
    const from = emulator.registryLog.length;
    await v2(basic(REGISTRY, live.password));
    await v2(undefined, "/v2/_catalog");
    expect(emulator.registryLog.slice(from)).toEqual([
      expect.objectContaining({ registry: REGISTRY, method: "GET", path: "/v2/", status: 200 }),
      expect.objectContaining({ registry: REGISTRY, path: "/v2/_catalog", status: 404 }),
    ]);
    expect(JSON.stringify(emulator.registryLog).includes(live.password)).toBe(false);
  });
});

describe("workspaces.listKeys containerRegistryCredentials", () => {
  it("shows the one password the workspace holds, under its name, with the registry's admin username", async () => {
    await setPick("password");
    await resync();
    const live = await passwords();
    const shown = await held();
    expect(shown?.username).toBe(REGISTRY);
    expect(shown?.passwords.map((p) => p.name)).toEqual(["password"]);
    expect(shown?.passwords[0]?.value === live.password).toBe(true);
  });

  it("keeps showing a password after it is regenerated, until a resync: then it is dead", async () => {
    await setPick("password");
    await resync();
    const before = await passwords();
    await acr.registries.regenerateCredential(PROD, REGISTRY, { name: "password" });
    const shown = await held();
    expect(shown?.passwords[0]?.value === before.password).toBe(true);
    expect((await v2(basic(REGISTRY, before.password))).status).toBe(401);
  });

  it("is null for a workspace whose registry the estate does not hold", async () => {
    const keys = await clients.ml.workspaces.listKeys(PROD, "mlw-score");
    expect(keys.containerRegistryCredentials ?? null).toBeNull();
  });
});

describe("which password a resync takes (registryResyncPick)", () => {
  it("password: always the first, live or not before", async () => {
    await setPick("password2");
    await resync();
    await setPick("password");
    await resync();
    const shown = await held();
    expect(shown?.passwords.map((p) => p.name)).toEqual(["password"]);
    expect(shown?.passwords[0]?.value === (await passwords()).password).toBe(true);
  });

  it("password2: always the second", async () => {
    await setPick("password");
    await resync();
    await setPick("password2");
    await resync();
    const shown = await held();
    expect(shown?.passwords.map((p) => p.name)).toEqual(["password2"]);
    expect(shown?.passwords[0]?.value === (await passwords()).password2).toBe(true);
  });

  it("keepIfLive: the held one while it is live, else password", async () => {
    await setPick("password2");
    await resync();
    await setPick("keepIfLive");
    await resync();
    expect((await held())?.passwords.map((p) => p.name)).toEqual(["password2"]);
    await acr.registries.regenerateCredential(PROD, REGISTRY, { name: "password2" });
    await resync();
    const shown = await held();
    expect(shown?.passwords.map((p) => p.name)).toEqual(["password"]);
    expect(shown?.passwords[0]?.value === (await passwords()).password).toBe(true);
  });

  it("random: either, each a live password, both within 40 resyncs", async () => {
    await setPick("random");
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      await resync();
      const shown = await held();
      const live = await passwords();
      const name = shown?.passwords[0]?.name as "password" | "password2";
      expect(shown?.passwords[0]?.value === live[name]).toBe(true);
      seen.add(name);
    }
    expect([...seen].sort()).toEqual(["password", "password2"]);
  });

  it("leaves the held password as it is when the admin user is disabled", async () => {
    await setPick("password");
    await resync();
    const before = await held();
    registry().adminUserEnabled = false;
    try {
      await setPick("password2");
      await resync();
      expect((await held())?.passwords).toEqual(before?.passwords);
    } finally {
      registry().adminUserEnabled = true;
    }
  });

  it("is validated like every setting: a bad value is refused and changes nothing", async () => {
    await setPick("keepIfLive");
    const answer = await admin(emulator, "PATCH", "/settings", {
      registryResyncPick: "newest",
      resyncPolicy: "key1",
    });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({
      error: {
        code: "InvalidSettings",
        message: "registryResyncPick must be 'password', 'password2', 'keepIfLive', 'random'",
      },
    });
    expect(emulator.ctx.settings.registryResyncPick).toBe("keepIfLive");
  });
});

describe("registry holdings (for the outage log)", () => {
  it("a workspace holding a regenerated password is a holding that does not work, until a resync", async () => {
    await setPick("password");
    await resync();
    const [holding] = registryHoldings(emulator.ctx.estate);
    expect(holding).toMatchObject({
      kind: "workspaceRegistry",
      registryId: registryArmId(),
      registryName: REGISTRY,
    });
    expect(registryHoldings(emulator.ctx.estate)).toHaveLength(1);
    expect(registryHoldingWorks(emulator.ctx.estate, holding!)).toBe(true);

    await acr.registries.regenerateCredential(PROD, REGISTRY, { name: "password" });
    const [stale] = registryHoldings(emulator.ctx.estate);
    expect(registryHoldingWorks(emulator.ctx.estate, stale!)).toBe(false);
    const live = liveRegistryPasswords(emulator.ctx.estate).map((p) => p.value);
    expect(live.includes(stale!.heldPassword)).toBe(false);
    expect(live).toHaveLength(2);

    await resync();
    const [healed] = registryHoldings(emulator.ctx.estate);
    expect(registryHoldingWorks(emulator.ctx.estate, healed!)).toBe(true);
  });

  it("the emulator's description names what the workspace holds by password name, never a value", async () => {
    await setPick("password2");
    await resync();
    const text = describeEmulator(emulator);
    expect(text).toMatch(
      new RegExp(
        `Container registry ${REGISTRY} at 127\\.0\\.0\\.1:\\d+: admin user on, .*; mlw-train holds password2`,
      ),
    );
    const live = await passwords();
    expect(text.includes(live.password) || text.includes(live.password2)).toBe(false);
  });

  it("no password is live while the admin user is disabled", () => {
    registry().adminUserEnabled = false;
    try {
      expect(liveRegistryPasswords(emulator.ctx.estate)).toEqual([]);
      const [holding] = registryHoldings(emulator.ctx.estate);
      expect(registryHoldingWorks(emulator.ctx.estate, holding!)).toBe(false);
    } finally {
      registry().adminUserEnabled = true;
    }
  });
});

// Last: it drains the write bucket.
describe("registry routes and ARM's limits", () => {
  it("counts listCredentials against the write bucket: a drained bucket answers 429 with Retry-After", async () => {
    const noRetry = acrClientFor(clients, 0);
    const drained = await admin(emulator, "POST", "/throttle/drain", { subscriptionId: sub, kind: "write" });
    expect(drained.status).toBe(204);
    let retryAfter: string | undefined;
    await expect(
      noRetry.registries.listCredentials(PROD, REGISTRY, {
        onResponse: (response) => {
          retryAfter = response.headers.get("retry-after");
        },
      }),
    ).rejects.toMatchObject({ statusCode: 429, code: "SubscriptionRequestsThrottled" });
    expect(Number(retryAfter)).toBeGreaterThan(0);
    // Reads draw from the other bucket.
    await expect(noRetry.registries.get(PROD, REGISTRY)).resolves.toMatchObject({ name: REGISTRY });
  });
});
