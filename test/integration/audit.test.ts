import { AzureNamedKeyCredential } from "@azure/data-tables";
import { startEmulator, type Emulator } from "../../emulator";
import { TableAuditStore, type AuditRecord } from "../../shared/audit";

let emulator: Emulator;

beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => {
  await emulator?.stop();
});

function record(account: string, rotationId: string, finishedAt: string): AuditRecord {
  return {
    storageAccount: account,
    storageAccountId: `/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${account}`,
    rotationId,
    instanceId: "keyturn-scope-x",
    trigger: "timer",
    startedBy: "schedule",
    dryRun: false,
    outcome: "rotated",
    keysRegenerated: "key2,key1",
    activeKeyBefore: "key1",
    activeKeyAfter: "key2",
    consumersMoved: ["mlw/workspaceblobstore"],
    startedAt: finishedAt,
    finishedAt,
  };
}

describe("the audit trail in Azure Table storage (Azurite)", () => {
  it("appends records once and lists them newest first, per account", async () => {
    // keyturn's own state account stands in here: one of the estate's, with its key read in-process.
    const account = [...emulator.ctx.estate.storageAccounts.values()][0]!;
    const endpoint = emulator.ctx.dataPlane.tableEndpoint(account.name)!;
    const store = TableAuditStore.fromUrl(
      `${endpoint}keyturnaudit`,
      new AzureNamedKeyCredential(account.name, account.keys.key1.value),
      {
        allowInsecureConnection: true,
      },
    );
    const older = record("stmla", "r1", "2026-10-01T03:00:00.000Z");
    const newer = record("stmla", "r2", "2026-11-01T03:00:00.000Z");
    await store.append([older, record("stmlb", "r1", "2026-10-01T03:00:00.000Z")]);
    await store.append([newer]);
    await store.append([newer]); // a replayed activity writes nothing twice
    const listed = await store.list({ storageAccount: "stmla" });
    expect(listed.map((r) => r.rotationId)).toEqual(["r2", "r1"]);
    expect(await store.list({ limit: 1 })).toEqual([newer]);
    expect((await store.list()).length).toBe(3);
  });
});
