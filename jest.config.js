/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  // test/compat needs tools npm cannot install (the Azure CLI from apt): run it with `npm run test:azure-cli`.
  testPathIgnorePatterns: ["/node_modules/", ...(process.env.KEYTURN_COMPAT ? [] : ["/test/compat/"])],
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.json", isolatedModules: true }] },
  // Integration tests start servers; give them room on a 2-core machine.
  testTimeout: 60000,
  maxWorkers: 2,
  // The Functions worker injects @azure/functions-core; under Jest the local host's stand-in plays it.
  moduleNameMapper: { "^@azure/functions-core$": "<rootDir>/local/functions-core.ts" },
  // One root for every file the run writes (TMPDIR, removed files, process output) and a ledger of the
  // keys the emulator issues; after the run, the secret scan reads them all and counts as one more test.
  globalSetup: "<rootDir>/test/support/global-setup.js",
  reporters: [
    "<rootDir>/test/support/secret-scan-reporter.js",
    "default",
    "<rootDir>/test/support/summary-reporter.js",
  ],
};
