import type { Emulator } from "../../emulator";
import { CLASSIC_DEMO_ACCOUNT, DEMO_SUBSCRIPTION_ID } from "../../emulator/estates";
import { armToken, raw, startTestEmulator, type Clients } from "../helpers/emulator";
import { regenerationCounts } from "../helpers/estate";
import {
  SM_XMLNS,
  keysPath,
  regenerateBody,
  serviceManagement,
  smError,
  storageServiceKeys,
  tokenFor,
} from "../helpers/classic";

/**
 * The emulator's Service Management API for classic storage accounts, as seed 002 and Microsoft's
 * "Service Management Status and Error Codes" describe it, and ARM's Microsoft.ClassicStorage view.
 */

let emulator: Emulator;
let clients: Clients;
let token: string;
const LEGACY = CLASSIC_DEMO_ACCOUNT;

beforeAll(async () => {
  ({ emulator, clients } = await startTestEmulator());
  token = await tokenFor(emulator);
});
afterAll(async () => {
  await emulator?.stop();
});

const legacyCount = () => regenerationCounts(emulator)[LEGACY] ?? { key1: 0, key2: 0 };

describe("Get Storage Keys", () => {
  it("answers a StorageService with the account's Url and both keys, in Service Management's namespace", async () => {
    const answer = await serviceManagement(emulator, "GET", keysPath(emulator, LEGACY), { token });
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toMatch(/^application\/xml/);
    expect(answer.headers["x-ms-request-id"]).toBeDefined();
    const service = answer.xml.StorageService as { "@xmlns": string; Url: string };
    expect(service["@xmlns"]).toBe(SM_XMLNS);
    expect(service.Url).toBe(
      `${emulator.connection.serviceManagementEndpoint}/${DEMO_SUBSCRIPTION_ID}/services/storageservices/${LEGACY}`,
    );
    const keys = storageServiceKeys(answer);
    const account = [...emulator.ctx.estate.storageAccounts.values()].find((a) => a.name === LEGACY)!;
    expect(keys).toEqual({ primary: account.keys.key1.value, secondary: account.keys.key2.value });
  });
});

describe("Regenerate Keys", () => {
  it.each([
    ["Primary", "key1"],
    ["Secondary", "key2"],
  ] as const)("with KeyType %s regenerates %s alone and answers with both keys", async (keyType, keyName) => {
    const before = storageServiceKeys(
      await serviceManagement(emulator, "GET", keysPath(emulator, LEGACY), { token }),
    );
    const counts = legacyCount();
    const answer = await serviceManagement(
      emulator,
      "POST",
      `${keysPath(emulator, LEGACY)}?action=regenerate`,
      {
        token,
        body: regenerateBody(keyType),
      },
    );
    expect(answer.status).toBe(200);
    const after = storageServiceKeys(answer);
    const changed = keyName === "key1" ? "primary" : "secondary";
    const kept = keyName === "key1" ? "secondary" : "primary";
    expect(after[changed]).not.toBe(before[changed]);
    expect(after[kept]).toBe(before[kept]);
    expect(legacyCount()).toEqual({ ...counts, [keyName]: counts[keyName] + 1 });
    // The new key is the one Get Storage Keys shows from now on.
    const read = storageServiceKeys(
      await serviceManagement(emulator, "GET", keysPath(emulator, LEGACY), { token }),
    );
    expect(read).toEqual(after);
  });

  it("takes the namespace as the archived documentation prints it (https) too", async () => {
    const counts = legacyCount();
    const answer = await serviceManagement(
      emulator,
      "POST",
      `${keysPath(emulator, LEGACY)}?action=regenerate`,
      {
        token,
        body: regenerateBody("Secondary", "https://schemas.microsoft.com/windowsazure"),
      },
    );
    expect(answer.status).toBe(200);
    expect(legacyCount().key2).toBe(counts.key2 + 1);
  });

  it.each([
    [
      "bad XML",
      `${"?action=regenerate"}`,
      "<RegenerateKeys><KeyType>Primary</KeyType>",
      {},
      400,
      "InvalidXmlRequest",
    ],
    ["an empty body", "?action=regenerate", " ", {}, 400, "InvalidXmlRequest"],
    [
      "another root element",
      "?action=regenerate",
      `<RegenerateKey xmlns="${SM_XMLNS}"><KeyType>Primary</KeyType></RegenerateKey>`,
      {},
      400,
      "InvalidXmlRequest",
    ],
    [
      "another namespace",
      "?action=regenerate",
      regenerateBody("Primary", "http://example.com/ns"),
      {},
      400,
      "InvalidXmlRequest",
    ],
    ["an unknown KeyType", "?action=regenerate", regenerateBody("Tertiary"), {}, 400, "BadRequest"],
    ["a lower-case KeyType", "?action=regenerate", regenerateBody("primary"), {}, 400, "BadRequest"],
    [
      "no action=regenerate",
      "",
      regenerateBody("Primary"),
      {},
      400,
      "MissingOrInvalidRequiredQueryParameter",
    ],
    [
      "no x-ms-version",
      "?action=regenerate",
      regenerateBody("Primary"),
      { "x-ms-version": "" },
      400,
      "MissingOrIncorrectVersionHeader",
    ],
    [
      "an x-ms-version older than 2009-10-01",
      "?action=regenerate",
      regenerateBody("Primary"),
      { "x-ms-version": "2008-01-01" },
      400,
      "MissingOrIncorrectVersionHeader",
    ],
    [
      "a JSON content type",
      "?action=regenerate",
      regenerateBody("Primary"),
      { "content-type": "application/json" },
      400,
      "BadRequest",
    ],
  ])(
    "answers %s with Service Management's XML error and regenerates nothing",
    async (_what, query, body, headers, status, code) => {
      const counts = legacyCount();
      const answer = await serviceManagement(emulator, "POST", `${keysPath(emulator, LEGACY)}${query}`, {
        token,
        body,
        headers,
      });
      expect(answer.status).toBe(status);
      expect(answer.headers["content-type"]).toMatch(/^application\/xml/);
      expect(smError(answer)).toMatchObject({ code, xmlns: SM_XMLNS });
      expect(smError(answer).message).toMatch(/\S/);
      expect(legacyCount()).toEqual(counts);
    },
  );
});

