#!/usr/bin/env node
// `npm run bench:cold-start`: what loading the Functions app costs a fresh worker process, bundled
// (scripts/package.mjs) against unbundled (tsc's dist/ over node_modules). A benchmark, not a test.
//
// Each sample is a new `node` process that installs the local host's @azure/functions-core stand-in
// (as the worker provides the real one), then times `require(entry)` with process.hrtime and reads
// process.memoryUsage() and require.cache. The two entries alternate so drift hits both alike; one
// discarded warm-up each first, so the numbers measure the CPU work, not a cold page cache.
//
// Usage: node bench/cold-start.mjs [--runs N] [--bundle PATH] [--unbundled PATH] [--out FILE]
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { arch, cpus, platform } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const STAND_IN = join(ROOT, "dist", "local", "functions-core.js");

// Runs in the child: everything it prints is one JSON line.
const CHILD = `
const { installFunctionsCore, getRegistrations } = require(process.argv[1]);
const fs = require("node:fs");
installFunctionsCore();
const before = new Set(Object.keys(require.cache));
const rssBefore = process.memoryUsage().rss;
const start = process.hrtime.bigint();
require(process.argv[2]);
const ms = Number(process.hrtime.bigint() - start) / 1e6;
const memory = process.memoryUsage();
const files = Object.keys(require.cache).filter((f) => !before.has(f));
let bytes = 0;
for (const f of files) bytes += fs.statSync(f).size;
process.stdout.write(JSON.stringify({
  ms, rss: memory.rss, rssDelta: memory.rss - rssBefore, heapUsed: memory.heapUsed,
  files: files.length, bytes, functions: getRegistrations().length, sinceStart: performance.now(),
}));
`;

function option(args, name, fallback) {
  const at = args.indexOf(name);
  return at >= 0 && args[at + 1] ? args[at + 1] : fallback;
}

function sample(entry) {
  const started = process.hrtime.bigint();
  const out = execFileSync(process.execPath, ["-e", CHILD, STAND_IN, entry], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, NODE_OPTIONS: "" },
  });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  return { ...JSON.parse(out), wallMs };
}

function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

function summarize(samples) {
  const pick = (key) => samples.map((s) => s[key]);
  const stats = (values) => ({
    median: quantile(values, 0.5),
    p90: quantile(values, 0.9),
    min: Math.min(...values),
    max: Math.max(...values),
  });
  const first = samples[0];
  return {
    requireMs: stats(pick("ms")),
    processMs: stats(pick("wallMs")),
    rssMB: stats(pick("rss").map((b) => b / 1024 / 1024)),
    heapUsedMB: stats(pick("heapUsed").map((b) => b / 1024 / 1024)),
    filesLoaded: first.files,
    bytesLoaded: first.bytes,
    functions: first.functions,
  };
}

const round = (n, digits = 1) => Number(n.toFixed(digits));

function roundDeep(value) {
  if (typeof value === "number") return Number.isInteger(value) ? value : round(value, 2);
  if (Array.isArray(value)) return value.map(roundDeep);
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, roundDeep(v)]));
  return value;
}

async function formatJson(text, file) {
  try {
    const prettier = await import("prettier");
    const config = (await prettier.resolveConfig(file)) ?? {};
    return await prettier.format(text, { ...config, filepath: file });
  } catch {
    return text;
  }
}

async function main() {
  const args = process.argv.slice(2);
  const runs = Number(option(args, "--runs", "15"));
  const bundle = resolve(
    option(args, "--bundle", join(ROOT, ".keyturn", "package", "app", "dist", "functions", "index.js")),
  );
  const unbundled = resolve(option(args, "--unbundled", join(ROOT, "dist", "functions", "index.js")));
  const outFile = resolve(option(args, "--out", join(ROOT, "bench", "results", "cold-start.json")));
  for (const [what, path] of [
    ["bundle", bundle],
    ["unbundled build", unbundled],
    ["local host stand-in", STAND_IN],
  ]) {
    if (!existsSync(path)) {
      console.error(`${what} not found at ${path}: run \`npm run package\` (it builds dist/ too).`);
      process.exit(1);
    }
  }
  if (statSync(bundle).mtimeMs < statSync(unbundled).mtimeMs) {
    console.warn("note: the bundle is older than dist/functions/index.js; `npm run package` refreshes it.");
  }

  const entries = { unbundled, bundle };
  const samples = { unbundled: [], bundle: [] };
  for (const entry of Object.values(entries)) sample(entry); // warm-up, discarded
  for (let i = 0; i < runs; i++) {
    for (const [name, entry] of Object.entries(entries)) samples[name].push(sample(entry));
    process.stderr.write(`\r${i + 1}/${runs}`);
  }
  process.stderr.write("\n");

  const results = { unbundled: summarize(samples.unbundled), bundle: summarize(samples.bundle) };
  if (results.unbundled.functions !== results.bundle.functions) {
    console.error(
      `The bundle registered ${results.bundle.functions} functions, the unbundled build ${results.unbundled.functions}.`,
    );
    process.exitCode = 1;
  }

  const rel = (p) => relative(ROOT, p);
  const rows = [
    [
      "",
      "require median",
      "require p90",
      "process median",
      "RSS median",
      "files",
      "bytes loaded",
      "functions",
    ],
    ...Object.entries(results).map(([name, r]) => [
      `${name} (${rel(entries[name])})`,
      `${round(r.requireMs.median)} ms`,
      `${round(r.requireMs.p90)} ms`,
      `${round(r.processMs.median)} ms`,
      `${round(r.rssMB.median)} MB`,
      String(r.filesLoaded),
      `${round(r.bytesLoaded / 1024 / 1024, 2)} MB`,
      String(r.functions),
    ]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const line = (row) =>
    row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ");
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  console.log(
    `Cold start: require() of the Functions entry in ${runs} fresh processes each (node ${process.version}, ${platform()} ${arch()}, ${cpus().length} x ${cpu})\n`,
  );
  for (const row of rows) console.log(line(row));
  const speedup = results.unbundled.requireMs.median / results.bundle.requireMs.median;
  const rssSaved = results.unbundled.rssMB.median - results.bundle.rssMB.median;
  console.log(
    `\nbundle: ${round(speedup, 2)}x faster to require (median), ${round(rssSaved)} MB less RSS, ${results.bundle.filesLoaded} file instead of ${results.unbundled.filesLoaded}`,
  );

  const report = roundDeep({
    description:
      "require() of the Functions entry in fresh node processes with the local host's @azure/functions-core stand-in; see bench/cold-start.mjs",
    date: new Date().toISOString(),
    node: process.version,
    platform: `${platform()} ${arch()}`,
    cpu: `${cpus().length} x ${cpu}`,
    runs,
    entries: Object.fromEntries(
      Object.entries(entries).map(([name, path]) => [name, { path: rel(path), bytes: statSync(path).size }]),
    ),
    results,
    speedup: round(speedup, 2),
    samplesMs: {
      unbundled: samples.unbundled.map((s) => s.ms),
      bundle: samples.bundle.map((s) => s.ms),
    },
  });
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, await formatJson(`${JSON.stringify(report, null, 2)}\n`, outFile));
  console.log(`results: ${rel(outFile)}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
