import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { projectRoot } from "../../emulator/paths";

const root = projectRoot();
const run = promisify(execFile);

/** `npm start`: the whole job on the embedded emulator, with its consumers running. */
describe("keyturn demo", () => {
  beforeAll(() => {
    if (!existsSync(join(root, "dist", "cli", "index.js"))) {
      throw new Error("dist/ is missing: run `npm run build` (npm test and npm ci do it).");
    }
  });

  it("rotates the demo estate with no outage for any consumer, exits 0 and prints no key", async () => {
    const started = Date.now();
    // execFile rejects on a non-zero exit, so resolving is the exit-0 check.
    const { stdout, stderr } = await run(process.execPath, [join(root, "bin", "keyturn.js"), "demo"], {
      cwd: root,
      timeout: 55_000,
    });
    expect(Date.now() - started).toBeLessThan(55_000);
    expect(stdout).toContain("Outages seen by consumers: 0");
    // Every key of the seeds the demo has: storage accounts (ARM and classic), Batch shared keys and
    // a registry's admin passwords.
    for (const account of [
      "batchmltrain",
      "crmlwtrain",
      "stmlbatch",
      "stmllake",
      "stmllegacy",
      "stmlresearch",
      "stmlshared",
    ]) {
      expect(stdout).toMatch(
        new RegExp(`^  ${account}\\s+rotated\\s+key1 [0-9a-f]{12}\\s+key2 [0-9a-f]{12}`, "m"),
      );
    }
    // A SAS an account key signed is re-signed; a user delegation SAS and an identity-based datastore
    // are reported with their reasons, not moved.
    expect(stdout).toMatch(/ sasDatastore\s+mlw-research\/partner_drop\s+updated/);
    expect(stdout).toMatch(/keyVaultSecret\s+\S+\/batchmltrain-key\s+updated/);
    expect(stdout).toMatch(/registryWorkspace\s+mlw-train \(registry\)\s+updated/);
    expect(stdout).toMatch(
      /untouchedSasDatastore\s+mlw-research\/delegated_drop\s+skipped\s+a user delegation SAS/,
    );
    expect(stdout).toMatch(/identityDatastore\s+mlw-train\/identity_scratch\s+skipped\s+identity-based/);
    expect(stdout).toMatch(/ARM calls made by keyturn: \d+/);
    expect(stdout).toContain("Grace used: 2s");
    // Storage keys are 88 base64 characters.
    expect(stdout + stderr).not.toMatch(/[A-Za-z0-9+/]{86}==/);
  }, 60_000);
});
