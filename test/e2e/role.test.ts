import { readFileSync } from "node:fs";
import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { KEYTURN_ROLE_FILE } from "../../emulator/paths";
import { ASSIGNMENT_GRANTED_ACTIONS, type RoleDefinition } from "../../emulator/rbac";
import { ML_ACTIONS } from "../../emulator/arm/ml";
import { rotatable } from "../helpers/estate";

/** I7: keyturn's identity needs exactly the actions in infra/keyturn-role.json: all of them, nothing more. */
const role = JSON.parse(readFileSync(KEYTURN_ROLE_FILE, "utf8")) as RoleDefinition;
const granted = [...role.Actions, ...(role.DataActions ?? [])].map((a) => a.toLowerCase()).sort();
/** Checked on every call too, but granted by any role assignment (Subscriptions - Get/List), never by a role file. */
const byAssignment = new Set(ASSIGNMENT_GRANTED_ACTIONS.map((a) => a.toLowerCase()));

let rig: RotationRig;

beforeAll(async () => {
  rig = await startRotationRig({ emulator: { settings: { resyncPolicy: "consumers" } } });
});
afterAll(async () => {
  await rig?.stop();
});

describe("the role file", () => {
  it("is enough for a full rotation, and every action in it is used", async () => {
    const { report } = await rig.rotate();
    expect(rotatable(report.accounts).every((a) => a.outcome === "rotated")).toBe(true);
    const mine = (e: { clientId?: string; status: number; action?: string }) =>
      e.clientId === rig.emulator.connection.clientId && e.action !== undefined;
    const calls = [...rig.emulator.requestLog, ...rig.emulator.vaultLog].filter(mine);
    expect(calls.filter((c) => c.status === 403)).toEqual([]);
    const used = [...new Set(calls.map((c) => c.action!.toLowerCase()))]
      .filter((a) => !byAssignment.has(a))
      .sort();
    expect(used).toEqual(granted);
    // Every ARM call keyturn made was checked against an action, the resync's status polls included.
    const arm = rig.emulator.requestLog.filter((e) => e.clientId === rig.emulator.connection.clientId);
    expect(arm.filter((e) => e.action === undefined).map((e) => `${e.method} ${e.path}`)).toEqual([]);
    expect(used).toContain(ML_ACTIONS.workspaceOperationStatusRead.toLowerCase());
  });

  // Each on its own account (a stalled account keeps its state): datastores are moved first, the
  // workspace resync and its status polls last, so both stall before the old key is touched.
  it.each([
    ["Microsoft.MachineLearningServices/workspaces/datastores/write", "stmlresearch"],
    [ML_ACTIONS.workspaceOperationStatusRead, "stmlshared"],
  ])(
    "is needed whole: without %s the rotation of %s stops safely and names the action",
    async (missing, account) => {
      const lacking = rig.emulator.addPrincipal(`keyturn-lacking-${missing}`, {
        Name: `keyturn minus ${missing}`,
        Actions: role.Actions.filter((a) => a !== missing),
        DataActions: role.DataActions ?? [],
      });
      rig.usePrincipal(lacking);
      const { report } = await rig.rotate({ storageAccounts: [account] }, { force: true });
      const result = report.accounts[0]!;
      expect(result.outcome).toBe("stalled");
      expect(result.reason).toContain(missing);
      expect(result.reason).toMatch(/still valid/);
      const refused = rig.emulator.requestLog.filter(
        (e) => e.clientId === lacking.clientId && e.status === 403,
      );
      expect(refused.length).toBeGreaterThan(0);
      expect(refused.every((e) => e.action === missing)).toBe(true);
    },
  );
});
