import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Emulator } from "../../emulator";
import { createAzure, loadCloudProfile, type Azure } from "../../shared/azure";
import { admin, startTestEmulator } from "../helpers/emulator";

/**
 * Every call keyturn makes has a deadline (issue 8): a Key Vault or data plane that accepts the request
 * and never answers is a failure within KEYTURN_ARM_TIMEOUT_SECONDS per try, not a hang.
 */
let emulator: Emulator;
let azure: Azure;
let dir: string;
const previous = process.env.KEYTURN_ARM_TIMEOUT_SECONDS;

beforeAll(async () => {
  process.env.KEYTURN_ARM_TIMEOUT_SECONDS = "1";
  ({ emulator } = await startTestEmulator());
  dir = mkdtempSync(join(tmpdir(), "keyturn-deadlines-"));
  const connectionFile = join(dir, "connection.json");
  writeFileSync(connectionFile, JSON.stringify(emulator.connection));
  azure = createAzure(loadCloudProfile({ connectionFile, env: {} }));
});
afterAll(async () => {
  if (previous === undefined) delete process.env.KEYTURN_ARM_TIMEOUT_SECONDS;
  else process.env.KEYTURN_ARM_TIMEOUT_SECONDS = previous;
  await admin(emulator, "DELETE", "/faults");
  await emulator?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("a Key Vault that never answers", () => {
  it("fails the read within the deadline and its retries, naming the secret", async () => {
    const vault = Object.values(emulator.connection.vaults)[0]!;
    await admin(emulator, "POST", "/faults", {
      operation: "keyVault",
      count: 100,
      action: { type: "timeout", seconds: 60 },
    });
    const started = Date.now();
    await expect(azure.secrets.heldFingerprint(vault, "stmlbatch-key", "salt")).rejects.toThrow(
      /stmlbatch-key/,
    );
    // One second per try, the SDK's retries and their backoff: far from the 60 s the vault holds on.
    expect(Date.now() - started).toBeLessThan(45_000);
    await admin(emulator, "DELETE", "/faults");
  }, 90_000);
});