describe("errors every Service Management call shares", () => {
  it("a GET without x-ms-version is refused with MissingOrIncorrectVersionHeader", async () => {
    const answer = await serviceManagement(emulator, "GET", keysPath(emulator, LEGACY), {
      token,
      headers: { "x-ms-version": "" },
    });
    expect(answer.status).toBe(400);
    expect(smError(answer)).toEqual({
      code: "MissingOrIncorrectVersionHeader",
      message: "The versioning header is not specified or was specified incorrectly.",
      xmlns: SM_XMLNS,
    });
  });

  it.each([["nosuchaccount"], ["stmlshared"]])(
    "an account Service Management does not know (%s: none, or an ARM one) is a 404 ResourceNotFound naming it",
    async (name) => {
      const answer = await serviceManagement(emulator, "GET", keysPath(emulator, name), { token });
      expect(answer.status).toBe(404);
      expect(smError(answer)).toEqual({
        code: "ResourceNotFound",
        message: `The storage account '${name}' was not found.`,
        xmlns: SM_XMLNS,
      });
    },
  );

  it("an unknown subscription is a 404 naming it", async () => {
    const other = "00000000-0000-4000-8000-000000000000";
    const answer = await serviceManagement(
      emulator,
      "GET",
      `/${other}/services/storageservices/${LEGACY}/keys`,
      {
        token,
      },
    );
    expect(answer.status).toBe(404);
    expect(smError(answer).message).toContain(other);
  });

  it("refuses a token for ARM's audience, and none at all, with 403 AuthenticationFailed", async () => {
    const armAudience = await armToken(clients);
    for (const options of [{ token: armAudience }, {}]) {
      const answer = await serviceManagement(emulator, "GET", keysPath(emulator, LEGACY), options);
      expect(answer.status).toBe(403);
      expect(smError(answer).code).toBe("AuthenticationFailed");
    }
  });

  it("checks the Microsoft.ClassicStorage action on the account and names it when the caller lacks it", async () => {
    const reader = emulator.addPrincipal("classic-reader", {
      Name: "classic reader",
      Actions: ["Microsoft.ClassicStorage/storageAccounts/listKeys/action"],
    });
    const readerToken = await tokenFor(emulator, undefined, reader);
    const read = await serviceManagement(emulator, "GET", keysPath(emulator, LEGACY), { token: readerToken });
    expect(read.status).toBe(200);
    const counts = legacyCount();
    const denied = await serviceManagement(
      emulator,
      "POST",
      `${keysPath(emulator, LEGACY)}?action=regenerate`,
      {
        token: readerToken,
        body: regenerateBody("Primary"),
      },
    );
    expect(denied.status).toBe(403);
    expect(smError(denied).code).toBe("AuthorizationFailed");
    expect(smError(denied).message).toContain(
      "Microsoft.ClassicStorage/storageAccounts/regenerateKey/action",
    );
    expect(smError(denied).message).toContain(
      `/providers/Microsoft.ClassicStorage/storageAccounts/${LEGACY}`,
    );
    expect(legacyCount()).toEqual(counts);
  });

  it("logs every call with its operation, action and caller", async () => {
    const before = emulator.requestLog.length;
    await serviceManagement(emulator, "GET", keysPath(emulator, LEGACY), { token });
    expect(emulator.requestLog.slice(before)).toEqual([
      expect.objectContaining({
        method: "GET",
        operation: "storageServices.getKeys",
        action: "Microsoft.ClassicStorage/storageAccounts/listKeys/action",
        clientId: emulator.connection.clientId,
        status: 200,
      }),
    ]);
  });

  it("a wrong verb is InvalidHttpVerb, an unknown path ResourceNotFound", async () => {
    const put = await serviceManagement(emulator, "PUT", keysPath(emulator, LEGACY), { token });
    expect([put.status, smError(put).code]).toEqual([400, "InvalidHttpVerb"]);
    const unknown = await serviceManagement(
      emulator,
      "GET",
      `/${DEMO_SUBSCRIPTION_ID}/services/hostedservices`,
      {
        token,
      },
    );
    expect([unknown.status, smError(unknown).code]).toEqual([404, "ResourceNotFound"]);
  });
});

