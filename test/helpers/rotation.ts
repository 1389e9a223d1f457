import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalHost, ManualClock } from "../../local";
import type { Clock, InstanceStatus, LocalHostHooks } from "../../local";
import { startEmulator, type Emulator, type EmulatorOptions } from "../../emulator";
import { ORCHESTRATOR, type RotateAllInput } from "../../shared/activities/contracts";
import { scopeInstanceId, type RotationReport, type RotationScope } from "../../shared/rotation";
import { resetActivityDeps } from "../../functions/deps";
import { projectRoot } from "../../emulator/paths";

export const ENTRY = join(projectRoot(), "functions", "index.ts");

/** The emulator, keyturn's settings pointing at it, and a local host running the real functions. */
export interface RotationRig {
  emulator: Emulator;
  host: LocalHost;
  /** A ManualClock (grace periods and retry delays take no time) unless the rig was given a clock. */
  clock: Clock;
  dir: string;
  /** Everything the functions and the host logged. */
  logs: string[];
  rotate(
    scope?: RotationScope,
    options?: Partial<RotateAllInput>,
  ): Promise<{ status: InstanceStatus; report: RotationReport }>;
  /** Starts rotateAll without waiting; resolves to its instance id. */
  start(scope?: RotationScope, options?: Partial<RotateAllInput>): string;
  input(scope?: RotationScope, options?: Partial<RotateAllInput>): RotateAllInput;
  /** From now on keyturn signs in as this principal (e.g. one lacking an action). */
  usePrincipal(principal: { clientId: string; clientSecret: string }): void;
  /** A new host over the same state directory, as after a crash. */
  restart(hooks?: LocalHostHooks): LocalHost;
  stop(): Promise<void>;
}

export async function startRotationRig(
  options: { emulator?: EmulatorOptions; hooks?: LocalHostHooks; clock?: Clock } = {},
): Promise<RotationRig> {
  const emulator = await startEmulator(options.emulator ?? {});
  const dir = mkdtempSync(join(tmpdir(), "keyturn-rig-"));
  const connectionFile = join(dir, "connection.json");
  writeFileSync(connectionFile, JSON.stringify(emulator.connection));
  process.env.KEYTURN_CONNECTION_FILE = connectionFile;
  process.env.KEYTURN_KEY_VAULT_URL = Object.values(emulator.connection.vaults).join(",");
  process.env.KEYTURN_TELEMETRY_FILE = join(dir, "telemetry.jsonl");
  process.env.KEYTURN_AUDIT_FILE = join(dir, "audit.jsonl");
  resetActivityDeps();
  const clock = options.clock ?? new ManualClock(new Date());
  const logs: string[] = [];
  const stateDir = join(dir, "state");
  const makeHost = (hooks?: LocalHostHooks) => {
    const h = new LocalHost({
      stateDir,
      clock,
      hooks: hooks ?? options.hooks ?? {},
      logger: (entry) => logs.push(`${entry.level} ${entry.functionName}: ${entry.message}`),
    });
    h.load(ENTRY);
    return h;
  };
  let host = makeHost();
  const rig: RotationRig = {
    emulator,
    get host() {
      return host;
    },
    clock,
    dir,
    logs,
    input(scope = { subscriptions: emulator.connection.subscriptionIds }, overrides = {}) {
      return {
        scope,
        dryRun: false,
        force: false,
        graceSeconds: 3600,
        minKeyAgeDays: 20,
        parallelism: 8,
        trigger: "cli",
        startedBy: "test",
        ...overrides,
      };
    },
    start(scope, overrides) {
      const input = rig.input(scope, overrides);
      return host.startNew(ORCHESTRATOR.rotateAll, input, scopeInstanceId(input.scope));
    },
    async rotate(scope, overrides) {
      const id = rig.start(scope, overrides);
      const status = await host.waitForCompletion(id, { timeoutMs: 120_000 });
      return { status, report: status.output as RotationReport };
    },
    usePrincipal(principal) {
      writeFileSync(connectionFile, JSON.stringify({ ...emulator.connection, ...principal }));
      resetActivityDeps();
    },
    restart(hooks) {
      host = makeHost(hooks);
      return host;
    },
    async stop() {
      await host.stop();
      await emulator.stop();
      delete process.env.KEYTURN_CONNECTION_FILE;
      delete process.env.KEYTURN_KEY_VAULT_URL;
      delete process.env.KEYTURN_TELEMETRY_FILE;
      delete process.env.KEYTURN_AUDIT_FILE;
      resetActivityDeps();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return rig;
}
