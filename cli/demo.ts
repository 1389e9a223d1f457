import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmulator, type Emulator } from "../emulator";
import { emulatorFingerprint } from "../emulator/consumers";
import { ORCHESTRATOR, rotateAllInput } from "../shared/activities/contracts";
import { SETTING } from "../shared/config";
import {
  DEFAULT_MIN_KEY_AGE_DAYS,
  DEFAULT_PARALLELISM,
  exitCode,
  formatDuration,
  scopeInstanceId,
  type AccountReport,
  type KeyName,
} from "../shared/rotation";
import { CliError, EXIT_FAILURE } from "./errors";
import { createHost } from "./host";
import type { Io } from "./io";
import { formatTable } from "./format";
import { failureOf, follow, type RotationOutput } from "./rotation";

export interface DemoOptions {
  /** Real seconds: the consumer jobs must keep running through the grace period. */
  graceSeconds?: number;
  consumerJobsIntervalMs?: number;
  verbose?: boolean;
  /** One JSON document on stdout (`demoJson`); the introduction goes to stderr with the progress. */
  json?: boolean;
}

type KeyPrints = Record<string, Record<KeyName, string>>;

function keyPrints(emulator: Emulator): KeyPrints {
  const prints: KeyPrints = {};
  for (const a of emulator.ctx.estate.storageAccounts.values()) {
    prints[a.name] = {
      key1: emulatorFingerprint(a.keys.key1.value),
      key2: emulatorFingerprint(a.keys.key2.value),
    };
  }
  // Batch shared keys: Primary is key1, Secondary key2; registry passwords: password, password2.
  for (const b of emulator.ctx.estate.batchAccounts.values()) {
    prints[b.name] = {
      key1: emulatorFingerprint(b.keys.primary),
      key2: emulatorFingerprint(b.keys.secondary),
    };
  }
  for (const r of emulator.ctx.estate.registries.values()) {
    prints[r.name] = {
      key1: emulatorFingerprint(r.passwords.password),
      key2: emulatorFingerprint(r.passwords.password2),
    };
  }
  return prints;
}

/**
 * `keyturn demo` (`npm start`): the whole job on the embedded emulator. The demo estate, its
 * simulated consumers using their keys on the data plane every 200 ms, and one rotation of every
 * account through the local host with a short real-time grace, then what happened: keys before and
 * after, each consumer, the cost in ARM calls, and the outages the consumers saw.
 *
 * The emulator keeps its default workspace resync policy (`key1`: a resync always picks key1, one
 * reading of what Azure does, which Microsoft does not document). Under it the workspace itself holds
 * a dead key for one resync after key1 is regenerated: invariant I1's one exception. The demo shows
 * that window on its own line, apart from the consumers, who must see none.
 */
export async function demo(io: Io, options: DemoOptions = {}): Promise<number> {
  const graceSeconds = options.graceSeconds ?? 2;
  const jobsMs = options.consumerJobsIntervalMs ?? 200;
  const saved = { file: process.env[SETTING.connectionFile], vaults: process.env[SETTING.keyVaultUrls] };
  const emulator = await startEmulator({ estate: "demo", consumerJobsIntervalMs: jobsMs });
  const dir = mkdtempSync(join(tmpdir(), "keyturn-demo-"));
  let host: ReturnType<typeof createHost> | undefined;
  try {
    const connectionFile = join(dir, "connection.json");
    writeFileSync(connectionFile, JSON.stringify(emulator.connection), { mode: 0o600 });
    process.env[SETTING.connectionFile] = connectionFile;
    process.env[SETTING.keyVaultUrls] = Object.values(emulator.connection.vaults).join(",");

    const estate = emulator.ctx.estate;
    const before = keyPrints(emulator);
    // Every key of the seeds the demo has: storage accounts (ARM and classic) and Batch shared keys.
    const scope = {
      subscriptions: emulator.connection.subscriptionIds,
      batchKeys: true,
      registryPasswords: true,
    };
    // With --json the introduction is not the result: it goes to stderr, with the progress.
    const intro = (text: string) => (options.json ? io.err(text) : io.out(text));
    intro(
      [
        "keyturn demo: rotating every storage account and Batch account key of the demo estate on the embedded emulator",
        `  ${estate.storageAccounts.size} storage accounts, ${estate.workspaces.size} workspaces, ` +
          `${[...estate.workspaces.values()].reduce((n, w) => n + w.datastores.size, 0)} datastores, ` +
          `${estate.batchAccounts.size} Batch account, ${estate.vaults.size} Key Vault`,
        `  consumer jobs use the key each consumer holds on the data plane every ${jobsMs} ms, throughout`,
        `  grace ${formatDuration(graceSeconds)} in real time (the default is 60m, the workspace's own key cache); ` +
          `workspace resync policy: ${emulator.ctx.settings.resyncPolicy}`,
        "",
      ].join("\n") + "\n",
    );

    const input = rotateAllInput(
      { scope, dryRun: false, force: false, graceSeconds },
      { minKeyAgeDays: DEFAULT_MIN_KEY_AGE_DAYS, parallelism: DEFAULT_PARALLELISM },
      { trigger: "cli", startedBy: "keyturn demo" },
    );
    host = createHost(io, { verbose: options.verbose === true });
    const id = scopeInstanceId(scope);
    const started = Date.now();
    host.startNew(ORCHESTRATOR.rotateAll, input, id);
    const [status] = await follow(host, [id], io, { progress: true });
    const elapsedMs = Date.now() - started;
    if (status?.runtimeStatus !== "Completed") {
      const failure = status ? failureOf(host, status) : "it never started";
      throw new CliError(`the demo rotation did not complete: ${failure}`);
    }
    // One more round of the jobs on the final keys: the last word on whether every consumer works.
    await emulator.jobs.tick();
    const report = status.output as RotationOutput;
    const after = keyPrints(emulator);
    const code = exitCode(report);
    if (options.json) {
      const outcome = demoJson(emulator, report, before, after, elapsedMs, graceSeconds, jobsMs);
      const final = outcome.outages.count > 0 ? EXIT_FAILURE : code;
      io.out(JSON.stringify({ ...outcome, exitCode: final }, null, 2) + "\n");
      return final;
    }
    const outages = renderOutcome(io, emulator, report, before, after, elapsedMs);
    const final = outages > 0 ? EXIT_FAILURE : code;
    io.out(`\nExit code ${final}\n`);
    return final;
  } finally {
    await host?.stop();
    await emulator.stop();
    rmSync(dir, { recursive: true, force: true });
    restore(SETTING.connectionFile, saved.file);
    restore(SETTING.keyVaultUrls, saved.vaults);
  }
}

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

