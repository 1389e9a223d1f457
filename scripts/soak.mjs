#!/usr/bin/env node
// `npm run test:soak` (issue 9, deliverable 5): 50 consecutive rotations of the demo estate on ONE local
// host, with the emulator's consumer jobs using every consumer's key all the while. Not part of `npm test`.
//
// The emulator runs as its own process (`keyturn emulator --consumer-jobs 200 --resync-policy consumers`),
// so this process is only the local host running keyturn's built functions (dist/): its memory is the
// host's. After each rotation: a full GC (run with --expose-gc), then heapUsed and RSS are sampled.
//
// Checks: every rotation rotates every account of the demo estate (force, grace 1 s), each key once;
// the emulator's outage log stays empty and its jobs see no 403; heapUsed after the last rotation is
// within HEAP_BOUND_MB of its value after the warm-up, and its least-squares slope over the rotations
// after the warm-up is under SLOPE_BOUND_KB per rotation. Writes test/results/soak.md; exits 1 on any
// failed check.
//
// Usage: node --expose-gc scripts/soak.mjs [--rotations 50] [--grace 1] [--out test/results/soak.md]
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { parseArgs as utilParseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);

/** Rotations before the baseline: module caches, SDK clients, JIT and the host's instance records settle. */
const WARMUP = 5;
/**
 * heapUsed may end at most this much above its post-warm-up value. The host keeps one record per
 * instance id, and every id repeats (the scope's rotateAll, its lanes, one per account): each rotation
 * replaces the records of the last, so a host that holds nothing per rotation stays flat; 4 MB is
 * room for GC noise and caches that fill once (a leak of 100 KB per rotation would exceed it).
 */
const HEAP_BOUND_MB = 4;
/** The least-squares slope of heapUsed after the warm-up: a steady leak shows here before the bound. */
const SLOPE_BOUND_KB = 50;
/** The slope is judged over at least this many rotations after the warm-up. */
const MIN_SLOPE_SAMPLES = 20;
/** RSS includes freed pages the allocator keeps; a looser bound, for the record. */
const RSS_BOUND_MB = 40;
/** Skips --force does not override: the account needs no rotation, every time. */
const FORCE_PROOF_SKIPS = new Set(["opted-out", "shared-key-disabled", "no-consumers"]);

function parseArgs(argv) {
  const { values } = utilParseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      rotations: { type: "string", default: "50" },
      grace: { type: "string", default: "1" },
      out: { type: "string", default: join(ROOT, "test", "results", "soak.md") },
    },
  });
  const opts = { rotations: Number(values.rotations), grace: Number(values.grace), out: resolve(values.out) };
  if (!(Number.isInteger(opts.rotations) && opts.rotations > WARMUP + 1))
    throw new Error(`--rotations must be an integer > ${WARMUP + 1}`);
  if (!(opts.grace >= 0)) throw new Error("--grace must be a number of seconds >= 0");
  return opts;
}

function adminCall(connection, ca, method, path) {
  const url = new URL(`${connection.adminEndpoint}${path}`);
  return new Promise((resolvePromise, reject) => {
    const req = request(url, { method, ca }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => resolvePromise(text ? JSON.parse(text) : undefined));
    });
    req.on("error", reject);
    req.end();
  });
}

async function startEmulatorProcess(dir) {
  const connectionFile = join(dir, "connection.json");
  const child = spawn(
    process.execPath,
    [
      join(ROOT, "bin", "keyturn.js"),
      "emulator",
      "--connection-file",
      connectionFile,
      "--resync-policy",
      "consumers",
      "--consumer-jobs",
      "200",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d.toString()));
  for (let i = 0; i < 600 && !existsSync(connectionFile); i++) {
    if (child.exitCode !== null) throw new Error(`the emulator exited: ${stderr}`);
    await sleep(100);
  }
  if (!existsSync(connectionFile)) throw new Error(`the emulator did not start: ${stderr}`);
  await sleep(200); // the file is renamed into place whole; give the listener a moment
  return { child, connectionFile, stderr: () => stderr };
}

