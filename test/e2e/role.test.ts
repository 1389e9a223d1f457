import { readFileSync } from "node:fs";
import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { KEYTURN_BATCH_ROLE_FILE, KEYTURN_REGISTRY_ROLE_FILE, KEYTURN_ROLE_FILE } from "../../emulator/paths";
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

/**
 * The opt-in role files (I7 for each feature): infra assigns each only with its feature on. A rotation of
 * the feature's key holders, as a principal holding the main role and that file, uses every action of
 * the file; without any one of them it stops before the second regeneration, naming the action.
 */
describe.each([
  ["infra/keyturn-batch-role.json", KEYTURN_BATCH_ROLE_FILE, "batchmltrain", { batchKeys: true }],
  ["infra/keyturn-registry-role.json", KEYTURN_REGISTRY_ROLE_FILE, "crmlwtrain", { registryPasswords: true }],
] as const)("the opt-in role file %s", (_name, file, holder, optIn) => {
  const optInRole = JSON.parse(readFileSync(file, "utf8")) as RoleDefinition;
  const withRole = (actions: string[], name: string) =>
    rig.emulator.addPrincipal(name, {
      Name: name,
      Actions: [...role.Actions, ...actions],
      DataActions: role.DataActions ?? [],
    });

  it("is enough for its feature's rotation, and every action in it is used", async () => {
    const principal = withRole(optInRole.Actions, `keyturn-with-${holder}`);
    rig.usePrincipal(principal);
    const { report } = await rig.rotate({ storageAccounts: [holder], ...optIn }, { force: true });
    expect(report.accounts.map((a) => [a.name, a.outcome])).toEqual([[holder, "rotated"]]);
    const calls = rig.emulator.requestLog.filter((e) => e.clientId === principal.clientId);
    expect(calls.filter((c) => c.status === 403)).toEqual([]);
    const optInActions = new Set(optInRole.Actions.map((a) => a.toLowerCase()));
    const used = [...new Set(calls.map((c) => c.action?.toLowerCase() ?? ""))].filter((a) =>
      optInActions.has(a),
    );
    expect(used.sort()).toEqual([...optInActions].sort());
  });

  // An action the main role grants too (Batch's read, for auto-storage) is needed by the file on its
  // own (test/integration/batch-keys.test.ts), not beside the main role.
  const beyondMain = optInRole.Actions.filter(
    (a) => !role.Actions.some((m) => m.toLowerCase() === a.toLowerCase()),
  );
  it.each(beyondMain)("is needed whole: without %s the rotation stops and names it", async (missing) => {
    const principal = withRole(
      optInRole.Actions.filter((a) => a !== missing),
      `keyturn-${holder}-minus-${missing}`,
    );
    rig.usePrincipal(principal);
    const { status, report } = await rig.rotate({ storageAccounts: [holder], ...optIn }, { force: true });
    // Refused at discovery (a listing refused fails the run, naming the action and the role file), at
    // the snapshot (the keys) or at the first write: never rotated.
    // A failed run's output is its error, not a report.
    const accounts = typeof status.output === "object" ? report.accounts : [];
    const result = accounts.find((a) => a.name === holder);
    if (result !== undefined) {
      expect(result.outcome).not.toBe("rotated");
      expect(result.reason).toContain(missing);
    } else {
      expect(JSON.stringify(status)).toContain(missing);
    }
    const refused = rig.emulator.requestLog.filter(
      (e) => e.clientId === principal.clientId && e.status === 403,
    );
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((e) => e.action === missing)).toBe(true);
  });
});
