#!/usr/bin/env node
// `npm run bench`: keyturn against the seeds' manual procedure at estate scale (issue 7, DESIGN §10).
// A benchmark, not a test: it takes minutes per estate.
//
// For each estate, on FRESH emulators (`keyturn emulator --latency realistic ...`, the command recorded
// in each result; its default limits on: ARM token buckets and the Storage RP's limits):
//   1. keyturn: `keyturn rotate --json --grace G --subscription <each>` as a child process; its wall
//      time, and its peak RSS (/proc/<pid>/status VmRSS and VmHWM every 250 ms, descendants summed);
//      then the emulator's request log, outage log and key state through its admin API.
//   2. the sequential procedure (bench/sequential.mjs) on another fresh emulator: on a sample of
//      accounts spread over the subscriptions, extrapolated linearly to the whole estate (said so in
//      the output), or on every account with `--sequential-sample all`.
//   3. the lower bound of DESIGN §10, keyturn's ratio to it, the speed-up over the sequential procedure.
// Writes bench/results/<estate>.json (':' becomes '-': large-100x10.json), <estate>-arm-calls.svg and
// bench/results/README.md (the table over every estate result there).
//
// Usage: node bench/run.mjs [--estate large:100x10]... [--grace 60s] [--sequential-sample 5|all]
//          [--only keyturn|sequential] [--timeout 3h] [--out DIR] [--keep-temp]
import { spawn, execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  closeSync,
} from "node:fs";
import { request } from "node:https";
import { cpus, platform, arch, tmpdir, totalmem } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseDuration, runSequential } from "./sequential.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "bin", "keyturn.js");
const DEFAULT_ESTATES = ["large:100x10", "large:30x10x3"];
const BUCKET_SECONDS = 10;

// ---------------------------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const opts = {
    estates: [],
    grace: "60s",
    sample: "5",
    only: undefined,
    timeout: "3h",
    out: undefined,
    keepTemp: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--estate") opts.estates.push(value());
    else if (a === "--grace") opts.grace = value();
    else if (a === "--sequential-sample") opts.sample = value();
    else if (a === "--only") opts.only = value();
    else if (a === "--timeout") opts.timeout = value();
    else if (a === "--out") opts.out = value();
    else if (a === "--keep-temp") opts.keepTemp = true;
    else if (a === "-h" || a === "--help") {
      console.log(
        readFileSync(fileURLToPath(import.meta.url), "utf8")
          .split("\n")
          .slice(1, 20)
          .map((l) => l.replace(/^\/\/ ?/, ""))
          .join("\n"),
      );
      process.exit(0);
    } else throw new Error(`unknown option ${a} (see --help)`);
  }
  if (opts.estates.length === 0) opts.estates = DEFAULT_ESTATES;
  if (opts.only !== undefined && opts.only !== "keyturn" && opts.only !== "sequential")
    throw new Error(`--only ${opts.only}: use keyturn or sequential`);
  if (opts.sample !== "all" && !(Number.isInteger(Number(opts.sample)) && Number(opts.sample) >= 1))
    throw new Error(`--sequential-sample ${opts.sample}: use a number of accounts (≥ 1) or all`);
  const graceSeconds = parseDuration(opts.grace);
  if (!Number.isInteger(graceSeconds)) throw new Error(`--grace ${opts.grace}: use whole seconds`);
  return { ...opts, graceSeconds, timeoutSeconds: parseDuration(opts.timeout) };
}

// ---------------------------------------------------------------------------------------------
// The pure part: bench/analysis.ts, compiled here (it is TypeScript so the jest tests cover it)

async function loadAnalysis(dir) {
  const { transformSync } = await import("esbuild");
  const source = readFileSync(join(ROOT, "bench", "analysis.ts"), "utf8");
  const { code } = transformSync(source, { loader: "ts", format: "esm", target: "node20" });
  const file = join(dir, "analysis.mjs");
  writeFileSync(file, code);
  return import(pathToFileURL(file).href);
}

// ---------------------------------------------------------------------------------------------
// Child processes

const children = new Set();

function stopChild(child, signal = "SIGINT", graceMs = 20_000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }, graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      done();
    });
    child.kill(signal);
  });
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping the bench's child processes`);
    Promise.all([...children].map((c) => stopChild(c, "SIGINT", 5_000))).finally(() => process.exit(130));
  });
}

