import type { FaultRule } from "../../emulator/faults";

/**
 * The chaos matrix (issue 9, deliverable 3): every step boundary of one account's rotation × a fault.
 * This table is the only definition of a cell: `npm run test:chaos` runs every row, `npm test` the rows
 * marked `sample`. harness.ts lands each fault at its boundary and judges the invariants.
 */

/** Where in one account's rotation the fault lands (DESIGN §2; shared/rotation/plan.ts steps). */
export type Boundary =
  /** Discovery (rotateAll): before the account's plan exists; nothing is written yet. */
  | "during-discovery"
  /** The regenerate-standby activity has started: the standby key is about to be regenerated. */
  | "before-regenerate-standby"
  /** The standby key was regenerated; no consumer moved yet. */
  | "after-regenerate-standby"
  /** The moves to the new standby (datastore PUTs, Key Vault version, Batch sync, workspace resync). */
  | "during-moves"
  /** The verification of the moves (secrets read back, data-plane probes, listKeys, lastKeySync). */
  | "during-verification"
  /** The grace timer is running (verification done, the old active key still valid). */
  | "during-grace"
  /** After the late-datastore check, the old active key is about to be regenerated. */
  | "before-regenerate-active"
  /** The old active key was regenerated; the final resync and verification have not run. */
  | "after-regenerate-active"
  /** The final resync/sync of service-chosen consumers and the final verification. */
  | "during-final-resync";

export const BOUNDARIES: readonly Boundary[] = [
  "during-discovery",
  "before-regenerate-standby",
  "after-regenerate-standby",
  "during-moves",
  "during-verification",
  "during-grace",
  "before-regenerate-active",
  "after-regenerate-active",
  "during-final-resync",
];

export type Family =
  | "sigkill+resume"
  | "429 storm"
  | "500 burst"
  | "dropped connection"
  | "timeout"
  | "failed resync"
  | "key regenerated outside"
  | "datastore deleted"
  | "datastore PUT rejected"
  | "Key Vault unavailable"
  | "Batch sync fails";

/** The storage account a cell rotates: each has the consumers its faults need. */
export type ChaosAccount =
  /** A datastore (mlw-score/batch_outputs), a Key Vault secret (read by scoring-app), Batch auto-storage. */
  | "stmlbatch"
  /** A workspace (mlw-research, resync policy key1: the I1 window) and its two default datastores. */
  | "stmlresearch";

/** An emulator fault rule as POST /_admin/faults takes it. */
export type RuleSpec = Omit<FaultRule, "id">;

/** How a SIGKILL of the CLI process finds its moment, watched from the emulator's side. */
export type KillTrigger =
  /** When a request of this operation arrives it is held (never answered) and the process killed. */
  | { on: "request"; operation: string; armAfter?: WriteMatch }
  /** When a write whose change reason matches took effect, before its answer leaves. */
  | { on: "write"; write: WriteMatch }
  /** While the account's grace timer runs (its custom status in the state directory says "grace"). */
  | { on: "grace" };

/** The n-th (1-based) emulator change whose reason matches, e.g. /^regenerateKey stm/ for keyturn's own. */
export interface WriteMatch {
  reason: RegExp;
  nth?: number;
}

export type Fault =
  | { kind: "rule"; rule: RuleSpec }
  | { kind: "kill"; trigger: KillTrigger }
  | { kind: "regenerate-outside"; key: "standby" | "active" }
  | { kind: "delete-datastore"; workspace: string; datastore: string };

export type Outcome = "rotated" | "stalled" | "failed" | "skipped";

export interface Cell {
  id: string;
  family: Family;
  boundary: Boundary;
  account: ChaosAccount;
  fault: Fault;
  /**
   * In-process cells land at the boundary's activity start (or end); with `landing`, right after this
   * emulator write instead (e.g. after the first consumer moved, the others not).
   */
  landing?: WriteMatch;
  /** What the fault is, for the table. */
  what: string;
  /**
   * Outcomes the first run may end in: rotated, or safely stalled (the old key valid, nobody on a dead
   * key). `failed` only where the fault itself killed the key consumers were on (nothing can be safe then).
   */
  expect: Outcome[];
  /** A stalled or failed reason must match: it names the consumer or the fault. */
  names?: RegExp;
  /** Outages the fault itself causes (a key regenerated outside keyturn): not keyturn's, not I1's. */
  faultOutages?: boolean;
  sample?: boolean;
}

