#!/usr/bin/env node
// `npm run package`: the deployable Functions app, as azd and `az functionapp deployment source
// config-zip` take it. Builds (tsc) when dist/ is stale, bundles the compiled entry with esbuild and
// stages a package root that holds only host.json, a dependency-free package.json and the bundle:
//
//   .keyturn/package/app/                       what azd deploys (azure.yaml `dist`)
//     host.json
//     package.json                              "main": "dist/functions/index.js", no dependencies
//     dist/functions/index.js                   the app; @azure/functions-core stays a require()
//     dist/functions/monitor-opentelemetry.js   the Azure Monitor distro, required on first use
//   .keyturn/package/keyturn.zip                the same files, zipped (DEFLATE via node:zlib)
//   .keyturn/package/*.js.map, *.meta.json      source maps and esbuild metafiles (not deployed)
//
// Usage: node scripts/package.mjs [--no-build] [--out DIR] [--json]
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { builtinModules, createRequire } from "node:module";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { crc32 as zlibCrc32, deflateRawSync } from "node:zlib";

const require = createRequire(import.meta.url);
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const DEFAULT_OUT = join(ROOT, ".keyturn", "package");
/** The compiled entry (package.json "main"): bundling tsc's CommonJS output, see bundle() below. */
const ENTRY = join("dist", "functions", "index.js");
/** The Functions Node worker injects this module at run time; it is never on disk. */
const PROVIDED_BY_WORKER = "@azure/functions-core";
/**
 * Bare requires the bundle may leave unresolved because their callers catch the failure: the Azure
 * Monitor distro probes `require.resolve("@opentelemetry/instrumentation")` only to count enabled
 * instrumentations for its own statsbeat, and keyturn enables none.
 */
const OPTIONAL_UNRESOLVED = new Set(["@opentelemetry/instrumentation"]);
/**
 * Bare requires inside a try/catch of their caller, which works without them: node-fetch 2 (under
 * @azure/batch's client runtime) tries `require("encoding")` for `textConverted()`, which nothing calls.
 */
const OPTIONAL_REQUIRES = new Set(["encoding"]);

// ---------------------------------------------------------------------------------------- build

function newestMtime(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = 0;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

/** dist/ is stale when the entry is missing or any source of the Functions app is newer than it. */
export function needsBuild(root = ROOT) {
  const entry = join(root, ENTRY);
  if (!existsSync(entry)) return true;
  const sources = ["functions", "shared", "tsconfig.json", "tsconfig.build.json"].map((p) => join(root, p));
  const newest = Math.max(...sources.filter((p) => existsSync(p)).map(newestMtime));
  return newest > statSync(entry).mtimeMs;
}

function build(root, log) {
  log("building: tsc -p tsconfig.build.json");
  const tsc = require.resolve("typescript/bin/tsc", { paths: [root] });
  const result = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], {
    cwd: root,
    stdio: "inherit",
  });
  if (result.status !== 0) throw new Error(`tsc failed (exit ${result.status ?? result.signal})`);
}

// --------------------------------------------------------------------------------------- bundle

const isBuiltin = (path) => path.startsWith("node:") || builtinModules.includes(path.split("/")[0]);

/**
 * Packages the app requires only on demand (inside a function, never while loading) get files of
 * their own, so loading the app does not parse them: the Azure Monitor OpenTelemetry distro is half
 * the bundle, and keyturn starts it only when APPLICATIONINSIGHTS_CONNECTION_STRING is set, on the
 * first telemetry item. The app bundle requires it as "./<file>" beside itself.
 */
const LAZY = { "@azure/monitor-opentelemetry": "monitor-opentelemetry.js" };

