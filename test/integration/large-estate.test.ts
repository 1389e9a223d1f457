import { startTestEmulator } from "../helpers/emulator";

// One emulator per process (Azurite reads its accounts from the environment): this file has its own.
describe("the large estate", () => {
  it("serves many accounts and datastores through the SDKs' paging", async () => {
    const { emulator: large, clients: c } = await startTestEmulator({ estate: "large:40x35" });
    try {
      const accounts: string[] = [];
      for await (const a of c.storage.storageAccounts.list()) accounts.push(a.name!);
      expect(accounts).toHaveLength(40);
      const names: string[] = [];
      for await (const ds of c.ml.datastores.list("rg-ml-00", "mlw-00000")) names.push(ds.name!);
      expect(names).toHaveLength(37); // 35 plus the two defaults, past the SDK's page of 30
    } finally {
      await large.stop();
    }
  });
});
