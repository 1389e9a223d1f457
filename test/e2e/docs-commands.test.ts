import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command, CommanderError, type Option } from "commander";
import { buildProgram, main } from "../../cli";
import { NO_PROMPT } from "../../cli/io";
import { startEmulator, type Emulator } from "../../emulator";
import { projectRoot } from "../../emulator/paths";

/**
 * Docs true (issue 11): every `keyturn …` command that README.md, docs/*.md and the text of
 * infra/alerts.json and infra/workbook.json show is checked against the real CLI, so a doc naming a
 * command, a flag or an argument that does not exist fails the build. Each command is parsed by the
 * CLI's own commander program (buildProgram) with its actions replaced by no-ops: an unknown command
 * or option, a missing or extra argument, a flag without its value and a value the option refuses are
 * the errors a user would get. Then every subcommand the docs name runs for real: `--help` for each,
 * and `plan`, `rotate`, `status`, `resume`, `--version` against an in-process emulator. `serve`,
 * `emulator` and `demo` run until interrupted or for long, so they are checked structurally only.
 */

const root = projectRoot();
const bin = join(root, "bin", "keyturn.js");

// ---------------------------------------------------------------------------------------------------
// Extraction

/** A `keyturn …` command as a doc shows it, and where. */
interface DocCommand {
  where: string;
  text: string;
}

/** A flag named on its own in inline code (`--state-dir`), and the commands it may belong to. */
interface FlagMention {
  where: string;
  text: string;
  context: string;
}

const SUBCOMMANDS = buildProgram(
  () => undefined,
  () => undefined,
).program.commands.map((c) => c.name());

const COMMAND_START = /^(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:npx\s+)?keyturn(?=\s|$)/;
/** Inline code that starts with "keyturn " and is not a command. */
const NOT_COMMANDS = [
  /^keyturn storage key rotator\b/, // the role definition's name (docs/deploy.md)
];

/** Markdown headings (outside fenced code) that decide which commands a bare `--flag` belongs to. */
const FLAG_CONTEXTS: Record<string, string> = {
  "README.md#Starting it": "emulator",
  "README.md#Benchmark: rotation at estate scale": "bench",
  // The Azure CLI's own flags (`--query`, `--endpoint-active-directory`): not keyturn's.
  "docs/azure-cli.md": "az",
};

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index && i < text.length; i++) if (text[i] === "\n") line++;
  return line;
}

