import { renameSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { InvalidArgumentError } from "commander";
import { DEFAULT_SETTINGS, startEmulator, type Emulator } from "../emulator";
import { mergeSettings } from "../emulator/admin";
import type { EmulatorSettings } from "../emulator/context";
import { describeEmulator } from "../emulator/describe";
import { ESTATE_FORMS, parseEstateName } from "../emulator/estates";
import { listReasons, usageError } from "./errors";
import { onSignal } from "./io";

export interface EmulatorCommandOptions {
  estate: string;
  port: number;
  connectionFile?: string;
  resyncPolicy: string;
  /** Undefined: the emulator's default (`consumers`). */
  batchSyncPolicy?: string;
  latency: string;
  /** `name=value` pairs (`--setting`, repeatable): any setting `PATCH /_admin/settings` takes. */
  setting?: string[];
  consumerJobs?: number;
}

/** `--setting name=value` (repeatable): collects the pairs; their values are checked with the rest. */
export function settingOption(value: string, previous: string[] | undefined): string[] {
  if (!/^[A-Za-z]+=./.test(value)) {
    throw new InvalidArgumentError(
      `'${value}' is not name=value, e.g. keyPropagationSeconds=10 or resyncRewritesDefaultDatastores=true.`,
    );
  }
  return [...(previous ?? []), value];
}

/** The settings with an option of their own. */
const OPTION_OF: Record<string, string> = {
  resyncPolicy: "--resync-policy",
  batchSyncPolicy: "--batch-sync-policy",
  latency: "--latency",
};

/** A `--setting` value as JSON would carry it: true/false, a number, or else the text. */
function settingValue(text: string): unknown {
  if (text === "true" || text === "false") return text === "true";
  const n = Number(text);
  return text.trim() !== "" && Number.isFinite(n) ? n : text;
}

/**
 * The emulator settings the options ask for, checked by the rules of `PATCH /_admin/settings`: every
 * bad one is named at once, and nothing starts.
 */
export function emulatorSettingsOf(opts: EmulatorCommandOptions): Partial<EmulatorSettings> {
  const body: Record<string, unknown> = { resyncPolicy: opts.resyncPolicy, latency: opts.latency };
  if (opts.batchSyncPolicy !== undefined) body.batchSyncPolicy = opts.batchSyncPolicy;
  for (const pair of opts.setting ?? []) {
    const at = pair.indexOf("=");
    body[pair.slice(0, at)] = settingValue(pair.slice(at + 1));
  }
  const { settings, problems } = mergeSettings(DEFAULT_SETTINGS, body);
  if (problems.length > 0) {
    // Each problem starts with the setting's name: say which option set it.
    const optionOf = (problem: string) => OPTION_OF[problem.slice(0, problem.indexOf(" "))] ?? "--setting";
    throw usageError(
      listReasons(
        "invalid emulator settings",
        problems.map((p) => `${optionOf(p)}: ${p}`),
      ),
    );
  }
  return Object.fromEntries(Object.keys(body).map((k) => [k, settings[k as keyof EmulatorSettings]]));
}

/** Writes atomically, so a reader polling for the file never sees half of it. */
function writeConnectionFile(path: string, emulator: Emulator): void {
  const target = resolve(path);
  writeFileSync(`${target}.tmp`, JSON.stringify(emulator.connection, null, 2) + "\n", { mode: 0o600 });
  renameSync(`${target}.tmp`, target);
}

/** The --estate option's help: the forms `parseEstateName` accepts. */
export const ESTATE_OPTION_HELP = ESTATE_FORMS;

export function estateOption(value: string): string {
  try {
    parseEstateName(value);
    return value;
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

export function portOption(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(
      `'${value}' is not a port: use a number from 0 to 65535 (0 picks a free one).`,
    );
  }
  return port;
}

/** `keyturn emulator`: serves until Ctrl+C. Its output is fingerprints and endpoints, never keys. */
export async function runEmulator(
  out: (text: string) => void,
  opts: EmulatorCommandOptions,
): Promise<number> {
  const settings = emulatorSettingsOf(opts);
  const emulator = await startEmulator({
    estate: opts.estate,
    port: opts.port,
    settings,
    consumerJobsIntervalMs: opts.consumerJobs,
  });
  const signal = onSignal();
  try {
    if (opts.connectionFile) writeConnectionFile(opts.connectionFile, emulator);
    out(describeEmulator(emulator) + "\n");
    out(
      `\nServing. Admin API: ${emulator.connection.adminEndpoint}. CA certificate: ${emulator.connection.caCertFile}\n`,
    );
    if (opts.connectionFile) out(`Connection file: ${resolve(opts.connectionFile)}\n`);
    out("Press Ctrl+C to stop.\n");
    const received = await signal.signal;
    out(`\n${received}: stopping the emulator.\n`);
  } finally {
    signal.dispose();
    await emulator.stop();
  }
  return 0;
}
