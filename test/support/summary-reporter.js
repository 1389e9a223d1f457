"use strict";
// Writes Jest's totals where .ci/run can read them, so its closing line comes from Jest's own results.
const { mkdirSync, writeFileSync } = require("node:fs");
const { join } = require("node:path");

class SummaryReporter {
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
  }

  onRunComplete(_contexts, results) {
    const dir = join(this.rootDir, ".keyturn");
    mkdirSync(dir, { recursive: true });
    const summary = {
      passed: results.numPassedTests,
      failed: results.numFailedTests + results.numRuntimeErrorTestSuites,
      skipped: results.numPendingTests + results.numTodoTests,
      suitesFailed: results.numFailedTestSuites,
    };
    writeFileSync(join(dir, "test-results.json"), JSON.stringify(summary) + "\n");
  }
}

module.exports = SummaryReporter;