const SAFE: Outcome[] = ["rotated", "stalled"];
const ROTATED: Outcome[] = ["rotated"];
/**
 * A fault that lasts past the old active key's regeneration: no safe stall exists any more (the old
 * key is dead), so a consumer keyturn could not resync is a failure, named, for a person to act on.
 */
const FAILED_NAMED: Outcome[] = ["failed"];

/** The consumers of each account, as stall reasons name them. */
const CONSUMERS: Record<ChaosAccount, RegExp> = {
  stmlbatch: /batch_outputs|stmlbatch-key|batchmltrain|scoring-app/,
  stmlresearch: /mlw-research|workspaceblobstore|workspacefilestore/,
};

/** The first call of each boundary that a request fault aims at (emulator operation names). */
const AIM: Record<Boundary, string | undefined> = {
  "during-discovery": "datastores.listSecrets",
  "before-regenerate-standby": "storageAccounts.regenerateKey",
  // undefined: the very next ARM call, whatever it is (only this rotation is running).
  "after-regenerate-standby": undefined,
  "during-moves": "datastores.createOrUpdate",
  "during-verification": "datastores.listSecrets",
  // Nothing calls ARM during the grace: the fault waits for the late-datastore check after it.
  "during-grace": "datastores.list",
  "before-regenerate-active": "storageAccounts.regenerateKey",
  "after-regenerate-active": undefined,
  // The account's service-chosen consumer: see FINAL_MOVE.
  "during-final-resync": undefined,
};

/** The move after the old active key is regenerated: the service-chosen consumer's. */
const FINAL_MOVE: Record<ChaosAccount, string> = {
  stmlbatch: "batchAccounts.synchronizeAutoStorageKeys",
  stmlresearch: "workspaces.resyncKeys",
};

function aimOf(account: ChaosAccount, boundary: Boundary): string | undefined {
  return boundary === "during-final-resync" ? FINAL_MOVE[account] : AIM[boundary];
}

/** A request fault aimed at the boundary's first call. */
function aimed(account: ChaosAccount, boundary: Boundary, spec: Omit<RuleSpec, "operation">): Fault {
  const operation = aimOf(account, boundary);
  return { kind: "rule", rule: { ...spec, ...(operation ? { operation } : {}) } };
}

/** What a stall or failure caused by a request fault says: the call it struck, or the status it got. */
function requestWords(account: ChaosAccount, boundary: Boundary): RegExp {
  const operation = aimOf(account, boundary);
  return new RegExp(
    `${operation ? `${operation.replace(/\./g, "\\.")}|` : ""}\\b(429|500)\\b|no answer|throttled`,
  );
}

function aimText(account: ChaosAccount, boundary: Boundary): string {
  return aimOf(account, boundary) ?? "the next ARM call";
}

/** The boundaries a request fault family visits: every one after discovery. */
const REQUEST_BOUNDARIES = BOUNDARIES.filter((b) => b !== "during-discovery");

/** Writes whose answer can be lost after they took effect (a drop or timeout `when: after`). */
const WRITES: Partial<Record<Boundary, true>> = {
  "before-regenerate-standby": true,
  "during-moves": true,
  "before-regenerate-active": true,
  "during-final-resync": true,
};

