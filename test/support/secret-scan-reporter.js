"use strict";
/**
 * Runs the whole-run secret scan (secret-scan.js) once every test file has finished, and counts it as
 * one more test: a key found anywhere the tests wrote is a failed test, so Jest exits non-zero and the
 * summary reporter's totals (the `N passed, N failed` line of .ci/run) include it. Listed before the
 * default reporter, so Jest's own summary counts it too.
 *
 * What is scanned: everything under the run's root (global-setup.js points TMPDIR there; run-files.js
 * keeps what tests removed and a copy of every process's stdout and stderr), the key ledger excepted,
 * and the files under the repository changed since the run started (the default `.keyturn/` state and
 * audit trail, test results), node_modules and .git aside.
 */
const { rmSync, writeFileSync, mkdirSync } = require("node:fs");
const { join, relative, sep } = require("node:path");
const { readLedger, scanFiles } = require("./secret-scan");
const { RUN_DIR_SETTING, runPaths } = require("./run-files");

const TITLE = "whole-run secret scan: no key the emulator issued is in any file the tests wrote (I3)";

/** Adds the scan to Jest's aggregated results as one test, passed or failed. */
function recordScan(results, scan, rootDir) {
  const failed = scan.hits.length > 0;
  const failure = failed
    ? [
        `${scan.hits.length} key(s) found in files the tests wrote (keys shown by their ledger digest):`,
        ...scan.hits.map(
          (h) =>
            `  ${h.file.startsWith(rootDir + sep) ? relative(rootDir, h.file) : h.file}: key ${h.key}… as ${h.encodings.join(" / ")}` +
            (h.contexts.length > 0 ? ` in ${h.contexts.join(", ")}` : ""),
        ),
      ].join("\n")
    : null;
  const now = Date.now();
  const test = {
    ancestorTitles: [],
    duration: scan.ms,
    failureDetails: [],
    failureMessages: failure ? [failure] : [],
    fullName: TITLE,
    invocations: 1,
    location: null,
    numPassingAsserts: 0,
    retryReasons: [],
    status: failed ? "failed" : "passed",
    title: TITLE,
  };
  results.testResults.push({
    leaks: false,
    numFailingTests: failed ? 1 : 0,
    numPassingTests: failed ? 0 : 1,
    numPendingTests: 0,
    numTodoTests: 0,
    openHandles: [],
    perfStats: { end: now, runtime: scan.ms, slow: false, start: now - scan.ms },
    skipped: false,
    snapshot: {
      added: 0,
      fileDeleted: false,
      matched: 0,
      unchecked: 0,
      uncheckedKeys: [],
      unmatched: 0,
      updated: 0,
    },
    testFilePath: join(rootDir, "test", "support", "secret-scan.js"),
    testResults: [test],
    failureMessage: failure,
  });
  results.numTotalTests += 1;
  results.numTotalTestSuites += 1;
  if (failed) {
    results.numFailedTests += 1;
    results.numFailedTestSuites += 1;
    results.success = false;
  } else {
    results.numPassedTests += 1;
    results.numPassedTestSuites += 1;
  }
}

/** Scans what the run at `root` wrote; `since` bounds the repository files taken as written by it. */
function scanRun(root, rootDir, since) {
  const run = runPaths(root);
  const ledger = readLedger(run.ledger);
  const scan = scanFiles({
    ledger,
    roots: [run.tmp, run.removed, run.output],
    changedUnder: [rootDir],
    since,
  });
  return { ...scan, root };
}

function describe(scan) {
  const mb = (scan.bytes / 1024 / 1024).toFixed(1);
  return (
    `Whole-run secret scan: ${scan.hits.length} hit(s) for ${scan.keys} key(s) the emulator issued, ` +
    `in ${scan.files} files (${scan.bytes} bytes, ${mb} MiB) the tests wrote, ${scan.ms} ms`
  );
}

class SecretScanReporter {
  constructor(globalConfig, options = {}) {
    this.rootDir = globalConfig.rootDir;
    this.options = options;
  }

  onRunComplete(_contexts, results) {
    const env = this.options.env ?? process.env;
    const root = env[RUN_DIR_SETTING];
    if (!root) return; // the global setup did not run: nothing was routed, nothing to scan
    let scan;
    try {
      scan = scanRun(root, this.rootDir, Number(env.KEYTURN_TEST_RUN_STARTED) || 0);
    } catch (e) {
      // A scan that cannot run has not shown that nothing leaked: that is a failure too.
      const error = `the scan could not run: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
      scan = {
        files: 0,
        bytes: 0,
        keys: 0,
        ms: 0,
        hits: [{ file: root, key: "(none)", encodings: [error], contexts: [] }],
      };
    }
    recordScan(results, scan, this.rootDir);
    const dir = join(this.rootDir, ".keyturn");
    mkdirSync(dir, { recursive: true });
    const { hits, files, bytes, keys, ms } = scan;
    writeFileSync(
      join(dir, "secret-scan.json"),
      JSON.stringify({ files, bytes, keys, ms, hits }, null, 2) + "\n",
    );
    process.stderr.write(`\n${describe(scan)}\n`);
    if (hits.length > 0) {
      process.stderr.write(
        `${results.testResults.at(-1).failureMessage}\nThe run's files are kept in ${root}\n`,
      );
    } else if (!this.options.keep) {
      rmSync(root, { recursive: true, force: true });
    }
  }
}

module.exports = SecretScanReporter;
module.exports.recordScan = recordScan;
module.exports.scanRun = scanRun;
