import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Emulator } from "../../emulator";
import { projectRoot } from "../../emulator/paths";
import { scopeInstanceId, type RotationReport } from "../../shared/rotation";
import { startTestEmulator } from "../helpers/emulator";

/**
 * Issue 11 item 5: `keyturn plan|rotate|status --api URL` against a `keyturn serve` in its own process,
 * the emulator behind it. What a local run prints, the API run prints; credentials come from
 * KEYTURN_API_KEY (a function key, which `keyturn serve` enforces) and KEYTURN_API_SCOPE (an Entra token
 * from DefaultAzureCredential, here signed in at the emulator; serve ignores it, so a recording proxy
 * in front of serve shows it was sent).
 */

jest.setTimeout(180_000);

const root = projectRoot();
const bin = join(root, "bin", "keyturn.js");
const ACCOUNT = "stmlresearch";
// A storage key is 88 base64 characters; nothing the CLI prints may look like one.
const KEY_SHAPED = /[A-Za-z0-9+/]{86}==/;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of every child: the test's, without any credential of the API or Azure. */
function baseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === "KEYTURN_API_KEY" || k === "KEYTURN_API_SCOPE" || k.startsWith("AZURE_")) continue;
    env[k] = v;
  }
  return { ...env, KEYTURN_API_POLL_MS: "200", ...extra };
}

function keyturn(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** `keyturn serve --port 0`: resolves with the URL and function key it prints once it listens. */
function startServe(
  args: string[],
  cwd: string,
): { child: ChildProcess; ready: Promise<{ url: string; key: string }>; output: () => string } {
  const child = spawn(process.execPath, [bin, "serve", ...args], {
    cwd,
    env: baseEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const ready = new Promise<{ url: string; key: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`keyturn serve did not start:\n${output}`)), 120_000);
    const look = (d: Buffer) => {
      output += d.toString();
      const url = /keyturn serving on (http:\/\/\S+)/.exec(output)?.[1];
      const key = /Function key: (\S+)/.exec(output)?.[1];
      if (url && key) {
        clearTimeout(timer);
        resolve({ url, key });
      }
    };
    child.stdout.on("data", look);
    child.stderr.on("data", look);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`keyturn serve exited (${String(code)}):\n${output}`));
    });
  });
  return { child, ready, output: () => output };
}

/** Ends a child and waits for it: SIGINT (serve stops cleanly), SIGKILL when it does not within 10 s. */
async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGINT");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  try {
    return await exited.then(() => undefined);
  } finally {
    clearTimeout(timer);
  }
}

/** A pass-through HTTP proxy in front of serve that records each request's method, path and headers. */
async function startRecordingProxy(target: string): Promise<{
  url: string;
  seen: { method: string; path: string; headers: IncomingHttpHeaders }[];
  server: Server;
}> {
  const seen: { method: string; path: string; headers: IncomingHttpHeaders }[] = [];
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers });
    const forward = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen, server };
}

function shapeOf(report: RotationReport) {
  return {
    keys: Object.keys(report).sort(),
    dryRun: report.dryRun,
    accounts: report.accounts.map((a) => ({
      keys: Object.keys(a).sort(),
      name: a.name,
      outcome: a.outcome,
      activeKeyBefore: a.activeKeyBefore?.key,
      consumers: a.consumers.map((c) => [c.kind, c.name, c.action]),
    })),
  };
}

