#!/usr/bin/env node
"use strict";
// Thin launcher: the CLI is compiled to dist/ by `npm ci` (the prepare script).
require("../dist/cli/index.js")
  .main(process.argv)
  .then((code) => {
    process.exitCode = code;
  });
