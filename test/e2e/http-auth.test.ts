import { generateKeyPairSync, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { ClientSecretCredential } from "@azure/identity";
import { startRotationRig, type RotationRig } from "../helpers/rotation";
import type { Principal } from "../../emulator/identity";

/**
 * Issue 11 item 2: the HTTP API's caller identity. App Service Authentication is not enforced on Flex
 * Consumption, so keyturn validates an Entra ID bearer token itself when KEYTURN_API_AUDIENCE is set
 * (functions/auth.ts), here against the emulator's sign-in endpoint (OIDC discovery, JWKS, RS256 tokens),
 * and never records the `x-ms-client-principal-name` header a caller can write.
 */

jest.setTimeout(120_000);

const AUDIENCE = "api://keyturn-api";
const FORGED = "mallory@forged.example";
const SETTINGS = ["KEYTURN_API_AUDIENCE", "KEYTURN_API_TENANT_ID", "WEBSITE_AUTH_ENABLED"] as const;

let rig: RotationRig;
let origin: string;
let operator: Principal;
const saved: Partial<Record<(typeof SETTINGS)[number], string>> = {};

beforeAll(async () => {
  for (const name of SETTINGS) saved[name] = process.env[name];
  rig = await startRotationRig({ emulator: { settings: { resyncPolicy: "consumers" } } });
  origin = await rig.host.start({ timers: false });
  operator = rig.emulator.ctx.identity.addPrincipal("rotation operator");
});
afterAll(async () => {
  for (const name of SETTINGS) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
  await rig?.stop();
});

function requireTokens(): void {
  process.env.KEYTURN_API_AUDIENCE = AUDIENCE;
  process.env.KEYTURN_API_TENANT_ID = rig.emulator.connection.tenantId;
}
function functionKeysOnly(): void {
  delete process.env.KEYTURN_API_AUDIENCE;
  delete process.env.KEYTURN_API_TENANT_ID;
}

/** A token from the emulator's token endpoint, as a caller's DefaultAzureCredential would get it. */
async function signIn(principal: Principal = operator, scope = `${AUDIENCE}/.default`): Promise<string> {
  const c = rig.emulator.connection;
  const credential = new ClientSecretCredential(c.tenantId, principal.clientId, principal.clientSecret, {
    authorityHost: c.authorityHost,
    disableInstanceDiscovery: true,
    tlsOptions: { ca: readFileSync(c.caCertFile, "utf8") },
  });
  const token = await credential.getToken(scope);
  return token.token;
}

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as Record<
    string,
    unknown
  >;
}

/** The same claims and key id as a real token, signed with a key the tenant never published. */
function resigned(token: string, kid?: string): string {
  const [header, payload] = token.split(".") as [string, string];
  const h = JSON.parse(Buffer.from(header, "base64url").toString("utf8")) as Record<string, unknown>;
  const newHeader = Buffer.from(JSON.stringify({ ...h, ...(kid ? { kid } : {}) })).toString("base64url");
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const signature = sign("sha256", Buffer.from(`${newHeader}.${payload}`), privateKey).toString("base64url");
  return `${newHeader}.${payload}.${signature}`;
}

/** A token signed by the emulator's own key, issued as if at `at`. */
function issuedAt(at: number, audience = AUDIENCE): string {
  const identity = rig.emulator.ctx.identity as unknown as { now: () => number };
  const now = identity.now;
  identity.now = () => at;
  try {
    return rig.emulator.ctx.identity.issue(operator, audience).token;
  } finally {
    identity.now = now;
  }
}