describe("ARM's view of classic accounts", () => {
  const classicList = `/subscriptions/${DEMO_SUBSCRIPTION_ID}/providers/Microsoft.ClassicStorage/storageAccounts?api-version=2016-11-01`;

  it("Microsoft.ClassicStorage lists and gets the classic account alone, with its endpoints", async () => {
    const bearer = await armToken(clients);
    const list = await raw(emulator, "GET", classicList, { token: bearer });
    expect(list.status).toBe(200);
    const value = (
      list.body as {
        value: { id: string; name: string; type: string; properties: { endpoints: string[] } }[];
      }
    ).value;
    expect(value.map((a) => a.name)).toEqual([LEGACY]);
    expect(value[0]!.type).toBe("Microsoft.ClassicStorage/storageAccounts");
    expect(value[0]!.properties.endpoints[0]).toMatch(new RegExp(`/${LEGACY}/$`));
    const get = await raw(emulator, "GET", `${value[0]!.id}?api-version=2016-11-01`, { token: bearer });
    expect(get.status).toBe(200);
    expect((get.body as { id: string }).id).toBe(value[0]!.id);
  });

  it("Microsoft.Storage neither lists nor serves it", async () => {
    const names: string[] = [];
    for await (const account of clients.storage.storageAccounts.list()) names.push(account.name!);
    expect(names).not.toContain(LEGACY);
    expect(names.length).toBeGreaterThan(3);
    await expect(
      clients.storage.storageAccounts.getProperties("rg-ml-research", LEGACY),
    ).rejects.toMatchObject({
      statusCode: 404,
    });
    await expect(clients.storage.storageAccounts.listKeys("rg-ml-research", LEGACY)).rejects.toMatchObject({
      statusCode: 404,
    });
  });

  it("Microsoft.ClassicStorage does not serve ARM accounts, and refuses an api-version it does not have", async () => {
    const bearer = await armToken(clients);
    const base = `/subscriptions/${DEMO_SUBSCRIPTION_ID}/resourceGroups/rg-ml-research/providers/Microsoft.ClassicStorage/storageAccounts`;
    const arm = await raw(emulator, "GET", `${base}/stmlresearch?api-version=2016-11-01`, { token: bearer });
    expect(arm.status).toBe(404);
    const version = await raw(emulator, "GET", `${base}/${LEGACY}?api-version=2025-08-01`, { token: bearer });
    expect(version.status).toBe(400);
  });
});
