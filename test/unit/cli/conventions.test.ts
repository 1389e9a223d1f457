import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { promisify } from "node:util";
import { main } from "../../../cli";
import { terminalPrompt, type Prompt } from "../../../cli/io";
import { packageVersion } from "../../../cli/version";
import { startEmulator, type Emulator } from "../../../emulator";
import { projectRoot } from "../../../emulator/paths";

/**
 * The CLI as Azure users expect it: --version, exit code 2 for every usage error, --json on every
 * command with a result, and a question before `rotate` takes the whole default scope on a terminal.
 * Driven through `main`, the CLI's real entry point, with its I/O injected.
 */

const root = projectRoot();
const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };

interface Run {
  code: number;
  out: string;
  err: string;
  /** Every question the CLI asked. */
  questions: string[];
}

/** A person at a terminal who answers every question with `answer`, or no terminal at all. */
function person(interactive: boolean, answer?: string): Prompt & { questions: string[] } {
  const questions: string[] = [];
  return {
    interactive,
    questions,
    ask: (question) => {
      questions.push(question);
      return Promise.resolve(answer);
    },
  };
}

async function keyturn(args: string[], prompt = person(false)): Promise<Run> {
  let out = "";
  let err = "";
  const code = await main(
    ["node", "keyturn", ...args],
    (t) => (out += t),
    (t) => (err += t),
    false,
    prompt,
  );
  return { code, out, err, questions: prompt.questions };
}

