import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../../emulator/paths";
import {
  MATRIX_HEADER,
  doneWhenCell,
  fastCells,
  fullMatrix,
  matrixRow,
  passed,
  runCell,
  type Cell,
  type CellResult,
} from "./matrix";

/**
 * I1–I4 under every plausible answer to what Azure does not document (DESIGN §11). `npm test` runs
 * three cells (the worst answer to everything, and two mixes). `npm run test:matrix` runs the full
 * product and the issue's own full-size check in shards (KEYTURN_MATRIX_SHARD=i/n, one Jest process
 * each: the cells mostly wait on timers), and scripts/matrix.mjs joins the shards' rows into
 * test/results/matrix.md.
 */
const shard = /^(\d+)\/(\d+)$/.exec(process.env.KEYTURN_MATRIX_SHARD ?? "");

function cellsToRun(): Cell[] {
  if (!shard) return fastCells();
  const [index, of] = [Number(shard[1]), Number(shard[2])];
  const all = [doneWhenCell(), ...fullMatrix()];
  return all.filter((_, i) => i % of === index);
}

const cells = cellsToRun();
const results: CellResult[] = [];

describe("keyturn under every combination of undocumented Azure behaviour", () => {
  afterAll(() => {
    if (!shard) return;
    const dir = join(projectRoot(), "test", "results", "matrix");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, `shard-${shard[1]}.json`),
      JSON.stringify({
        header: MATRIX_HEADER,
        rows: results.map(matrixRow),
        green: results.filter(passed).length,
        cells: results.length,
      }),
    );
  });

  it.each(cells.map((c) => [c.id, c] as const))(
    "rotates every account with each key regenerated once and no outage but reported windows: %s",
    async (_, cell) => {
      const result = await runCell(cell);
      results.push(result);
      // Everything the cell saw, so a red cell explains itself.
      if (!passed(result)) console.log(JSON.stringify({ ...result, cell: cell.id }, null, 2));
      expect(result.notRotated).toEqual([]);
      expect(result.regenerationProblems).toEqual([]);
      expect(result.unreported).toEqual([]);
      expect(result.dead).toEqual([]);
    },
    300_000,
  );
});
