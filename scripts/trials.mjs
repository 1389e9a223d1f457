#!/usr/bin/env node
// `npm run test:trials` (issue 8): keyturn's invariants across crashes and second operators, as trials of
// real CLI processes (bin/keyturn.js, built into dist/) against the emulator (dist/emulator, in this
// process), each trial on a fresh emulator. Not part of `npm test` (test/e2e/crossprocess.test.ts runs one
// of each kind there). Writes test/results/trials.md; exits 1 if any trial breaks an invariant.
//
// Kill-and-resume trials (--kills, default 40): `keyturn rotate --storage-account A --force` with A's first
// or second regenerateKey held by the emulator (`hold` fault), SIGKILLed once it is held, then `keyturn
// resume` at once; the held request is released at a random moment between the kill and its deadline: its
// arrival plus KEYTURN_ARM_TIMEOUT_SECONDS (--arm-timeout), less room for the emulator's latency to serve
// it (it must land, not just be released, inside it). keyturn's contract (README): a request takes effect
// within its deadline of being sent, or never; the resume must see it whenever it lands in there. The account
// cycles over stmlresearch, stmllake, stmlshared and stmlbatch; the held regeneration alternates.
// Checks: each key of A regenerated exactly once in all (the late one counted, and it did land late);
// the resumed report says rotated; no consumer on a dead key; the emulator's outage log empty.
//
// Concurrent trials (--concurrent, default 10): two `keyturn rotate` processes started together on
// overlapping scopes (`--storage-account stmlresearch` and `--resource-group rg-ml-research`, then
// `--storage-account stmlshared` and `--resource-group rg-ml-prod`), separate state directories, the
// second started 0-300 ms after the first, which one first alternating. Checks: each key of every account
// regenerated at most once, each account in either scope exactly once; the shared account rotated by one
// process and skipped with skipCode in-progress by the other, naming the winner's rotation id; no
// consumer on a dead key; the outage log empty.
//
// Emulator: demo estate, resyncPolicy consumers (no reported I1 window, so any outage is a failure),
// realistic latency (--latency-scale, default 1). Grace 2 s.
//
// Usage: node scripts/trials.mjs [--kills 40] [--concurrent 10] [--parallel 2] [--arm-timeout 8]
//        [--latency-scale 1] [--seed N] [--out test/results/trials.md] [--evidence DIR]
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const { startEmulator } = require(join(ROOT, "dist", "emulator", "index.js"));
const { medianLatencyMs } = require(join(ROOT, "dist", "emulator", "latency.js"));
const { consumerHoldings, heldKeyName } = require(join(ROOT, "dist", "emulator", "consumers.js"));
const CLI = join(ROOT, "bin", "keyturn.js");

const REGENERATE = "storageAccounts.regenerateKey";
const GRACE_SECONDS = 2;
const KILL_ACCOUNTS = ["stmlresearch", "stmllake", "stmlshared", "stmlbatch"];
const PAIRS = [
  { account: "stmlresearch", group: "rg-ml-research" },
  { account: "stmlshared", group: "rg-ml-prod" },
];
/** One process run may take this long before it is killed as hung. */
const RUN_TIMEOUT_MS = 240_000;

const { values } = parseArgs({
  options: {
    kills: { type: "string", default: "40" },
    concurrent: { type: "string", default: "10" },
    parallel: { type: "string", default: "2" },
    "arm-timeout": { type: "string", default: "8" },
    "latency-scale": { type: "string", default: "1" },
    seed: { type: "string", default: String(Date.now() % 1_000_000) },
    out: { type: "string", default: join(ROOT, "test", "results", "trials.md") },
    evidence: { type: "string" },
    // The git checkout the build came from, when the trials run a copy of it (default: this one).
    repo: { type: "string" },
    // Internal: one worker process's share (the emulator's data plane is one per process).
    shard: { type: "string" },
    "shard-out": { type: "string" },
  },
});
const opts = {
  kills: Number(values.kills),
  concurrent: Number(values.concurrent),
  parallel: Math.max(1, Number(values.parallel)),
  armTimeoutSeconds: Number(values["arm-timeout"]),
  latencyScale: Number(values["latency-scale"]),
  seed: Number(values.seed),
  out: resolve(values.out),
  evidence: resolve(values.evidence ?? join(tmpdir(), `keyturn-trials-evidence-${process.pid}`)),
};
/**
 * Room for the emulator to serve a released regeneration (latency sampled after the release): four
 * medians is beyond the model's 99.99th percentile (log-normal, sigma 0.35).
 */
