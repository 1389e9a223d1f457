import { randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import { type DataPlane, type DataPlaneAccount, startDataPlane } from "../../emulator/dataplane";

const newKey = (): string => randomBytes(64).toString("base64");
const newAccount = (name: string): DataPlaneAccount => ({ name, key1: newKey(), key2: newKey() });

function azuriteWellKnownKey(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- Azurite is untyped
  const constants = require("azurite/dist/src/blob/utils/constants") as { EMULATOR_ACCOUNT_KEY_STR: string };
  return constants.EMULATOR_ACCOUNT_KEY_STR;
}

function portOf(endpoint: string): number {
  return Number(new URL(endpoint).port);
}

function listenOn(port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

function httpGet(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false }, (response) => {
      response.resume();
      response.once("end", () => resolve(response.statusCode ?? 0));
    });
    request.once("error", reject);
  });
}

describe("storage data plane (in-process Azurite)", () => {
  const container = "probe";
  let alpha: DataPlaneAccount;
  let beta: DataPlaneAccount;
  let plane: DataPlane;
  const output: string[] = [];
  const spies: jest.SpyInstance[] = [];

  beforeAll(async () => {
    // Anything Azurite prints is captured, to check no key material reaches the output.
    for (const method of ["log", "info", "warn", "error", "debug"] as const) {
      spies.push(
        jest.spyOn(console, method).mockImplementation((...args: unknown[]) => output.push(args.join(" "))),
      );
    }
    alpha = newAccount("alphaacct");
    beta = newAccount("betaacct");
    plane = await startDataPlane({ accounts: [alpha, beta], tables: true, queues: true });
    await plane.ensureContainer(alpha.name, container);
    await plane.ensureContainer(beta.name, container);
  });

  afterAll(async () => {
    await plane.stop();
    for (const spy of spies) spy.mockRestore();
  });

  it("reports path-style endpoints on an ephemeral port", () => {
    expect(plane.blobEndpoint(alpha.name)).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/alphaacct\/$/);
    expect(portOf(plane.blobEndpoint(alpha.name))).toBeGreaterThan(0);
    expect(plane.tableEndpoint(alpha.name)).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/alphaacct\/$/);
    expect(plane.queueEndpoint(alpha.name)).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/alphaacct\/$/);
  });

  it("accepts both keys of an account", async () => {
    await expect(plane.probe(alpha.name, alpha.key1, container)).resolves.toEqual({ ok: true });
    await expect(plane.probe(alpha.name, alpha.key2, container)).resolves.toEqual({ ok: true });
  });

  it("answers 404 for a missing container with a valid key", async () => {
    await expect(plane.probe(alpha.name, alpha.key1, "nosuchcontainer")).resolves.toEqual({
      ok: false,
      status: 404,
      code: "ContainerNotFound",
    });
  });

  it("rejects a random key with 403", async () => {
    await expect(plane.probe(alpha.name, newKey(), container)).resolves.toMatchObject({
      ok: false,
      status: 403,
    });
  });

  it("keeps accounts isolated: one account's keys do not open another", async () => {
    await expect(plane.probe(beta.name, alpha.key1, container)).resolves.toMatchObject({
      ok: false,
      status: 403,
    });
    await expect(plane.probe(beta.name, alpha.key2, container)).resolves.toMatchObject({
      ok: false,
      status: 403,
    });
    await expect(plane.probe(beta.name, beta.key1, container)).resolves.toEqual({ ok: true });
  });

  it("refuses an account it does not serve", async () => {
    await expect(plane.probe("unknownacct", newKey(), container)).resolves.toEqual({
      ok: false,
      status: 404,
      code: "ResourceNotFound",
    });
  });

  it("rejects a regenerated key1 at once while key2 and the new key1 work", async () => {
    const oldKey1 = alpha.key1;
    alpha = { ...alpha, key1: newKey() };
    await plane.setAccounts([alpha, beta]);

    await expect(plane.probe(alpha.name, oldKey1, container)).resolves.toMatchObject({
      ok: false,
      status: 403,
    });
    await expect(plane.probe(alpha.name, alpha.key2, container)).resolves.toEqual({ ok: true });
    await expect(plane.probe(alpha.name, alpha.key1, container)).resolves.toEqual({ ok: true });
    await expect(plane.probe(beta.name, beta.key1, container)).resolves.toEqual({ ok: true });
  });

  it("applies concurrent setAccounts calls in call order", async () => {
    const first = { ...alpha, key2: newKey() };
    const second = { ...alpha, key2: newKey() };
    await Promise.all([plane.setAccounts([first, beta]), plane.setAccounts([second, beta])]);
    alpha = second;

    await expect(plane.probe(alpha.name, first.key2, container)).resolves.toMatchObject({
      ok: false,
      status: 403,
    });
    await expect(plane.probe(alpha.name, second.key2, container)).resolves.toEqual({ ok: true });
  });

  it("rejects an invalid account list without dropping the current accounts", async () => {
    await expect(plane.setAccounts([{ ...alpha, key1: "not base64!" }])).rejects.toThrow(
      /key1 that is not base64/,
    );
    await expect(plane.setAccounts([{ ...alpha, name: "Bad:Name" }])).rejects.toThrow(
      /Invalid storage account name/,
    );
    await expect(plane.probe(alpha.name, alpha.key1, container)).resolves.toEqual({ ok: true });
  });

  it("creates containers idempotently with the current key1", async () => {
    await plane.ensureContainer(alpha.name, "second");
    await plane.ensureContainer(alpha.name, "second");
    await expect(plane.probe(alpha.name, alpha.key2, "second")).resolves.toEqual({ ok: true });
    await expect(plane.ensureContainer("unknownacct", "second")).rejects.toThrow(/not served/);
  });

  it("answers HTTP on the table and queue endpoints when enabled", async () => {
    const table = plane.tableEndpoint(alpha.name);
    const queue = plane.queueEndpoint(alpha.name);
    if (table === undefined || queue === undefined) throw new Error("table and queue endpoints expected");
    // An unsigned request: any HTTP answer proves the service is up.
    await expect(httpGet(`${table}Tables`)).resolves.toBeGreaterThanOrEqual(400);
    await expect(httpGet(`${queue}?comp=list`)).resolves.toBeGreaterThanOrEqual(400);
  });

  it("refuses to start a second data plane in the same process", async () => {
    await expect(startDataPlane({ accounts: [newAccount("otheracct")] })).rejects.toThrow(/already running/);
  });

  it("prints no key material", () => {
    const printed = output.join("\n");
    for (const key of [alpha.key1, alpha.key2, beta.key1, beta.key2]) expect(printed).not.toContain(key);
  });
});