function tail(file, lines = 15) {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/** A fresh emulator of `estate` in its own process (Azurite allows one per process). */
async function startEmulator(estate, dir) {
  mkdirSync(dir, { recursive: true });
  const connectionFile = join(dir, "connection.json");
  const logFile = join(dir, "emulator.log");
  const fd = openSync(logFile, "w");
  const args = [
    CLI,
    "emulator",
    "--estate",
    estate,
    "--latency",
    "realistic",
    "--resync-policy",
    "consumers",
    "--connection-file",
    connectionFile,
  ];
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  children.add(child);
  child.once("exit", () => children.delete(child));
  const deadline = Date.now() + 300_000;
  while (!existsSync(connectionFile)) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `the emulator for ${estate} exited (${child.exitCode ?? child.signalCode}):\n${tail(logFile)}`,
      );
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`the emulator for ${estate} wrote no connection file in 5 minutes:\n${tail(logFile)}`);
    }
    await sleep(200);
  }
  const connection = JSON.parse(readFileSync(connectionFile, "utf8"));
  const ca = readFileSync(connection.caCertFile, "utf8");
  const admin = (method, path) => adminCall(connection.adminEndpoint, ca, method, path);
  const command = `node bin/keyturn.js ${args.slice(1, -1).join(" ")} ${relative(dir, connectionFile)}`;
  return { child, command, connection, connectionFile, logFile, admin, stop: () => stopChild(child) };
}

