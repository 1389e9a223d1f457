import { RealClock } from "../../local";
import type { EmulatorSettings } from "../../emulator/context";
import type { RotationReport } from "../../shared/rotation";
import { startRotationRig } from "../helpers/rotation";
import { consumers, outages, regenerationCounts, type OutageEntry } from "../helpers/estate";

/**
 * The settings matrix of DESIGN §11: every plausible answer to what Azure does not document, combined.
 * Each cell rotates the whole demo estate on a fresh emulator set that way, with a real clock (the
 * emulator's propagation, caches and auto-syncs run in real time), and checks I1–I4 from the emulator's
 * own records: its outage log, its regeneration log and which key every consumer holds at the end.
 */

export type Policy = "key1" | "consumers" | "keepIfLive";

export type MatrixSettings = Pick<
  EmulatorSettings,
  | "resyncPolicy"
  | "batchSyncPolicy"
  | "resyncRewritesDefaultDatastores"
  | "keyPropagationSeconds"
  | "workspaceAutoSyncSeconds"
  | "consumerKeyCacheSeconds"
  | "keyCreationTimeKnown"
>;

export interface Cell {
  id: string;
  settings: MatrixSettings;
  graceSeconds: number;
}

/**
 * Scaled-down times: long enough to land where they matter (a new key refused while keyturn would move
 * consumers, an auto-sync inside the grace, a cache that outlives the move), short enough for ~300 cells.
 */
export const SCALED = {
  propagationSeconds: 2,
  cacheSeconds: 1,
  /** After a regeneration: inside the grace that follows it, whatever the propagation. */
  autoSyncSeconds: 3.5,
  graceSeconds: 4,
};

const POLICIES: readonly Policy[] = ["key1", "consumers", "keepIfLive"];

/** The full product: 3 × 3 × 2 × 2 × 2 × 2 × 2 = 288 cells. */
export function fullMatrix(): Cell[] {
  const cells: Cell[] = [];
  for (const resyncPolicy of POLICIES)
    for (const batchSyncPolicy of POLICIES)
      for (const resyncRewritesDefaultDatastores of [false, true])
        for (const keyPropagationSeconds of [0, SCALED.propagationSeconds])
          for (const workspaceAutoSyncSeconds of [0, SCALED.autoSyncSeconds])
            for (const consumerKeyCacheSeconds of [0, SCALED.cacheSeconds])
              for (const keyCreationTimeKnown of [true, false])
                cells.push(
                  cell(
                    {
                      resyncPolicy,
                      batchSyncPolicy,
                      resyncRewritesDefaultDatastores,
                      keyPropagationSeconds,
                      workspaceAutoSyncSeconds,
                      consumerKeyCacheSeconds,
                      keyCreationTimeKnown,
                    },
                    SCALED.graceSeconds,
                  ),
                );
  return cells;
}

/** The worst answer to every question at once, and the kindest: the cells `npm test` runs. */
export function fastCells(): Cell[] {
  const worst: MatrixSettings = {
    resyncPolicy: "key1",
    batchSyncPolicy: "key1",
    resyncRewritesDefaultDatastores: true,
    keyPropagationSeconds: SCALED.propagationSeconds,
    workspaceAutoSyncSeconds: SCALED.autoSyncSeconds,
    consumerKeyCacheSeconds: SCALED.cacheSeconds,
    keyCreationTimeKnown: false,
  };
  return [
    cell(worst, SCALED.graceSeconds),
    cell(
      {
        ...worst,
        resyncPolicy: "keepIfLive",
        batchSyncPolicy: "consumers",
        workspaceAutoSyncSeconds: 0,
        keyCreationTimeKnown: true,
      },
      SCALED.graceSeconds,
    ),
    cell(
      {
        ...worst,
        resyncPolicy: "consumers",
        batchSyncPolicy: "keepIfLive",
        keyPropagationSeconds: 0,
        consumerKeyCacheSeconds: 0,
      },
      SCALED.graceSeconds,
    ),
  ];
}

/** The issue's own check, at full size: 10 s propagation, 20 s caches, a 30 s grace. */
export function doneWhenCell(): Cell {
  return cell(
    {
      resyncPolicy: "key1",
      batchSyncPolicy: "key1",
      resyncRewritesDefaultDatastores: true,
      keyPropagationSeconds: 10,
      workspaceAutoSyncSeconds: 0,
      consumerKeyCacheSeconds: 20,
      keyCreationTimeKnown: true,
    },
    30,
  );
}

function cell(settings: MatrixSettings, graceSeconds: number): Cell {
  const s = settings;
  const id = [
    `resync=${s.resyncPolicy}`,
    `batch=${s.batchSyncPolicy}`,
    `rewrite=${s.resyncRewritesDefaultDatastores ? "yes" : "no"}`,
    `propagation=${s.keyPropagationSeconds}s`,
    `autoSync=${s.workspaceAutoSyncSeconds}s`,
    `cache=${s.consumerKeyCacheSeconds}s`,
    `keyCreationTime=${s.keyCreationTimeKnown ? "known" : "null"}`,
  ].join(" ");
  return { id, settings, graceSeconds };
}

export interface CellResult {
  cell: Cell;
  outcomes: Record<string, string>;
  /** Outages in the emulator's log, and how many of them no reported window accounts for. */
  outages: OutageEntry[];
  unreported: string[];
  /** Accounts whose keys were not each regenerated exactly once. */
  regenerationProblems: string[];
  /** Consumers on a dead key at the end. */
  dead: string[];
  /** Accounts not rotated (other than the one that needs no rotation). */
  notRotated: string[];
  reportedWindows: number;
  durationMs: number;
}