function regeneratedKeys(emulator: Emulator): Map<string, string[]> {
  const regenerated = new Map<string, string[]>();
  for (const r of emulator.ctx.regenerations) {
    regenerated.set(r.account, [...(regenerated.get(r.account) ?? []), r.key]);
  }
  // Registry admin passwords: password is key1, password2 key2.
  for (const r of emulator.ctx.registryRegenerations) {
    const key = r.password === "password" ? "key1" : "key2";
    regenerated.set(r.registry, [...(regenerated.get(r.registry) ?? []), key]);
  }
  return regenerated;
}

/**
 * What the consumers saw: a workspace's key windows (I1's one exception) apart from the consumers'
 * outages and refused data-plane probes, which must be none.
 */
function outagesOf(emulator: Emulator) {
  const workspaceIds = new Set([...emulator.ctx.estate.workspaces.values()].map((w) => w.id.toLowerCase()));
  const isWorkspace = (id: string) => workspaceIds.has(id.toLowerCase());
  const all = emulator.outages.all();
  const failures = emulator.outages.probeFailures;
  const consumerFailures = failures.filter((f) => !isWorkspace(f.consumerId));
  return {
    // A workspace's storage key or registry password between a regeneration and its resync: the
    // documented exception to I1 (the service picks the key; keyturn resyncs right after).
    windows: all.filter((o) => o.kind === "workspace" || o.kind === "workspaceRegistry"),
    consumerOutages: all.filter((o) => o.kind !== "workspace" && o.kind !== "workspaceRegistry"),
    consumerFailures,
    workspaceFailures: failures.length - consumerFailures.length,
  };
}

/**
 * `demo --json`: the same account as the text, as data. Key names and fingerprints (SHA-256
 * prefixes), never the keys; the rotation report is the one `rotate --json` prints.
 */
function demoJson(
  emulator: Emulator,
  report: RotationOutput,
  before: KeyPrints,
  after: KeyPrints,
  elapsedMs: number,
  graceSeconds: number,
  jobsMs: number,
) {
  const estate = emulator.ctx.estate;
  const regenerated = regeneratedKeys(emulator);
  const keyOf = (account: AccountReport, which: "activeKeyBefore" | "activeKeyAfter") => {
    const state = account[which];
    if (!state) return null;
    const table = which === "activeKeyBefore" ? before : after;
    return { key: state.key, fingerprint: table[account.name]?.[state.key] ?? null };
  };
  const accountCalls = report.accounts.reduce((n, a) => n + a.armCalls, 0);
  const discovery = report.discoveryArmCalls ?? 0;
  const seen = outagesOf(emulator);
  return {
    estate: {
      storageAccounts: estate.storageAccounts.size,
      workspaces: estate.workspaces.size,
      datastores: [...estate.workspaces.values()].reduce((n, w) => n + w.datastores.size, 0),
      batchAccounts: estate.batchAccounts.size,
      vaults: estate.vaults.size,
    },
    graceSeconds,
    consumerJobsIntervalMs: jobsMs,
    resyncPolicy: emulator.ctx.settings.resyncPolicy,
    durationMs: elapsedMs,
    keys: report.accounts.map((a) => ({
      account: a.name,
      outcome: a.outcome,
      activeKeyBefore: keyOf(a, "activeKeyBefore"),
      activeKeyAfter: keyOf(a, "activeKeyAfter"),
      regenerated: regenerated.get(a.name) ?? [],
    })),
    armCalls: {
      logged: emulator.requestLog.filter((r) => r.clientId === emulator.connection.clientId).length,
      reported: discovery + accountCalls,
      discovery,
      accounts: accountCalls,
    },
    workspaceKeyWindows: seen.windows,
    outages: {
      count: seen.consumerOutages.length + seen.consumerFailures.length,
      log: seen.consumerOutages,
      probes: emulator.jobs.probes,
      probeFailures: seen.consumerFailures,
    },
    report,
  };
}