const esbuildOptions = (root) => ({
  absWorkingDir: root,
  bundle: true,
  platform: "node",
  target: "node22",
  format: "cjs",
  external: [PROVIDED_BY_WORKER],
  // Readable stack traces in Application Insights without a source map; minifying saves no load time.
  minify: false,
  sourcemap: "external",
  metafile: true,
  write: false,
  logLevel: "silent",
  // ESM-only dependencies (e.g. `open`, behind @azure/identity's interactive sign-in) read import.meta.url.
  define: { "import.meta.url": "__keyturnImportMetaUrl" },
  banner: { js: 'var __keyturnImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
});

/** Requires of a LAZY package stay requires, of the file it is bundled into. */
const lazyPlugin = {
  name: "keyturn-lazy",
  setup(build) {
    const names = Object.keys(LAZY).map((n) => n.replace(/[/\\^$*+?.()|[\]{}]/g, "\\$&"));
    build.onResolve({ filter: new RegExp(`^(${names.join("|")})$`) }, (args) => ({
      path: `./${LAZY[args.path]}`,
      external: true,
    }));
  },
};

function checkExternals(metafile) {
  const lazyFiles = new Set(Object.values(LAZY).map((file) => `./${file}`));
  const unresolved = new Map();
  for (const [input, info] of Object.entries(metafile.inputs)) {
    for (const imported of info.imports) {
      if (!imported.external || isBuiltin(imported.path) || imported.path === PROVIDED_BY_WORKER) continue;
      if (lazyFiles.has(imported.path)) continue;
      if (OPTIONAL_UNRESOLVED.has(imported.path) && imported.kind === "require-resolve") continue;
      if (OPTIONAL_REQUIRES.has(imported.path) && imported.kind === "require-call") continue;
      unresolved.set(imported.path, input);
    }
  }
  if (unresolved.size > 0) {
    const list = [...unresolved].map(([path, from]) => `  ${path} (from ${from})`).join("\n");
    throw new Error(
      `The bundle would require modules that are not in it and not provided by the Functions host:\n${list}\n` +
        "Bundle them, or ship them: mark them external in scripts/package.mjs, list them as dependencies " +
        "of the staged package.json and deploy with remote build.",
    );
  }
}

/**
 * One esbuild run: writes the bundle into the package and its source map and metafile beside the
 * package (the map is larger than the bundle and not needed to run it; its sources resolve from there).
 */
async function bundleOne(root, { entry, outfile, outDir, plugins = [] }) {
  const esbuild = require("esbuild");
  const result = await esbuild.build({ ...esbuildOptions(root), entryPoints: [entry], outfile, plugins });
  for (const warning of result.warnings) process.stderr.write(`esbuild: ${warning.text}\n`);
  checkExternals(result.metafile);
  const name = basename(outfile, ".js");
  let code;
  for (const file of result.outputFiles) {
    if (file.path.endsWith(".map")) {
      const map = JSON.parse(file.text);
      map.sourceRoot = `${relative(outDir, dirname(outfile)).split(sep).join("/")}/`;
      writeFileSync(join(outDir, `${name}.js.map`), JSON.stringify(map));
    } else code = file.contents;
  }
  mkdirSync(dirname(outfile), { recursive: true });
  writeFileSync(outfile, code);
  writeFileSync(join(outDir, `${name}.meta.json`), JSON.stringify(result.metafile));
  const [, output] = Object.entries(result.metafile.outputs).find(([path]) => !path.endsWith(".map"));
  const inputs = Object.keys(output.inputs);
  const packages = new Set();
  for (const input of inputs) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
    if (match) packages.add(match[1]);
  }
  return { file: outfile, bytes: code.length, modules: inputs.length, packages: packages.size };
}

/**
 * Bundles tsc's CommonJS output rather than functions/index.ts: esbuild resolves a package's
 * `exports` by import kind, so `import` statements in the TypeScript would pull the ESM builds of the
 * Azure SDK into a CommonJS bundle (where `import.meta.url` is empty: @azure/storage-common's crc64
 * calls createRequire(import.meta.url) at load and throws). Bundling the `require()`s picks the same
 * CommonJS files Node loads for the unbundled app, and the same interop helpers tsc emitted.
 */
async function bundle(root, appDir, outDir) {
  const main = await bundleOne(root, {
    entry: join(root, ENTRY),
    outfile: join(appDir, ENTRY),
    outDir,
    plugins: [lazyPlugin],
  });
  const lazy = [];
  for (const [name, file] of Object.entries(LAZY)) {
    lazy.push(
      await bundleOne(root, {
        entry: require.resolve(name, { paths: [root] }),
        outfile: join(appDir, dirname(ENTRY), file),
        outDir,
      }),
    );
  }
  return { main, lazy };
}