/** The emulator's admin API (loopback, its own CA). Resolves {status, body}. */
function adminCall(adminEndpoint, ca, method, path) {
  return new Promise((resolvePromise, reject) => {
    const req = request(`${adminEndpoint}${path}`, { method, ca, timeout: 120_000 }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = text;
        }
        resolvePromise({ status: res.statusCode, body });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`admin ${method} ${path} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

async function adminGet(emulator, path, { optional = false } = {}) {
  const res = await emulator.admin("GET", path);
  if (res.status === 200) return res.body;
  if (optional && res.status === 404) return undefined;
  throw new Error(`admin GET ${path} answered ${res.status}`);
}

// ---------------------------------------------------------------------------------------------
// Peak RSS of a process and its descendants, from /proc

function procStatus(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
    return { rssKb: kb("VmRSS"), hwmKb: kb("VmHWM") };
  } catch {
    return undefined;
  }
}

function descendants(pid) {
  const found = [];
  const walk = (p) => {
    let tasks = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const t of tasks) {
      let text = "";
      try {
        text = readFileSync(`/proc/${p}/task/${t}/children`, "utf8");
      } catch {
        continue;
      }
      for (const c of text.trim().split(/\s+/).filter(Boolean)) {
        found.push(Number(c));
        walk(Number(c));
      }
    }
  };
  walk(pid);
  return found;
}

/** Polls every 250 ms: the peak of the tree's summed VmRSS, and each process's own VmHWM. */
function watchRss(pid) {
  const peak = { treeRssKb: 0, hwmKb: 0, processes: new Set([pid]), samples: 0 };
  const poll = () => {
    let sum = 0;
    for (const p of [pid, ...descendants(pid)]) {
      const s = procStatus(p);
      if (!s) continue;
      peak.processes.add(p);
      sum += s.rssKb;
      peak.hwmKb = Math.max(peak.hwmKb, s.hwmKb);
    }
    peak.treeRssKb = Math.max(peak.treeRssKb, sum);
    peak.samples++;
  };
  poll();
  const timer = setInterval(poll, 250);
  return {
    current: () => Math.max(peak.treeRssKb, peak.hwmKb) / 1024,
    stop: () => {
      clearInterval(timer);
      return {
        peakRssMB: Math.max(peak.treeRssKb, peak.hwmKb) / 1024,
        treeRssMB: peak.treeRssKb / 1024,
        maxVmHwmMB: peak.hwmKb / 1024,
        processes: peak.processes.size,
        samples: peak.samples,
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// keyturn

/** `keyturn rotate`'s exit codes (README, "Running keyturn"). */
const EXIT_MEANING = {
  1: "an account failed, or the rotation did not finish",
  2: "an account stalled (its old key still works)",
  130: "interrupted",
};

async function runKeyturn(emulator, dir, opts) {
  const args = [
    CLI,
    "rotate",
    "--connection-file",
    emulator.connectionFile,
    "--grace",
    `${opts.graceSeconds}s`,
    "--json",
    "--state-dir",
    join(dir, "state"),
    ...emulator.connection.subscriptionIds.flatMap((id) => ["--subscription", id]),
  ];
  const stderrFile = join(dir, "keyturn.stderr.log");
  const errFd = openSync(stderrFile, "w");
  const startedAt = Date.now();
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ["ignore", "pipe", errFd] });
  closeSync(errFd);
  children.add(child);
  const rss = watchRss(child.pid);
  const out = [];
  child.stdout.on("data", (c) => out.push(c));
  let timedOut = false;
  const timeout = setTimeout(() => {
    timedOut = true;
    console.error(`  keyturn: still running after ${opts.timeout}: interrupting it`);
    void stopChild(child, "SIGINT", 60_000);
  }, opts.timeoutSeconds * 1000);
  const progress = setInterval(() => {
    const last = (tail(stderrFile, 1).split("\r").pop() ?? "").slice(0, 160);
    console.error(
      `  keyturn: ${Math.round((performance.now() - t0) / 1000)} s, RSS ${rss.current().toFixed(0)} MB${last ? ` | ${last}` : ""}`,
    );
  }, 30_000);
  const [exitCode, signal] = await new Promise((done) =>
    child.once("exit", (code, sig) => done([code, sig])),
  );
  const wallSeconds = (performance.now() - t0) / 1000;
  const finishedAt = Date.now();
  clearTimeout(timeout);
  clearInterval(progress);
  children.delete(child);
  const memory = rss.stop();
  const stdout = Buffer.concat(out).toString("utf8");
  let report;
  let error;
  try {
    report = JSON.parse(stdout);
  } catch {
    error = `no JSON report on stdout (exit ${exitCode ?? signal}); stderr ends:\n${tail(stderrFile, 8)}`;
  }
  if (!error && exitCode !== 0)
    error = `exit ${exitCode ?? signal}: ${EXIT_MEANING[exitCode] ?? "see its report"}`;
  return {
    command: `node bin/keyturn.js ${args
      .slice(1)
      .map((a) => (a.startsWith(dir) ? relative(dir, a) : a))
      .join(" ")}`,
    startedAt,
    finishedAt,
    wallSeconds,
    exitCode,
    signal,
    timedOut,
    report,
    error,
    memory,
    stderrFile,
  };
}

/** What the emulator recorded during a run: the requests, outages, keys after, throttle counts. */
async function collect(emulator) {
  const [requests, outages, state, throttle, regenerations] = [
    await adminGet(emulator, "/requests"),
    await adminGet(emulator, "/outages"),
    await adminGet(emulator, "/state"),
    await adminGet(emulator, "/throttle", { optional: true }),
    await adminGet(emulator, "/regenerations", { optional: true }),
  ];
  const log = Array.isArray(requests) ? requests : (requests?.requests ?? []);
  const regs = Array.isArray(regenerations) ? regenerations : regenerations?.regenerations;
  return { log, outages: outages?.outages ?? [], state, throttle, regenerations: regs };
}

function outageSummary(outages) {
  const byKind = {};
  let totalMs = 0;
  for (const o of outages) {
    byKind[o.kind] = (byKind[o.kind] ?? 0) + 1;
    totalMs += o.durationMs ?? 0;
  }
  return {
    count: outages.length,
    open: outages.filter((o) => o.end === undefined).length,
    byKind,
    totalSeconds: totalMs / 1000,
    first: outages
      .slice(0, 5)
      .map((o) => ({ name: o.name, kind: o.kind, cause: o.cause, durationMs: o.durationMs ?? null })),
  };
}

// ---------------------------------------------------------------------------------------------
// One estate

function slug(estate) {
  return estate.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

async function benchKeyturn(A, estate, dir, opts) {
  console.error(`${estate}: starting a fresh emulator for keyturn`);
  const emulator = await startEmulator(estate, join(dir, "keyturn"));
  try {
    const before = await adminGet(emulator, "/state");
    const accounts = A.estateAccounts(before).filter((a) => a.consumers > 0);
    console.error(`${estate}: keyturn rotate, ${accounts.length} accounts, grace ${opts.graceSeconds} s`);
    const run = await runKeyturn(emulator, join(dir, "keyturn"), opts);
    console.error(
      `${estate}: keyturn exited ${run.exitCode ?? run.signal} after ${run.wallSeconds.toFixed(1)} s`,
    );
    const got = await collect(emulator);
    const arm = A.summarizeRequests(got.log, { fromMs: run.startedAt - 1000, toMs: run.finishedAt + 1000 });
    const logThrottled = arm.throttled;
    if (got.throttle && typeof got.throttle.total === "number") {
      // The emulator's own count survives the request log's trimming.
      arm.throttled = Math.max(arm.throttled, got.throttle.total);
      if (got.throttle.bySource) arm.throttledBySource = got.throttle.bySource;
    }
    const requestLogComplete =
      got.throttle && typeof got.throttle.requests === "number"
        ? got.log.length >= got.throttle.requests
        : true;
    return {
      accounts,
      before,
      part: {
        date: new Date(run.startedAt).toISOString(),
        command: run.command,
        emulatorCommand: emulator.command,
        wallSeconds: run.wallSeconds,
        exitCode: run.exitCode,
        signal: run.signal,
        timedOut: run.timedOut,
        ...(run.error ? { error: run.error } : {}),
        peakRssMB: run.memory.peakRssMB,
        memory: run.memory,
        outcomes: A.summarizeOutcomes(run.report, accounts),
        reportArmCalls: sumReportArmCalls(run.report),
        arm,
        throttledInLog: logThrottled,
        emulatorThrottleCounts: got.throttle ?? null,
        economy: A.writeEconomy(arm, accounts),
        regenerations: A.checkRegenerations(
          accounts,
          A.keyFingerprints(before),
          A.keyFingerprints(got.state),
          arm.regenerations,
          got.regenerations,
        ),
        outages: got.outages.length,
        outageDetail: outageSummary(got.outages),
        requestLogComplete,
        requestLogEntries: got.log.length,
        series: A.timeSeries(got.log, run.startedAt, run.finishedAt, BUCKET_SECONDS),
      },
    };
  } finally {
    await emulator.stop();
  }
}

function sumReportArmCalls(report) {
  if (!report || !Array.isArray(report.accounts)) return null;
  const perAccount = report.accounts.reduce((s, a) => s + (a.armCalls ?? 0), 0);
  return { perAccountSum: perAccount, discovery: report.discoveryArmCalls ?? null };
}

async function benchSequential(A, estate, dir, opts) {
  console.error(`${estate}: starting a fresh emulator for the sequential procedure`);
  const emulator = await startEmulator(estate, join(dir, "sequential"));
  try {
    const before = await adminGet(emulator, "/state");
    const accounts = A.estateAccounts(before).filter((a) => a.consumers > 0);
    const sample = opts.sample === "all" ? accounts : A.sampleAccounts(accounts, Number(opts.sample));
    const whole = sample.length === accounts.length;
    console.error(
      whole
        ? `${estate}: sequential procedure on all ${accounts.length} accounts (about ${Math.round((accounts.length * (opts.graceSeconds + 5)) / 60)} min)`
        : `${estate}: sequential procedure on a sample of ${sample.length} of ${accounts.length} accounts (${sample.map((a) => a.name).join(", ")}), extrapolated linearly`,
    );
    const startedAt = Date.now();
    const result = await runSequential({
      connectionFile: emulator.connectionFile,
      graceSeconds: opts.graceSeconds,
      accountNames: sample.map((a) => a.name),
      log: (line) => console.error(`  ${line}`),
    });
    const finishedAt = Date.now();
    const got = await collect(emulator);
    const arm = A.summarizeRequests(got.log, { fromMs: startedAt - 1000, toMs: finishedAt + 1000 });
    const estimate = A.extrapolateSequential({
      discoverySeconds: result.discoverySeconds,
      perAccountSeconds: result.accounts.filter((a) => !a.error).map((a) => a.seconds),
      totalAccounts: accounts.length,
      graceSeconds: opts.graceSeconds,
    });
    const sampled = accounts.filter((a) => sample.some((s) => s.name === a.name));
    return {
      accounts,
      before,
      part: {
        date: new Date(startedAt).toISOString(),
        emulatorCommand: emulator.command,
        ...estimate,
        sample: sample.map((a) => a.name),
        accountsFailed: result.accounts.filter((a) => a.error).length,
        accountResults: result.accounts.map((a) => ({
          name: a.name,
          seconds: a.seconds,
          ...(a.error ? { error: a.error } : { datastores: a.datastores, steps: a.steps }),
        })),
        wallSeconds: result.wallSeconds,
        arm,
        economy: A.writeEconomy(arm, sampled),
        regenerations: A.checkRegenerations(
          sampled,
          A.keyFingerprints(before),
          A.keyFingerprints(got.state),
          arm.regenerations,
          got.regenerations,
        ),
        outages: got.outages.length,
        outageDetail: outageSummary(got.outages),
      },
    };
  } finally {
    await emulator.stop();
  }
}

function gitCommit() {
  try {
    const git = (...args) =>
      execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const sha = git("rev-parse", "--short", "HEAD");
    const dirty = git("status", "--porcelain", "--untracked-files=no");
    return dirty ? `${sha} (uncommitted changes)` : sha;
  } catch {
    return undefined;
  }
}

async function benchEstate(A, estate, opts, outDir) {
  const dir = mkdtempSync(join(tmpdir(), `keyturn-bench-${slug(estate)}-`));
  const file = join(outDir, `${slug(estate)}.json`);
  const previous = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : undefined;
  let accounts;
  let keyturn;
  let sequential;
  if (opts.only !== "sequential") {
    const k = await benchKeyturn(A, estate, dir, opts);
    accounts = k.accounts;
    keyturn = k.part;
  }
  if (opts.only !== "keyturn") {
    const s = await benchSequential(A, estate, dir, opts);
    accounts = s.accounts;
    sequential = s.part;
  }
  // A run of one side keeps the other side's last result for this estate, if it used the same grace.
  const kept = [];
  if (!keyturn && previous?.keyturn && previous.graceSeconds === opts.graceSeconds) {
    keyturn = previous.keyturn;
    kept.push(`keyturn from ${previous.keyturn.date}`);
  }
  if (!sequential && previous?.sequential && previous.graceSeconds === opts.graceSeconds) {
    sequential = previous.sequential;
    kept.push(`sequential from ${previous.sequential.date}`);
  }
  const lowerBound = A.lowerBound({
    graceSeconds: opts.graceSeconds,
    criticalPathSeconds: sequential?.criticalPathSeconds ?? null,
    accounts,
  });
  const ratioToBound = keyturn && lowerBound.bound > 0 ? keyturn.wallSeconds / lowerBound.bound : null;
  const speedup =
    keyturn && sequential?.estimatedSeconds != null
      ? sequential.estimatedSeconds / keyturn.wallSeconds
      : null;
  const subscriptions = new Set(accounts.map((a) => a.subscriptionId)).size;
  const result = {
    estate,
    date: new Date().toISOString(),
    commit: gitCommit(),
    machine: `${platform()} ${arch()}, ${cpus().length} × ${cpus()[0]?.model ?? "CPU"}, ${Math.round(totalmem() / 2 ** 30)} GB, node ${process.version}`,
    graceSeconds: opts.graceSeconds,
    latency: "realistic",
    shape: {
      accounts: accounts.length,
      datastores: accounts.reduce((s, a) => s + a.datastores, 0),
      subscriptions,
      perSubscription: lowerBound.perSubscription,
    },
    ...(kept.length > 0 ? { keptFromEarlierRuns: kept } : {}),
    ...(keyturn ? { keyturn } : {}),
    ...(sequential ? { sequential } : {}),
    lowerBound,
    ratioToBound,
    speedup,
    targets: targetsOf(keyturn, lowerBound, ratioToBound, speedup, accounts.length),
  };
  // Keep the logs of a keyturn run that did not end cleanly (exit code ≠ 0).
  const ranWithError = kept.every((k) => !k.startsWith("keyturn")) && keyturn?.error !== undefined;
  if (!opts.keepTemp && !ranWithError) rmSync(dir, { recursive: true, force: true });
  else console.error(`${estate}: logs and state kept in ${dir}`);
  return result;
}

function targetsOf(keyturn, bound, ratio, speedup, accounts) {
  if (!keyturn) return null;
  return {
    everyAccountRotated:
      keyturn.outcomes.rotated === accounts &&
      keyturn.outcomes.stalled === 0 &&
      keyturn.outcomes.failed === 0,
    outageLogEmpty: keyturn.outages === 0,
    eachKeyOnce: keyturn.regenerations.ok,
    writesWithinTarget: keyturn.economy.withinTarget,
    withinOneQuarterOfBound: ratio === null ? null : ratio <= 1.25,
    tenTimesSequential: speedup === null ? null : speedup >= 10,
    peakRssUnder400MB: keyturn.peakRssMB === null ? null : keyturn.peakRssMB <= 400,
  };
}

// ---------------------------------------------------------------------------------------------
// Output

async function formatted(text, file) {
  try {
    const prettier = await import("prettier");
    const config = (await prettier.resolveConfig(file)) ?? {};
    return await prettier.format(text, { ...config, filepath: file });
  } catch {
    return text;
  }
}

function roundDeep(value) {
  if (typeof value === "number") return Number.isInteger(value) ? value : Number(value.toFixed(3));
  if (Array.isArray(value)) return value.map(roundDeep);
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, roundDeep(v)]));
  return value;
}

async function writeResult(A, result, outDir) {
  const base = join(outDir, slug(result.estate));
  const json = `${base}.json`;
  writeFileSync(json, await formatted(`${JSON.stringify(roundDeep(result), null, 2)}\n`, json));
  const written = [json];
  if (result.keyturn?.series) {
    const k = result.keyturn;
    const svg = A.renderChart({
      title: `keyturn rotate on ${result.estate}: ARM calls per ${BUCKET_SECONDS} s against the budget`,
      subtitle: `grace ${result.graceSeconds} s, realistic latency; ${k.outcomes.rotated}/${result.shape.accounts} rotated, ${k.arm.throttled} × 429, wall ${k.wallSeconds.toFixed(0)} s (bound ${result.lowerBound.bound.toFixed(0)} s)`,
      points: k.series,
      bucketSeconds: BUCKET_SECONDS,
      subscriptions: result.shape.subscriptions,
      endSeconds: k.wallSeconds,
    });
    writeFileSync(`${base}-arm-calls.svg`, svg);
    written.push(`${base}-arm-calls.svg`);
  }
  return written;
}

function readResults(A, outDir) {
  return readdirSync(outDir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => {
      try {
        return JSON.parse(readFileSync(join(outDir, f), "utf8"));
      } catch {
        return undefined;
      }
    })
    .filter((r) => r && typeof r.estate === "string" && r.lowerBound)
    .sort((a, b) => a.shape.accounts - b.shape.accounts || a.estate.localeCompare(b.estate));
}

function describeRun(A, r) {
  const lines = [`### \`${r.estate}\``, ""];
  lines.push(
    `${r.date.slice(0, 16).replace("T", " ")} UTC, commit ${r.commit ?? "unknown"}; ${r.machine}. Grace ${r.graceSeconds} s, the emulator's default limits; emulator: \`${(r.keyturn ?? r.sequential)?.emulatorCommand ?? "?"}\`.`,
  );
  if (r.keptFromEarlierRuns) lines.push(`Kept from earlier runs: ${r.keptFromEarlierRuns.join("; ")}.`);
  lines.push("");
  const b = r.lowerBound;
  lines.push(
    `Lower bound ${b.bound.toFixed(1)} s = max(grace + critical path ${b.terms.accountCriticalPath.toFixed(1)} s${b.criticalPathSeconds === null ? " (critical path not measured: no sequential run)" : ` (critical path ${b.criticalPathSeconds.toFixed(1)} s: the sequential procedure's median account minus its grace)`}, ARM write budget ${b.terms.armWriteBudget.toFixed(1)} s (max over subscriptions of (W − 200)/10, W = Σ 3·D + 8 = ${b.perSubscription.map((s) => s.minimalWrites).join(", ")}), Storage RP hourly ${b.terms.storageRpHourly.toFixed(0)} s).`,
  );
  const s = r.sequential;
  if (s) {
    lines.push(
      "",
      s.whole
        ? `Sequential procedure: run on all ${s.totalAccounts} accounts, ${s.measuredSeconds.toFixed(0)} s measured.`
        : `Sequential procedure: **run on ${s.sampled} of ${s.totalAccounts} accounts** (${s.sample.join(", ")}; ${s.measuredSeconds.toFixed(0)} s measured) **and extrapolated linearly**: discovery ${s.discoverySeconds.toFixed(1)} s + ${s.perAccountMeanSeconds?.toFixed(1) ?? "?"} s mean per account × ${s.totalAccounts} = ${s.estimatedSeconds?.toFixed(0) ?? "?"} s. \`--sequential-sample all\` runs it whole.`,
    );
  }
  const k = r.keyturn;
  if (k) {
    if (k.error) lines.push("", `keyturn did not finish cleanly: ${k.error.split("\n")[0]}`);
    if (k.outcomes.problems.length > 0) {
      lines.push("", "Accounts not rotated (first ones):", "");
      for (const p of k.outcomes.problems.slice(0, 10))
        lines.push(
          `- ${p.account}: ${p.outcome}${p.reason ? ` — ${p.reason.replace(/\s+/g, " ").slice(0, 200)}` : ""}`,
        );
    }
    if (!k.requestLogComplete)
      lines.push(
        "",
        `The emulator's request log was trimmed (${k.requestLogEntries} entries kept): call counts are lower bounds; the 429 count is the emulator's own.`,
      );
    lines.push(
      "",
      `![ARM calls over time](${slug(r.estate)}-arm-calls.svg)`,
      "",
      "keyturn's ARM calls by operation:",
      "",
      A.operationsTable(k.arm),
    );
  }
  return lines.join("\n");
}

async function writeReadme(A, outDir) {
  const results = readResults(A, outDir);
  const text = [
    "# Bench results",
    "",
    "Written by `npm run bench` (bench/run.mjs); do not edit by hand. keyturn and the seeds' manual procedure",
    "(bench/sequential.mjs) each on a fresh emulator with realistic latency and its default ARM and Storage RP",
    "limits. The lower bound is DESIGN §10's; targets from issue 7: every account rotated, empty outage log, each",
    "key regenerated once, ≤ 3 ARM writes per datastore + 10 per account, ≤ 1.25× the bound, ≥ 10× the",
    "sequential procedure, peak RSS ≤ 400 MB at `large:300x10`.",
    "",
    results.length > 0 ? A.markdownTable(results) : "No results yet: run `npm run bench`.",
    "",
    ...results.map((r) => describeRun(A, r)),
    "",
  ].join("\n");
  const file = join(outDir, "README.md");
  writeFileSync(file, await formatted(text, file));
  return { file, results };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(join(ROOT, "dist", "cli", "index.js"))) {
    console.error("dist/ is missing: run `npm run build` first (`npm run bench` does).");
    process.exit(1);
  }
  const outDir = resolve(opts.out ?? join(ROOT, "bench", "results"));
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "keyturn-bench-"));
  const A = await loadAnalysis(work);
  const done = [];
  let failures = 0;
  for (const estate of opts.estates) {
    try {
      const result = await benchEstate(A, estate, opts, outDir);
      const files = await writeResult(A, result, outDir);
      done.push(result);
      console.error(`${estate}: wrote ${files.map((f) => relative(ROOT, f)).join(", ")}`);
    } catch (e) {
      failures++;
      console.error(`${estate}: the bench itself failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  rmSync(work, { recursive: true, force: true });
  const { file } = await writeReadme(A, outDir);
  if (done.length > 0) {
    console.log(
      `\nkeyturn vs the seeds' sequential procedure (grace ${opts.graceSeconds} s, realistic latency, default limits)\n`,
    );
    console.log(A.textTable(done));
    for (const r of done) {
      if (r.keyturn) {
        const ops = Object.entries(r.keyturn.arm.byOperation)
          .map(([op, c]) => `${op} ${c.calls}${c.throttled > 0 ? ` (${c.throttled} × 429)` : ""}`)
          .join(", ");
        console.log(`${r.estate}: keyturn's ARM calls by operation: ${ops}`);
      }
      if (r.keptFromEarlierRuns)
        console.log(
          `${r.estate}: kept from an earlier run (same grace): ${r.keptFromEarlierRuns.join("; ")}`,
        );
      const s = r.sequential;
      if (s && !s.whole)
        console.log(
          `${r.estate}: the sequential time is EXTRAPOLATED linearly from ${s.sampled} of ${s.totalAccounts} accounts (${s.measuredSeconds.toFixed(0)} s measured); --sequential-sample all runs it whole.`,
        );
      if (r.lowerBound.criticalPathSeconds === null)
        console.log(
          `${r.estate}: the lower bound's critical path was not measured (no sequential run): grace only.`,
        );
      if (r.keyturn?.error) console.log(`${r.estate}: keyturn: ${r.keyturn.error.split("\n")[0]}`);
    }
  }
  console.log(
    `\nresults: ${relative(ROOT, outDir)}/ (README.md, <estate>.json, <estate>-arm-calls.svg); table in ${relative(ROOT, file)}`,
  );
  process.exit(failures > 0 ? 1 : 0);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
