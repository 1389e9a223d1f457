import { readFileSync } from "node:fs";
import { startRotationRig, type RotationRig } from "../helpers/rotation";
import { KEYTURN_ROLE_FILE } from "../../emulator/paths";
import type { RoleDefinition } from "../../emulator/rbac";
import { rotatable } from "../helpers/estate";

/** I7: keyturn's identity needs exactly the actions in infra/keyturn-role.json: all of them, nothing more. */
const role = JSON.parse(readFileSync(KEYTURN_ROLE_FILE, "utf8")) as RoleDefinition;
const granted = [...role.Actions, ...(role.DataActions ?? [])].map((a) => a.toLowerCase()).sort();

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
    const used = [...new Set(calls.map((c) => c.action!.toLowerCase()))].sort();
    expect(used).toEqual(granted);
  });

  it("is needed whole: without one of its actions the rotation stops safely and names the action", async () => {
    const missing = "Microsoft.MachineLearningServices/workspaces/datastores/write";
    const lacking = rig.emulator.addPrincipal("keyturn-lacking-write", {
      Name: "keyturn minus datastores/write",
      Actions: role.Actions.filter((a) => a !== missing),
      DataActions: role.DataActions ?? [],
    });
    rig.usePrincipal(lacking);
    const { report } = await rig.rotate({ storageAccounts: ["stmlresearch"] }, { force: true });
    const account = report.accounts[0]!;
    expect(account.outcome).toBe("stalled");
    expect(account.reason).toContain(missing);
    expect(account.reason).toMatch(/still valid/);
  });
});