function requestFamilies(account: ChaosAccount): Cell[] {
  const cells: Cell[] = [];
  for (const boundary of REQUEST_BOUNDARIES) {
    const at = aimText(account, boundary);
    const lost = WRITES[boundary] === true;
    const when = lost ? "after" : "before";
    const cell = (id: string, family: Family, rule: Omit<RuleSpec, "operation">, what: string): Cell => ({
      id: `${id}@${boundary}`,
      family,
      boundary,
      account,
      fault: aimed(account, boundary, rule),
      what,
      expect: ROTATED,
      names: requestWords(account, boundary),
    });
    cells.push(
      // ARM's 429 always carries Retry-After; a storm without it is what keyturn must still pace through.
      cell(
        "429-storm",
        "429 storm",
        { count: 3, action: { type: "status", status: 429, code: "TooManyRequests" } },
        `3 × 429 without Retry-After on ${at}`,
      ),
      {
        ...cell(
          "500-burst",
          "500 burst",
          { count: 3, action: { type: "status", status: 500, code: "InternalServerError" } },
          `3 × 500 on ${at}`,
        ),
        sample: boundary === "during-moves",
      },
      {
        ...cell(
          "drop",
          "dropped connection",
          { count: 1, action: { type: "drop", when } },
          lost
            ? `${at} takes effect, then its connection drops (the answer is lost)`
            : `the connection of ${at} drops before an answer`,
        ),
        sample: boundary === "before-regenerate-standby",
      },
      cell(
        "timeout",
        "timeout",
        { count: 1, action: { type: "timeout", seconds: 60, when } },
        lost
          ? `${at} takes effect, then never answers`
          : `${at} never answers (the emulator would hold it 60 s)`,
      ),
    );
    // The harmless twin of the lost answer: the connection drops before the key is touched.
    if (boundary === "before-regenerate-standby" || boundary === "before-regenerate-active")
      cells.push(
        cell(
          "drop-before-write",
          "dropped connection",
          { count: 1, action: { type: "drop", when: "before" } },
          `the connection of ${at} drops before the key is touched`,
        ),
      );
  }
  return cells;
}

/** SIGKILL of the `keyturn rotate` process at each boundary, then `keyturn resume`. */
function killCells(account: ChaosAccount, boundaries: readonly Boundary[]): Cell[] {
  const serviceMove = account === "stmlbatch" ? /^syncAutoStorageKeys/ : /^resyncKeys/;
  const regenerate = /^regenerateKey stml/;
  const triggers: Record<Boundary, { trigger: KillTrigger; what: string }> = {
    "during-discovery": {
      trigger: { on: "request", operation: "storageAccounts.listKeys" },
      what: "killed while the account's keys are read for its snapshot",
    },
    "before-regenerate-standby": {
      trigger: { on: "request", operation: "storageAccounts.regenerateKey" },
      what: "killed while regenerating the standby key is in flight, not yet done",
    },
    "after-regenerate-standby": {
      trigger: { on: "write", write: { reason: regenerate, nth: 1 } },
      what: "killed after the standby key was regenerated, before the answer arrived",
    },
    "during-moves": {
      trigger: {
        on: "write",
        write: {
          reason: account === "stmlbatch" ? /^datastore PUT|^key vault secret set/ : /^datastore PUT/,
        },
      },
      what: "killed after the first consumer moved, the others not",
    },
    "during-verification": {
      trigger: { on: "request", operation: "datastores.list", armAfter: { reason: serviceMove, nth: 1 } },
      what: "killed while verifying the moves",
    },
    "during-grace": {
      trigger: { on: "grace" },
      what: "killed while the grace timer runs",
    },
    "before-regenerate-active": {
      trigger: {
        on: "request",
        operation: "storageAccounts.regenerateKey",
        armAfter: { reason: regenerate, nth: 1 },
      },
      what: "killed while regenerating the old active key is in flight, not yet done",
    },
    "after-regenerate-active": {
      trigger: { on: "write", write: { reason: regenerate, nth: 2 } },
      what: "killed after the old active key was regenerated, before the answer arrived",
    },
    "during-final-resync": {
      trigger: { on: "write", write: { reason: serviceMove, nth: 2 } },
      what: "killed after the final resync/sync took effect, before its answer",
    },
  };
  return boundaries.map((boundary) => ({
    id: `sigkill@${boundary}`,
    family: "sigkill+resume",
    boundary,
    account,
    fault: { kind: "kill", trigger: triggers[boundary].trigger },
    what: triggers[boundary].what,
    expect: ROTATED,
    sample: account === "stmlresearch" && boundary === "during-moves",
  }));
}

const STMLRESEARCH = "stmlresearch";
const STMLBATCH = "stmlbatch";

