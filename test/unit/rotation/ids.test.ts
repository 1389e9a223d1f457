import {
  accountInstanceId,
  isArmId,
  normalizeId,
  parseArmId,
  resourceNameOf,
  sameId,
} from "../../../shared/rotation";
import { storageAccountId } from "./builders";

describe("ARM ids", () => {
  it("compares ids case-insensitively and ignores a trailing slash", () => {
    expect(
      sameId(
        "/subscriptions/ABC/resourceGroups/RG/providers/Microsoft.Storage/storageAccounts/st1/",
        "/subscriptions/abc/resourcegroups/rg/providers/microsoft.storage/storageaccounts/st1",
      ),
    ).toBe(true);
    expect(sameId(storageAccountId("st1"), storageAccountId("st2"))).toBe(false);
  });

  it("normalizes surrounding whitespace", () => {
    expect(normalizeId("  /Subscriptions/A/ ")).toBe("/subscriptions/a");
  });

  it("takes the resource name from an id or a bare name", () => {
    expect(resourceNameOf(storageAccountId("stdata01"))).toBe("stdata01");
    expect(resourceNameOf("stdata01")).toBe("stdata01");
  });

  it("parses subscription and resource group whatever the segment casing", () => {
    expect(
      parseArmId("/SUBSCRIPTIONS/s1/RESOURCEGROUPS/Rg-One/providers/Microsoft.Storage/storageAccounts/st"),
    ).toEqual({
      subscriptionId: "s1",
      resourceGroup: "Rg-One",
      name: "st",
    });
  });

  it("tells ARM ids from names", () => {
    expect(isArmId(storageAccountId("st1"))).toBe(true);
    expect(isArmId("st1")).toBe(false);
  });
});

describe("accountInstanceId", () => {
  it("is the same for the same account in any casing", () => {
    expect(accountInstanceId(storageAccountId("stdata01"))).toBe(
      accountInstanceId(storageAccountId("stdata01").toUpperCase()),
    );
  });

  it("differs between accounts with one name in different subscriptions", () => {
    const a = accountInstanceId(storageAccountId("stdata01", "00000000-0000-0000-0000-00000000000a"));
    const b = accountInstanceId(storageAccountId("stdata01", "00000000-0000-0000-0000-00000000000b"));
    expect(a).not.toBe(b);
  });

  it("uses only characters Durable Functions allows in instance ids", () => {
    const id = accountInstanceId(storageAccountId("stdata01"));
    expect(id).toMatch(/^keyturn-account-stdata01-[0-9a-f]{16}$/);
    expect(id.length).toBeLessThanOrEqual(100);
  });
});
