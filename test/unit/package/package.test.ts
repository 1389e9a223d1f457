import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { inflateRawSync } from "node:zlib";
import { generate } from "selfsigned";

// `npm run package` (scripts/package.mjs) against the dist/ that `npm test` builds first: the bundle
// keeps @azure/functions-core for the worker to provide, registers what the unbundled app registers,
// runs a rotation with telemetry, and zips to a root Flex Consumption can deploy.

const ROOT = join(__dirname, "..", "..", "..");
const DIST_ENTRY = join(ROOT, "dist", "functions", "index.js");
const run = promisify(execFile);

interface Bundle {
  file: string;
  bytes: number;
  modules: number;
}
interface PackageResult {
  appDir: string;
  bundle: Bundle;
  lazy: Bundle[];
  zip: { file: string; bytes: number; entries: string[] };
}
interface Metafile {
  inputs: Record<string, { imports: { path: string; kind: string; external?: boolean }[] }>;
}

let out: string;
let result: PackageResult;

beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), "keyturn-package-"));
  const { stdout } = await run(
    process.execPath,
    [join(ROOT, "scripts", "package.mjs"), "--no-build", "--json", "--out", out],
    { cwd: ROOT, timeout: 60_000 },
  );
  result = JSON.parse(stdout) as PackageResult;
});

afterAll(() => {
  rmSync(out, { recursive: true, force: true });
});

/** Runs `script` in a fresh node (plain Node: the local host installs its functions-core stand-in). */
async function node(script: string, env: NodeJS.ProcessEnv = {}): Promise<unknown> {
  const { stdout } = await run(process.execPath, ["-e", script], {
    cwd: ROOT,
    timeout: 30_000,
    env: { ...process.env, ...env },
  });
  return JSON.parse(stdout.trim().split("\n").pop() ?? "null") as unknown;
}

const LOCAL = JSON.stringify(join(ROOT, "dist", "local"));
const EMULATOR = JSON.stringify(join(ROOT, "dist", "emulator"));