/** Prints the demo's account of the rotation; returns how many consumer outages there were. */
function renderOutcome(
  io: Io,
  emulator: Emulator,
  report: RotationOutput,
  before: KeyPrints,
  after: KeyPrints,
  elapsedMs: number,
): number {
  const lines: string[] = [];
  const regenerated = regeneratedKeys(emulator);
  const key = (account: AccountReport, which: "activeKeyBefore" | "activeKeyAfter") => {
    const state = account[which];
    if (!state) return "-";
    const table = which === "activeKeyBefore" ? before : after;
    return `${state.key} ${table[account.name]?.[state.key] ?? "?"}`;
  };
  const rows = [
    ["ACCOUNT", "OUTCOME", "ACTIVE KEY BEFORE", "ACTIVE KEY AFTER", "REGENERATED", "TIME", "ARM CALLS"],
  ];
  for (const a of report.accounts) {
    rows.push([
      a.name,
      a.outcome,
      key(a, "activeKeyBefore"),
      key(a, "activeKeyAfter"),
      (regenerated.get(a.name) ?? []).join(" then ") || "-",
      formatDuration(a.durationMs / 1000),
      String(a.armCalls),
    ]);
  }
  lines.push(
    "Storage accounts and Batch accounts (key names and fingerprints, SHA-256 prefixes; never the keys)",
  );
  lines.push(...formatTable(rows, "  "));
  for (const a of report.accounts) {
    lines.push("", `${a.name}: ${a.outcome}${a.reason ? ` (${a.reason})` : ""}`);
    lines.push(
      ...formatTable(
        a.consumers.map((c) => [c.kind, c.name, c.action, c.reason ?? ""]),
        "  ",
      ),
    );
  }
  const missing = report.unattached.filter((u) => u.code !== "out-of-scope");
  for (const u of missing) lines.push(`  not rotated: ${u.kind} ${u.name}: ${u.reason}`);

  const accountCalls = report.accounts.reduce((n, a) => n + a.armCalls, 0);
  const discovery = report.discoveryArmCalls ?? 0;
  const logged = emulator.requestLog.filter((r) => r.clientId === emulator.connection.clientId).length;
  const graces = [
    ...new Set(report.accounts.filter((a) => a.outcome === "rotated").map((a) => a.graceSeconds)),
  ];
  lines.push(
    "",
    `Grace used: ${graces.length > 0 ? graces.map(formatDuration).join(", ") : "none (nothing rotated)"}`,
    `Duration: ${formatDuration(elapsedMs / 1000)} (${elapsedMs} ms)`,
    `ARM calls made by keyturn: ${logged} (the emulator's request log); the report counts ${discovery + accountCalls} ` +
      `(discovery and planning ${discovery}, accounts ${accountCalls})`,
  );

  const { windows, consumerOutages, consumerFailures, workspaceFailures } = outagesOf(emulator);
  if (windows.length === 0) {
    lines.push("Workspace key windows: none (every workspace held a live key throughout)");
  } else {
    lines.push(
      `Workspace key windows (invariant I1's one exception: the resync after key1 is regenerated picks the new key1; ` +
        `until it finishes the workspace holds the old one): ${windows.length}`,
    );
    for (const w of windows) {
      const duration = w.durationMs === undefined ? "still open" : `${w.durationMs} ms`;
      const holder = w.kind === "workspaceRegistry" ? "registry" : "storage";
      lines.push(`  ${w.name} (${holder} ${w.storageAccountName}): ${duration}, after ${w.cause}`);
    }
    if (workspaceFailures > 0)
      lines.push(`  data-plane probes with a workspace's key refused meanwhile: ${workspaceFailures}`);
  }
  const outages = consumerOutages.length + consumerFailures.length;
  lines.push(
    `Outages seen by consumers: ${outages} (${consumerOutages.length} in the outage log; ` +
      `${emulator.jobs.probes} data-plane probes by the consumer jobs, ${consumerFailures.length} refused)`,
  );
  for (const o of consumerOutages) {
    lines.push(
      `  ${o.kind} ${o.name} held a dead key (${o.storageAccountName}, ${o.heldKeyFingerprint}) after ${o.cause}`,
    );
  }
  for (const f of consumerFailures)
    lines.push(`  ${f.name}: data-plane probe refused (${f.status}) at ${f.at}`);
  io.out(lines.join("\n") + "\n");
  return outages;
}
