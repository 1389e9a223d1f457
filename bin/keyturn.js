#!/usr/bin/env node
"use strict";
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
