import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Emulator } from "../../emulator";
import { startTestEmulator } from "../helpers/emulator";

/**
 * Contract: the real Azure CLI (`az`, Debian's azure-cli 2.45), signed in with a service principal to a
 * custom cloud registered from the emulator's `/metadata/endpoints`, works against the emulator. The
 * steps are the ones docs/azure-cli.md gives users.
 *
 * `az` is not on a fresh machine: this file fails (it does not skip) until it is installed.
 * Key values are never printed: az's output for key commands is parsed and compared as booleans, and
 * failures report redacted stderr only.
 */

const INSTALL_HINT = "install azure-cli (apt-get install -y azure-cli)";
const CLOUD = "KeyturnEmulator";
const RG = "rg-ml-prod";
const SHARED = "stmlshared";
const AZ_TIMEOUT_MS = 45_000;

interface AzKey {
  keyName: string;
  value: string;
  permissions: string;
  creationTime: string;
}

let emulator: Emulator | undefined;
let configDir: string | undefined;
let azEnv: NodeJS.ProcessEnv = {};

function run(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // Asynchronous on purpose: the emulator answers az from this same process.
    execFile(
      file,
      args,
      { env, timeout: AZ_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? ((error as NodeJS.ErrnoException).code ?? 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Everything that must never reach test output: the principal's secret and every account key. */
function secrets(): string[] {
  if (!emulator) return [];
  const values = [emulator.connection.clientSecret];
  for (const account of emulator.ctx.estate.storageAccounts.values())
    values.push(account.keys.key1.value, account.keys.key2.value);
  return values;
}

function redact(text: string, extra: string[] = []): string {
  let out = text;
  for (const s of [...secrets(), ...extra]) if (s) out = out.split(s).join("***");
  return out;
}

/** Runs `az … -o json` and parses its output; a failure names the (redacted) command and stderr only. */
async function az<T = unknown>(args: string[], extraSecrets: string[] = []): Promise<T> {
  const { code, stdout, stderr } = await run("az", [...args, "-o", "json"], azEnv);
  if (code !== 0) {
    throw new Error(
      `az ${redact(args.join(" "), extraSecrets)} failed (${String(code)}):\n${redact(stderr, extraSecrets)}`,
    );
  }
  return (stdout.trim() === "" ? undefined : JSON.parse(stdout)) as T;
}

function storageKeysInEmulator(name: string): { key1: string; key2: string } {
  const account = [...emulator!.ctx.estate.storageAccounts.values()].find((a) => a.name === name);
  if (!account) throw new Error(`the emulator has no storage account ${name}`);
  return { key1: account.keys.key1.value, key2: account.keys.key2.value };
}

beforeAll(async () => {
  const probe = await run("az", ["version", "-o", "json"], {
    ...process.env,
    AZURE_CORE_COLLECT_TELEMETRY: "no",
  });
  if (probe.code === "ENOENT") {
    throw new Error(`The Azure CLI ('az') is not on PATH: ${INSTALL_HINT}.`);
  }
  if (probe.code !== 0) throw new Error(`'az version' failed: ${probe.stderr}\n${INSTALL_HINT}.`);

  ({ emulator } = await startTestEmulator());
  configDir = mkdtempSync(join(tmpdir(), "keyturn-az-"));
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) =>
        !/^(AZURE_|ARM_CLOUD_METADATA_URL$|REQUESTS_CA_BUNDLE$|CURL_CA_BUNDLE$|https?_proxy$)/i.test(k),
    ),
  );
  azEnv = {
    ...inherited,
    AZURE_CONFIG_DIR: configDir,
    REQUESTS_CA_BUNDLE: emulator.connection.caCertFile,
    AZURE_CORE_COLLECT_TELEMETRY: "no",
    AZURE_CORE_ONLY_SHOW_ERRORS: "true",
    AZURE_CORE_NO_COLOR: "true",
    NO_PROXY: "127.0.0.1,localhost",
    no_proxy: "127.0.0.1,localhost",
  };
});

afterAll(async () => {
  await emulator?.stop();
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

describe("the Azure CLI against the emulator", () => {
  it("registers the emulator as a cloud from its /metadata/endpoints, with the ADFS-style authority", async () => {
    const { armEndpoint } = emulator!.connection;
    await az(["cloud", "register", "-n", CLOUD, "--endpoint-resource-manager", armEndpoint]);
    const cloud = await az<{ endpoints: Record<string, string | null> }>(["cloud", "show", "-n", CLOUD]);
    expect(cloud.endpoints.resourceManager?.replace(/\/$/, "")).toBe(armEndpoint);
    expect(cloud.endpoints.activeDirectory).toBe(`${armEndpoint}/adfs/`);
    expect(cloud.endpoints.activeDirectoryResourceId).toBe("https://management.core.windows.net/");
    await az(["cloud", "set", "-n", CLOUD]);
  });

  it("signs in with the service principal and finds the emulator's subscription", async () => {
    const { clientId, clientSecret, tenantId, subscriptionIds } = emulator!.connection;
    const accounts = await az<{ id: string; tenantId: string; user: { name: string; type: string } }[]>([
      "login",
      "--service-principal",
      "-u",
      clientId,
      "-p",
      clientSecret,
      "--tenant",
      tenantId,
    ]);
    expect(accounts.map((a) => a.id)).toEqual(subscriptionIds);
    expect(accounts[0]!.tenantId).toBe(tenantId);
    expect(accounts[0]!.user).toEqual({ name: clientId, type: "servicePrincipal" });
  });

  it("lists the storage accounts (az storage account list)", async () => {
    const accounts = await az<{ name: string; resourceGroup: string }[]>(["storage", "account", "list"]);
    expect(accounts.map((a) => a.name).sort()).toEqual([
      "stmlbatch",
      "stmllake",
      "stmlresearch",
      "stmlshared",
    ]);
    expect(accounts.find((a) => a.name === SHARED)?.resourceGroup).toBe(RG);
  });

  it("lists and renews a storage key (az storage account keys list / renew)", async () => {
    const before = storageKeysInEmulator(SHARED);
    const listed = await az<AzKey[]>(["storage", "account", "keys", "list", "-g", RG, "-n", SHARED]);
    const listedKey = (name: string) => listed.find((k) => k.keyName === name)?.value;
    expect(listed.map((k) => k.keyName)).toEqual(["key1", "key2"]);
    expect(listedKey("key1") === before.key1).toBe(true);
    expect(listedKey("key2") === before.key2).toBe(true);

    const started = Date.now();
    const renewed = await az<AzKey[]>([
      "storage",
      "account",
      "keys",
      "renew",
      "-g",
      RG,
      "-n",
      SHARED,
      "--key",
      "key2",
    ]);
    const after = storageKeysInEmulator(SHARED);
    const renewedKey = renewed.find((k) => k.keyName === "key2");
    expect(renewedKey?.value === before.key2).toBe(false);
    expect(renewedKey?.value === after.key2).toBe(true);
    expect(renewed.find((k) => k.keyName === "key1")?.value === before.key1).toBe(true);
    expect(after.key1 === before.key1).toBe(true);
    expect(Date.parse(renewedKey!.creationTime)).toBeGreaterThanOrEqual(started - 1000);

    const regenerations = emulator!.requestLog.filter(
      (e) => e.method === "POST" && e.path.toLowerCase().endsWith(`/storageaccounts/${SHARED}/regeneratekey`),
    );
    expect(regenerations).toHaveLength(1);
    expect(regenerations[0]).toMatchObject({ status: 200, clientId: emulator!.connection.clientId });
  });

  it("reads Machine Learning workspaces (az rest) and the Batch account (az batch account show)", async () => {
    const sub = emulator!.connection.subscriptionIds[0]!;
    const workspaces = await az<{ value: { name: string }[] }>([
      "rest",
      "--method",
      "get",
      "--url",
      `/subscriptions/${sub}/resourceGroups/${RG}/providers/Microsoft.MachineLearningServices/workspaces?api-version=2022-10-01`,
    ]);
    expect(workspaces.value.map((w) => w.name).sort()).toEqual(["mlw-score", "mlw-train"]);

    const batch = await az<{ name: string; autoStorage: { storageAccountId: string } }>([
      "batch",
      "account",
      "show",
      "-g",
      RG,
      "-n",
      "batchmltrain",
    ]);
    expect(batch.name).toBe("batchmltrain");
    expect(batch.autoStorage.storageAccountId).toMatch(/\/storageAccounts\/stmlbatch$/);
  });
});