describe("storage data plane lifecycle", () => {
  it("frees its ports on stop()", async () => {
    const plane = await startDataPlane({ accounts: [newAccount("lifecycle")], tables: true });
    let blobPort: number;
    let tablePort: number;
    try {
      await plane.ensureContainer("lifecycle", "data");
      blobPort = portOf(plane.blobEndpoint("lifecycle"));
      const tableEndpoint = plane.tableEndpoint("lifecycle");
      if (tableEndpoint === undefined) throw new Error("table endpoint expected");
      tablePort = portOf(tableEndpoint);
      expect(plane.queueEndpoint("lifecycle")).toBeUndefined();
    } finally {
      await plane.stop();
    }

    await expect(listenOn(blobPort, "127.0.0.1")).resolves.toBeUndefined();
    await expect(listenOn(tablePort, "127.0.0.1")).resolves.toBeUndefined();
    expect(() => plane.blobEndpoint("lifecycle")).toThrow(/not running/);
  });

  it("keeps the data plane closed when given no accounts", async () => {
    const plane = await startDataPlane({ accounts: [] });
    try {
      // devstoreaccount1 must not come back: its key is published (taken from Azurite, not written here).
      const result = await plane.probe("devstoreaccount1", azuriteWellKnownKey(), "data");
      // Azurite answers an account it does not hold with 404 ResourceNotFound (an unknown
      // container of a known account would be ContainerNotFound).
      expect(result).toEqual({ ok: false, status: 404, code: "ResourceNotFound" });
    } finally {
      await plane.stop();
    }
  });

  it("fails to start on a busy port and leaves the way open for the next start", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    try {
      const busy = (blocker.address() as net.AddressInfo).port;
      await expect(startDataPlane({ accounts: [newAccount("busyport")], blobPort: busy })).rejects.toThrow(
        /EADDRINUSE/,
      );
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it("can start again after a stop", async () => {
    const account = newAccount("again");
    const plane = await startDataPlane({ accounts: [account] });
    try {
      await plane.ensureContainer(account.name, "data");
      await expect(plane.probe(account.name, account.key2, "data")).resolves.toEqual({ ok: true });
    } finally {
      await plane.stop();
    }
  });
});
