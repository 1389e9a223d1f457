#!/usr/bin/env node
"use strict";
// V8 grows the heap to about four times what is live before it collects; over a rotation of hundreds
// of accounts that is most of keyturn's memory. Favour size over speed: keyturn waits on Azure, not
// on the CPU (large:30x10x3 with realistic latency: peak RSS about 280 MB without it, 186 MB with it).
require("node:v8").setFlagsFromString("--optimize-for-size");
// Thin launcher: the CLI is compiled to dist/ by `npm ci` (the prepare script).
const { main } = require("../dist/cli/index.js");

main(process.argv).then((code) => {
  process.exitCode = code;
  // Exit once stdout and stderr are flushed: after an interrupted rotation, SDK requests whose
  // outcome the stopped host discards must not keep the process alive.
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write("", done);
  process.stderr.write("", done);
});
