"use strict";
/**
 * Jest's global setup: one root for everything this run writes (see run-files.js), and a ledger of the
 * keys the emulator issues, for the whole-run secret scan that secret-scan-reporter.js runs at the end.
 * Runs in Jest's parent process before any worker starts, so the environment set here is inherited by
 * every worker and every process the tests spawn.
 */
const { mkdirSync, mkdtempSync } = require("node:fs");
const { tmpdir } = require("node:os");
const { join } = require("node:path");
const { RUN_DIR_SETTING, runPaths } = require("./run-files");

module.exports = async function globalSetup() {
  const run = runPaths(mkdtempSync(join(tmpdir(), "keyturn-test-run-")));
  mkdirSync(run.tmp);
  process.env[RUN_DIR_SETTING] = run.root;
  process.env.KEYTURN_TEST_RUN_STARTED = String(Date.now());
  process.env.KEYTURN_KEY_LEDGER = run.ledger;
  process.env.TMPDIR = run.tmp;
  const preload = `--require ${JSON.stringify(join(__dirname, "run-files.js"))}`;
  process.env.NODE_OPTIONS = [process.env.NODE_OPTIONS, preload].filter(Boolean).join(" ");
  // Tests that run in this process (`jest -i`, or a single file) need the same treatment.
  require("./run-files").install(run.root);
};