// ------------------------------------------------------------------------------------------ zip

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data) {
  if (typeof zlibCrc32 === "function") return zlibCrc32(data) >>> 0; // Node >= 20.15
  let c = 0xffffffff;
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * Writes a zip of `entries` ({ name, data } files, forward slashes, directories implied and added).
 * DEFLATE when it saves space, STORE otherwise; fixed timestamps (1980-01-01) so the same inputs give
 * the same bytes; Unix modes 644/755. No zip64: a Functions package stays far below 4 GiB.
 */
export function writeZip(zipPath, entries) {
  const files = [];
  const dirs = new Set();
  for (const { name } of entries) {
    const parts = name.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(`${parts.slice(0, i).join("/")}/`);
  }
  for (const dir of [...dirs].sort()) files.push({ name: dir, data: Buffer.alloc(0), dir: true });
  for (const entry of entries) files.push({ name: entry.name, data: Buffer.from(entry.data), dir: false });

  const DOS_TIME = 0;
  const DOS_DATE = (0 << 9) | (1 << 5) | 1; // 1980-01-01
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const file of files) {
    const name = Buffer.from(file.name, "utf8");
    const crc = crc32(file.data);
    const deflated = file.data.length > 0 ? deflateRawSync(file.data, { level: 9 }) : file.data;
    const method = deflated.length < file.data.length ? 8 : 0;
    const body = method === 8 ? deflated : file.data;

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(file.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, body);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by: Unix, 2.0
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(DOS_TIME, 12);
    central.writeUInt16LE(DOS_DATE, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(file.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    // extra, comment, disk, internal attributes: 0
    const mode = file.dir ? 0o40755 : 0o100644;
    central.writeUInt32LE(((mode << 16) | (file.dir ? 0x10 : 0)) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  const zip = Buffer.concat([...locals, ...centrals, end]);
  writeFileSync(zipPath, zip);
  return { bytes: zip.length, entries: files.map((f) => f.name) };
}

// -------------------------------------------------------------------------------------- package

function stagedPackageJson(root) {
  const source = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  return {
    name: source.name,
    version: source.version,
    description: source.description,
    license: source.license,
    private: true,
    // The Functions host loads "main"; everything it requires is inside it (or the worker's own).
    main: ENTRY.split(sep).join("/"),
    engines: source.engines,
  };
}

/**
 * Builds (unless `build: false`) and packages the Functions app into `outDir`. Returns the paths and
 * sizes it produced.
 */
export async function packageApp({
  root = ROOT,
  outDir = DEFAULT_OUT,
  build: doBuild = true,
  log = console.log,
} = {}) {
  const started = Date.now();
  if (doBuild && needsBuild(root)) build(root, log);
  if (!existsSync(join(root, ENTRY))) throw new Error(`${ENTRY} is missing: run \`npm run build\` first.`);

  const appDir = join(outDir, "app");
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(appDir, { recursive: true });
  const { main, lazy } = await bundle(root, appDir, outDir);
  const packageJson = `${JSON.stringify(stagedPackageJson(root), null, 2)}\n`;
  writeFileSync(join(appDir, "package.json"), packageJson);
  copyFileSync(join(root, "host.json"), join(appDir, "host.json"));

  const zipPath = join(outDir, "keyturn.zip");
  const inApp = (file) => relative(appDir, file).split(sep).join("/");
  const zip = writeZip(zipPath, [
    { name: "host.json", data: readFileSync(join(appDir, "host.json")) },
    { name: "package.json", data: Buffer.from(packageJson) },
    ...[main, ...lazy].map((b) => ({ name: inApp(b.file), data: readFileSync(b.file) })),
  ]);
  return {
    outDir,
    appDir,
    bundle: main,
    lazy,
    external: [PROVIDED_BY_WORKER],
    zip: { file: zipPath, bytes: zip.bytes, entries: zip.entries },
    ms: Date.now() - started,
  };
}

const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(2)} MB`;

async function main(argv) {
  const args = argv.slice(2);
  const outAt = args.indexOf("--out");
  const outDir = outAt >= 0 && args[outAt + 1] ? resolve(args[outAt + 1]) : DEFAULT_OUT;
  const json = args.includes("--json");
  const result = await packageApp({
    outDir,
    build: !args.includes("--no-build"),
    log: json ? (line) => process.stderr.write(`${line}\n`) : console.log,
  });
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const rel = (p) => relative(process.cwd(), p) || ".";
  const describe = (b) => `${mb(b.bytes)}, ${b.modules} modules from ${b.packages} packages`;
  console.log(
    [
      `bundle  ${rel(result.bundle.file)}  ${describe(result.bundle)}`,
      ...result.lazy.map((b) => `lazy    ${rel(b.file)}  ${describe(b)} (required on first use)`),
      `        external: ${result.external.join(", ")} (the Functions worker provides it)`,
      `app     ${rel(result.appDir)}/  (azure.yaml dist: ${result.zip.entries.filter((e) => !e.endsWith("/")).join(", ")})`,
      `zip     ${rel(result.zip.file)}  ${mb(result.zip.bytes)}`,
      `maps    ${rel(result.outDir)}/*.js.map  (not deployed)`,
      `done in ${(result.ms / 1000).toFixed(1)} s`,
    ].join("\n"),
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv).catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