function slope(points) {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const num = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0);
  const den = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

const mb = (bytes) => bytes / 1024 / 1024;
const fmt = (n, digits = 1) => n.toFixed(digits);

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (typeof globalThis.gc !== "function") throw new Error("run with node --expose-gc");
  if (!existsSync(join(ROOT, "dist", "functions", "index.js"))) throw new Error("build first: npm run build");
  const dir = mkdtempSync(join(tmpdir(), "keyturn-soak-"));
  const emulator = await startEmulatorProcess(dir);
  // Interrupted: take the emulator down too (it is our child, not the shell's).
  for (const signal of ["SIGINT", "SIGTERM"])
    process.once(signal, () => {
      emulator.child.kill("SIGINT");
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  const failures = [];
  const samples = [];
  const started = Date.now();
  let host;
  try {
    const connection = JSON.parse(readFileSync(emulator.connectionFile, "utf8"));
    const ca = readFileSync(connection.caCertFile, "utf8");
    process.env.KEYTURN_CONNECTION_FILE = emulator.connectionFile;
    process.env.KEYTURN_KEY_VAULT_URL = Object.values(connection.vaults).join(",");
    process.env.KEYTURN_AUDIT_FILE = join(dir, "audit.jsonl");
    process.env.KEYTURN_TELEMETRY_FILE = join(dir, "telemetry.jsonl");

    const { LocalHost } = require(join(ROOT, "dist", "local"));
    const { ORCHESTRATOR } = require(join(ROOT, "dist", "shared", "activities", "contracts"));
    const { scopeInstanceId } = require(join(ROOT, "dist", "shared", "rotation"));
    const logged = [];
    host = new LocalHost({
      stateDir: join(dir, "state"),
      logger: (entry) => {
        if (entry.level === "error" || entry.level === "critical") logged.push(entry.message);
      },
    });
    host.load(join(ROOT, "dist", "functions", "index.js"));

    const scope = { subscriptions: connection.subscriptionIds };
    const id = scopeInstanceId(scope);
    const seen429 = { arm: 0, storageRp: 0 };
    for (let n = 1; n <= opts.rotations; n++) {
      const t = Date.now();
      host.startNew(
        ORCHESTRATOR.rotateAll,
        {
          scope,
          dryRun: false,
          force: true,
          graceSeconds: opts.grace,
          minKeyAgeDays: 20,
          parallelism: 8,
          trigger: "cli",
          startedBy: "soak",
        },
        id,
      );
      const status = await host.waitForCompletion(id, { timeoutMs: 300_000 });
      const seconds = (Date.now() - t) / 1000;
      const report = status.output;
      const accounts = report?.accounts ?? [];
      const rotated = accounts.filter((a) => a.outcome === "rotated").length;
      // With --force only policy that no force overrides may skip (an opt-out tag, shared keys disabled).
      const notRotated = accounts.filter(
        (a) => a.outcome !== "rotated" && !(a.outcome === "skipped" && FORCE_PROOF_SKIPS.has(a.skipCode)),
      );
      if (status.runtimeStatus !== "Completed" || accounts.length === 0 || notRotated.length > 0)
        failures.push(
          `rotation ${n}: ${status.runtimeStatus}; ${notRotated.map((a) => `${a.name} ${a.outcome}: ${a.reason ?? ""}`).join("; ")}`,
        );
      for (const a of accounts) {
        const keys = a.keysRegenerated ?? [];
        if (a.outcome === "rotated" && (keys.length !== 2 || keys[0] === keys[1]))
          failures.push(`rotation ${n}: ${a.name} regenerated ${JSON.stringify(keys)}`);
      }
      // Throttling (ARM's buckets and the Storage RP's limits, on as in Azure): what the rotation waited for.
      const throttle = await adminCall(connection, ca, "GET", "/throttle");
      const throttled = {
        arm: throttle.bySource.arm - seen429.arm,
        storageRp: throttle.bySource.storageRp - seen429.storageRp,
      };
      seen429.arm = throttle.bySource.arm;
      seen429.storageRp = throttle.bySource.storageRp;
      globalThis.gc();
      globalThis.gc();
      const m = process.memoryUsage();
      samples.push({
        n,
        seconds,
        rotated,
        accounts: accounts.length,
        skipped: accounts.length - rotated - notRotated.length,
        throttled,
        heapUsed: m.heapUsed,
        rss: m.rss,
      });
      process.stderr.write(
        `soak: rotation ${n}/${opts.rotations}: ${rotated}/${accounts.length} rotated in ${fmt(seconds)} s; heapUsed ${fmt(mb(m.heapUsed))} MB, RSS ${fmt(mb(m.rss))} MB\n`,
      );
    }
    const outages = await adminCall(connection, ca, "GET", "/outages");
    if (outages.outages.length > 0)
      failures.push(`${outages.outages.length} outage(s): ${outages.outages.map((o) => o.name).join(", ")}`);
    if (outages.probeFailures.length > 0)
      failures.push(`${outages.probeFailures.length} consumer job(s) got 403 on the data plane`);
    if (outages.probes === 0) failures.push("the consumer jobs never ran");
    if (logged.length > 0) failures.push(`${logged.length} error(s) logged by the functions: ${logged[0]}`);

    const after = samples.slice(WARMUP - 1);
    const base = after[0];
    const last = samples.at(-1);
    const heapSlopeKb = slope(after.map((s) => [s.n, s.heapUsed])) / 1024;
    const rssSlopeKb = slope(after.map((s) => [s.n, s.rss])) / 1024;
    const heapGrowthMb = mb(last.heapUsed - base.heapUsed);
    const rssGrowthMb = mb(last.rss - base.rss);
    if (heapGrowthMb > HEAP_BOUND_MB)
      failures.push(`heapUsed grew ${fmt(heapGrowthMb)} MB after the warm-up (bound ${HEAP_BOUND_MB} MB)`);
    // A slope over a handful of rotations is the warm-up's tail, not a trend.
    if (after.length >= MIN_SLOPE_SAMPLES && heapSlopeKb > SLOPE_BOUND_KB)
      failures.push(`heapUsed slope ${fmt(heapSlopeKb)} KB per rotation (bound ${SLOPE_BOUND_KB} KB)`);
    if (rssGrowthMb > RSS_BOUND_MB)
      failures.push(`RSS grew ${fmt(rssGrowthMb)} MB after the warm-up (bound ${RSS_BOUND_MB} MB)`);

    const totalSeconds = (Date.now() - started) / 1000;
    const md = [
      "# Soak",
      "",
      `Run ${new Date().toISOString().slice(0, 10)}: ${opts.rotations} consecutive rotations of the demo estate on one local host, ` +
        `grace ${opts.grace} s, forced, ${fmt(totalSeconds, 0)} s in all (\`npm run test:soak\`; Node ${process.version}).`,
      "",
      "The emulator (`keyturn emulator --resync-policy consumers --consumer-jobs 200`) runs in its own process;",
      "its consumer jobs use every consumer's key on the data plane every 200 ms throughout. The measured",
      "process is the local host alone, running the built functions; memory is sampled after each rotation,",
      "after a full GC (`--expose-gc`).",
      "",
      "| check | result |",
      "|---|---|",
      `| rotations where every account rotated (or needs none) | ${samples.filter((s) => s.accounts > 0 && s.rotated + s.skipped === s.accounts).length} of ${opts.rotations} (${samples[0]?.rotated ?? 0} accounts rotated each time, ${samples[0]?.skipped ?? 0} needing no rotation) |`,
      `| outages in the emulator's log | ${outages.outages.length} |`,
      `| consumer job probes / refused (403) | ${outages.probes} / ${outages.probeFailures.length} |`,
      `| heapUsed after rotation ${WARMUP} → ${opts.rotations} | ${fmt(mb(base.heapUsed))} → ${fmt(mb(last.heapUsed))} MB (${heapGrowthMb >= 0 ? "+" : ""}${fmt(heapGrowthMb, 2)} MB; bound +${HEAP_BOUND_MB} MB) |`,
      `| heapUsed slope after the warm-up | ${fmt(heapSlopeKb)} KB per rotation (bound ${SLOPE_BOUND_KB} KB) |`,
      `| RSS after rotation ${WARMUP} → ${opts.rotations} | ${fmt(mb(base.rss))} → ${fmt(mb(last.rss))} MB (${rssGrowthMb >= 0 ? "+" : ""}${fmt(rssGrowthMb, 2)} MB; bound +${RSS_BOUND_MB} MB), slope ${fmt(rssSlopeKb)} KB per rotation |`,
      `| 429s keyturn paced through (ARM / Storage RP) | ${sum(samples, (s) => s.throttled.arm)} / ${sum(samples, (s) => s.throttled.storageRp)} |`,
      `| rotation time (median / max) | ${fmt(median(samples.map((s) => s.seconds)))} / ${fmt(Math.max(...samples.map((s) => s.seconds)))} s |`,
      `| verdict | ${failures.length === 0 ? "pass" : `FAIL: ${failures.join("; ")}`} |`,
      "",
      "Why these bounds: the local host keeps one record per orchestration instance id and every id repeats",
      "from one rotation to the next (the scope's `rotateAll`, its lanes, one `rotateStorageAccount` per",
      "account), so each rotation replaces the last one's records; the activity dependencies, SDK clients and",
      "the ARM pacer's lanes are made once. A host that keeps nothing per rotation has a flat heap after the",
      `warm-up (${WARMUP} rotations): the ${HEAP_BOUND_MB} MB bound is GC noise plus caches that fill once, and a leak of`,
      `100 KB per rotation would break it within the run; the slope bound (${SLOPE_BOUND_KB} KB per rotation) catches a steady`,
      "leak earlier. RSS also holds pages the allocator keeps after a GC, so its bound is looser.",
      "",
      "The emulator enforces ARM's and the Storage resource provider's limits as Azure does; back-to-back",
      "rotations spend the Storage RP's budget (reads 800 and lists 100 per 5 minutes, writes 10 per second",
      "and 1,200 per hour, per subscription and region), so rotations wait out its 429s (as long as the",
      "Retry-After says): the 429 column shows where.",
      "",
      "| rotation | seconds | 429s (ARM / Storage RP) | heapUsed MB | RSS MB |",
      "|---|---|---|---|---|",
      ...samples.map(
        (s) =>
          `| ${s.n} | ${fmt(s.seconds)} | ${s.throttled.arm} / ${s.throttled.storageRp} | ${fmt(mb(s.heapUsed), 2)} | ${fmt(mb(s.rss), 1)} |`,
      ),
      "",
    ].join("\n");
    mkdirSync(dirname(opts.out), { recursive: true });
    // Formatted as `npm run lint` (prettier --check .) expects the committed file.
    const prettier = await import("prettier");
    const config = (await prettier.resolveConfig(opts.out)) ?? {};
    writeFileSync(opts.out, await prettier.format(md, { ...config, filepath: opts.out }));
    process.stderr.write(
      `soak: ${failures.length === 0 ? "pass" : `FAIL\n  ${failures.join("\n  ")}`}; wrote ${opts.out}\n`,
    );
    process.exitCode = failures.length === 0 ? 0 : 1;
  } finally {
    await host?.stop();
    if (emulator.child.exitCode === null && emulator.child.signalCode === null) {
      const closed = new Promise((r) => emulator.child.once("close", r));
      emulator.child.kill("SIGINT");
      await closed;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function sum(items, of) {
  return items.reduce((n, item) => n + of(item), 0);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

main().catch((e) => {
  process.stderr.write(`soak: ${e.stack ?? e}\n`);
  process.exitCode = 1;
});
