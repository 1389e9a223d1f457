import { storageRoutes, LIST_REGION } from "../../../emulator/arm/storage";
import { ML_ACTIONS, mlRoutes } from "../../../emulator/arm/ml";
import { batchRoutes } from "../../../emulator/arm/batch";
import { classicRoutes } from "../../../emulator/arm/classic";
import { subscriptionRoutes } from "../../../emulator/arm/subscriptions";
import { buildEstate } from "../../../emulator/estates";
import type { ArmRoute, EmulatorContext } from "../../../emulator/context";
import { KEYTURN_ROLE_FILE } from "../../../emulator/paths";
import { loadRoleDefinition } from "../../../emulator/rbac";

// Route tables only: no handler runs, so a context with an estate and a clock is enough.
const estate = buildEstate("large:4x0x2", new Date());
const ctx = { estate, now: () => new Date() } as unknown as EmulatorContext;
const routes: ArmRoute[] = [storageRoutes, classicRoutes, mlRoutes, batchRoutes, subscriptionRoutes].flatMap(
  (m) => m(ctx),
);

describe("ARM routes", () => {
  const OPERATION = /^Microsoft\.[A-Za-z]+(?:\/[A-Za-z][A-Za-z0-9]*)+\/(?:read|write|delete|action)$/;
  const namespaceOf = (route: ArmRoute) =>
    route.provider === "subscriptions" ? "Microsoft.Resources" : route.provider;

  it.each(routes.map((r) => [`${r.method} ${r.operation}`, r] as const))(
    "%s names the RBAC action Azure checks for it, in its own namespace (status URLs included)",
    (_name, route) => {
      // The emulator refuses a route without one, and the role file's both-ways test only sees checked calls.
      expect(route.action).toMatch(OPERATION);
      expect(route.action!.split("/")[0]).toBe(namespaceOf(route));
      if (route.method === "GET") expect(route.action).toMatch(/\/read$/);
      if (route.method === "PUT") expect(route.action).toMatch(/\/write$/);
      if (route.method === "DELETE") expect(route.action).toMatch(/\/delete$/);
    },
  );

  it("check the resync's status URL with its own action, which the role file grants", () => {
    const status = routes.find((r) => r.operation === "workspaces.operationStatus")!;
    expect(status.pattern).toMatch(/\/locations\/\{location\}\/workspaceOperationsStatus\/\{operationId\}$/);
    expect(status.action).toBe("Microsoft.MachineLearningServices/locations/workspaceOperationsStatus/read");
    expect(status.action).toBe(ML_ACTIONS.workspaceOperationStatusRead);
    expect(loadRoleDefinition(KEYTURN_ROLE_FILE).Actions).toContain(status.action);
  });

  it.each(routes.map((r) => [`${r.method} ${r.operation}`, r] as const))(
    "%s draws from the bucket its method belongs to (PUT, PATCH, POST, DELETE are writes)",
    (_name, route) => {
      expect(route.kind).toBe(route.method === "GET" ? "read" : "write");
    },
  );

  it("count every key and secret operation keyturn makes as a write", () => {
    const writes = routes.filter((r) => r.kind === "write").map((r) => r.operation);
    expect(writes).toEqual(
      expect.arrayContaining([
        "storageAccounts.listKeys",
        "storageAccounts.regenerateKey",
        "workspaces.listKeys",
        "workspaces.resyncKeys",
        "datastores.listSecrets",
        "datastores.createOrUpdate",
        "batchAccounts.synchronizeAutoStorageKeys",
      ]),
    );
  });

  it("send every Microsoft.Storage call, and nothing else, to the Storage RP's limits", () => {
    const limited = Object.fromEntries(
      routes.filter((r) => r.storageRp).map((r) => [r.operation, r.storageRp!.kind]),
    );
    expect(limited).toEqual({
      "storageAccounts.list": "list",
      "storageAccounts.listByResourceGroup": "list",
      "storageAccounts.getProperties": "read",
      "storageAccounts.listKeys": "write",
      "storageAccounts.regenerateKey": "write",
    });
    expect(routes.filter((r) => r.provider === "Microsoft.Storage").every((r) => r.storageRp)).toBe(true);
  });

  it("count a Storage RP call in its account's region, a list per subscription, and no account nowhere", () => {
    const byOp = (op: string) => routes.find((r) => r.operation === op)!.storageRp!;
    for (const account of estate.storageAccounts.values()) {
      const params = {
        subscriptionId: account.subscriptionId,
        resourceGroupName: account.resourceGroup.toUpperCase(),
        accountName: account.name,
      };
      expect(byOp("storageAccounts.listKeys").region(params)).toBe(account.location);
    }
    expect(byOp("storageAccounts.list").region({ subscriptionId: "x" })).toBe(LIST_REGION);
    const missing = { subscriptionId: "x", resourceGroupName: "rg", accountName: "nosuch" };
    expect(byOp("storageAccounts.getProperties").region(missing)).toBeUndefined();
  });
});