const TABLE: Cell[] = [
  ...killCells(STMLRESEARCH, BOUNDARIES),
  ...killCells(STMLBATCH, ["during-moves", "during-final-resync"]),
  ...requestFamilies(STMLBATCH),
  // A workspace resync is a long-running operation that ends Failed.
  {
    id: "failed-resync@during-moves",
    family: "failed resync",
    boundary: "during-moves",
    account: STMLRESEARCH,
    fault: { kind: "rule", rule: { operation: "resyncKeys", count: 1, action: { type: "failLro" } } },
    what: "the resync of mlw-research to the new standby ends Failed (once)",
    expect: SAFE,
    names: /mlw-research/,
    sample: true,
  },
  {
    id: "failed-resync-persistent@during-moves",
    family: "failed resync",
    boundary: "during-moves",
    account: STMLRESEARCH,
    fault: { kind: "rule", rule: { operation: "resyncKeys", count: 100, action: { type: "failLro" } } },
    what: "every resync of mlw-research ends Failed",
    expect: SAFE,
    names: /mlw-research/,
  },
  {
    id: "failed-resync@during-final-resync",
    family: "failed resync",
    boundary: "during-final-resync",
    account: STMLRESEARCH,
    fault: { kind: "rule", rule: { operation: "resyncKeys", count: 1, action: { type: "failLro" } } },
    what: "the resync after the old active key died ends Failed (once)",
    expect: ROTATED,
  },
  {
    id: "failed-resync@after-regenerate-active",
    family: "failed resync",
    boundary: "after-regenerate-active",
    account: STMLRESEARCH,
    fault: {
      kind: "rule",
      rule: {
        operation: "workspaces.resyncKeys",
        count: 1,
        action: { type: "status", status: 500, code: "InternalServerError", when: "after" },
      },
    },
    what: "the final resync starts, then its POST answers 500",
    expect: ROTATED,
  },
  // Keys regenerated behind keyturn's back (admin POST /_admin/storageAccounts/{name}/regenerateKey).
  ...(
    [
      ["before-regenerate-standby", "standby", SAFE, false],
      ["before-regenerate-standby", "active", ["failed", "stalled"], true],
      ["after-regenerate-standby", "standby", SAFE, false],
      ["during-moves", "standby", ["failed", "stalled"], true],
      ["during-grace", "standby", ["failed", "stalled"], true],
      // The workspace holds the active key (resync policy key1): it dies with it, by the fault's hand.
      ["during-grace", "active", SAFE, true],
      ["after-regenerate-active", "standby", ["failed", "stalled"], true],
    ] as const
  ).map(([boundary, key, expect, breaks]): Cell => ({
    id: `regenerated-outside-${key}@${boundary}`,
    family: "key regenerated outside",
    boundary,
    account: STMLRESEARCH,
    fault: { kind: "regenerate-outside", key },
    // Mid-moves: after the first datastore holds the new standby, the others not yet.
    ...(boundary === "during-moves" ? { landing: { reason: /^datastore PUT/ } } : {}),
    what: `someone regenerates the ${key === "standby" ? "standby (or new active)" : "active"} key`,
    expect: [...expect],
    names: /outside keyturn|regenerated/,
    faultOutages: breaks,
    sample: boundary === "after-regenerate-standby",
  })),
  // mlw-score/batch_outputs, stmlbatch's datastore, deleted by someone (admin DELETE).
  ...(
    [
      // Before its move: the PUT finds nothing to re-register, so it is gone, not a failed move.
      ["before-regenerate-standby", ROTATED],
      // Right after its PUT: verification finds it gone.
      ["during-moves", ROTATED],
      ["during-verification", ROTATED],
      ["during-grace", ROTATED],
      ["after-regenerate-active", ROTATED],
    ] as const
  ).map(([boundary, expect]): Cell => ({
    id: `datastore-deleted@${boundary}`,
    family: "datastore deleted",
    boundary,
    account: STMLBATCH,
    fault: { kind: "delete-datastore", workspace: "mlw-score", datastore: "batch_outputs" },
    ...(boundary === "during-moves" ? { landing: { reason: /^datastore PUT/ } } : {}),
    what:
      boundary === "during-moves"
        ? "mlw-score/batch_outputs is deleted right after keyturn re-registered it"
        : "mlw-score/batch_outputs is deleted",
    expect: [...expect],
    names: /batch_outputs/,
    sample: boundary === "during-verification",
  })),
  // Re-registering mlw-score/batch_outputs is refused.
  ...(
    [
      ["rejected", 100, 400, "UserError", "every PUT of batch_outputs answers 400 (validation)", ["stalled"]],
      ["unavailable-once", 1, 503, "ServiceUnavailable", "one PUT of batch_outputs answers 503", ROTATED],
      ["conflict", 1, 409, "Conflict", "one PUT of batch_outputs answers 409 (another operation)", SAFE],
    ] as const
  ).map(([id, count, status, code, what, expect]): Cell => ({
    id: `datastore-put-${id}@during-moves`,
    family: "datastore PUT rejected",
    boundary: "during-moves",
    account: STMLBATCH,
    fault: {
      kind: "rule",
      rule: {
        operation: "datastores.createOrUpdate",
        path: "/datastores/batch_outputs$",
        count,
        action: { type: "status", status, code },
      },
    },
    what,
    expect: [...expect],
    names: /batch_outputs/,
    sample: id === "rejected",
  })),
  // The vault's data plane answers 503 (the SecretClient retries 503 three times).
  ...(
    [
      ["during-discovery", 100, ["failed", "stalled"]],
      ["during-moves", 2, ROTATED],
      ["during-moves", 100, ["stalled"]],
      ["during-verification", 100, ["stalled"]],
      ["during-grace", 100, SAFE],
      ["during-final-resync", 100, SAFE],
    ] as const
  ).map(([boundary, count, expect]): Cell => ({
    id: `key-vault-unavailable${count > 10 ? "" : "-briefly"}@${boundary}`,
    family: "Key Vault unavailable",
    boundary,
    account: STMLBATCH,
    fault: {
      kind: "rule",
      rule: {
        operation: "keyVault",
        count,
        action: { type: "status", status: 503, code: "ServiceUnavailable" },
      },
    },
    what: count > 10 ? "the vault answers 503 from here on" : `the vault answers ${count} × 503`,
    expect: [...expect],
    names: /stmlbatch-key|503|Key Vault|vault/i,
    sample: boundary === "during-moves" && count <= 10,
  })),
  // Batch auto-storage sync fails (the SDK retries a 500 three times).
  ...(
    [
      ["during-moves", 1, ROTATED],
      ["during-moves", 100, ["stalled"]],
      ["during-final-resync", 100, FAILED_NAMED],
    ] as const
  ).map(([boundary, count, expect]): Cell => ({
    id: `batch-sync-fails${count > 10 ? "" : "-once"}@${boundary}`,
    family: "Batch sync fails",
    boundary,
    account: STMLBATCH,
    fault: {
      kind: "rule",
      rule: {
        operation: "batchAccounts.synchronizeAutoStorageKeys",
        count,
        action: { type: "status", status: 500, code: "InternalServerError" },
      },
    },
    what: count > 10 ? "every syncAutoStorageKeys answers 500" : "one syncAutoStorageKeys answers 500",
    expect: [...expect],
    names: /batchmltrain/,
  })),
];

/** Every cell, ids prefixed with the account (unique). */
export const CELLS: readonly Cell[] = TABLE.map((cell) => ({
  ...cell,
  id: `${cell.account}:${cell.id}`,
  // A reason may name the fault (the cell's words) or the consumer it stopped at.
  names: cell.names
    ? new RegExp(`${cell.names.source}|${CONSUMERS[cell.account].source}`, cell.names.flags)
    : CONSUMERS[cell.account],
}));

export const SAMPLE: readonly Cell[] = CELLS.filter((c) => c.sample === true);

export const FAMILIES: readonly Family[] = [
  "sigkill+resume",
  "429 storm",
  "500 burst",
  "dropped connection",
  "timeout",
  "failed resync",
  "key regenerated outside",
  "datastore deleted",
  "datastore PUT rejected",
  "Key Vault unavailable",
  "Batch sync fails",
];