/** The shell segments of a line: split at `&&`, `||`, `;`, a pipe ` | ` and a trailing `&`. */
function shellSegments(line: string): string[] {
  return line
    .split(/\s*(?:&&|\|\||;|\s\|\s|\s&(?:\s|$))\s*/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Removes a shell comment: `#` at the start or after whitespace, outside quotes. */
function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

function classifySpan(
  span: string,
  where: string,
  context: string,
  commands: DocCommand[],
  flags: FlagMention[],
): void {
  const text = span.replace(/\s+/g, " ").trim();
  // Bare `keyturn` in inline code is the name, not a command.
  if (COMMAND_START.test(text) && text.replace(COMMAND_START, "").trim() !== "") {
    if (!NOT_COMMANDS.some((re) => re.test(text))) commands.push({ where, text });
  } else if (/^(?:--[A-Za-z][\w-]*|-[A-Za-z])(?:[\s=]|$)/.test(text)) {
    flags.push({ where, text, context });
  }
}

function extractMarkdown(file: string, text: string): { commands: DocCommand[]; flags: FlagMention[] } {
  const commands: DocCommand[] = [];
  const flags: FlagMention[] = [];
  const lines = text.split("\n");
  // Prose with fenced blocks blanked out (line numbers kept), and the heading in force on each line.
  const prose: string[] = [];
  const headingAt: string[] = [];
  let fence: { marker: string; shell: boolean } | undefined;
  let heading = "";
  let pending: { start: number; text: string } | undefined;
  lines.forEach((line, i) => {
    const open = /^\s*(`{3,}|~{3,})\s*([\w-]*)/.exec(line);
    if (!fence && open) {
      fence = { marker: open[1]!, shell: ["", "sh", "bash", "shell", "console", "zsh"].includes(open[2]!) };
      prose.push("");
    } else if (fence) {
      if (line.trim().startsWith(fence.marker)) fence = undefined;
      else if (fence.shell) {
        // A shell line; `\` at its end continues it on the next line.
        const joined = (pending ? pending.text + " " : "") + line.trim();
        if (joined.endsWith("\\")) pending = { start: pending?.start ?? i, text: joined.slice(0, -1).trim() };
        else {
          const start = pending?.start ?? i;
          pending = undefined;
          for (const segment of shellSegments(stripComment(joined))) {
            if (COMMAND_START.test(segment)) commands.push({ where: `${file}:${start + 1}`, text: segment });
          }
        }
      }
      prose.push("");
    } else {
      const h = /^#{1,6}\s+(.*)$/.exec(line);
      if (h) heading = h[1]!.trim();
      prose.push(line);
    }
    headingAt.push(heading);
  });
  const body = prose.join("\n");
  for (const m of body.matchAll(/(`+)([\s\S]+?)\1/g)) {
    const line = lineOf(body, m.index);
    const context = FLAG_CONTEXTS[file] ?? FLAG_CONTEXTS[`${file}#${headingAt[line - 1] ?? ""}`] ?? "keyturn";
    classifySpan(m[2]!, `${file}:${line}`, context, commands, flags);
  }
  return { commands, flags };
}

/**
 * `keyturn` commands in a JSON file's strings: in backticks, or in parentheses when they name a flag
 * or a command ("(keyturn rotate --storage-account ...)", not "(keyturn is not running)").
 */
function extractJson(file: string, raw: string): DocCommand[] {
  const commands: DocCommand[] = [];
  const strings: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === "string") strings.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  walk(JSON.parse(raw));
  const flags: FlagMention[] = [];
  for (const s of strings) {
    const spans = [
      ...[...s.matchAll(/`([^`]+)`/g)].map((m) => m[1]!),
      ...[...s.matchAll(/\(((?:npx\s+)?keyturn\s[^)]*)\)/g)]
        .map((m) => m[1]!)
        .filter(
          (t) => / -/.test(t) || SUBCOMMANDS.includes(t.replace(COMMAND_START, "").trim().split(" ")[0]!),
        ),
    ];
    for (const span of spans) {
      const at = raw.indexOf(JSON.stringify(span).slice(1, -1));
      classifySpan(span, `${file}:${at < 0 ? "?" : lineOf(raw, at)}`, "keyturn", commands, flags);
    }
  }
  return commands;
}

// ---------------------------------------------------------------------------------------------------
// Parsing a doc's command into argv

/** A word with its `a|b|c` alternatives, or an optional `[…]` group with its alternatives. */
type Node = { kind: "word"; alts: string[] } | { kind: "group"; alts: Node[][] };

/** What a doc's `[scope]` stands for: the scope options (README, "Scope options: …"). */
const SCOPE = "scope";
const SCOPE_FLAGS = ["--subscription", "--resource-group", "--workspace", "--storage-account"];

/** Placeholders never reach an option's parser: `<name>`, `PATH`, `N`, `...`, `"$VAR"`, `large:<a>x<b>`. */
const PLACEHOLDER = "\u0000placeholder:";
const isPlaceholderWord = (w: string) =>
  /[<>$]/.test(w) || /^[A-Z][A-Z0-9_]*$/.test(w) || w === "..." || w === "…";
const isPlaceholder = (v: string) => v.startsWith(PLACEHOLDER);

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  let current = "";
  let angle = 0;
  let quote: string | undefined;
  const flush = () => {
    if (current) tokens.push(current);
    current = "";
  };
  for (const c of text) {
    if (quote) {
      current += c;
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
      current += c;
    } else if (c === "<") {
      angle++;
      current += c;
    } else if (c === ">" && angle > 0) {
      angle--;
      current += c;
    } else if (angle > 0) current += c;
    else if (/\s/.test(c)) flush();
    else if ((c === "[" && current === "") || c === "]") {
      // `[` opens a group only at a word's start (`large:<a>x<b>[x<c>]` is one word).
      if (c === "]" && current.includes("[")) current += c;
      else {
        flush();
        tokens.push(c);
      }
    } else current += c;
  }
  flush();
  return tokens;
}

function parseNodes(tokens: string[], pos: { i: number }, inGroup: boolean): Node[][] {
  const alts: Node[][] = [[]];
  while (pos.i < tokens.length) {
    const t = tokens[pos.i++]!;
    if (t === "]") {
      if (!inGroup) throw new Error("unbalanced ]");
      return alts;
    }
    if (t === "[") alts[alts.length - 1]!.push({ kind: "group", alts: parseNodes(tokens, pos, true) });
    else if (t === "|") alts.push([]);
    else {
      const unquoted = t.replace(/^(["'])(.*)\1$/, "$2");
      const words = /[<"'$]/.test(t) ? [unquoted] : unquoted.split("|").filter((w) => w !== "");
      alts[alts.length - 1]!.push({ kind: "word", alts: words });
    }
  }
  if (inGroup) throw new Error("unbalanced [");
  return alts;
}

/** The doc's command as nodes, `keyturn` (and `npx`, env assignments) removed. */
function parseCommand(text: string): Node[] {
  const rest = text.replace(COMMAND_START, "").trim();
  const alts = parseNodes(tokenize(rest), { i: 0 }, false);
  if (alts.length > 1) throw new Error("a `|` outside [] (a shell pipe?)");
  return alts[0]!;
}

const word = (w: string) => (isPlaceholderWord(w) ? PLACEHOLDER + w : w);

/** `[id]`: an optional argument, named as commander names it. */
function isNamedArgument(node: Node): node is { kind: "group"; alts: [[{ kind: "word"; alts: [string] }]] } {
  if (node.kind !== "group" || node.alts.length !== 1 || node.alts[0]!.length !== 1) return false;
  const only = node.alts[0]![0]!;
  return only.kind === "word" && only.alts.length === 1 && /^[a-z][\w-]*$/.test(only.alts[0]!);
}

function isScopeGroup(node: Node): boolean {
  return (
    node.kind === "group" &&
    node.alts.length === 1 &&
    node.alts[0]!.length === 1 &&
    node.alts[0]![0]!.kind === "word" &&
    node.alts[0]![0]!.alts.join() === SCOPE
  );
}

/** Every argv the nodes can stand for, every optional group included (each alternative once). */
function expand(nodes: Node[]): string[][] {
  let variants: string[][] = [[]];
  for (const node of nodes) {
    let options: string[][];
    if (isScopeGroup(node)) options = [SCOPE_FLAGS.flatMap((f) => [f, PLACEHOLDER + "scope"])];
    else if (isNamedArgument(node)) options = [[PLACEHOLDER + node.alts[0][0].alts[0]]];
    else if (node.kind === "word") options = node.alts.map((w) => [word(w)]);
    else options = node.alts.flatMap((alt) => expand(alt));
    variants = variants.flatMap((v) => options.map((o) => [...v, ...o]));
  }
  return variants;
}

// ---------------------------------------------------------------------------------------------------
// Checking argv against the real program

/** The CLI's own program, with no-op actions and placeholders kept from the options' parsers. */
function inertProgram(): Command {
  const { program } = buildProgram(
    () => undefined,
    () => undefined,
  );
  for (const cmd of [program, ...program.commands]) {
    if (cmd !== program) cmd.action(() => undefined);
    for (const opt of cmd.options) {
      const parse = opt.parseArg;
      if (parse) {
        opt.parseArg = <T>(value: string, previous: T): T =>
          isPlaceholder(value) ? previous : parse(value, previous);
      }
    }
  }
  return program;
}

/** The option a flag names on argv's subcommand (or on the program). */
function optionOf(argv: string[], flag: string | undefined): Option | undefined {
  const program = inertProgram();
  const cmd = program.commands.find((c) => c.name() === argv[0]) ?? program;
  return cmd.options.find((o) => o.long === flag || o.short === flag);
}

/**
 * A doc's `…` is an option's value after a flag that takes one (`--storage-account ...`); anywhere
 * else it stands for arguments left out (`plan|rotate|status … --api URL`) and is dropped.
 */
function withoutEllipses(argv: string[]): string[] {
  return argv.filter((a, i) => {
    if (!isPlaceholder(a) || !/^(\.\.\.|…)$/.test(a.slice(PLACEHOLDER.length))) return true;
    const option = optionOf(argv, argv[i - 1]);
    return option !== undefined && (option.required || option.optional);
  });
}

const shown = (argv: string[]) =>
  argv.map((a) => (isPlaceholder(a) ? a.slice(PLACEHOLDER.length) : a)).join(" ");

/** Undefined when the real program accepts argv; else commander's (or an option parser's) error. */
async function checkArgv(argv: string[]): Promise<string | undefined> {
  try {
    await inertProgram().parseAsync(argv, { from: "user" });
    return undefined;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? undefined : e.message;
    return e instanceof Error ? e.message : String(e);
  }
}

/** Every problem with the docs' commands, each naming its doc and line. */
async function checkCommands(commands: DocCommand[]): Promise<string[]> {
  const problems: string[] = [];
  for (const c of commands) {
    let variants: string[][];
    try {
      variants = expand(parseCommand(c.text)).map(withoutEllipses);
    } catch (e) {
      problems.push(`${c.where}: \`${c.text}\`: cannot parse: ${(e as Error).message}`);
      continue;
    }
    for (const argv of variants) {
      const error = await checkArgv(argv);
      if (error) {
        problems.push(`${c.where}: \`${c.text}\` (as \`keyturn ${shown(argv)}\`): ${error}`);
      }
    }
  }
  return problems;
}

function flagsOf(cmd: Command): string[] {
  return [...cmd.options.flatMap((o) => [o.long, o.short]), "--help", "-h"].filter(
    (f): f is string => f !== undefined,
  );
}

/** Bare `--flag` mentions: the flag exists on the commands of its context. */
function checkFlagMentions(mentions: FlagMention[]): string[] {
  const program = inertProgram();
  const every = new Set([...flagsOf(program), ...program.commands.flatMap(flagsOf)]);
  const benchSource = readFileSync(join(root, "bench", "run.mjs"), "utf8");
  const bench = new Set([...benchSource.matchAll(/"(--[a-z-]+)"/g)].map((m) => m[1]!));
  const known: Record<string, Set<string>> = {
    keyturn: every,
    emulator: new Set(flagsOf(program.commands.find((c) => c.name() === "emulator")!)),
    bench: new Set([...every, ...bench]),
  };
  const problems: string[] = [];
  for (const m of mentions) {
    const flags = known[m.context];
    if (!flags) continue; // another tool's flags
    const flag = m.text.split(/[\s=]/)[0]!;
    if (!flags.has(flag)) {
      problems.push(
        `${m.where}: \`${m.text}\`: ${flag} is no option of ${m.context === "keyturn" ? "any keyturn command" : m.context}`,
      );
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------
// The docs

const DOCS = [
  "README.md",
  ...readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];
const JSON_DOCS = ["infra/alerts.json", "infra/workbook.json"];

function docCommands(): { commands: DocCommand[]; flags: FlagMention[] } {
  const commands: DocCommand[] = [];
  const flags: FlagMention[] = [];
  for (const file of DOCS) {
    const found = extractMarkdown(file, readFileSync(join(root, file), "utf8"));
    commands.push(...found.commands);
    flags.push(...found.flags);
  }
  for (const file of JSON_DOCS) commands.push(...extractJson(file, readFileSync(join(root, file), "utf8")));
  return { commands, flags };
}

/** The subcommand an argv names (undefined for `keyturn --version`). */
function subcommandOf(argv: string[]): string | undefined {
  const first = argv[0];
  return first !== undefined && !first.startsWith("-") ? first : undefined;
}

// ---------------------------------------------------------------------------------------------------
// Running the real CLI

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built CLI as a user runs it: its own process, in a scratch directory, no KEYTURN_* settings. */
function keyturn(args: string[], cwd: string): Promise<Run> {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith("KEYTURN_")) delete env[name];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * The CLI's entry point in this process (what bin/keyturn.js calls), for the many variants a spawn
 * each would make slow. The settings it writes into process.env are put back afterwards.
 */
async function keyturnInProcess(args: string[]): Promise<Run> {
  const saved = { ...process.env };
  let stdout = "";
  let stderr = "";
  try {
    const code = await main(
      ["node", "keyturn", ...args],
      (t) => (stdout += t),
      (t) => (stderr += t),
      false,
      NO_PROMPT,
    );
    return { code, stdout, stderr };
  } finally {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  }
}

/** Subcommands run against the emulator; the others (serve, emulator, demo) only with --help. */
const RUN_FOR_REAL = new Set(["plan", "rotate", "status", "resume"]);

/**
 * The argvs to run for a doc command: the command alone and with each optional group on its own
 * (`--json` and `--format mermaid` are alternatives, not one call); `rotate` once, with every group.
 */
function realVariants(nodes: Node[], sub: string | undefined): string[][] {
  const required = nodes.filter((n) => n.kind === "word");
  const groups = nodes.filter((n) => n.kind === "group");
  if (sub === "rotate" || groups.length === 0) return expand(nodes).slice(0, 1);
  return [required, ...groups.map((g) => [...required, g])].flatMap((ns) =>
    expand(nodes.filter((n) => ns.includes(n))),
  );
}

interface Planned {
  where: string;
  sub: string | undefined;
  argv: string[];
}

/** The docs' runnable commands with real values in place of the placeholders, one per distinct argv. */
function plannedRuns(commands: DocCommand[], values: Record<string, string>): Planned[] {
  const program = inertProgram();
  const planned = new Map<string, Planned>();
  for (const c of commands) {
    const nodes = parseCommand(c.text);
    const sub = subcommandOf(expand(nodes)[0] ?? []);
    if (sub !== undefined && !RUN_FOR_REAL.has(sub)) continue;
    const options = sub === undefined ? [] : flagsOf(program.commands.find((p) => p.name() === sub)!);
    for (const docArgv of realVariants(nodes, sub).map(withoutEllipses)) {
      const argv: string[] = [];
      for (let i = 0; i < docArgv.length; i++) {
        const a = docArgv[i]!;
        const value = values[a];
        const next = docArgv[i + 1];
        argv.push(a);
        if (value !== undefined && next !== undefined && !next.startsWith("-")) {
          argv.push(value);
          i++;
        }
      }
      // A value this test cannot give (`--api https://<app>…`, a deployed keyturn): checked structurally only.
      if (argv.some((a, i) => isPlaceholder(a) && optionOf(argv, argv[i - 1]) !== undefined)) continue;
      // Never Azure, never the current directory's state.
      for (const flag of ["--connection-file", "--state-dir"]) {
        if (options.includes(flag) && !argv.includes(flag)) argv.push(flag, values[flag]!);
      }
      if (sub === "rotate" && [...planned.values()].some((p) => p.sub === "rotate")) continue; // one rotation
      const key = argv.join("\u0001");
      if (!planned.has(key)) planned.set(key, { where: c.where, sub, argv });
    }
  }
  return [...planned.values()];
}

describe("every command the docs show exists as shown", () => {
  const { commands, flags } = docCommands();

  it("the docs show keyturn commands (the extraction finds them)", () => {
    const subs = new Set(commands.map((c) => subcommandOf(expand(parseCommand(c.text))[0] ?? [])));
    for (const sub of ["plan", "rotate", "status", "resume", "serve", "demo", "emulator", undefined]) {
      expect([...subs]).toContain(sub);
    }
    expect(commands.some((c) => c.where.startsWith("infra/alerts.json"))).toBe(true);
  });

  it("every command, flag and argument in README.md, docs/*.md and infra/*.json exists on the CLI", async () => {
    const problems = await checkCommands(commands);
    expect(problems).toEqual([]);
  });

  it("every flag named on its own in the docs (`--state-dir`) is an option of the command it is about", () => {
    expect(checkFlagMentions(flags)).toEqual([]);
  });

  it("rejects a made-up doc line, naming the doc and the line", async () => {
    const doc = [
      "Resume it with `keyturn resume <instanceId>`.",
      "",
      "```sh",
      "keyturn rotate --account x   # the old spelling",
      "npx keyturn status [id] \\",
      "  --state-dir <dir> --histroy",
      "```",
      "Then `keyturn rotatee` or `keyturn plan --format table|xml|mermaid`, and `--acount`.",
    ].join("\n");
    const found = extractMarkdown("docs/made-up.md", doc);
    const problems = await checkCommands(found.commands);
    expect(problems).toEqual([
      expect.stringMatching(/^docs\/made-up\.md:4: `keyturn rotate --account x`.*unknown option '--account'/),
      expect.stringMatching(/^docs\/made-up\.md:5: .*unknown option '--histroy'/),
      expect.stringMatching(/^docs\/made-up\.md:1: `keyturn resume <instanceId>`.*too many arguments/),
      expect.stringMatching(/^docs\/made-up\.md:8: `keyturn rotatee`.*unknown command 'rotatee'/),
    ]);
    expect(checkFlagMentions(found.flags)).toEqual([
      expect.stringMatching(/^docs\/made-up\.md:8: `--acount`/),
    ]);
    // A value an option refuses is caught too (the emulator's --estate parser).
    expect(await checkArgv(["emulator", "--estate", "huge"])).toMatch(/estate/i);
    expect(await checkArgv(["emulator", "--estate", `${PLACEHOLDER}large:<a>x<b>`])).toBeUndefined();
  });
});

describe("every command the docs show runs", () => {
  const { commands } = docCommands();
  let emulator: Emulator;
  let dir: string;
  let connectionFile: string;
  let stateDir: string;

  beforeAll(async () => {
    if (!existsSync(join(root, "dist", "cli", "index.js"))) {
      throw new Error("dist/ is missing: run `npm run build` (npm test does it).");
    }
    emulator = await startEmulator({ estate: "demo" });
    dir = mkdtempSync(join(tmpdir(), "keyturn-docs-"));
    connectionFile = join(dir, "f.json");
    stateDir = join(dir, "state");
    writeFileSync(connectionFile, JSON.stringify(emulator.connection));
  });

  afterAll(async () => {
    await emulator?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("`keyturn <command> --help` exits 0 for every command the docs name and lists each flag they use", async () => {
    const used = new Map<string, Set<string>>();
    for (const c of commands) {
      for (const argv of expand(parseCommand(c.text))) {
        const sub = subcommandOf(argv);
        if (sub === undefined) continue;
        const flagsUsed = used.get(sub) ?? new Set<string>();
        for (const a of argv) if (a.startsWith("--")) flagsUsed.add(a.split("=")[0]!);
        used.set(sub, flagsUsed);
      }
    }
    expect([...used.keys()]).toEqual(expect.arrayContaining(["serve", "emulator", "demo"]));
    const problems: string[] = [];
    for (const [sub, flagsUsed] of used) {
      const run = await keyturnInProcess([sub, "--help"]);
      if (run.code !== 0) problems.push(`keyturn ${sub} --help: exit ${run.code}: ${run.stderr}`);
      for (const f of flagsUsed)
        if (!run.stdout.includes(f)) problems.push(`keyturn ${sub} --help lists no ${f}`);
    }
    expect(problems).toEqual([]);
  });

  it("plan, rotate, status, resume and --version, as the docs show them, exit 0 against the emulator", async () => {
    // Real values for the docs' placeholders (the scope: one account of the demo estate); a doc's
    // `--grace 60m` runs with 0s.
    const planned = plannedRuns(commands, {
      "--connection-file": connectionFile,
      "--state-dir": stateDir,
      "--grace": "0s",
      "--subscription": emulator.connection.subscriptionIds[0]!,
      "--resource-group": "rg-ml-prod",
      "--workspace": "mlw-train",
      "--storage-account": "stmlshared",
    });
    const order = ["plan", "rotate", "status", "resume", undefined];
    expect(new Set(planned.map((p) => p.sub))).toEqual(new Set(order));

    const problems: string[] = [];
    const check = (p: Planned, argv: string[], run: Run, how: string) => {
      if (run.code !== 0) {
        problems.push(
          `${p.where}: \`keyturn ${shown(argv)}\` (${how}) exited ${run.code}:\n${run.stderr.slice(-1500)}`,
        );
      }
    };
    // Each distinct subcommand once in its own process (bin/keyturn.js), the first form the docs show
    // without a placeholder; every other form in this process. First every read (plan; status and
    // resume on a state dir nothing has used yet), then the rotation, then status and resume again on
    // what it left.
    const spawned = new Set<string | undefined>();
    const own = planned.filter(
      (p) => !p.argv.some(isPlaceholder) && !spawned.has(p.sub) && spawned.add(p.sub),
    );
    const rest = planned.filter((p) => !own.includes(p));
    const spawnOne = async (p: Planned) => check(p, p.argv, await keyturn(p.argv, dir), "spawned");
    const inProcess = async (runs: Planned[]) => {
      for (const p of runs) {
        let argv = p.argv;
        if (argv.some(isPlaceholder)) {
          // `status [id]`: an instance the state dir holds.
          const list = await keyturnInProcess(["status", "--json", "--state-dir", stateDir]);
          const ids = (JSON.parse(list.stdout) as { instanceId: string }[]).map((s) => s.instanceId);
          argv = argv.map((a) => (isPlaceholder(a) ? (ids[0] ?? a) : a));
        }
        // A file a command writes (`--html report.html`) goes to the test's directory, not the repository.
        argv = argv.map((a, i) => (argv[i - 1] === "--html" ? join(dir, a) : a));
        check(p, argv, await keyturnInProcess(argv), "in process");
      }
    };
    const rotation = own.find((p) => p.sub === "rotate")!;
    await Promise.all([
      ...own.filter((p) => p !== rotation).map(spawnOne),
      inProcess(rest.filter((p) => p.sub === "plan" || p.sub === undefined)),
    ]);
    await spawnOne(rotation);
    await inProcess(rest.filter((p) => p.sub === "status" || p.sub === "resume"));
    expect(problems).toEqual([]);
  }, 120_000);
});
