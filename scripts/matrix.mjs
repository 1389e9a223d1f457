#!/usr/bin/env node
// `npm run test:matrix`: the full settings matrix (test/matrix) in parallel Jest processes, one shard
// each, then the shards' rows joined into test/results/matrix.md. Exits non-zero if any cell is red.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const shards = Number(process.env.KEYTURN_MATRIX_SHARDS ?? 4);
const dir = join(root, "test", "results", "matrix");
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

const started = Date.now();
const codes = await Promise.all(
  Array.from({ length: shards }, (_, i) => {
    const child = spawn(
      process.execPath,
      [join(root, "node_modules", "jest", "bin", "jest.js"), "test/matrix/matrix.test.ts", "--runInBand"],
      {
        cwd: root,
        env: { ...process.env, KEYTURN_MATRIX_SHARD: `${i}/${shards}` },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const log = [];
    child.stdout.on("data", (d) => log.push(d));
    child.stderr.on("data", (d) => log.push(d));
    return new Promise((resolve) =>
      child.on("close", (code) => {
        writeFileSync(join(dir, `shard-${i}.log`), Buffer.concat(log));
        console.log(`shard ${i}/${shards}: exit ${code}`);
        resolve(code ?? 1);
      }),
    );
  }),
);

const parts = [];
for (let i = 0; i < shards; i++) {
  try {
    parts.push(JSON.parse(readFileSync(join(dir, `shard-${i}.json`), "utf8")));
  } catch {
    console.error(`shard ${i} wrote no results: see test/results/matrix/shard-${i}.log`);
  }
}
const rows = parts.flatMap((p) => p.rows).sort();
const green = parts.reduce((n, p) => n + p.green, 0);
const cells = parts.reduce((n, p) => n + p.cells, 0);
const minutes = ((Date.now() - started) / 60_000).toFixed(1);
writeFileSync(
  join(root, "test", "results", "matrix.md"),
  [
    "# Settings matrix (`npm run test:matrix`)",
    "",
    `${green} of ${cells} cells green, in ${minutes} minutes on ${shards} parallel Jest processes.`,
    "",
    parts[0]?.header ?? "",
    ...rows,
    "",
  ].join("\n"),
);
// Formatted as `npm run lint` (prettier --check .) expects the committed file.
spawnSync(process.execPath, [
  join(root, "node_modules", "prettier", "bin", "prettier.cjs"),
  "--write",
  join(root, "test", "results", "matrix.md"),
]);
console.log(`${green} of ${cells} cells green (${minutes} min): test/results/matrix.md`);
process.exit(codes.every((c) => c === 0) && green === cells && cells > 0 ? 0 : 1);