const LANDING_ALLOWANCE_MS = 4 * medianLatencyMs(REGENERATE) * opts.latencyScale;
const RELEASE_WINDOW_MS = opts.armTimeoutSeconds * 1000 - LANDING_ALLOWANCE_MS;
if (!(RELEASE_WINDOW_MS > 1000))
  throw new Error(`--arm-timeout ${opts.armTimeoutSeconds}s leaves no room to release at this latency scale`);

/** A seeded draw in [0, 1) per trial (mulberry32): a run can be repeated with --seed, sharded or not. */
function random(kind, n) {
  let t = (opts.seed + (kind === "kill" ? 0 : 1_000_003) + n * 0x6d2b79f5) >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

// ---------------------------------------------------------------------------------------------------

function cli(args, env, onStart) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    onStart?.(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d.toString()));
    child.stderr.on("data", (d) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), RUN_TIMEOUT_MS);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

function childEnv(dir, armTimeoutSeconds = opts.armTimeoutSeconds) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KEYTURN_")) env[k] = v;
  return {
    ...env,
    KEYTURN_AUDIT_FILE: join(dir, "audit.jsonl"),
    KEYTURN_TELEMETRY_FILE: join(dir, "telemetry.jsonl"),
    KEYTURN_ARM_TIMEOUT_SECONDS: String(armTimeoutSeconds),
  };
}

function reportOf(run) {
  try {
    const json = JSON.parse(run.stdout.trim());
    const report = Array.isArray(json) ? json[0] : json;
    return report && Array.isArray(report.accounts) ? report : undefined;
  } catch {
    return undefined;
  }
}

