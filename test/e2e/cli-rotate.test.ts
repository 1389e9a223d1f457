import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ClientSecretCredential } from "@azure/identity";
import { StorageManagementClient } from "@azure/arm-storage";
import { AzureMachineLearningWorkspaces } from "@azure/arm-machinelearning";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { projectRoot } from "../../emulator/paths";
import { scopeInstanceId, type RotationReport } from "../../shared/rotation";
import { rotatable } from "../helpers/estate";

const root = projectRoot();
const bin = join(root, "bin", "keyturn.js");
// A storage key is 88 base64 characters; nothing the CLI prints may look like one.
const KEY_SHAPED = /[A-Za-z0-9+/]{86}==/;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built CLI as a user runs it: its own process, reached only through arguments and files. */
function keyturn(args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

interface Connection {
  armEndpoint: string;
  authorityHost: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  subscriptionIds: string[];
  caCertFile: string;
}

interface Target {
  label: string;
  subscriptionId: string;
  group: string;
  workspace: string;
  datastore: string;
  account: string;
  /** Blob container (ADLS Gen2 file systems are containers on the blob endpoint); none for file shares. */
  container?: string;
}

/**
 * A client that knows nothing of keyturn: the real SDKs and the connection file, as an ML job would
 * be. It keeps reading each AccountKey datastore's secret and using it on the data plane, and counts
 * every failure. Azurite has no file service, so a file datastore's key is used on the blob service.
 */
class IndependentClient {
  probes = 0;
  readonly failures: string[] = [];
  #stopped = false;
  #loop: Promise<void> | undefined;
  readonly #targets: Target[] = [];
  readonly #endpoints = new Map<string, string>();
  readonly #ml = new Map<string, AzureMachineLearningWorkspaces>();

  constructor(private readonly c: Connection) {}

  async discover(): Promise<number> {
    const tlsOptions = { ca: readFileSync(this.c.caCertFile, "utf8") };
    const credential = new ClientSecretCredential(this.c.tenantId, this.c.clientId, this.c.clientSecret, {
      authorityHost: this.c.authorityHost,
      disableInstanceDiscovery: true,
      tlsOptions,
    });
    const options = {
      endpoint: this.c.armEndpoint,
      credentialScopes: ["https://management.azure.com/.default"],
      tlsOptions,
    };
    for (const subscriptionId of this.c.subscriptionIds) {
      const storage = new StorageManagementClient(credential, subscriptionId, options);
      for await (const account of storage.storageAccounts.list()) {
        this.#endpoints.set(account.name!, account.primaryEndpoints!.blob!);
      }
      const ml = new AzureMachineLearningWorkspaces(credential, subscriptionId, options);
      this.#ml.set(subscriptionId, ml);
      for await (const ws of ml.workspaces.listBySubscription()) {
        const group = ws.id!.split("/")[4]!;
        for await (const ds of ml.datastores.list(group, ws.name!)) {
          const p = ds.properties as {
            credentials: { credentialsType: string };
            datastoreType: string;
            accountName: string;
            containerName?: string;
            filesystem?: string;
          };
          // Classic accounts are not Microsoft.Storage resources: this client knows no endpoint for them.
          if (p.credentials.credentialsType !== "AccountKey" || !this.#endpoints.has(p.accountName)) continue;
          this.#targets.push({
            label: `${ws.name!}/${ds.name!}`,
            subscriptionId,
            group,
            workspace: ws.name!,
            datastore: ds.name!,
            account: p.accountName,
            ...(p.datastoreType === "AzureFile" ? {} : { container: p.containerName ?? p.filesystem }),
          });
        }
      }
    }
    return this.#targets.length;
  }

  start(): void {
    this.#loop = (async () => {
      while (!this.#stopped) {
        for (const target of this.#targets) {
          if (this.#stopped) break;
          await this.#probe(target);
          // About 10 ARM reads a second: well inside the subscription's read bucket keyturn shares.
          await sleep(100);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }

  /** The data-plane status for a key nobody issued: proves the probes can see a dead key at all. */
  async statusWithWrongKey(): Promise<number | undefined> {
    const t = this.#targets[0]!;
    const wrong = randomBytes(64).toString("base64");
    const service = new BlobServiceClient(
      this.#endpoints.get(t.account)!,
      new StorageSharedKeyCredential(t.account, wrong),
      { retryOptions: { maxTries: 1 } },
    );
    try {
      await service.getProperties();
      return 200;
    } catch (e) {
      return (e as { statusCode?: number }).statusCode;
    }
  }

  async #probe(t: Target): Promise<void> {
    const at = new Date().toISOString();
    try {
      const ml = this.#ml.get(t.subscriptionId)!;
      const secrets = (await ml.datastores.listSecrets(t.group, t.workspace, t.datastore)) as {
        key?: string;
      };
      if (!secrets.key) throw new Error("listSecrets returned no key");
      const service = new BlobServiceClient(
        this.#endpoints.get(t.account)!,
        new StorageSharedKeyCredential(t.account, secrets.key),
        { retryOptions: { maxTries: 1 } },
      );
      if (t.container) await service.getContainerClient(t.container).getProperties();
      else await service.getProperties();
      this.probes++;
    } catch (e) {
      this.probes++;
      const status = (e as { statusCode?: number }).statusCode ?? "no status";
      this.failures.push(`${at} ${t.label}: ${status} ${(e as Error).message.split("\n")[0]}`);
    }
  }
}

describe("keyturn plan | rotate | status against `keyturn emulator` in another process", () => {
  let dir: string;
  let emulator: ChildProcess;
  let emulatorOutput = "";
  const outputs: string[] = [];
  let rotationId = "";
  const file = () => join(dir, "f.json");
  const run = async (args: string[]) => {
    const result = await keyturn(args, dir);
    outputs.push(result.stdout, result.stderr);
    return result;
  };

  beforeAll(async () => {
    if (!existsSync(join(root, "dist", "cli", "index.js"))) {
      throw new Error("dist/ is missing: run `npm run build` (npm test and npm ci do it).");
    }
    dir = mkdtempSync(join(tmpdir(), "keyturn-cli-"));
    emulator = spawn(process.execPath, [bin, "emulator", "--estate", "demo", "--connection-file", file()], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    emulator.stdout!.on("data", (d: Buffer) => (emulatorOutput += d.toString()));
    emulator.stderr!.on("data", (d: Buffer) => (emulatorOutput += d.toString()));
    for (let i = 0; i < 300 && !existsSync(file()); i++) await sleep(100);
    if (!existsSync(file())) throw new Error(`The emulator wrote no connection file:\n${emulatorOutput}`);
  });

  afterAll(async () => {
    if (emulator && emulator.exitCode === null) {
      const exited = new Promise((r) => emulator.once("exit", r));
      emulator.kill("SIGINT");
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("plan --format mermaid draws the storage account → consumer graph", async () => {
    const result = await run(["plan", "--connection-file", file(), "--format", "mermaid"]);
    expect(result.code).toBe(0);
    expect(result.stdout.startsWith("flowchart")).toBe(true);
    expect(result.stdout).toContain("stmlshared");
  });

  it("refuses a bad --grace with exit 2, naming the value, before anything starts", async () => {
    const stateDir = join(dir, "never-created");
    const result = await run([
      "rotate",
      "--connection-file",
      file(),
      "--grace",
      "ninety",
      "--state-dir",
      stateDir,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('"ninety"');
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(existsSync(stateDir)).toBe(false);
  });

  it("refuses to start a rotation of a scope whose last rotation is unfinished (I5), pointing at resume", async () => {
    // What a killed `keyturn rotate --storage-account stmllake` leaves behind: a Running instance.
    const stateDir = join(dir, "killed");
    mkdirSync(stateDir);
    const id = scopeInstanceId({ storageAccounts: ["stmllake"] });
    const now = new Date().toISOString();
    const record = {
      format: 1,
      instanceId: id,
      name: "rotateAll",
      runtimeStatus: "Running",
      createdTime: now,
      lastUpdatedTime: now,
      executionId: "e1",
      history: [],
      pending: [],
      actions: [],
      nextSequence: 0,
      open: {},
      retries: {},
      episodes: 1,
    };
    writeFileSync(join(stateDir, `${encodeURIComponent(id)}.json`), JSON.stringify(record));
    const result = await run([
      "rotate",
      "--connection-file",
      file(),
      "--storage-account",
      "stmllake",
      "--state-dir",
      stateDir,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`a rotation for this scope is unfinished (id ${id}`);
    expect(result.stderr).toContain("keyturn resume");
    expect(result.stderr).toContain("keyturn status");
    expect(readdirSync(stateDir).filter((f) => f.endsWith(".json"))).toHaveLength(1);
  });

  it("rotates every account (exit 0, one JSON report) while an independent client never sees a failure", async () => {
    const client = new IndependentClient(JSON.parse(readFileSync(file(), "utf8")) as Connection);
    expect(await client.discover()).toBeGreaterThanOrEqual(9);
    client.start();
    let result: Run;
    try {
      await sleep(500); // the client is probing before the rotation starts
      result = await run(["rotate", "--connection-file", file(), "--grace", "5s", "--json"]);
      await sleep(500); // and still after it ends
    } finally {
      await client.stop();
    }
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as RotationReport;
    expect(report.dryRun).toBe(false);
    expect(rotatable(report.accounts).map((a) => [a.name, a.outcome])).toEqual([
      ["stmlbatch", "rotated"],
      ["stmllake", "rotated"],
      ["stmllegacy", "rotated"],
      ["stmlresearch", "rotated"],
      ["stmlshared", "rotated"],
    ]);
    for (const account of rotatable(report.accounts)) {
      expect(account.graceSeconds).toBe(5);
      expect(account.activeKeyAfter?.key).not.toBe(account.activeKeyBefore?.key);
    }
    rotationId = report.rotationId.split("@")[0]!;
    expect(client.failures).toEqual([]);
    expect(client.probes).toBeGreaterThan(0);
    expect(await client.statusWithWrongKey()).toBe(403);
  });

  it("status lists the rotation as Completed", async () => {
    const result = await run(["status"]);
    expect(result.code).toBe(0);
    const line = result.stdout.split("\n").find((l) => l.startsWith(rotationId));
    expect(line).toBeDefined();
    expect(line).toMatch(/\brotateAll\b/);
    expect(line).toContain("Completed");
  });

  it("status --history shows the audit trail: each account rotated, its keys regenerated in order", async () => {
    const result = await run(["status", "--history", "--json"]);
    expect(result.code).toBe(0);
    const records = JSON.parse(result.stdout) as {
      storageAccount: string;
      outcome: string;
      keysRegenerated: string;
      trigger: string;
    }[];
    expect(
      rotatable(records)
        .map((r) => r.storageAccount)
        .sort(),
    ).toEqual(["stmlbatch", "stmllake", "stmllegacy", "stmlresearch", "stmlshared"]);
    for (const r of rotatable(records))
      expect(r).toMatchObject({ outcome: "rotated", keysRegenerated: "key2,key1", trigger: "cli" });
  });

  it("a second rotate of the same scope right after skips every account as too young and exits 0", async () => {
    const result = await run(["rotate", "--connection-file", file(), "--json"]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as RotationReport;
    expect(rotatable(report.accounts)).toHaveLength(5);
    for (const account of rotatable(report.accounts)) {
      expect(account).toMatchObject({ outcome: "skipped", skipCode: "too-young" });
    }
  });

  it("never printed anything shaped like a key", () => {
    for (const text of outputs) expect(text).not.toMatch(KEY_SHAPED);
  });
});