export function passed(r: CellResult): boolean {
  return (
    r.unreported.length === 0 &&
    r.regenerationProblems.length === 0 &&
    r.dead.length === 0 &&
    r.notRotated.length === 0
  );
}

/** Slack between the emulator's clock and the orchestration's measurement of the same window. */
const WINDOW_SLACK_MS = 1_500;

export async function runCell(cell: Cell): Promise<CellResult> {
  const rig = await startRotationRig({
    clock: new RealClock(),
    emulator: { settings: { ...cell.settings } },
  });
  const started = Date.now();
  try {
    const { report } = await rig.rotate(undefined, { force: true, graceSeconds: cell.graceSeconds });
    const durationMs = Date.now() - started;
    // Whatever the emulator still has scheduled (an auto-sync, a cache expiring) happens before the check.
    const settleMs =
      (cell.settings.workspaceAutoSyncSeconds + cell.settings.consumerKeyCacheSeconds) * 1000 + 500;
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    return await judge(cell, report, await outages(rig.emulator), rig.emulator, durationMs);
  } finally {
    await rig.stop();
  }
}

async function judge(
  cell: Cell,
  report: RotationReport,
  log: OutageEntry[],
  emulator: Parameters<typeof consumers>[0],
  durationMs: number,
): Promise<CellResult> {
  const outcomes = Object.fromEntries(report.accounts.map((a) => [a.name, a.outcome]));
  const notRotated = report.accounts
    .filter((a) => a.outcome !== "rotated" && a.skipCode !== "shared-key-disabled")
    .map((a) => `${a.name}: ${a.outcome}${a.reason ? ` (${a.reason})` : ""}`);
  const counts = regenerationCounts(emulator);
  const regenerationProblems = report.accounts
    .filter((a) => a.outcome === "rotated")
    .flatMap((a) => {
      const c = counts[a.name] ?? { key1: 0, key2: 0 };
      return c.key1 === 1 && c.key2 === 1 ? [] : [`${a.name}: key1 ×${c.key1}, key2 ×${c.key2}`];
    });
  const extra = Object.keys(counts).filter((name) => outcomes[name] !== "rotated");
  for (const name of extra) regenerationProblems.push(`${name} was not rotated but had keys regenerated`);
  const windows = report.accounts.flatMap((a) => a.outages);
  const cacheMs = cell.settings.consumerKeyCacheSeconds * 1000;
  const unreported = log.flatMap((o) => {
    if (o.end === undefined || o.durationMs === undefined) return [`${o.kind} ${o.name}: still open`];
    // A reported window covers the outage if it is the same consumer's and at least as long (a cache
    // keeps the dead key a little longer than the service held it).
    const covered = windows.some(
      (w) => w.name === o.name && o.durationMs! <= w.durationMs + cacheMs + WINDOW_SLACK_MS,
    );
    return covered ? [] : [`${o.kind} ${o.name}: ${o.durationMs} ms, not reported`];
  });
  const dead = (await consumers(emulator))
    .filter((c) => c.heldKeyName === null)
    .map((c) => `${c.kind} ${c.name}`);
  return {
    cell,
    outcomes,
    outages: log,
    unreported,
    regenerationProblems,
    dead,
    notRotated,
    reportedWindows: windows.length,
    durationMs,
  };
}

/** One row of the committed table. */
export function matrixRow(r: CellResult): string {
  const s = r.cell.settings;
  const rotated = Object.values(r.outcomes).filter((o) => o === "rotated").length;
  const regenerations = r.regenerationProblems.length === 0 ? "each once" : r.regenerationProblems.join("; ");
  return `| ${s.resyncPolicy} | ${s.batchSyncPolicy} | ${s.resyncRewritesDefaultDatastores ? "yes" : "no"} | ${s.keyPropagationSeconds} | ${s.workspaceAutoSyncSeconds} | ${s.consumerKeyCacheSeconds} | ${s.keyCreationTimeKnown ? "known" : "null"} | ${r.cell.graceSeconds} | ${rotated}/${Object.keys(r.outcomes).length} | ${r.outages.length} / ${r.unreported.length} | ${r.reportedWindows} | ${regenerations} | ${r.dead.length} | ${(r.durationMs / 1000).toFixed(1)} | ${passed(r) ? "pass" : "FAIL"} |`;
}

/** The committed table's head: what each column means. */
export const MATRIX_HEADER = [
  "Each cell rotates the demo estate (keyturn's real functions on the local host, a real clock) on a fresh emulator with the settings shown, then reads the emulator's outage log, regeneration log and consumers.",
  "",
  "Columns: the emulator settings (DESIGN §11); keyturn's grace; accounts rotated (the account with shared-key access disabled is reported as needing no rotation and is not counted as rotated); outages in the emulator's log / of them not covered by a window keyturn reported (a covered outage is the same consumer's, no longer than the reported window plus the consumer's cache and 1.5 s of clock slack); windows keyturn reported (workspaces measured, Batch possible); key regenerations per rotated account; consumers on a dead key at the end; the rotation's wall time.",
  "",
  "| resync | batch sync | resync rewrites defaults | propagation s | auto-sync s | cache s | keyCreationTime | grace s | rotated | outages / unreported | reported windows | regenerations | dead at end | seconds | cell |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
].join("\n");