async function until(condition, timeoutMs = RUN_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

const onAccount = (path, account) => {
  const p = path.toLowerCase();
  return p.includes(`/storageaccounts/${account}/`) || p.endsWith(`/storageaccounts/${account}`);
};

function counts(emulator) {
  const c = {};
  for (const r of emulator.ctx.regenerations) {
    if (r.outOfBand) continue;
    c[r.account] ??= { key1: 0, key2: 0 };
    c[r.account][r.key]++;
  }
  return c;
}

async function withEmulator(work) {
  const emulator = await startEmulator({
    settings: { resyncPolicy: "consumers", latency: "realistic", latencyScale: opts.latencyScale },
  });
  const dir = mkdtempSync(join(tmpdir(), "keyturn-trial-"));
  const connection = join(dir, "connection.json");
  writeFileSync(connection, JSON.stringify(emulator.connection));
  try {
    return await work({ emulator, dir, connection });
  } finally {
    emulator.faults.release();
    await emulator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Consumers of these accounts on a key the account no longer has, and the emulator's outage log. */
function damage(emulator, accounts) {
  const estate = emulator.ctx.estate;
  const dead = consumerHoldings(estate)
    .filter((h) => accounts.includes(h.storageAccountName) && heldKeyName(estate, h) === undefined)
    .map((h) => `${h.kind} ${h.name}`);
  return { dead, outages: emulator.outages.all() };
}

function evidence(name, emulator, extra) {
  mkdirSync(opts.evidence, { recursive: true });
  const file = join(opts.evidence, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        requests: emulator.requestLog.map(
          (r) => `${r.at} ${r.method} ${r.operation} ${r.status} ${r.durationMs}ms ${r.path}`,
        ),
        regenerations: emulator.ctx.regenerations,
        outages: emulator.outages.all(),
        ...extra,
      },
      null,
      1,
    ),
  );
  return file;
}

// ---------------------------------------------------------------------------------------------------
// Kill and resume with a regeneration in flight

async function killTrial(n) {
  const account = KILL_ACCOUNTS[n % KILL_ACCOUNTS.length];
  const which = Math.floor(n / KILL_ACCOUNTS.length) % 2 === 0 ? "first" : "second";
  const u = random("kill", n);
  const started = Date.now();
  return withEmulator(async ({ emulator, dir, connection }) => {
    const problems = [];
    const stateDir = join(dir, "state");
    const env = childEnv(dir);
    const mine = () => emulator.ctx.regenerations.filter((r) => r.account === account && !r.outOfBand);
    const hold = () =>
      emulator.faults.add({
        operation: REGENERATE,
        path: `/storageAccounts/${account}/regenerateKey$`,
        action: { type: "hold" },
      });
    if (which === "first") hold();
    let child;
    let ended;
    const rotating = cli(
      [
        "rotate",
        "--connection-file",
        connection,
        "--state-dir",
        stateDir,
        "--storage-account",
        account,
        "--grace",
        `${GRACE_SECONDS}s`,
        "--force",
        "--json",
      ],
      env,
      (c) => (child = c),
    ).then((r) => (ended = r));
    if (which === "second") {
      await until(() => mine().length === 1 || ended !== undefined);
      hold();
    }
    await until(() => emulator.faults.held.length === 1 || ended !== undefined);
    if (ended) {
      problems.push(`the rotate ended (exit ${ended.code}) before its ${which} regeneration was held`);
      return { n, account, which, problems, seconds: secondsSince(started) };
    }
    const heldKey = emulator.faults.held[0];
    child.kill("SIGKILL");
    const killed = await rotating;
    const killedAt = Date.now();
    if (killed.signal !== "SIGKILL") problems.push(`rotate ended with ${killed.signal ?? killed.code}`);
    const before = mine().length;

    const resumeStart = Date.now();
    let resumed;
    const resuming = cli(["resume", "--state-dir", stateDir, "--json"], env).then((r) => (resumed = r));
    // The release moment: uniform over [the kill, the held request's deadline less the landing room].
    const deadline = Date.parse(heldKey.since) + opts.armTimeoutSeconds * 1000;
    const releaseAt = killedAt + u * Math.max(0, deadline - LANDING_ALLOWANCE_MS - killedAt);
    await sleep(Math.max(0, releaseAt - Date.now()));
    const releasedAt = Date.now();
    const resumeWasRunning = resumed === undefined;
    const released = emulator.faults.release();
    if (released.length !== 1 || released[0].id !== heldKey.id) problems.push("the held request was gone");
    if (!resumeWasRunning) problems.push("the resume ended before the release");
    await resuming;

    // The dead process's request landed, late.
    const landed = mine()[before];
    const lateAnswered = emulator.requestLog.filter(
      (r) => r.operation === REGENERATE && onAccount(r.path, account) && Date.parse(r.at) < killedAt,
    );
    if (lateAnswered.length !== before + 1 || lateAnswered.at(-1).status !== 200)
      problems.push(
        `the dead process's regeneration was not served: ${lateAnswered.map((r) => r.status).join(",")}`,
      );
    const landedAt = landed ? Date.parse(landed.at) : undefined;
    if (landedAt === undefined || landedAt < killedAt) problems.push("no regeneration landed after the kill");
    const landedVsDeadlineMs = landedAt !== undefined ? landedAt - deadline : undefined;
    if (landedVsDeadlineMs !== undefined && landedVsDeadlineMs > 0)
      problems.push(`(harness) the late request landed ${landedVsDeadlineMs} ms after the deadline`);

    const c = counts(emulator);
    const own = c[account] ?? { key1: 0, key2: 0 };
    const double = own.key1 > 1 || own.key2 > 1;
    if (own.key1 !== 1 || own.key2 !== 1) problems.push(`regenerated key1 ${own.key1}x, key2 ${own.key2}x`);
    for (const [name, k] of Object.entries(c))
      if (name !== account) problems.push(`${name} regenerated (${k.key1}, ${k.key2}), not in scope`);
    const report = reportOf(resumed);
    const outcome = report?.accounts.find((a) => a.name === account)?.outcome ?? "no report";
    if (outcome !== "rotated") problems.push(`resume reported ${outcome}`);
    if (resumed.code !== 0) problems.push(`resume exit ${resumed.code}`);
    const { dead, outages } = damage(emulator, [account]);
    if (dead.length > 0) problems.push(`on a dead key: ${dead.join(", ")}`);
    if (outages.length > 0) problems.push(`${outages.length} outage(s)`);
    const result = {
      n,
      account,
      which,
      held: heldKey,
      releaseAfterResumeStartMs: releasedAt - resumeStart,
      releaseVsDeadlineMs: Number.isFinite(deadline) ? releasedAt - deadline : undefined,
      landedVsDeadlineMs,
      regenerated: own,
      double,
      outages: outages.length,
      dead: dead.length,
      outcome,
      exit: resumed.code,
      problems,
      seconds: secondsSince(started),
    };
    if (problems.length > 0)
      result.evidence = evidence(`kill-${n}`, emulator, {
        result,
        rotate: { stderr: killed.stderr },
        resume: { code: resumed.code, stdout: resumed.stdout, stderr: resumed.stderr },
      });
    return result;
  });
}

// ---------------------------------------------------------------------------------------------------
// Two processes on overlapping scopes

async function concurrentTrial(n) {
  const pair = PAIRS[n % PAIRS.length];
  const groupFirst = Math.floor(n / PAIRS.length) % 2 === 1;
  const staggerMs = Math.round(random("concurrent", n) * 300);
  const started = Date.now();
  return withEmulator(async ({ emulator, dir, connection }) => {
    const problems = [];
    const inGroup = [...emulator.ctx.estate.storageAccounts.values()]
      .filter((a) => a.resourceGroup === pair.group)
      .map((a) => a.name);
    const run = (name, scope) => {
      const own = join(dir, name);
      mkdirSync(own, { recursive: true });
      return cli(
        [
          "rotate",
          "--connection-file",
          connection,
          "--state-dir",
          join(own, "state"),
          ...scope,
          "--grace",
          `${GRACE_SECONDS}s`,
          "--json",
        ],
        childEnv(own),
      );
    };
    const startAccount = () => run("by-account", ["--storage-account", pair.account]);
    const startGroup = () => run("by-group", ["--resource-group", pair.group]);
    let byAccount;
    let byGroup;
    if (groupFirst) {
      byGroup = startGroup();
      await sleep(staggerMs);
      byAccount = startAccount();
    } else {
      byAccount = startAccount();
      await sleep(staggerMs);
      byGroup = startGroup();
    }
    const runs = { byAccount: await byAccount, byGroup: await byGroup };
    const reports = { byAccount: reportOf(runs.byAccount), byGroup: reportOf(runs.byGroup) };
    if (!reports.byAccount || !reports.byGroup) problems.push("a process printed no report");

    const c = counts(emulator);
    const double = Object.values(c).some((k) => k.key1 > 1 || k.key2 > 1);
    for (const [name, k] of Object.entries(c))
      if (k.key1 > 1 || k.key2 > 1) problems.push(`${name}: key1 ${k.key1}x, key2 ${k.key2}x`);
    const shared = {
      byAccount: reports.byAccount?.accounts.find((a) => a.name === pair.account),
      byGroup: reports.byGroup?.accounts.find((a) => a.name === pair.account),
    };
    const winnerSide =
      shared.byAccount?.outcome === "rotated"
        ? "byAccount"
        : shared.byGroup?.outcome === "rotated"
          ? "byGroup"
          : "";
    const loserSide = winnerSide === "byAccount" ? "byGroup" : "byAccount";
    const loser = winnerSide ? shared[loserSide] : undefined;
    const winnerId = winnerSide ? reports[winnerSide].rotationId : undefined;
    if (!winnerSide) problems.push(`neither process rotated ${pair.account}`);
    else if (loser?.outcome !== "skipped" || loser.skipCode !== "in-progress")
      problems.push(`the other process reported ${pair.account} ${loser?.outcome} ${loser?.skipCode ?? ""}`);
    else if (!loser.reason?.includes(winnerId)) problems.push("the skip reason does not name the winner");
    for (const name of inGroup) {
      const k = c[name] ?? { key1: 0, key2: 0 };
      const rotated = [reports.byAccount, reports.byGroup].some(
        (r) => r?.accounts.find((a) => a.name === name)?.outcome === "rotated",
      );
      if (rotated && (k.key1 !== 1 || k.key2 !== 1))
        problems.push(`${name} rotated with key1 ${k.key1}x, key2 ${k.key2}x`);
    }
    const { dead, outages } = damage(emulator, inGroup);
    if (dead.length > 0) problems.push(`on a dead key: ${dead.join(", ")}`);
    if (outages.length > 0) problems.push(`${outages.length} outage(s)`);
    const result = {
      n,
      pair,
      first: groupFirst ? "group" : "account",
      staggerMs,
      winner: winnerSide === "byAccount" ? "account" : winnerSide === "byGroup" ? "group" : "none",
      loser: loser ? `${loser.outcome}${loser.skipCode ? ` ${loser.skipCode}` : ""}` : "-",
      exits: { byAccount: runs.byAccount.code, byGroup: runs.byGroup.code },
      regenerated: c,
      double,
      outages: outages.length,
      dead: dead.length,
      problems,
      seconds: secondsSince(started),
    };
    if (problems.length > 0)
      result.evidence = evidence(`concurrent-${n}`, emulator, {
        result,
        byAccount: {
          code: runs.byAccount.code,
          stdout: runs.byAccount.stdout,
          stderr: runs.byAccount.stderr,
        },
        byGroup: { code: runs.byGroup.code, stdout: runs.byGroup.stdout, stderr: runs.byGroup.stderr },
      });
    return result;
  });
}

// ---------------------------------------------------------------------------------------------------

/** Runs this process's share of the trials (all of them, or every Nth with --shard i/N), one at a time. */
async function runShare(count, trial, label, shard) {
  const results = [];
  for (let i = shard.index; i < count; i += shard.of) {
    let r;
    try {
      r = await trial(i);
    } catch (e) {
      r = { n: i, problems: [`harness: ${e?.stack ?? e}`], double: false, outages: 0, dead: 0 };
    }
    results.push(r);
    console.log(
      `${label} ${i + 1}/${count}: ${r.problems.length === 0 ? "ok" : `FAILED: ${r.problems.join("; ")}`} (${r.seconds ?? "?"} s)`,
    );
  }
  return results;
}

/** --parallel N: N worker processes of this script, each with its own emulator, results joined by trial. */
async function runWorkers() {
  const dir = mkdtempSync(join(tmpdir(), "keyturn-trials-"));
  try {
    const parts = await Promise.all(
      Array.from({ length: opts.parallel }, (_, i) => {
        const out = join(dir, `shard-${i}.json`);
        const args = [
          fileURLToPath(import.meta.url),
          ...["--kills", String(opts.kills), "--concurrent", String(opts.concurrent)],
          ...["--arm-timeout", String(opts.armTimeoutSeconds), "--latency-scale", String(opts.latencyScale)],
          ...["--seed", String(opts.seed), "--evidence", opts.evidence],
          ...["--shard", `${i}/${opts.parallel}`, "--shard-out", out],
        ];
        const child = spawn(process.execPath, args, { stdio: ["ignore", "inherit", "inherit"] });
        return new Promise((resolvePromise) =>
          child.once("close", () => {
            try {
              resolvePromise(JSON.parse(readFileSync(out, "utf8")));
            } catch {
              console.error(`worker ${i} wrote no results`);
              resolvePromise({ kills: [], concurrent: [] });
            }
          }),
        );
      }),
    );
    const byTrial = (a, b) => a.n - b.n;
    return {
      kills: parts.flatMap((p) => p.kills).sort(byTrial),
      concurrent: parts.flatMap((p) => p.concurrent).sort(byTrial),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function secondsSince(t) {
  return Math.round((Date.now() - t) / 100) / 10;
}

function commit() {
  try {
    const cwd = resolve(values.repo ?? ROOT);
    const sha = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain"], { cwd, encoding: "utf8" }).trim();
    return dirty ? `${sha} with uncommitted changes` : sha;
  } catch {
    return "unknown";
  }
}

if (values.shard) {
  const [index, of] = values.shard.split("/").map(Number);
  const shard = { index, of };
  const kills = await runShare(opts.kills, killTrial, "kill-and-resume", shard);
  const concurrent = await runShare(opts.concurrent, concurrentTrial, "concurrent", shard);
  writeFileSync(values["shard-out"], JSON.stringify({ kills, concurrent }));
  process.exit(0);
}

/** The build the trials run: a rebuild during the run (someone else's `npm run build`) mixes versions. */
const builtAt = () => statSync(join(ROOT, "dist", "functions", "index.js")).mtimeMs;
const buildAtStart = builtAt();
const runStarted = Date.now();
console.log(
  `trials: ${opts.kills} kill-and-resume, ${opts.concurrent} concurrent, ${opts.parallel} at a time, seed ${opts.seed}`,
);
const { kills, concurrent } =
  opts.parallel > 1
    ? await runWorkers()
    : {
        kills: await runShare(opts.kills, killTrial, "kill-and-resume", { index: 0, of: 1 }),
        concurrent: await runShare(opts.concurrent, concurrentTrial, "concurrent", { index: 0, of: 1 }),
      };
const minutes = ((Date.now() - runStarted) / 60_000).toFixed(1);
const rebuilt = builtAt() !== buildAtStart;
if (rebuilt) console.error("dist/ was rebuilt during the run: the trials ran two versions of keyturn");

const failed = (rs) => rs.filter((r) => r.problems.length > 0).length;
const sum = (rs, f) => rs.reduce((n, r) => n + f(r), 0);
const ms = (v) => (v === undefined ? "-" : `${(v / 1000).toFixed(1)} s`);
const cell = (text) => String(text).replaceAll("|", "\\|");
const totals = {
  kills: {
    trials: kills.length,
    double: sum(kills, (r) => (r.double ? 1 : 0)),
    outages: sum(kills, (r) => r.outages ?? 0),
    dead: sum(kills, (r) => r.dead ?? 0),
    rotated: sum(kills, (r) => (r.outcome === "rotated" ? 1 : 0)),
    failed: failed(kills),
  },
  concurrent: {
    trials: concurrent.length,
    double: sum(concurrent, (r) => (r.double ? 1 : 0)),
    outages: sum(concurrent, (r) => r.outages ?? 0),
    dead: sum(concurrent, (r) => r.dead ?? 0),
    inProgress: sum(concurrent, (r) => (r.loser === "skipped in-progress" ? 1 : 0)),
    failed: failed(concurrent),
  },
};

const lines = [
  "# Cross-process trials (`npm run test:trials`)",
  "",
  `Run on ${new Date().toISOString().slice(0, 10)} at commit ${commit()}, ${cpus().length} cores, ${minutes} minutes, ` +
    `seed ${opts.seed}, ${opts.parallel} trials at a time. Emulator: demo estate, resyncPolicy consumers, realistic ` +
    `latency ×${opts.latencyScale}. keyturn: grace ${GRACE_SECONDS} s, KEYTURN_ARM_TIMEOUT_SECONDS=${opts.armTimeoutSeconds}.` +
    (rebuilt ? " **dist/ was rebuilt during the run: these trials ran two versions of keyturn.**" : ""),
  "",
  "## Totals",
  "",
  "| trials | count | double regenerations | outages | consumers on a dead key | outcome | failed |",
  "| --- | --- | --- | --- | --- | --- | --- |",
  `| kill-and-resume, a regeneration in flight | ${totals.kills.trials} | **${totals.kills.double}** | **${totals.kills.outages}** | ${totals.kills.dead} | ${totals.kills.rotated} of ${totals.kills.trials} resumed rotated, each key once | ${totals.kills.failed} |`,
  `| two processes, overlapping scopes | ${totals.concurrent.trials} | **${totals.concurrent.double}** | **${totals.concurrent.outages}** | ${totals.concurrent.dead} | ${totals.concurrent.inProgress} of ${totals.concurrent.trials}: one rotated the shared account, the other skipped it \`in-progress\` naming it | ${totals.concurrent.failed} |`,
  "",
  "## Kill and resume with a regeneration in flight",
  "",
  "`keyturn rotate --storage-account A --force` SIGKILLed while its first (standby) or second (old active) " +
    "regenerateKey is held by the emulator, then `keyturn resume` at once; the held request is released at a " +
    "random moment between the kill and its deadline (its arrival + " +
    `${opts.armTimeoutSeconds} s, less ${LANDING_ALLOWANCE_MS / 1000} s for the emulator to serve it): a request ` +
    "takes effect within its deadline or never (README). Times are relative to that deadline (negative: before it).",
  "",
  "| # | account | held | released after resume process start | released vs deadline | landed vs deadline | key1, key2 regenerated | resumed | exit | outages | result |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ...kills.map(
    (r) =>
      `| ${r.n + 1} | ${r.account ?? "-"} | ${r.which ?? "-"} | ${ms(r.releaseAfterResumeStartMs)} | ${ms(r.releaseVsDeadlineMs)} | ${ms(r.landedVsDeadlineMs)} | ${r.regenerated ? `${r.regenerated.key1}, ${r.regenerated.key2}` : "-"} | ${r.outcome ?? "-"} | ${r.exit ?? "-"} | ${r.outages ?? "-"} | ${r.problems.length === 0 ? "ok" : cell(r.problems.join("; "))} |`,
  ),
  "",
  "## Two processes on overlapping scopes",
  "",
  "`keyturn rotate --storage-account A` and `keyturn rotate --resource-group G` (A in G), separate state " +
    "directories, the second started 0-300 ms after the first.",
  "",
  "| # | A, G | first | stagger | rotated A | the other reported A | exits (account, group) | regenerations (key1, key2) | outages | result |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ...concurrent.map(
    (r) =>
      `| ${r.n + 1} | ${r.pair ? `${r.pair.account}, ${r.pair.group}` : "-"} | ${r.first ?? "-"} | ${r.staggerMs ?? "-"} ms | ${r.winner ?? "-"} | ${r.loser ?? "-"} | ${r.exits ? `${r.exits.byAccount}, ${r.exits.byGroup}` : "-"} | ${
        r.regenerated
          ? Object.entries(r.regenerated)
              .sort()
              .map(([a, k]) => `${a} ${k.key1}, ${k.key2}`)
              .join("; ")
          : "-"
      } | ${r.outages ?? "-"} | ${r.problems.length === 0 ? "ok" : cell(r.problems.join("; "))} |`,
  ),
  "",
];
mkdirSync(dirname(opts.out), { recursive: true });
writeFileSync(opts.out, lines.join("\n"));
spawnSync(
  process.execPath,
  [join(ROOT, "node_modules", "prettier", "bin", "prettier.cjs"), "--write", opts.out],
  {
    stdio: "ignore",
  },
);
console.log(
  `kill-and-resume: ${totals.kills.double} double regenerations, ${totals.kills.outages} outages, ${totals.kills.failed} of ${totals.kills.trials} failed`,
);
console.log(
  `concurrent: ${totals.concurrent.double} double regenerations, ${totals.concurrent.outages} outages, ${totals.concurrent.failed} of ${totals.concurrent.trials} failed`,
);
const failures = [...kills, ...concurrent].filter((r) => r.evidence);
if (failures.length > 0) console.log(`evidence: ${failures.map((r) => r.evidence).join(", ")}`);
console.log(`wrote ${relative(ROOT, opts.out)}`);
process.exitCode = totals.kills.failed + totals.concurrent.failed > 0 || rebuilt ? 1 : 0;
