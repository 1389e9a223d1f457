/**
 * The subset of NCRONTAB that Azure Functions timer triggers use: six fields, seconds first
 * (`{second} {minute} {hour} {day} {month} {day-of-week}`), evaluated in UTC (the Functions default
 * without WEBSITE_TIME_ZONE). Each field takes `*`, numbers, lists (`1,15`), ranges (`1-5`) and steps
 * (`*\/n`, `a-b/n`, `a/n`); months and days of week also take three-letter names.
 *
 * Two NCrontab behaviours differ from Vixie cron and are kept on purpose, so a schedule behaves here
 * as it will in Azure: day-of-month and day-of-week must BOTH match when both are restricted, and
 * day-of-week is 0–6 (Sunday = 0; 7 is rejected as NCrontab rejects it).
 */

import { InvalidInputError } from "./errors";

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

interface FieldSpec {
  label: string;
  min: number;
  max: number;
  names?: string[];
  namesStartAt?: number;
}

const FIELDS: FieldSpec[] = [
  { label: "second", min: 0, max: 59 },
  { label: "minute", min: 0, max: 59 },
  { label: "hour", min: 0, max: 23 },
  { label: "day", min: 1, max: 31 },
  { label: "month", min: 1, max: 12, names: MONTHS, namesStartAt: 1 },
  { label: "day-of-week", min: 0, max: 6, names: WEEKDAYS, namesStartAt: 0 },
];

/** A schedule that is not NCRONTAB: bad input, with the one reason as its message. */
export class NcrontabError extends InvalidInputError {
  constructor(message: string) {
    super([message]);
  }
}

/** A parsed schedule: the sorted values each field allows. */
export interface Ncrontab {
  readonly expression: string;
  readonly seconds: readonly number[];
  readonly minutes: readonly number[];
  readonly hours: readonly number[];
  readonly days: readonly number[];
  readonly months: readonly number[];
  readonly daysOfWeek: readonly number[];
  /** Whether `date` (UTC, whole seconds) is an occurrence. */
  matches(date: Date): boolean;
  /** The first occurrence strictly after `after` (NCrontab's contract), or undefined if there is none. */
  next(after: Date): Date | undefined;
}

function parseValue(text: string, spec: FieldSpec, expression: string): number {
  const upper = text.toUpperCase();
  const nameIndex = spec.names?.indexOf(upper) ?? -1;
  if (nameIndex >= 0) return nameIndex + (spec.namesStartAt ?? 0);
  if (!/^\d+$/.test(text)) {
    throw new NcrontabError(`'${expression}': "${text}" is not a valid ${spec.label} value.`);
  }
  const value = Number(text);
  if (value < spec.min || value > spec.max) {
    throw new NcrontabError(
      `'${expression}': ${spec.label} ${value} is out of range (${spec.min}-${spec.max}).`,
    );
  }
  return value;
}

function parseField(text: string, spec: FieldSpec, expression: string): number[] {
  const allowed = new Set<number>();
  for (const item of text.split(",")) {
    if (item === "") throw new NcrontabError(`'${expression}': empty list item in the ${spec.label} field.`);
    const [rangeText = "", stepText, ...extra] = item.split("/");
    if (extra.length > 0) throw new NcrontabError(`'${expression}': "${item}" has more than one step.`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) {
        throw new NcrontabError(
          `'${expression}': step "${stepText}" in the ${spec.label} field must be ≥ 1.`,
        );
      }
      step = Number(stepText);
    }
    let low: number;
    let high: number;
    if (rangeText === "*") {
      low = spec.min;
      high = spec.max;
    } else if (rangeText.includes("-")) {
      const [a = "", b = "", ...more] = rangeText.split("-");
      if (more.length > 0) throw new NcrontabError(`'${expression}': "${rangeText}" is not a range.`);
      low = parseValue(a, spec, expression);
      high = parseValue(b, spec, expression);
      if (low > high) {
        throw new NcrontabError(
          `'${expression}': range ${rangeText} in the ${spec.label} field is backwards.`,
        );
      }
    } else {
      low = parseValue(rangeText, spec, expression);
      // `a/n` means "from a to the end, every n", as in NCrontab.
      high = stepText !== undefined ? spec.max : low;
    }
    for (let v = low; v <= high; v += step) allowed.add(v);
  }
  return [...allowed].sort((x, y) => x - y);
}

export function parseNcrontab(expression: string): Ncrontab {
  const tokens = expression.trim().split(/\s+/);
  if (tokens.length !== 6) {
    throw new NcrontabError(
      `'${expression}' is not a valid NCRONTAB expression: it needs 6 fields ` +
        `({second} {minute} {hour} {day} {month} {day-of-week}), it has ${tokens.length}.`,
    );
  }
  const [seconds, minutes, hours, days, months, daysOfWeek] = FIELDS.map((spec, i) =>
    parseField(tokens[i] ?? "", spec, expression),
  ) as [number[], number[], number[], number[], number[], number[]];

  const has = (list: readonly number[], value: number) => list.includes(value);
  const dayMatches = (d: Date) =>
    has(months, d.getUTCMonth() + 1) && has(days, d.getUTCDate()) && has(daysOfWeek, d.getUTCDay());

  /** First time of day at or after h:m:s allowed by the time fields, as seconds since midnight. */
  const firstTimeFrom = (h: number, m: number, s: number): number | undefined => {
    for (const hour of hours) {
      if (hour < h) continue;
      if (hour > h) return hour * 3600 + (minutes[0] ?? 0) * 60 + (seconds[0] ?? 0);
      for (const minute of minutes) {
        if (minute < m) continue;
        if (minute > m) return hour * 3600 + minute * 60 + (seconds[0] ?? 0);
        const second = seconds.find((x) => x >= s);
        if (second !== undefined) return hour * 3600 + minute * 60 + second;
      }
    }
    return undefined;
  };

  return {
    expression,
    seconds,
    minutes,
    hours,
    days,
    months,
    daysOfWeek,
    matches(date: Date): boolean {
      return (
        dayMatches(date) &&
        has(hours, date.getUTCHours()) &&
        has(minutes, date.getUTCMinutes()) &&
        has(seconds, date.getUTCSeconds())
      );
    },
    next(after: Date): Date | undefined {
      const start = new Date(Math.floor(after.getTime() / 1000) * 1000 + 1000);
      let day = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate());
      let h = start.getUTCHours();
      let m = start.getUTCMinutes();
      let s = start.getUTCSeconds();
      // 28 years covers every weekday/leap-year combination; past that the schedule never fires
      // (e.g. "0 0 0 30 2 *").
      for (let i = 0; i < 366 * 28; i++) {
        if (dayMatches(new Date(day))) {
          const time = firstTimeFrom(h, m, s);
          if (time !== undefined) return new Date(day + time * 1000);
        }
        day += 86_400_000;
        h = m = s = 0;
      }
      return undefined;
    },
  };
}