describe("keyturn plan | rotate | status --api against `keyturn serve` in another process", () => {
  let emulator: Emulator;
  let dir: string;
  let connection: string;
  let stateDir: string;
  let serve: ReturnType<typeof startServe> | undefined;
  let proxy: Awaited<ReturnType<typeof startRecordingProxy>> | undefined;
  let url = "";
  let functionKey = "";
  const outputs: string[] = [];
  const id = scopeInstanceId({ storageAccounts: [ACCOUNT] });

  const run = async (args: string[], extra: NodeJS.ProcessEnv = { KEYTURN_API_KEY: functionKey }) => {
    const result = await keyturn(args, dir, baseEnv(extra));
    outputs.push(result.stdout, result.stderr);
    return result;
  };

  beforeAll(async () => {
    if (!existsSync(join(root, "dist", "cli", "index.js"))) {
      throw new Error("dist/ is missing: run `npm run build` (npm test and npm ci do it).");
    }
    ({ emulator } = await startTestEmulator());
    dir = mkdtempSync(join(tmpdir(), "keyturn-cli-api-"));
    connection = join(dir, "connection.json");
    stateDir = join(dir, "state");
    writeFileSync(connection, JSON.stringify(emulator.connection));
    serve = startServe(["--connection-file", connection, "--port", "0", "--state-dir", stateDir], dir);
    ({ url, key: functionKey } = await serve.ready);
    proxy = await startRecordingProxy(url);
  });

  afterAll(async () => {
    await stopChild(serve?.child);
    if (serve) outputs.push(serve.output());
    if (proxy) await new Promise((resolve) => proxy!.server.close(resolve));
    if (emulator) await emulator.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("plan --api --json prints the plan a local plan prints, with the same exit code", async () => {
    const local = await run([
      "plan",
      "--connection-file",
      connection,
      "--storage-account",
      ACCOUNT,
      "--json",
    ]);
    const remote = await run(["plan", "--api", url, "--storage-account", ACCOUNT, "--json"]);
    expect(remote.stderr).not.toMatch(/\n\s+at /);
    expect(remote.code).toBe(local.code);
    expect(remote.code).toBe(0);
    const localReport = JSON.parse(local.stdout) as RotationReport;
    const remoteReport = JSON.parse(remote.stdout) as RotationReport;
    expect(shapeOf(remoteReport)).toEqual(shapeOf(localReport));
    expect(remoteReport.accounts.map((a) => [a.name, a.outcome])).toEqual([[ACCOUNT, "planned"]]);
  });

  it("plan --api prints the same table, and --grace/--force plans go through POST /api/rotations", async () => {
    const table = await run(["plan", "--api", url, "--storage-account", ACCOUNT]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^${ACCOUNT}\\s+planned\\s+key\\d`, "m"));
    expect(table.stdout).toMatch(/^ARM calls: \d+ \(discovery and planning \d+, accounts 0\)$/m);
    const mermaid = await run([
      "plan",
      "--api",
      url,
      "--storage-account",
      ACCOUNT,
      "--grace",
      "2s",
      "--force",
      "--format",
      "mermaid",
    ]);
    expect(mermaid.code).toBe(0);
    expect(mermaid.stdout.startsWith("flowchart LR")).toBe(true);
    expect(mermaid.stdout).toContain(ACCOUNT);
  });

  it("rotate --api rotates the account (exit 0): progress on stderr, the report as JSON on stdout", async () => {
    const result = await run([
      "rotate",
      "--api",
      url,
      "--storage-account",
      ACCOUNT,
      "--grace",
      "2s",
      "--force",
      "--json",
    ]);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`keyturn: rotating storage accounts ${ACCOUNT} through ${url}`);
    expect(result.stderr).toContain(`rotation ${id}: Completed`);
    const report = JSON.parse(result.stdout) as RotationReport;
    expect(report.dryRun).toBe(false);
    expect(report.rotationId.split("@")[0]).toBe(id);
    expect(report.accounts.map((a) => [a.name, a.outcome])).toEqual([[ACCOUNT, "rotated"]]);
    const [account] = report.accounts;
    expect(account!.graceSeconds).toBe(2);
    expect(account!.activeKeyAfter?.key).not.toBe(account!.activeKeyBefore?.key);
  });

  it("status --api <id> --json shows what a local status shows of the instance (the API serves no input or children)", async () => {
    const remote = await run(["status", "--api", url, id, "--json"]);
    expect(remote.code).toBe(0);
    // serve's own state directory, read the local way (status takes no lock).
    const local = await run(["status", "--state-dir", stateDir, id, "--json"]);
    expect(local.code).toBe(0);
    const remoteDetail = JSON.parse(remote.stdout) as Record<string, unknown>;
    const localDetail = JSON.parse(local.stdout) as Record<string, unknown>;
    expect(Object.keys(localDetail)).toEqual(expect.arrayContaining(Object.keys(remoteDetail)));
    expect(Object.keys(remoteDetail).sort()).toEqual(
      Object.keys(localDetail)
        .filter((k) => k !== "input")
        .sort(),
    );
    for (const key of ["instanceId", "name", "runtimeStatus", "createdTime", "output", "customStatus"]) {
      expect(remoteDetail[key]).toEqual(localDetail[key]);
    }
    expect(remoteDetail.runtimeStatus).toBe("Completed");

    const text = await run(["status", "--api", url, id]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^Status\s+Completed$/m);
    expect(text.stdout).toMatch(new RegExp(`^${ACCOUNT}\\s+rotated\\s+key\\d`, "m"));
  });

  it("rotate --api of the same scope right after skips the account as too young (exit 0)", async () => {
    const result = await run(["rotate", "--api", url, "--storage-account", ACCOUNT, "--json"]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as RotationReport;
    expect(report.accounts).toEqual([expect.objectContaining({ outcome: "skipped", skipCode: "too-young" })]);
  });

  it("status --api --history prints the deployment's audit trail, as status --history prints a local one", async () => {
    const json = await run(["status", "--api", url, "--history", "--storage-account", ACCOUNT, "--json"]);
    expect(json.code).toBe(0);
    const records = JSON.parse(json.stdout) as { storageAccount: string; outcome: string; trigger: string }[];
    expect(records[0]).toMatchObject({ storageAccount: ACCOUNT, trigger: "http" });
    expect(records.map((r) => r.outcome)).toContain("rotated");
    expect(records.every((r) => r.storageAccount === ACCOUNT)).toBe(true);
    const table = await run(["status", "--api", url, "--history"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^FINISHED\s+ACCOUNT\s+OUTCOME/m);
    expect(table.stdout).toMatch(new RegExp(`\\s${ACCOUNT}\\s+rotated\\s`));
  });

  it("a wrong function key is refused with a clear error (401, KEYTURN_API_KEY), the key never printed", async () => {
    const wrong = "not-the-function-key-0123456789";
    const result = await run(["status", "--api", url, id], { KEYTURN_API_KEY: wrong });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`GET ${url}/api/rotations/${id} answered 401 Unauthorized`);
    expect(result.stderr).toContain("KEYTURN_API_KEY");
    expect(result.stderr).not.toContain(wrong);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stdout).toBe("");
  });

  it("without KEYTURN_API_KEY or KEYTURN_API_SCOPE says to set one (exit 2) and sends nothing", async () => {
    const before = proxy!.seen.length;
    const result = await run(["plan", "--api", proxy!.url, "--storage-account", ACCOUNT], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("KEYTURN_API_KEY");
    expect(result.stderr).toContain("KEYTURN_API_SCOPE");
    expect(proxy!.seen.length).toBe(before);
  });

  it("sends the function key as x-functions-key and an Entra token from DefaultAzureCredential (KEYTURN_API_SCOPE) as a bearer token", async () => {
    const scope = "api://keyturn-api/.default";
    const signIn = {
      AZURE_TENANT_ID: emulator.connection.tenantId,
      AZURE_CLIENT_ID: emulator.connection.clientId,
      AZURE_CLIENT_SECRET: emulator.connection.clientSecret,
      AZURE_AUTHORITY_HOST: emulator.connection.authorityHost,
      NODE_EXTRA_CA_CERTS: emulator.connection.caCertFile,
      KEYTURN_API_SCOPE: scope,
    };
    const before = proxy!.seen.length;
    const both = await run(["plan", "--api", proxy!.url, "--storage-account", ACCOUNT, "--json"], {
      ...signIn,
      KEYTURN_API_KEY: functionKey,
    });
    expect(both.stderr).toBe("");
    expect(both.code).toBe(0);
    const sent = proxy!.seen.slice(before);
    expect(sent.map((r) => `${r.method} ${r.path}`)).toEqual([`GET /api/plan?storageAccounts=${ACCOUNT}`]);
    expect(sent[0]!.headers["x-functions-key"]).toBe(functionKey);
    const bearer = /^Bearer (\S+)$/.exec(String(sent[0]!.headers.authorization))?.[1];
    expect(bearer).toBeDefined();
    const claims = JSON.parse(Buffer.from(bearer!.split(".")[1]!, "base64url").toString()) as { aud: string };
    expect(claims.aud).toBe("api://keyturn-api");

    // A token alone: serve wants a function key, and the error says so without printing the token.
    const tokenOnly = await run(["plan", "--api", proxy!.url, "--storage-account", ACCOUNT], signIn);
    expect(tokenOnly.code).toBe(1);
    expect(tokenOnly.stderr).toContain("answered 401 Unauthorized");
    expect(tokenOnly.stderr).toContain(`an Entra token for ${scope} (KEYTURN_API_SCOPE)`);
    expect(tokenOnly.stderr).toContain("set KEYTURN_API_KEY");
    expect(tokenOnly.stderr).not.toContain(bearer!);
  });

  it("refuses --api without a scope, with local-only options, or over plain http to another machine (exit 2)", async () => {
    const noScope = await run(["rotate", "--api", url]);
    expect(noScope.code).toBe(2);
    expect(noScope.stderr).toContain("rotate --api needs a scope");
    const local = await run(["rotate", "--api", url, "--storage-account", ACCOUNT, "--state-dir", stateDir]);
    expect(local.code).toBe(2);
    expect(local.stderr).toContain("--state-dir is for local runs");
    const clear = await run(["plan", "--api", "http://keyturn.example.com", "--storage-account", ACCOUNT]);
    expect(clear.code).toBe(2);
    expect(clear.stderr).toContain("use https://");
    const invalid = await run(["rotate", "--api", url, "--storage-account", "not a name!"]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain(`POST ${url}/api/rotations answered 400`);
    expect(invalid.stderr).toContain('--storage-account: "not a name!" is not a storage account name');
  });

  it("never printed anything shaped like a key", () => {
    for (const text of outputs) expect(text).not.toMatch(KEY_SHAPED);
  });
});
