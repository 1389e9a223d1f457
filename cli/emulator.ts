import { renameSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { InvalidArgumentError } from "commander";
import { startEmulator, type Emulator } from "../emulator";
import { describeEmulator } from "../emulator/describe";
import { ESTATE_FORMS, parseEstateName } from "../emulator/estates";
import { usageError } from "./errors";
import { onSignal } from "./io";

export interface EmulatorCommandOptions {
  estate: string;
  port: number;
  connectionFile?: string;
  resyncPolicy: string;
  latency: string;
  consumerJobs?: number;
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
  if (opts.resyncPolicy !== "key1" && opts.resyncPolicy !== "consumers") {
    throw usageError(`--resync-policy '${opts.resyncPolicy}': use key1 or consumers.`);
  }
  if (opts.latency !== "off" && opts.latency !== "realistic") {
    throw usageError(`--latency '${opts.latency}': use off or realistic.`);
  }
  const emulator = await startEmulator({
    estate: opts.estate,
    port: opts.port,
    settings: { resyncPolicy: opts.resyncPolicy, latency: opts.latency },
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
