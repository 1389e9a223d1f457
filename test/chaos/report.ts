import { FAMILIES, type Cell } from "./cells";
import type { CellRun, OutageSummary, RunSummary } from "./harness";

/** test/results/chaos.md: one row per cell, the families summed up first. Nothing in it varies run to run but the date line. */
export function renderChaosTable(runs: readonly CellRun[], meta: { date: string; seconds: number }): string {
  const green = runs.filter((r) => r.violations.length === 0).length;
  const lines = [
    "# Chaos matrix",
    "",
    `Run ${meta.date}: ${runs.length} cells, ${green} green, ${runs.length - green} red, ${Math.round(meta.seconds)} s (\`npm run test:chaos\`).`,
    "",
    "Each cell rotates one storage account of the demo estate on a fresh emulator (workspace resync policy",
    "`key1`, grace 2 s, keyturn's ARM deadline 3 s), lands one fault at one step boundary, then checks:",
    "I1 (every emulator outage is a window keyturn reported, or caused by the fault itself), I2/I4 (no key",
    "regenerated twice, the standby first), I3 (no key value in the report, state, logs, audit or telemetry),",
    "the end state (rotated, or stalled with the old key valid, nobody on a dead key, and a reason naming the",
    "consumer or the fault; failed, named, only where the fault itself killed the consumers' key or outlasts the",
    "old active key, when no safe stop exists), and that a second plain run (`--force`) rotates with every",
    "consumer on a live key.",
    "",
    "| family | cells | green |",
    "|---|---|---|",
    ...FAMILIES.map((f) => {
      const of = runs.filter((r) => r.cell.family === f);
      return `| ${f} | ${of.length} | ${of.filter((r) => r.violations.length === 0).length} |`;
    }),
    "",
    "| cell | boundary | fault | first run | outages | keyturn's regenerations | second run | result |",
    "|---|---|---|---|---|---|---|---|",
    ...runs.map(row),
    "",
  ];
  return lines.join("\n");
}

function row(run: CellRun): string {
  const c: Cell = run.cell;
  const cells = [
    `\`${c.id}\``,
    c.boundary,
    `${c.family}: ${c.what}`,
    outcome(run.first),
    outages(run.first.outages, run.second?.outages),
    `${regenerations(run.first)}${run.outOfBand > 0 ? ` (+${run.outOfBand} outside keyturn)` : ""}`,
    run.second ? `${outcome(run.second)}, ${regenerations(run.second)}` : "—",
    run.violations.length === 0 ? "✅" : `❌ ${run.violations.join("; ")}`,
  ];
  return `| ${cells.map(escape).join(" | ")} |`;
}

function outcome(run: RunSummary): string {
  return run.reason && run.outcome !== "rotated"
    ? `${run.outcome}: ${shorten(run.reason, 160)}`
    : run.outcome;
}

function outages(first: OutageSummary, second?: OutageSummary): string {
  const parts: string[] = [];
  const total = first.reported + first.byFault + first.unreported;
  if (total === 0) parts.push("0");
  else {
    if (first.reported) parts.push(`${first.reported} reported window`);
    if (first.byFault) parts.push(`${first.byFault} caused by the fault`);
    if (first.unreported) parts.push(`**${first.unreported} beyond the reported windows**`);
  }
  const again = second ? second.reported + second.unreported : 0;
  if (second && again > 0)
    parts.push(
      `second run: ${second.reported} reported${second.unreported ? `, **${second.unreported} beyond the reported windows**` : ""}`,
    );
  return parts.join(", ");
}

function regenerations(run: RunSummary): string {
  return `key1 ×${run.regenerated.key1}, key2 ×${run.regenerated.key2}`;
}

function shorten(text: string, max: number): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

function escape(text: string): string {
  return text.replace(/\|/g, "\\|");
}
