import { Command, CommanderError } from "commander";
import { apiPlan, apiRotate, apiStatus, type Api } from "./api";
import { demo } from "./demo";
import {
  ESTATE_OPTION_HELP,
  estateOption,
  portOption,
  runEmulator,
  settingOption,
  type EmulatorCommandOptions,
} from "./emulator";
import { EXIT_USAGE, describeFailure } from "./errors";
import { NO_PROMPT, redactingIo, terminalPrompt, type Prompt } from "./io";
import { collect } from "./request";
import {
  DEFAULT_STATE_DIR,
  plan,
  resume,
  rotate,
  stateDirOf,
  type PlanOptions,
  type ResumeOptions,
  type RotateOptions,
} from "./rotation";
import { DEFAULT_PORT, serve, type ServeOptions } from "./serve";
import { status, type StatusOptions } from "./status";
import { history } from "./history";
import { packageVersion } from "./version";

export function buildProgram(
  out: (text: string) => void,
  err: (text: string) => void,
  tty = false,
  prompt: Prompt = NO_PROMPT,
): { program: Command; exitCode: () => number } {
  let code = 0;
  // exitOverride: commander throws instead of exiting, and `main` maps its errors to exit 2. The
  // settings are inherited by every command defined below.
  const program = new Command("keyturn")
    .description("Rotate the storage account keys behind Azure Machine Learning workspaces without downtime.")
    .version(packageVersion(), "-V, --version", "print keyturn's version")
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: err });

  program
    .command("emulator")
    .description("Run the local Azure emulator (ARM, Key Vault, sign-in, Azurite) until interrupted.")
    .option("--estate <name>", ESTATE_OPTION_HELP, estateOption, "demo")
    .option("--port <n>", "HTTPS port for ARM, sign-in and the admin API (0: any free port)", portOption, 0)
    .option("--connection-file <path>", "write the endpoints and keyturn's sign-in as JSON to this file")
    .option(
      "--resync-policy <policy>",
      "which key a workspace resync picks: key1, consumers or keepIfLive",
      "key1",
    )
    .option(
      "--batch-sync-policy <policy>",
      "which key a Batch auto-storage sync picks: key1, consumers or keepIfLive (default consumers)",
    )
    .option("--latency <model>", "off or realistic", "off")
    .option(
      "--setting <name=value>",
      "any emulator setting, as PATCH /_admin/settings takes it (repeatable), e.g. keyPropagationSeconds=10",
      settingOption,
    )
    .option("--consumer-jobs <ms>", "run the simulated consumer jobs every <ms> milliseconds", (v) =>
      portOption(v),
    )
    .action(async (opts: EmulatorCommandOptions) => {
      code = await runEmulator(out, opts);
    });

  const io = redactingIo(out, err, tty, prompt);
  const stateDir = [
    "--state-dir <dir>",
    `where rotations are checkpointed (default ${DEFAULT_STATE_DIR} in the current directory)`,
  ] as const;
  const connection = [
    "--connection-file <path>",
    "the emulator's connection file (`keyturn emulator --connection-file PATH`); without it, Azure with DefaultAzureCredential",
  ] as const;
  const verbose = ["--verbose", "print the functions' warnings and errors (retried calls included)"] as const;
  const api = [
    "--api <url>",
    "a deployed keyturn's HTTP API to run against instead of this machine (credentials: KEYTURN_API_KEY, KEYTURN_API_SCOPE)",
  ] as const;
  const withScope = (command: Command) =>
    command
      .option("--subscription <ids>", "subscription id (repeatable, or comma-separated)", collect)
      .option(
        "--resource-group <names>",
        "resource group name or id (repeatable, or comma-separated)",
        collect,
      )
      .option(
        "--workspace <names>",
        "Azure ML workspace name or id (repeatable, or comma-separated)",
        collect,
      )
      .option(
        "--storage-account <names>",
        "storage account name or id (repeatable, or comma-separated)",
        collect,
      )
      .option(
        "--batch-keys",
        "also rotate the shared keys of the Batch accounts in scope (consumers: Key Vault secrets tagged keyturn-batch-account)",
      )
      .option(
        "--registry-passwords",
        "also rotate the admin passwords of the workspaces' container registries in scope (consumers: the workspaces)",
      )
      .option(...connection);

  withScope(
    program
      .command("plan")
      .description(
        "Show what a rotation would do (a dry run: nothing is written). Default scope: every subscription.",
      ),
  )
    .option(
      "--format <format>",
      "table, json or mermaid (the storage account → consumer graph) (default: table)",
    )
    .option("--json", "print the plan as JSON on stdout (the same as --format json)")
    .option("--grace <duration>", "grace period to plan with: 0, 90s, 60m, 1h30m (default 60m)")
    .option("--force", "plan to rotate keys younger than the minimum age too")
    .option(...verbose)
    .option(...api)
    .action(async (opts: PlanOptions & Api) => {
      code = opts.api !== undefined ? await apiPlan(io, { ...opts, api: opts.api }) : await plan(io, opts);
    });

  withScope(
    program
      .command("rotate")
      .description(
        "Rotate the storage account keys in scope without downtime. Default scope: every subscription.",
      ),
  )
    .option(
      "--grace <duration>",
      "wait between moving consumers and regenerating the old key: 0, 90s, 60m (default 60m)",
    )
    .option("--force", "rotate keys younger than the minimum age too (the keyturn:skip tag still wins)")
    .option("--json", "print exactly one JSON report on stdout (progress goes to stderr)")
    .option(
      "-y, --yes",
      "do not ask before rotating the whole default scope (asked only when stdin and stdout are terminals)",
    )
    .option(...stateDir)
    .option(...verbose)
    .option(...api)
    .action(async (opts: RotateOptions & Api) => {
      code =
        opts.api !== undefined ? await apiRotate(io, { ...opts, api: opts.api }) : await rotate(io, opts);
    });

  program
    .command("resume")
    .description("Continue unfinished rotations in the state dir from their last checkpoint.")
    .option(...stateDir)
    .option(
      "--connection-file <path>",
      "the emulator's connection file (default: the one the rotations started with)",
    )
    .option("--json", "print the report as JSON on stdout (an array when several rotations resumed)")
    .option(...verbose)
    .action(async (opts: ResumeOptions) => {
      code = await resume(io, opts);
    });

  program
    .command("status")
    .description("List the rotations in the state dir, or show one in detail.")
    .argument("[id]", "an instance id from the list")
    .option(...stateDir)
    .option("--json", "print JSON")
    .option(
      "--history",
      "without an id: the audit trail of account rotations; with an id: the instance's durable history",
    )
    .option("--storage-account <name>", "with --history: only this account's rotations")
    .option("--html <file>", "with a rotation's id: also write it as a self-contained HTML report to <file>")
    .option(...api)
    .action(async (id: string | undefined, opts: StatusOptions & { storageAccount?: string } & Api) => {
      if (opts.api !== undefined) {
        code = await apiStatus(io, id, { ...opts, api: opts.api });
      } else if (opts.history && id === undefined) {
        stateDirOf(opts.stateDir); // the local audit trail follows --state-dir
        code = await history(io, {
          ...(opts.json ? { json: true } : {}),
          ...(opts.storageAccount ? { storageAccount: opts.storageAccount } : {}),
        });
      } else {
        code = status(io, id, opts);
      }
    });

  program
    .command("serve")
    .description("Serve the HTTP API and the monthly timer on this machine until interrupted.")
    .option(...connection)
    .option("--port <n>", `port to listen on (default ${DEFAULT_PORT}; 0 picks a free one)`)
    .option(...stateDir)
    .option("--verbose", "print the functions' logs")
    .action(async (opts: ServeOptions) => {
      code = await serve(io, opts);
    });

  program
    .command("demo")
    .description("Rotate the demo estate on the embedded emulator with its consumers running, and report.")
    .option("--json", "print the outcome as one JSON document on stdout (the rest goes to stderr)")
    .option(...verbose)
    .action(async (opts: { verbose?: boolean; json?: boolean }) => {
      code = await demo(io, { verbose: opts.verbose === true, json: opts.json === true });
    });

  return { program, exitCode: () => code };
}

/**
 * Runs the CLI; resolves to the process exit code. Everything it reads or writes besides files and
 * the network comes in here: the output streams, whether stderr is a terminal, and the prompt (stdin
 * and stdout; `terminalPrompt` decides whether they are terminals).
 */
export async function main(
  argv: string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
  err: (text: string) => void = (t) => process.stderr.write(t),
  tty: boolean = process.stderr.isTTY === true,
  prompt: Prompt = terminalPrompt(),
): Promise<number> {
  const { program, exitCode } = buildProgram(out, err, tty, prompt);
  try {
    await program.parseAsync(argv);
    return exitCode();
  } catch (e) {
    // commander has printed its message (unknown option or command, missing or excess argument, bad
    // value). --help and --version end with exit code 0; everything else it reports is a usage error.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : EXIT_USAGE;
    const failure = describeFailure(e, process.env.KEYTURN_DEBUG !== undefined);
    err(`keyturn: ${failure.message}\n`);
    return failure.exitCode;
  }
}
