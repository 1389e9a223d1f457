import { createHmac } from "node:crypto";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent, request } from "node:https";
import { join } from "node:path";
import { BatchManagementClient } from "@azure/arm-batch";
import { BatchServiceClient, BatchSharedKeyCredentials } from "@azure/batch";
import type { Emulator } from "../../emulator";
import { projectRoot } from "../../emulator/paths";
import { loadRoleDefinition } from "../../emulator/rbac";
import {
  admin,
  armToken,
  clientOptions,
  clientsFor,
  raw,
  startTestEmulator,
  type Clients,
} from "../helpers/emulator";
import { batchRegenerationCounts, whileEntraIdOnly } from "../helpers/estate";

/**
 * Microsoft.Batch shared keys through @azure/arm-batch, and the emulator's Batch data plane through
 * @azure/batch: a key is proven by a SharedKey-signed call, and a regenerated key is refused at once.
 */

const PROD = "rg-ml-prod";
const BATCH = "batchmltrain";
const BATCH_ROLE = loadRoleDefinition(join(projectRoot(), "infra", "keyturn-batch-role.json"));

let emulator: Emulator;
let clients: Clients;
/** A principal holding exactly infra/keyturn-batch-role.json. */
let operator: Clients;

beforeAll(async () => {
  ({ emulator, clients } = await startTestEmulator({ optInRoleFiles: [] }));
  operator = clientsFor(emulator, emulator.addPrincipal("batch-keys", BATCH_ROLE));
});
afterAll(async () => {
  await emulator?.stop();
});

function dataPlane(endpoint: string, account: string, key: string): BatchServiceClient {
  return new BatchServiceClient(new BatchSharedKeyCredentials(account, key), `https://${endpoint}`, {
    noRetryPolicy: true,
    agentSettings: { http: new HttpAgent(), https: new HttpsAgent({ ca: emulator.caCert }) },
  });
}

interface Outcome {
  status: number;
  code?: string;
  body?: unknown;
}

/** `GET /applications` (or another call) on the data plane: 200, or the refusal's status, code and body. */
async function call(
  client: BatchServiceClient,
  op: (c: BatchServiceClient) => Promise<unknown> = (c) => c.application.list(),
): Promise<Outcome> {
  try {
    await op(client);
    return { status: 200 };
  } catch (e) {
    // @azure/batch keeps Batch's error body, deserialized, as `body` (and its `message` object as the message).
    const err = e as { statusCode?: number; code?: string; body?: unknown };
    return { status: err.statusCode ?? 0, code: err.code, body: err.body };
  }
}

async function endpointOf(rg: string, name: string): Promise<string> {
  return (await clients.batch.batchAccountOperations.get(rg, name)).accountEndpoint!;
}

async function keysOf(): Promise<{ primary: string; secondary: string }> {
  const keys = await operator.batch.batchAccountOperations.getKeys(PROD, BATCH);
  return { primary: keys.primary!, secondary: keys.secondary! };
}