describe("keyturn --version", () => {
  it("prints the package version and exits 0", async () => {
    for (const flag of ["--version", "-V"]) {
      const run = await keyturn([flag]);
      expect(run).toMatchObject({ code: 0, out: `${version}\n`, err: "" });
    }
  });

  it("reads the version from the nearest package.json named keyturn, as a bundle beside the staged one does", () => {
    const dir = mkdtempSync(join(tmpdir(), "keyturn-version-"));
    try {
      // The layout scripts/package.mjs stages: package.json (name and version copied) and the bundle.
      const bundleDir = join(dir, "app", "dist", "functions");
      mkdirSync(bundleDir, { recursive: true });
      writeFileSync(join(dir, "app", "package.json"), JSON.stringify({ name: "keyturn", version: "9.8.7" }));
      // Some other package's manifest in between is not keyturn's.
      writeFileSync(
        join(dir, "app", "dist", "package.json"),
        JSON.stringify({ name: "other", version: "1.0.0" }),
      );
      expect(packageVersion(bundleDir)).toBe("9.8.7");
      expect(packageVersion(join(root, "dist", "cli"))).toBe(version);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("usage errors", () => {
  it.each([
    ["an unknown option", ["plan", "--frobnicate"], /unknown option '--frobnicate'/],
    ["an unknown command", ["rotte"], /unknown command 'rotte'/],
    ["a missing option value", ["rotate", "--grace"], /option '--grace <duration>' argument missing/],
    ["too many arguments", ["status", "a", "b"], /too many arguments for 'status'/],
    ["a bad option value", ["emulator", "--port", "x"], /'x' is not a port/],
    ["no command at all", [], /Usage: keyturn/],
  ])("exits 2 on %s and names the problem", async (_what, args, message) => {
    const run = await keyturn(args);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(message);
    expect(run.out).toBe("");
  });

  it("exits 2 on keyturn's own checks too, naming the value", async () => {
    const grace = await keyturn(["rotate", "--grace", "ninety", "--connection-file", "/nonexistent/f.json"]);
    expect(grace.code).toBe(2);
    expect(grace.err).toContain("ninety");
    const port = await keyturn(["serve", "--port", "x"]);
    expect(port.code).toBe(2);
    expect(port.err).toContain('--port "x"');
  });

  it("exits 0 on --help and on `help <command>`", async () => {
    for (const args of [["--help"], ["plan", "--help"], ["help", "rotate"]]) {
      const run = await keyturn(args);
      expect(run.code).toBe(0);
      expect(run.out).toContain("Usage: keyturn");
    }
  });
});

describe("--json", () => {
  it("is offered by every command that prints a result", async () => {
    for (const command of ["plan", "rotate", "status", "resume", "demo"]) {
      const run = await keyturn([command, "--help"]);
      expect(run.out).toMatch(/--json\b/);
    }
  });

  it("is the same as --format json for plan, and refuses to contradict --format", async () => {
    const both = await keyturn([
      "plan",
      "--json",
      "--format",
      "json",
      "--connection-file",
      "/nonexistent/f.json",
    ]);
    // Both spellings agree: the run gets as far as the connection file.
    expect(both.err).toContain("connection file");
    const clash = await keyturn(["plan", "--json", "--format", "mermaid"]);
    expect(clash.code).toBe(2);
    expect(clash.err).toContain('--json and --format "mermaid"');
  });

  it("prints an empty array when resume finds nothing to resume", async () => {
    const run = await keyturn([
      "resume",
      "--json",
      "--state-dir",
      join(tmpdir(), `keyturn-none-${process.pid}`),
    ]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.out)).toEqual([]);
    expect(run.err).toContain("Nothing to resume");
  });

  it("prints JSON for status of an empty state dir", async () => {
    const run = await keyturn([
      "status",
      "--json",
      "--state-dir",
      join(tmpdir(), `keyturn-none-${process.pid}`),
    ]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.out)).toEqual([]);
  });
});

describe("the built CLI (bin/keyturn.js)", () => {
  const run = promisify(execFile);
  const bin = join(root, "bin", "keyturn.js");
  beforeAll(() => {
    if (!existsSync(join(root, "dist", "cli", "index.js"))) {
      throw new Error("dist/ is missing: run `npm run build` first.");
    }
  });

  it("prints the package version", async () => {
    const { stdout } = await run(process.execPath, [bin, "--version"]);
    expect(stdout).toBe(`${version}\n`);
  });

  it("exits 2 on an unknown option", async () => {
    await expect(run(process.execPath, [bin, "status", "--nope"])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining("unknown option '--nope'") as unknown,
    });
  });
});

describe("the terminal prompt", () => {
  it("shows the question and reads the answer from stdin", async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    let shown = "";
    output.on("data", (d: Buffer) => (shown += d.toString()));
    const prompt = terminalPrompt({ input: () => input, output: () => output, interactive: true });
    const answer = prompt.ask("Continue? [y/N] ");
    input.write("yes\n");
    await expect(answer).resolves.toBe("yes");
    expect(shown).toContain("Continue? [y/N] ");
  });

  it("gets no answer at the end of input", async () => {
    const input = new PassThrough();
    const prompt = terminalPrompt({ input: () => input, output: () => new PassThrough(), interactive: true });
    const answer = prompt.ask("Continue? [y/N] ");
    input.end();
    await expect(answer).resolves.toBeUndefined();
  });
});

describe("keyturn rotate without a scope", () => {
  let emulator: Emulator;
  let dir: string;
  let connectionFile: string;
  const saved = { ...process.env };

  beforeAll(async () => {
    emulator = await startEmulator({ estate: "large:1x1x2" });
    dir = mkdtempSync(join(tmpdir(), "keyturn-confirm-"));
    connectionFile = join(dir, "connection.json");
    writeFileSync(connectionFile, JSON.stringify(emulator.connection), { mode: 0o600 });
  });

  afterAll(async () => {
    await emulator?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  afterEach(() => {
    // The CLI points this process at its target and audit trail through the environment.
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  });

  let runs = 0;
  const rotate = (prompt: ReturnType<typeof person>, ...extra: string[]) => {
    const stateDir = join(dir, `state-${++runs}`);
    const args = ["rotate", "--connection-file", connectionFile, "--state-dir", stateDir, "--grace", "0"];
    return { stateDir, run: keyturn([...args, "--json", ...extra], prompt) };
  };

  /** The rotation ran to its end: it printed its report, and every account rotated or was skipped by policy. */
  const expectRotationRan = ({ code, out, err }: Run) => {
    expect(err).not.toContain("aborted");
    expect(JSON.parse(out)).toHaveProperty("accounts");
    expect(code).toBe(0);
  };

  it("asks before rotating the whole default scope on a terminal, and aborts with exit 2 unless told yes", async () => {
    for (const answer of ["n", "", undefined, "yess"]) {
      const { stateDir, run } = rotate(person(true, answer));
      const { code, err, out, questions } = await run;
      expect(questions).toHaveLength(1);
      expect(questions[0]).toContain("every storage account in the 2 subscriptions");
      for (const id of emulator.connection.subscriptionIds) expect(questions[0]).toContain(id);
      expect(questions[0]).toMatch(/Continue\? \[y\/N\] $/);
      expect(code).toBe(2);
      expect(err).toContain("aborted: nothing was rotated");
      expect(out).toBe("");
      expect(existsSync(stateDir)).toBe(false);
    }
  });

  it("rotates when the answer is yes", async () => {
    const { run } = rotate(person(true, "Y"));
    const result = await run;
    expect(result.questions).toHaveLength(1);
    expectRotationRan(result);
  });

  it("does not ask when stdin is not a terminal", async () => {
    const { run } = rotate(person(false, "n"));
    const result = await run;
    expect(result.questions).toEqual([]);
    expectRotationRan(result);
  });

  it("--yes skips the question", async () => {
    for (const flag of ["--yes", "-y"]) {
      const { run } = rotate(person(true, "n"), flag);
      const result = await run;
      expect(result.questions).toEqual([]);
      expectRotationRan(result);
    }
  });

  it("plan --json prints the plan as JSON, as --format json does", async () => {
    const args = ["plan", "--connection-file", connectionFile];
    const json = await keyturn([...args, "--json"]);
    const format = await keyturn([...args, "--format", "json"]);
    expect(json.code).toBe(0);
    expect(format.code).toBe(0);
    const [a, b] = [JSON.parse(json.out), JSON.parse(format.out)] as { accounts: { name: string }[] }[];
    expect(a!.accounts.map((x) => x.name)).toEqual(b!.accounts.map((x) => x.name));
    expect(a!.accounts.length).toBeGreaterThan(0);
  });

  it("does not ask when a scope is named", async () => {
    const account = [...emulator.ctx.estate.storageAccounts.values()][0]!.name;
    const { run } = rotate(person(true, "n"), "--storage-account", account);
    const result = await run;
    expect(result.questions).toEqual([]);
    expectRotationRan(result);
  });
});

describe("keyturn demo --json (the built CLI, as `npm start` runs it)", () => {
  it("prints one JSON document on stdout: the keys by fingerprint, the outages and the report", async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>(
      (resolve) => {
        const child = execFile(
          process.execPath,
          [join(root, "bin", "keyturn.js"), "demo", "--json"],
          { cwd: root, timeout: 55_000 },
          (_error, stdout, stderr) => resolve({ code: child.exitCode ?? -1, stdout, stderr }),
        );
      },
    );
    const outcome = JSON.parse(stdout) as {
      exitCode: number;
      keys: { account: string; activeKeyBefore: { fingerprint: string } | null }[];
      outages: { count: number };
      report: { accounts: unknown[] };
    };
    expect(outcome.exitCode).toBe(code);
    expect(code).toBe(0);
    expect(outcome.outages.count).toBe(0);
    expect(outcome.keys.length).toBe(outcome.report.accounts.length);
    expect(outcome.keys[0]!.activeKeyBefore!.fingerprint).toMatch(/^[0-9a-f]{12}$/);
    // The introduction and the progress went to stderr; no key anywhere.
    expect(stderr).toContain("keyturn demo: rotating every storage account");
    expect(stdout + stderr).not.toMatch(/[A-Za-z0-9+/]{86}==/);
  }, 60_000);
});
