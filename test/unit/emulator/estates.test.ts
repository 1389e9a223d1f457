import {
  DEMO_SUBSCRIPTION_ID,
  LARGE_ESTATE_REGIONS,
  buildEstate,
  parseEstateName,
} from "../../../emulator/estates";
import type { Estate } from "../../../emulator/model";

const accountsOf = (estate: Estate) => [...estate.storageAccounts.values()];

describe("estate names", () => {
  it("accepts demo and large:<accounts>x<datastores>[x<subscriptions>], and names the fix otherwise", () => {
    expect(parseEstateName("demo")).toEqual({ kind: "demo" });
    expect(parseEstateName("large:20x5")).toEqual({ kind: "large", accounts: 20, datastores: 5 });
    expect(parseEstateName("large:30x10x3")).toEqual({
      kind: "large",
      accounts: 30,
      datastores: 10,
      subscriptions: 3,
    });
    expect(() => parseEstateName("large:0x5")).toThrow(/large:<accounts>x<datastoresPerAccount>/);
    expect(() => parseEstateName("large:5x5x0")).toThrow(/\[x<subscriptions>\]/);
    expect(() => parseEstateName("large:5x5x3x1")).toThrow(/Unknown estate/);
    expect(() => parseEstateName("big")).toThrow(/Unknown estate 'big'/);
  });
});

describe("large estates", () => {
  const now = new Date("2026-01-01T00:00:00Z");

  it("without a subscription count: one subscription, one region, the same names as ever", () => {
    const estate = buildEstate("large:30x2", now);
    expect([...estate.subscriptions.values()].map((s) => s.subscriptionId)).toEqual([DEMO_SUBSCRIPTION_ID]);
    expect(new Set(accountsOf(estate).map((a) => a.location))).toEqual(new Set(["westeurope"]));
    const first = accountsOf(estate)[0]!;
    expect(first.name).toBe("stml00000");
    expect(first.resourceGroup).toBe("rg-ml-00");
    expect(accountsOf(estate)[26]!.resourceGroup).toBe("rg-ml-01");
    const ws = [...estate.workspaces.values()][0]!;
    expect(ws.name).toBe("mlw-00000");
    expect([...ws.datastores.keys()]).toEqual([
      "workspaceblobstore",
      "workspacefilestore",
      "ds_0000",
      "ds_0001",
    ]);
  });

  it("spreads accounts round-robin over the subscriptions and alternates two regions within each", () => {
    const estate = buildEstate("large:12x1x3", now);
    const subs = [...estate.subscriptions.values()].map((s) => s.subscriptionId);
    expect(subs).toHaveLength(3);
    expect(subs[0]).toBe(DEMO_SUBSCRIPTION_ID);
    expect(new Set(subs).size).toBe(3);
    const accounts = accountsOf(estate);
    expect(accounts.map((a) => subs.indexOf(a.subscriptionId))).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
    for (const sub of subs) {
      const regions = accounts.filter((a) => a.subscriptionId === sub).map((a) => a.location);
      expect(regions).toEqual([...LARGE_ESTATE_REGIONS, ...LARGE_ESTATE_REGIONS]);
    }
    // Every account keeps its one workspace, in its subscription and region, with its default datastores.
    for (const account of accounts) {
      const ws = [...estate.workspaces.values()].filter((w) => w.storageAccountId === account.id);
      expect(ws).toHaveLength(1);
      expect(ws[0]!.subscriptionId).toBe(account.subscriptionId);
      expect(ws[0]!.location).toBe(account.location);
      expect(ws[0]!.datastores.has("workspaceblobstore")).toBe(true);
      expect(ws[0]!.datastores.size).toBe(3);
      expect(
        estate.subscriptions.get(account.subscriptionId)!.resourceGroups.has(account.resourceGroup),
      ).toBe(true);
    }
  });

  it("gives every account a globally unique name across subscriptions", () => {
    const estate = buildEstate("large:50x0x4", now);
    const names = accountsOf(estate).map((a) => a.name);
    expect(new Set(names).size).toBe(50);
  });

  it("holds subscriptions with no account when there are more subscriptions than accounts", () => {
    const estate = buildEstate("large:2x0x3", now);
    expect(estate.subscriptions.size).toBe(3);
    expect(estate.storageAccounts.size).toBe(2);
  });
});