/** A GET signed by hand as Microsoft's "Authenticate requests to Azure Batch" documents it. */
function signedByHand(
  endpoint: string,
  path: string,
  query: string,
  key: string,
): Promise<{ status: number; body: unknown }> {
  const date = new Date().toUTCString();
  const canonicalQuery = query
    .split("&")
    .filter((p) => p !== "")
    .map((p) => `\n${p.replace("=", ":")}`)
    .join("");
  const stringToSign = `GET${"\n".repeat(12)}ocp-date:${date}\n/${BATCH}${path}${canonicalQuery}`;
  const signature = createHmac("sha256", Buffer.from(key, "base64"))
    .update(stringToSign, "utf8")
    .digest("base64");
  return new Promise((resolve, reject) => {
    const req = request(
      `https://${endpoint}${path}${query ? `?${query}` : ""}`,
      {
        ca: emulator.caCert,
        headers: { "ocp-date": date, authorization: `SharedKey ${BATCH}:${signature}` },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("Batch accounts' authentication modes and data-plane endpoint", () => {
  it("reports allowedAuthenticationModes as they are, and an accountEndpoint the emulator serves", async () => {
    const batch = await clients.batch.batchAccountOperations.get(PROD, BATCH);
    expect(batch.allowedAuthenticationModes).toEqual(["SharedKey", "AAD", "TaskAuthenticationToken"]);
    expect(batch.accountEndpoint).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(batch.accountEndpoint).not.toBe(new URL(emulator.connection.armEndpoint).host);
    const entraOnly = await whileEntraIdOnly(emulator, BATCH, () =>
      clients.batch.batchAccountOperations.get(PROD, BATCH),
    );
    expect(entraOnly.allowedAuthenticationModes).toEqual(["AAD"]);
  });
});

describe("Batch keys through @azure/arm-batch", () => {
  it("listKeys answers BatchAccountKeys {accountName, primary, secondary} to the Batch role, not to keyturn's main role", async () => {
    const token = await armToken(operator);
    const sub = emulator.connection.subscriptionIds[0]!;
    const path = `/subscriptions/${sub}/resourceGroups/${PROD}/providers/Microsoft.Batch/batchAccounts/${BATCH}/listKeys?api-version=2024-07-01`;
    const answer = await raw(emulator, "POST", path, { token });
    expect(answer.status).toBe(200);
    expect(Object.keys(answer.body as object).sort()).toEqual(["accountName", "primary", "secondary"]);
    expect((answer.body as { accountName: string }).accountName).toBe(BATCH);

    const refused = await raw(emulator, "POST", path, { token: await armToken(clients) });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain("Microsoft.Batch/batchAccounts/listkeys/action");
  });

  it("regenerateKeys Primary replaces the primary key only, and the ledger records a Batch regeneration", async () => {
    const before = await keysOf();
    const regenerations = emulator.ctx.regenerations.length;
    const after = await operator.batch.batchAccountOperations.regenerateKey(PROD, BATCH, {
      keyName: "Primary",
    });
    expect(after.accountName).toBe(BATCH);
    expect(after.primary).not.toBe(before.primary);
    expect(after.secondary).toBe(before.secondary);
    expect(emulator.ctx.regenerations.slice(regenerations)).toEqual([
      {
        account: BATCH,
        key: "key1",
        at: expect.stringMatching(/Z$/) as unknown,
        outOfBand: false,
        batch: true,
      },
    ]);
    expect(emulator.ctx.issuedKeys.has(after.primary!)).toBe(true);
  });

  it("regenerateKeys refuses a keyName other than Primary or Secondary with 400 and changes nothing", async () => {
    const before = await keysOf();
    const regenerations = emulator.ctx.regenerations.length;
    // @azure/arm-batch checks keyName itself: what another client might send goes raw.
    const sub = emulator.connection.subscriptionIds[0]!;
    const answer = await raw(
      emulator,
      "POST",
      `/subscriptions/${sub}/resourceGroups/${PROD}/providers/Microsoft.Batch/batchAccounts/${BATCH}/regenerateKeys?api-version=2024-07-01`,
      { token: await armToken(operator), body: JSON.stringify({ keyName: "key1" }) },
    );
    expect(answer.status).toBe(400);
    expect(await keysOf()).toEqual(before);
    expect(emulator.ctx.regenerations).toHaveLength(regenerations);
  });

  it("an Entra-ID-only account's keys can be neither listed nor regenerated (400)", async () => {
    const before = await keysOf();
    const regenerations = emulator.ctx.regenerations.length;
    await whileEntraIdOnly(emulator, BATCH, async () => {
      await expect(operator.batch.batchAccountOperations.getKeys(PROD, BATCH)).rejects.toMatchObject({
        statusCode: 400,
        code: "SharedKeyAuthenticationNotAllowed",
      });
      await expect(
        operator.batch.batchAccountOperations.regenerateKey(PROD, BATCH, { keyName: "Secondary" }),
      ).rejects.toMatchObject({ statusCode: 400, code: "SharedKeyAuthenticationNotAllowed" });
    });
    expect(emulator.ctx.regenerations).toHaveLength(regenerations);
    expect(await keysOf()).toEqual(before);
  });

  it("a fault injected on regenerateKey answers in place of the service: nothing is regenerated", async () => {
    const noRetries = new BatchManagementClient(
      operator.credential,
      emulator.connection.subscriptionIds[0]!,
      { ...clientOptions(emulator.connection, emulator.caCert), retryOptions: { maxRetries: 0 } },
    );
    const before = await keysOf();
    const regenerations = emulator.ctx.regenerations.length;
    await admin(emulator, "POST", "/faults", {
      operation: "batchAccounts.regenerateKey",
      action: { type: "status", status: 503 },
    });
    await expect(
      noRetries.batchAccountOperations.regenerateKey(PROD, BATCH, { keyName: "Secondary" }),
    ).rejects.toMatchObject({ statusCode: 503 });
    expect(await keysOf()).toEqual(before);
    expect(emulator.ctx.regenerations).toHaveLength(regenerations);
  });

  it("listKeys draws from the write bucket: a drained bucket answers 429, which the SDK waits out", async () => {
    const sub = emulator.connection.subscriptionIds[0]!;
    await admin(emulator, "POST", "/throttle/drain", { subscriptionId: sub, kind: "write" });
    const logged = emulator.requestLog.length;
    await keysOf();
    const calls = emulator.requestLog.slice(logged).filter((r) => r.operation === "batchAccounts.getKeys");
    expect(calls.map((c) => c.status)).toEqual([429, 200]);
  });

  it("an out-of-band regeneration (admin API) is recorded as such", async () => {
    const before = batchRegenerationCounts(emulator)[BATCH] ?? { key1: 0, key2: 0 };
    expect(
      (await admin(emulator, "POST", `/batchAccounts/${BATCH}/regenerateKeys`, { keyName: "key2" })).status,
    ).toBe(204);
    expect(batchRegenerationCounts(emulator)[BATCH]).toEqual({ ...before, key2: before.key2 + 1 });
    expect(emulator.ctx.regenerations.at(-1)).toMatchObject({ account: BATCH, outOfBand: true, batch: true });
  });
});

describe("the Batch data plane through @azure/batch", () => {
  it("answers GET /applications and GET /pools signed with either live key", async () => {
    const endpoint = await endpointOf(PROD, BATCH);
    const keys = await keysOf();
    for (const key of [keys.primary, keys.secondary]) {
      expect(await call(dataPlane(endpoint, BATCH, key))).toEqual({ status: 200 });
      expect(await call(dataPlane(endpoint, BATCH, key), (c) => c.pool.list())).toEqual({ status: 200 });
    }
  });

  it("refuses a key the account does not hold with 403 AuthenticationFailed in Batch's error shape", async () => {
    const endpoint = await endpointOf(PROD, BATCH);
    const wrong = Buffer.alloc(64, 7).toString("base64");
    const refused = await call(dataPlane(endpoint, BATCH, wrong));
    expect(refused).toMatchObject({ status: 403, code: "AuthenticationFailed" });
    expect(refused.body).toEqual({
      "odata.metadata": expect.stringContaining("$metadata#") as unknown,
      code: "AuthenticationFailed",
      message: {
        lang: "en-US",
        value: expect.stringContaining("Server failed to authenticate the request") as unknown,
      },
      values: [
        { key: "AuthenticationErrorDetail", value: expect.stringContaining("MAC signature") as unknown },
      ],
    });
  });

  it("refuses a regenerated key at once, and takes its replacement and the untouched key", async () => {
    const endpoint = await endpointOf(PROD, BATCH);
    const before = await keysOf();
    expect(await call(dataPlane(endpoint, BATCH, before.secondary))).toEqual({ status: 200 });
    const after = await operator.batch.batchAccountOperations.regenerateKey(PROD, BATCH, {
      keyName: "Secondary",
    });
    expect(await call(dataPlane(endpoint, BATCH, before.secondary))).toMatchObject({
      status: 403,
      code: "AuthenticationFailed",
    });
    expect(await call(dataPlane(endpoint, BATCH, after.secondary!))).toEqual({ status: 200 });
    expect(await call(dataPlane(endpoint, BATCH, before.primary))).toEqual({ status: 200 });
  });

  it("an Entra-ID-only account refuses SharedKey even with a live key: 403 'SharedKey is not allowed'", async () => {
    const endpoint = await endpointOf(PROD, BATCH);
    const { primary } = await keysOf();
    const refused = await whileEntraIdOnly(emulator, BATCH, () => call(dataPlane(endpoint, BATCH, primary)));
    expect(refused).toMatchObject({ status: 403, code: "AuthenticationFailed" });
    expect(JSON.stringify(refused.body)).toContain("SharedKey is not allowed for this account");
    expect(await call(dataPlane(endpoint, BATCH, primary))).toEqual({ status: 200 });
  });

  it("refuses another account's name, a request dated 20 minutes ago, and no Authorization header", async () => {
    const endpoint = await endpointOf(PROD, BATCH);
    const { primary } = await keysOf();
    expect(await call(dataPlane(endpoint, "otheraccount", primary))).toMatchObject({ status: 403 });
    const stale = await call(dataPlane(endpoint, BATCH, primary), (c) =>
      c.application.list({ applicationListOptions: { ocpDate: new Date(Date.now() - 20 * 60_000) } }),
    );
    expect(stale).toMatchObject({ status: 403, code: "AuthenticationFailed" });
    const anonymous = await new Promise<number>((resolve, reject) => {
      const req = request(
        `https://${endpoint}/applications?api-version=2022-10-01.16.0`,
        { ca: emulator.caCert },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(anonymous).toBe(401);
  });

  it("takes a request signed by hand as Microsoft documents the scheme; without api-version it is a 400", async () => {
    const endpoint = await endpointOf(PROD, BATCH);
    const { primary } = await keysOf();
    const ok = await signedByHand(endpoint, "/pools", "api-version=2024-07-01.20.0&maxresults=10", primary);
    expect(ok).toEqual({ status: 200, body: { "odata.metadata": expect.any(String) as unknown, value: [] } });
    const missing = await signedByHand(endpoint, "/pools", "", primary);
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ code: "MissingRequiredQueryParameter" });
  });
});
