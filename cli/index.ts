import { writeFileSync, renameSync } from "node:fs";
import { resolve } from "node:path";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { startEmulator, type Emulator } from "../emulator";
import { parseEstateName } from "../emulator/estates";
import { describeEmulator } from "../emulator/describe";

/** Writes atomically, so a reader polling for the file never sees half of it. */
function writeConnectionFile(path: string, emulator: Emulator): void {
  const target = resolve(path);
  writeFileSync(`${target}.tmp`, JSON.stringify(emulator.connection, null, 2) + "\n", { mode: 0o600 });
  renameSync(`${target}.tmp`, target);
}

function estateOption(value: string): string {
  try {
    parseEstateName(value);
    return value;
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

function portOption(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError(
      `'${value}' is not a port: use a number from 0 to 65535 (0 picks a free one).`,
    );
  }
  return port;
}

function waitForSignal(): Promise<string> {
  return new Promise((done) => {
    const stop = (signal: string) => done(signal);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

export function buildProgram(out: (text: string) => void, err: (text: string) => void): Command {
  const program = new Command("keyturn")
    .description("Rotate the storage account keys behind Azure Machine Learning workspaces without downtime.")
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err });

  program
    .command("emulator")
    .description("Run the local Azure emulator (ARM, Key Vault, sign-in, Azurite) until interrupted.")
    .option("--estate <name>", "demo, or large:<accounts>x<datastoresPerAccount>", estateOption, "demo")
    .option("--port <n>", "HTTPS port for ARM, sign-in and the admin API (0: any free port)", portOption, 0)
    .option("--connection-file <path>", "write the endpoints and keyturn's sign-in as JSON to this file")
    .option("--resync-policy <policy>", "which key a workspace resync picks: key1 or consumers", "key1")
    .option("--latency <model>", "off or realistic", "off")
    .option("--consumer-jobs <ms>", "run the simulated consumer jobs every <ms> milliseconds", (v) =>
      portOption(v),
    )
    .action(
      async (opts: {
        estate: string;
        port: number;
        connectionFile?: string;
        resyncPolicy: string;
        latency: string;
        consumerJobs?: number;
      }) => {
        if (opts.resyncPolicy !== "key1" && opts.resyncPolicy !== "consumers") {
          throw new Error(`--resync-policy '${opts.resyncPolicy}': use key1 or consumers.`);
        }
        if (opts.latency !== "off" && opts.latency !== "realistic") {
          throw new Error(`--latency '${opts.latency}': use off or realistic.`);
        }
        const emulator = await startEmulator({
          estate: opts.estate,
          port: opts.port,
          settings: { resyncPolicy: opts.resyncPolicy, latency: opts.latency },
          consumerJobsIntervalMs: opts.consumerJobs,
        });
        if (opts.connectionFile) writeConnectionFile(opts.connectionFile, emulator);
        out(describeEmulator(emulator) + "\n");
        out(
          `\nServing. Admin API: ${emulator.connection.adminEndpoint}. CA certificate: ${emulator.connection.caCertFile}\n`,
        );
        if (opts.connectionFile) out(`Connection file: ${resolve(opts.connectionFile)}\n`);
        out("Press Ctrl+C to stop.\n");
        const signal = await waitForSignal();
        out(`\n${signal}: stopping the emulator.\n`);
        await emulator.stop();
      },
    );

  program
    .command("demo")
    .description("Start the emulator with the demo estate, show what it holds, and stop.")
    .action(async () => {
      const emulator = await startEmulator({ estate: "demo" });
      try {
        out(describeEmulator(emulator) + "\n");
      } finally {
        await emulator.stop();
      }
    });

  return program;
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(
  argv: string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
  err: (text: string) => void = (t) => process.stderr.write(t),
): Promise<number> {
  const program = buildProgram(out, err);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    err(`keyturn: ${(e as Error).message}\n`);
    return 1;
  }
}
