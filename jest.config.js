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
  reporters: ["default", "<rootDir>/test/support/summary-reporter.js"],
};
