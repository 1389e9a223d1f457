import { InvalidInputError } from "../errors";

/**
 * The numbers a rotation runs with (grace, parallelism, minimum key age): their defaults, their limits
 * and the one parser of each, shared by the HTTP API, the CLI and the app settings.
 */

export const DEFAULT_GRACE_SECONDS = 60 * 60; // the workspace's own key cache, per the ML how-to
/** Longer graces hold the account's rotation, and its singleton lock, open for no known cache. */
export const MAX_GRACE_SECONDS = 24 * 60 * 60;
/**
 * Accounts doing ARM work at once. The ARM pacer holds the estate to Azure's budget whatever this is;
 * the window only has to be wide enough that every account's first calls start early, so that the
 * graces overlap the budget-bound work instead of following it (DESIGN §10).
 */
export const DEFAULT_PARALLELISM = 32;
export const MIN_PARALLELISM = 1;
/** ARM's per-subscription write bucket refills at 10/s; more accounts at once only buys 429s. */
export const MAX_PARALLELISM = 64;
/**
 * A monthly schedule sees the active key at 28-31 days; 20 leaves room for February and for a late
 * finish of last month's run, while still stopping a second rotation right after a manual one.
 */
export const DEFAULT_MIN_KEY_AGE_DAYS = 20;
export const MAX_MIN_KEY_AGE_DAYS = 3650;

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * Parses "0", "90s", "60m", "2h", "1d" or combinations like "1h30m" into seconds. A bare number other
 * than 0 is refused: "90" could mean seconds or minutes, and guessing wrong is a 60x error in a grace.
 */
export function parseDuration(text: string, what = "duration"): number {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === "0") return 0;
  if (/^\d+$/.test(trimmed)) {
    throw new InvalidInputError([
      `${what} "${text}" has no unit: write it as ${trimmed}s, ${trimmed}m or ${trimmed}h`,
    ]);
  }
  if (!/^(\d+[smhd])+$/.test(trimmed)) {
    throw new InvalidInputError([
      `${what} "${text}" is not a duration: use a number with a unit s, m, h or d, such as 90s, 60m, 2h or 1h30m`,
    ]);
  }
  let seconds = 0;
  for (const match of trimmed.matchAll(/(\d+)([smhd])/g)) {
    seconds += Number(match[1]) * (UNIT_SECONDS[match[2] ?? "s"] ?? 1);
  }
  return seconds;
}

/** "0s", "90s", "60m", "1h30m", "2h": the same units `parseDuration` reads. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s === 0) return "0s";
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h === 0 && m === 0) return `${rest}s`;
  if (h === 0) return rest === 0 ? `${m}m` : `${m}m${String(rest).padStart(2, "0")}s`;
  return m === 0 ? `${h}h` : `${h}h${String(m).padStart(2, "0")}m`;
}

/**
 * How a grace is written: in minutes (the API's `graceMinutes`, a number; the KEYTURN_GRACE_MINUTES
 * setting, decimal text) or as a duration with units (the CLI's `--grace 1h30m`).
 */
export type GraceUnit = "minutes" | "duration";

/** What a grace in minutes must be; the API's `graceMinutes` also answers it to a value of the wrong type. */
export const GRACE_MINUTES_RULE = `must be a number of minutes from 0 to ${MAX_GRACE_SECONDS / 60}`;

/**
 * Every grace keyturn is given comes through here, whatever it came from, so all have one range (0 to
 * 24h) and one message: `{what} "{value}" must be … from 0 to {maximum}` (without `what`, for a field
 * whose name the caller puts in front). Returns seconds; throws InvalidInputError.
 */
export function toGraceSeconds(value: string | number, unit: GraceUnit, what?: string): number {
  const subject = what === undefined ? "" : `${what} "${String(value)}" `;
  if (unit === "duration") {
    const seconds = parseDuration(String(value), what);
    if (seconds > MAX_GRACE_SECONDS) {
      throw new InvalidInputError([
        `${subject}must be a duration from 0 to ${formatDuration(MAX_GRACE_SECONDS)} (the maximum)`,
      ]);
    }
    return seconds;
  }
  // Decimal text only: Number() would also read "0x10" as 16 and "1e3" as 1000.
  const minutes =
    typeof value === "number" ? value : /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isFinite(minutes) || minutes < 0 || minutes * 60 > MAX_GRACE_SECONDS) {
    throw new InvalidInputError([`${subject}${GRACE_MINUTES_RULE}`]);
  }
  return Math.round(minutes * 60);
}

export function parseParallelism(value: string | number | undefined): number {
  return parseWholeNumber(value, {
    what: "parallelism",
    fallback: DEFAULT_PARALLELISM,
    min: MIN_PARALLELISM,
    max: MAX_PARALLELISM,
  });
}

export function parseMinKeyAgeDays(value: string | number | undefined): number {
  return parseWholeNumber(value, {
    what: "minimum key age in days",
    fallback: DEFAULT_MIN_KEY_AGE_DAYS,
    min: 0,
    max: MAX_MIN_KEY_AGE_DAYS,
  });
}

export interface WholeNumberRule {
  /** What the value is, e.g. `parallelism` or a setting's name: the message starts with it. */
  what: string;
  /** Given for undefined or blank text. */
  fallback: number;
  min: number;
  max: number;
  /** The unit the number counts, e.g. `seconds`: "a whole number of seconds". */
  unit?: string;
  /** Said after the range, in parentheses: what the number is for, its default. */
  note?: string;
}

/**
 * A whole number in a range, from a setting (decimal text only: no `0x10`, `1e2` or `1.0`) or a number:
 * `{what} "{value}" must be a whole number [of {unit}] from {min} to {max} [({note})]` when it is not.
 */
export function parseWholeNumber(value: string | number | undefined, rule: WholeNumberRule): number {
  if (value === undefined || (typeof value === "string" && value.trim() === "")) return rule.fallback;
  const text = String(value).trim();
  const n = typeof value === "number" ? value : /^-?\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < rule.min || n > rule.max) {
    const unit = rule.unit === undefined ? "" : ` of ${rule.unit}`;
    const note = rule.note === undefined ? "" : ` (${rule.note})`;
    throw new InvalidInputError([
      `${rule.what} "${text}" must be a whole number${unit} from ${rule.min} to ${rule.max}${note}`,
    ]);
  }
  return n;
}
