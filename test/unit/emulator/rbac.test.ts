import { Rbac, SUBSCRIPTION_READ, type RoleDefinition } from "../../../emulator/rbac";
import { ML_ACTIONS } from "../../../emulator/arm/ml";
import type { Principal } from "../../../emulator/identity";

const SUB = "/subscriptions/00000000-0000-0000-0000-000000000001";
const OTHER = "/subscriptions/00000000-0000-0000-0000-000000000002";
const STATUS_URL = `${SUB}/providers/Microsoft.MachineLearningServices/locations/westeurope/workspaceOperationsStatus/0b5c`;
const WORKSPACE = `${SUB}/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/mlw`;

const principal = (n: number): Principal => ({
  clientId: `client-${n}`,
  clientSecret: "x",
  objectId: `object-${n}`,
  displayName: `p${n}`,
});
const oneAction: RoleDefinition = {
  Name: "one action",
  Actions: ["Microsoft.Storage/storageAccounts/listKeys/action"],
};
const resync: RoleDefinition = {
  Name: "resync",
  Actions: [ML_ACTIONS.workspaceResyncKeys, ML_ACTIONS.workspaceOperationStatusRead],
};

describe("the emulator's RBAC", () => {
  it("grants Microsoft.Resources/subscriptions/read through any assignment in the subscription, not the role's actions", () => {
    const rbac = new Rbac([oneAction]);
    const inSub = principal(1);
    const inGroup = principal(2);
    const none = principal(3);
    rbac.assign({ principalObjectId: inSub.objectId, role: oneAction.Name, scope: SUB });
    rbac.assign({
      principalObjectId: inGroup.objectId,
      role: oneAction.Name,
      scope: `${SUB}/resourceGroups/rg-ml`,
    });
    expect(rbac.isAllowed(inSub, SUBSCRIPTION_READ, SUB)).toBe(true);
    expect(rbac.isAllowed(inGroup, SUBSCRIPTION_READ, SUB)).toBe(true);
    expect(rbac.isAllowed(inSub, SUBSCRIPTION_READ, OTHER)).toBe(false);
    expect(rbac.isAllowed(none, SUBSCRIPTION_READ, SUB)).toBe(false);
    expect(() => rbac.authorize(none, SUBSCRIPTION_READ, SUB)).toThrow(
      /Microsoft\.Resources\/subscriptions\/read/,
    );
    // The tenant-wide list refuses nobody: it shows each caller only its own subscriptions.
    expect(rbac.isAllowed(none, SUBSCRIPTION_READ, "/subscriptions")).toBe(true);
    expect(
      rbac.visibleSubscriptions(
        inGroup,
        [SUB, OTHER].map((s) => s.split("/")[2]!),
      ),
    ).toEqual([SUB.split("/")[2]]);
    // Only that action: the role's other reads are still its own.
    expect(
      rbac.isAllowed(inSub, "Microsoft.Storage/storageAccounts/read", `${SUB}/resourceGroups/rg-ml`),
    ).toBe(false);
  });

  it("checks a resync's status URL at its own subscription-level scope, with its own action", () => {
    const rbac = new Rbac([resync, { Name: "resync only", Actions: [ML_ACTIONS.workspaceResyncKeys] }]);
    const full = principal(1);
    const withoutStatus = principal(2);
    const groupScoped = principal(3);
    rbac.assign({ principalObjectId: full.objectId, role: resync.Name, scope: SUB });
    rbac.assign({ principalObjectId: withoutStatus.objectId, role: "resync only", scope: SUB });
    rbac.assign({
      principalObjectId: groupScoped.objectId,
      role: resync.Name,
      scope: `${SUB}/resourceGroups/rg-ml`,
    });
    const status = ML_ACTIONS.workspaceOperationStatusRead;
    expect(rbac.isAllowed(full, status, STATUS_URL)).toBe(true);
    expect(rbac.isAllowed(withoutStatus, ML_ACTIONS.workspaceResyncKeys, WORKSPACE)).toBe(true);
    expect(() => rbac.authorize(withoutStatus, status, STATUS_URL)).toThrow(
      /workspaceOperationsStatus\/read' over scope '\/subscriptions\/[^']+\/locations\//,
    );
    // The URL sits outside every resource group: a role assigned on the workspace's group cannot poll it.
    expect(rbac.isAllowed(groupScoped, ML_ACTIONS.workspaceResyncKeys, WORKSPACE)).toBe(true);
    expect(rbac.isAllowed(groupScoped, status, STATUS_URL)).toBe(false);
  });
});