async function call(
  method: string,
  path: string,
  options: { body?: unknown; token?: string; headers?: Record<string, string>; key?: string | null } = {},
) {
  const key = options.key === undefined ? rig.host.keys.function : options.key;
  const res = await fetch(`${origin}${path}`, {
    method,
    headers: {
      "content-type": "application/json",
      ...(key ? { "x-functions-key": key } : {}),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> | undefined,
  };
}

const started = () => ({
  instances: rig.host.durable.list().length,
  regenerations: rig.emulator.ctx.regenerations.length,
});

interface AuditRecord {
  instanceId: string;
  startedBy: string;
  storageAccount?: string;
}

async function auditOf(account: string, token?: string): Promise<AuditRecord[]> {
  const res = await call("GET", `/api/rotations?storageAccount=${account}`, token ? { token } : {});
  expect(res.status).toBe(200);
  return (res.body?.rotations ?? []) as AuditRecord[];
}

describe("with KEYTURN_API_AUDIENCE set, a request needs a valid Entra ID token besides the function key", () => {
  beforeAll(requireTokens);
  afterAll(functionKeysOnly);

  const body = { scope: { storageAccounts: ["stmlshared"] }, graceMinutes: 0 };

  it.each([
    ["no token", () => undefined, /no bearer token/],
    [
      "a token for another audience",
      () => issuedAt(Date.now(), "api://someone-else"),
      /audience "api:\/\/someone-else" is not this API/,
    ],
    ["an expired token", () => issuedAt(Date.now() - 2 * 3600_000), /expired at/],
    [
      "a token signed by another key (same key id)",
      async () => resigned(await signIn()),
      /signature does not verify/,
    ],
    [
      "a token signed by a key the tenant does not publish",
      async () => resigned(await signIn(), "not-a-published-key"),
      /does not publish/,
    ],
  ])("refuses %s with 401 naming the problem, and starts nothing", async (_what, token, reason) => {
    const before = started();
    const res = await call("POST", "/api/rotations", {
      body,
      ...(await Promise.resolve(token()).then((t) => (t ? { token: t } : {}))),
      headers: { "x-ms-client-principal-name": FORGED },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(((res.body?.reasons ?? []) as string[]).join("\n")).toMatch(reason);
    expect(JSON.stringify(res.body)).not.toContain(FORGED);
    expect(started()).toEqual(before);
  });

  it("refuses the status, plan and audit routes without a token too", async () => {
    const before = started();
    for (const path of [
      "/api/rotations/anything",
      "/api/plan?storageAccounts=stmlshared",
      "/api/rotations",
    ]) {
      const res = await call("GET", path);
      expect([path, res.status]).toEqual([path, 401]);
    }
    expect(started()).toEqual(before);
  });

  it("still needs the function key with a valid token", async () => {
    const before = started();
    const res = await call("POST", "/api/rotations", { body, token: await signIn(), key: null });
    expect(res.status).toBe(401);
    expect(started()).toEqual(before);
  });

  it("records the token's identity as startedBy, never a forged x-ms-client-principal-name", async () => {
    process.env.WEBSITE_AUTH_ENABLED = "True";
    const token = await signIn();
    const claims = claimsOf(token);
    expect(claims.aud).toBe(AUDIENCE);
    const res = await call("POST", "/api/rotations", {
      body,
      token,
      headers: { "x-ms-client-principal-name": FORGED, "x-ms-client-principal-id": "forged" },
    });
    expect(res.status).toBe(202);
    const instanceId = String(res.body?.instanceId);
    const done = await rig.host.waitForCompletion(instanceId, { timeoutMs: 60_000 });
    expect(done.runtimeStatus).toBe("Completed");
    const records = (await auditOf("stmlshared", token)).filter((r) => r.instanceId === instanceId);
    expect(records.length).toBeGreaterThan(0);
    for (const r of records) expect(r.startedBy).toBe(`app ${operator.clientId} (oid ${operator.objectId})`);
    expect(claims.oid).toBe(operator.objectId);
    expect(readFileSync(process.env.KEYTURN_AUDIT_FILE!, "utf8")).not.toContain(FORGED);
  });
});

describe("without KEYTURN_API_AUDIENCE, function keys alone", () => {
  beforeAll(functionKeysOnly);

  it("records 'function key', even with WEBSITE_AUTH_ENABLED and a forged x-ms-client-principal-name", async () => {
    process.env.WEBSITE_AUTH_ENABLED = "True";
    const res = await call("POST", "/api/rotations", {
      body: { scope: { storageAccounts: ["stmlbatch"] }, graceMinutes: 0 },
      headers: { "x-ms-client-principal-name": FORGED },
    });
    expect(res.status).toBe(202);
    const instanceId = String(res.body?.instanceId);
    await rig.host.waitForCompletion(instanceId, { timeoutMs: 60_000 });
    const records = (await auditOf("stmlbatch")).filter((r) => r.instanceId === instanceId);
    expect(records.length).toBeGreaterThan(0);
    for (const r of records) expect(r.startedBy).toBe("function key");
    expect(readFileSync(process.env.KEYTURN_AUDIT_FILE!, "utf8")).not.toContain(FORGED);
  });

  it("names a missing tenant when an audience is set without one, and starts nothing", async () => {
    process.env.KEYTURN_API_AUDIENCE = AUDIENCE;
    try {
      const before = started();
      const res = await call("POST", "/api/rotations", {
        body: { scope: { storageAccounts: ["stmllake"] } },
      });
      expect(res.status).toBe(500);
      expect(JSON.stringify(res.body)).toContain("KEYTURN_API_TENANT_ID");
      expect(started()).toEqual(before);
    } finally {
      delete process.env.KEYTURN_API_AUDIENCE;
    }
  });
});