describe("npm run package", () => {
  it("bundles everything but @azure/functions-core, which stays a require for the worker", () => {
    const code = readFileSync(result.bundle.file, "utf8");
    expect(code).toContain('require("@azure/functions-core")');
    // Bundled, not required: the app's own packages.
    for (const name of ["@azure/functions", "durable-functions", "@azure/identity", "zod"]) {
      expect(code).not.toContain(`require("${name}")`);
    }
    // The distro is bundled on its own and required lazily from beside the app.
    expect(code).toContain('require("./monitor-opentelemetry.js")');
    expect(result.lazy.map((b) => b.file)).toEqual([
      join(result.appDir, "dist", "functions", "monitor-opentelemetry.js"),
    ]);

    for (const name of ["index", "monitor-opentelemetry"]) {
      const meta = JSON.parse(readFileSync(join(out, `${name}.meta.json`), "utf8")) as Metafile;
      expect(Object.keys(meta.inputs).filter((input) => input.includes("functions-core"))).toEqual([]);
      const externals = Object.values(meta.inputs).flatMap((i) => i.imports.filter((im) => im.external));
      const nonBuiltin = new Set(externals.map((im) => im.path).filter((path) => !isBuiltin(path)));
      expect(
        [...nonBuiltin].filter((p) => p !== "@azure/functions-core" && p !== "./monitor-opentelemetry.js"),
        // node-fetch 2 (under @azure/batch) tries require("encoding") in a try/catch: optional.
      ).toEqual(name === "monitor-opentelemetry" ? ["@opentelemetry/instrumentation"] : ["encoding"]);
    }
  });

  it("stages host.json and a package.json whose main is the bundle and which has no dependencies", () => {
    const pkg = JSON.parse(readFileSync(join(result.appDir, "package.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(pkg.main).toBe("dist/functions/index.js");
    expect(join(result.appDir, pkg.main as string)).toBe(result.bundle.file);
    expect(pkg.dependencies).toBeUndefined();
    expect(readFileSync(join(result.appDir, "host.json"), "utf8")).toBe(
      readFileSync(join(ROOT, "host.json"), "utf8"),
    );
  });

  it("zips host.json and package.json at the root, and every file intact", () => {
    const files = readZip(readFileSync(result.zip.file));
    expect([...files.keys()].sort()).toEqual([
      "dist/",
      "dist/functions/",
      "dist/functions/index.js",
      "dist/functions/monitor-opentelemetry.js",
      "host.json",
      "package.json",
    ]);
    for (const [name, data] of files) {
      if (!name.endsWith("/")) expect(data.equals(readFileSync(join(result.appDir, name)))).toBe(true);
    }
  });

  it("registers the same functions as the unbundled build", async () => {
    const load = (entry: string) =>
      node(`
        const { LocalHost } = require(${LOCAL});
        const host = new LocalHost({ logger: () => undefined });
        console.log(JSON.stringify(host.load(${JSON.stringify(entry)})));
      `);
    const [bundled, unbundled] = await Promise.all([load(result.bundle.file), load(DIST_ENTRY)]);
    expect(bundled).toEqual(unbundled);
    const names = (bundled as { name: string }[]).map((f) => f.name);
    expect(names).toEqual(
      expect.arrayContaining([
        "rotateAll",
        "rotateStorageAccount",
        "listSubscriptions",
        "discoverSubscription",
        "discoverWorkspace",
        "discoverSecrets",
        "snapshotAccount",
        "regenerateKey",
        "moveAndVerify",
        "findLateDatastores",
        "rotateLane",
        "recordRotation",
        "startRotation",
        "getRotation",
        "getPlan",
        "monthlyRotation",
        "health",
      ]),
    );
  });

  it("rotates the demo estate on the emulator and sends its telemetry to Application Insights", async () => {
    // A stand-in ingestion endpoint over TLS, trusted through NODE_EXTRA_CA_CERTS.
    const pems = await generate([{ name: "commonName", value: "127.0.0.1" }], {
      keySize: 2048,
      algorithm: "sha256",
      extensions: [
        { name: "basicConstraints", cA: true },
        { name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }] },
      ],
    });
    const dir = mkdtempSync(join(out, "rotation-"));
    writeFileSync(join(dir, "ca.pem"), pems.cert);
    writeFileSync(join(dir, "key.pem"), pems.private);
    const output = await node(
      `
      const fs = require("node:fs");
      const https = require("node:https");
      const { join } = require("node:path");
      const { gunzipSync } = require("node:zlib");
      const { startEmulator } = require(${EMULATOR});
      const { LocalHost, ManualClock } = require(${LOCAL});
      const dir = ${JSON.stringify(dir)};
      (async () => {
        const ingested = new Set();
        const server = https.createServer(
          { key: fs.readFileSync(join(dir, "key.pem")), cert: fs.readFileSync(join(dir, "ca.pem")) },
          (req, res) => {
            const chunks = [];
            req.on("data", (c) => chunks.push(c));
            req.on("end", () => {
              let body = Buffer.concat(chunks);
              if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
              for (const e of [].concat(JSON.parse(body.toString("utf8")))) {
                const data = e.data.baseData;
                ingested.add(e.data.baseType === "MetricData" ? "metric:" + data.metrics[0].name : data.name);
              }
              res.writeHead(200, { "content-type": "application/json" });
              res.end(JSON.stringify({ itemsReceived: 1, itemsAccepted: 1, errors: [] }));
            });
          },
        );
        await new Promise((r) => server.listen(0, "127.0.0.1", r));
        const emulator = await startEmulator({ settings: { resyncPolicy: "consumers" } });
        fs.writeFileSync(join(dir, "connection.json"), JSON.stringify(emulator.connection));
        process.env.KEYTURN_CONNECTION_FILE = join(dir, "connection.json");
        process.env.KEYTURN_KEY_VAULT_URL = Object.values(emulator.connection.vaults).join(",");
        process.env.APPLICATIONINSIGHTS_CONNECTION_STRING =
          "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://127.0.0.1:" +
          server.address().port + "/";
        const host = new LocalHost({ clock: new ManualClock(new Date()), logger: () => undefined });
        host.load(${JSON.stringify(result.bundle.file)});
        const input = {
          scope: { subscriptions: emulator.connection.subscriptionIds },
          dryRun: false, force: false, graceSeconds: 3600, minKeyAgeDays: 20, parallelism: 8,
          trigger: "cli", startedBy: "package-test",
        };
        const status = await host.waitForCompletion(host.startNew("rotateAll", input, "package-test"), {
          timeoutMs: 25000,
        });
        await host.stop();
        await emulator.stop();
        server.close();
        console.log(JSON.stringify({
          runtimeStatus: status.runtimeStatus,
          outcomes: [...new Set(status.output.accounts.map((a) => a.outcome))],
          ingested: [...ingested].sort(),
        }));
        process.exit(0);
      })().catch((err) => { console.error(err); process.exit(1); });
      `,
      {
        NODE_EXTRA_CA_CERTS: join(dir, "ca.pem"),
        // Only our endpoint: no statsbeat or SDK stats to Microsoft's.
        APPLICATION_INSIGHTS_NO_STATSBEAT: "true",
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED: "true",
        APPLICATIONINSIGHTS_SDKSTATS_DISABLED: "true",
      },
    );
    expect(output).toEqual({
      runtimeStatus: "Completed",
      // The demo's keyless account (shared-key access disabled) is skipped as needing no rotation.
      outcomes: ["rotated", "skipped"],
      ingested: expect.arrayContaining([
        "RotationStarted",
        "AccountRotated",
        "RotationCompleted",
        "metric:ArmCalls",
        "metric:RotationDurationMs",
      ]) as unknown,
    });
  });
});

/** The files of a zip (no zip64, no comment), inflated: name → bytes. */
function readZip(zip: Buffer): Map<string, Buffer> {
  const end = zip.length - 22;
  expect(zip.readUInt32LE(end)).toBe(0x06054b50);
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  const files = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    expect(zip.readUInt32LE(at)).toBe(0x02014b50);
    const method = zip.readUInt16LE(at + 10);
    const compressed = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    const name = zip.toString("utf8", at + 46, at + 46 + nameLength);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const body = zip.subarray(start, start + compressed);
    files.set(name, method === 8 ? inflateRawSync(body) : Buffer.from(body));
    at += 46 + nameLength + extraLength + commentLength;
  }
  return files;
}
