import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { projectRoot } from "../../emulator/paths";
import { CELLS, SAMPLE } from "./cells";
import { runCell, type CellRun } from "./harness";
import { renderChaosTable } from "./report";

/**
 * The chaos matrix (issue 9): a fault at every step boundary of one account's rotation. `npm test` runs
 * the sample (one cell of most fault families); `npm run test:chaos` (KEYTURN_CHAOS=all) runs every cell
 * and writes test/results/chaos.md. KEYTURN_CHAOS_CELLS=<regex> picks cells by id (no table written).
 * The SIGKILL cells run the built CLI (bin/keyturn.js → dist): build first.
 */
const FULL = process.env.KEYTURN_CHAOS === "all";
const PICK = process.env.KEYTURN_CHAOS_CELLS ? new RegExp(process.env.KEYTURN_CHAOS_CELLS) : undefined;
const cells = PICK ? CELLS.filter((c) => PICK.test(c.id)) : FULL ? CELLS : SAMPLE;
const CELL_TIMEOUT_MS = 300_000;

const runs: CellRun[] = [];
const started = Date.now();

afterAll(() => {
  if (!FULL || PICK) return;
  const file = join(projectRoot(), "test", "results", "chaos.md");
  mkdirSync(dirname(file), { recursive: true });
  const date = new Date().toISOString().slice(0, 10);
  const text = renderChaosTable(runs, { date, seconds: (Date.now() - started) / 1000 });
  writeFileSync(file, text);
  // Formatted as `npm run lint` (prettier --check .) expects the committed file. Prettier's API needs ESM
  // dynamic import, which Jest's module system lacks: its CLI, then.
  execFileSync(process.execPath, [
    join(projectRoot(), "node_modules", "prettier", "bin", "prettier.cjs"),
    "--write",
    file,
  ]);
});

describe("a fault at a step boundary of an account's rotation", () => {
  it.each(cells.map((c) => [c.id, c] as const))(
    "%s: ends rotated or safely stalled, keeps I1-I4, and a second run converges",
    async (_id, cell) => {
      const run = await runCell(cell);
      runs.push(run);
      expect(run.violations).toEqual([]);
    },
    CELL_TIMEOUT_MS,
  );
});
