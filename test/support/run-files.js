"use strict";
/**
 * Where a test run's files go, so the whole-run secret scan can read every one of them afterwards.
 *
 * global-setup.js makes one root per run and points TMPDIR at `<root>/tmp` (os.tmpdir() reads it on
 * every call), then preloads this module into every Node process the run starts (NODE_OPTIONS=--require:
 * Jest's workers, the CLI and emulator processes the tests spawn, and their children). In each process:
 * - a file or directory removed under `<root>/tmp` is moved to `<root>/removed/` instead, so the state
 *   dirs, logs and telemetry that tests clean up in afterAll are still there to scan;
 * - whatever the process writes to stdout and stderr is also appended to `<root>/output/<pid>-<name>.log`,
 *   which is the CLI output the tests capture.
 * Nothing else changes: a removed path is gone for the process that removed it, as before.
 */
const fs = require("node:fs");
const path = require("node:path");
const { syncBuiltinESMExports } = require("node:module");
const { fileURLToPath } = require("node:url");

const RUN_DIR_SETTING = "KEYTURN_TEST_RUN_DIR";

/** The layout of a run's root. */
function runPaths(root) {
  return {
    root,
    tmp: path.join(root, "tmp"),
    removed: path.join(root, "removed"),
    output: path.join(root, "output"),
    ledger: path.join(root, "issued-keys.sha256"),
  };
}

let installed = false;

/** Keeps removed files and copies stdout/stderr, for the run named by KEYTURN_TEST_RUN_DIR (if any). */
function install(root = process.env[RUN_DIR_SETTING]) {
  if (installed || !root) return;
  installed = true;
  const run = runPaths(root);
  keepRemovedFiles(run);
  copyOutput(run);
}

function keepRemovedFiles(run) {
  const rename = fs.renameSync;
  let count = 0;
  const resolved = (target) => {
    try {
      return path.resolve(target instanceof URL ? fileURLToPath(target) : String(target));
    } catch {
      return undefined;
    }
  };
  const isDirectory = (target) => {
    try {
      return fs.lstatSync(target).isDirectory();
    } catch {
      return false;
    }
  };
  /** Moves `target` aside when it lies under the run's tmp; false leaves the removal to the original. */
  const keep = (target, directoryAllowed) => {
    const abs = resolved(target);
    if (!abs || !abs.startsWith(run.tmp + path.sep)) return false;
    if (isDirectory(abs) && !directoryAllowed) return false; // let the original refuse it as before
    try {
      fs.lstatSync(abs);
      fs.mkdirSync(run.removed, { recursive: true });
      rename(abs, path.join(run.removed, `${process.pid}-${++count}-${path.basename(abs)}`));
      return true;
    } catch {
      return false; // missing (the original answers ENOENT, or nothing with force) or not movable
    }
  };
  const recursive = (options) =>
    typeof options === "object" && options !== null && options.recursive === true;

  const { rmSync, unlinkSync, rm, unlink } = fs;
  const promises = { rm: fs.promises.rm, unlink: fs.promises.unlink };
  fs.rmSync = function (target, options) {
    if (keep(target, recursive(options))) return undefined;
    return rmSync.apply(this, arguments);
  };
  fs.unlinkSync = function (target) {
    if (keep(target, false)) return undefined;
    return unlinkSync.apply(this, arguments);
  };
  fs.rm = function (target, options, callback) {
    const done = typeof options === "function" ? options : callback;
    if (keep(target, recursive(options))) return void process.nextTick(done, null);
    return rm.apply(this, arguments);
  };
  fs.unlink = function (target, callback) {
    if (keep(target, false)) return void process.nextTick(callback, null);
    return unlink.apply(this, arguments);
  };
  fs.promises.rm = async function (target, options) {
    if (keep(target, recursive(options))) return undefined;
    return promises.rm.apply(this, arguments);
  };
  fs.promises.unlink = async function (target) {
    if (keep(target, false)) return undefined;
    return promises.unlink.apply(this, arguments);
  };
  syncBuiltinESMExports(); // `import { rmSync } from "node:fs"` in ES modules sees the same functions
}

function copyOutput(run) {
  const name = path.basename(process.argv[1] || "node").replace(/[^\w.-]/g, "_");
  const file = path.join(run.output, `${process.pid}-${name}.log`);
  let ready = false;
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write;
    stream.write = function (chunk, encoding) {
      try {
        if (!ready) fs.mkdirSync(run.output, { recursive: true });
        ready = true;
        const bytes =
          typeof chunk === "string"
            ? Buffer.from(chunk, typeof encoding === "string" ? encoding : "utf8")
            : chunk;
        fs.appendFileSync(file, bytes);
      } catch {
        // The copy is for the scan; the process's own output must never fail because of it.
      }
      return write.apply(this, arguments);
    };
  }
}

module.exports = { RUN_DIR_SETTING, runPaths, install };

install();
