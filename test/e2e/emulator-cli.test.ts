import { spawn, execFile, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { projectRoot } from "../../emulator/paths";

const root = projectRoot();
const bin = join(root, "bin", "keyturn.js");
const run = promisify(execFile);

/** `npx keyturn emulator` as a user runs it: a separate process, reached only through the connection file. */
describe("keyturn emulator, from the command line", () => {
  let dir: string;
  let child: ChildProcess;
  let output = "";
  const connectionFile = () => join(dir, "f.json");

  beforeAll(async () => {
    if (!existsSync(join(root, "dist", "cli", "index.js"))) {
      throw new Error("dist/ is missing: run `npm run build` (npm test and npm ci do it).");
    }
    dir = mkdtempSync(join(tmpdir(), "keyturn-e2e-"));
    child = spawn(
      process.execPath,
      [bin, "emulator", "--estate", "demo", "--connection-file", connectionFile()],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    for (let i = 0; i < 300 && !existsSync(connectionFile()); i++) await sleep(100);
    if (!existsSync(connectionFile())) throw new Error(`The emulator wrote no connection file:\n${output}`);
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGINT");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("writes a connection file with every field other tools rely on", () => {
    const c = JSON.parse(readFileSync(connectionFile(), "utf8")) as Record<string, unknown>;
    for (const field of [
      "armEndpoint",
      "authorityHost",
      "tenantId",
      "clientId",
      "clientSecret",
      "subscriptionIds",
      "caCertFile",
      "adminEndpoint",
    ]) {
      expect(c).toHaveProperty(field);
    }
    expect(existsSync(c.caCertFile as string)).toBe(true);
  });

  it("serves a program that uses only the Azure SDKs: every datastore, their secrets, a regenerated key refused", async () => {
    const { stdout } = await run(process.execPath, [
      join(root, "dist", "examples", "sdk-walkthrough.js"),
      connectionFile(),
    ]);
    const lines = stdout.trim().split("\n");
    const result = JSON.parse(lines.at(-1)!) as {
      workspaces: number;
      datastores: string[];
      secretsRead: number;
      oldKeyStatus: number;
      otherKeyStatus: number;
    };
    expect(result.workspaces).toBe(3);
    // The keyless account's identity-based datastore (mlw-research/governed_features), the four SAS ones and the classic account's included.
    expect(result.datastores).toHaveLength(17);
    expect(result.datastores).toEqual(
      expect.arrayContaining([
        "mlw-train/workspaceblobstore",
        "mlw-research/partner_drop",
        "mlw-train/identity_scratch",
      ]),
    );
    expect(result.secretsRead).toBe(15);
    expect(result.oldKeyStatus).toBe(403);
    expect(result.otherKeyStatus).toBe(200);
  });

  it("never prints a key value", async () => {
    const c = JSON.parse(readFileSync(connectionFile(), "utf8")) as { adminEndpoint: string };
    expect(c.adminEndpoint).toMatch(/\/_admin$/);
    // Storage keys are 88 base64 characters; nothing the emulator printed may look like one.
    expect(output).not.toMatch(/[A-Za-z0-9+/]{86}==/);
  });

  it("stops on Ctrl+C and exits 0", async () => {
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(output).toContain("stopping the emulator");
  });

  it("rejects an unknown estate with a message that names the fix", async () => {
    await expect(run(process.execPath, [bin, "emulator", "--estate", "huge"])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining("large:<accounts>x<datastoresPerAccount>") as unknown,
    });
  });
});
