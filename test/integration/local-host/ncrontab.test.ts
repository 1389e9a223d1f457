import { NcrontabError, parseNcrontab } from "../../../shared/ncrontab";

const next = (expression: string, after: string) =>
  parseNcrontab(expression).next(new Date(after))?.toISOString();

describe("NCRONTAB", () => {
  it("expands *, numbers, lists, ranges and steps", () => {
    const schedule = parseNcrontab("*/15 0,30 1-3 1 */3 *");
    expect(schedule.seconds).toEqual([0, 15, 30, 45]);
    expect(schedule.minutes).toEqual([0, 30]);
    expect(schedule.hours).toEqual([1, 2, 3]);
    expect(schedule.days).toEqual([1]);
    expect(schedule.months).toEqual([1, 4, 7, 10]);
    expect(schedule.daysOfWeek).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(parseNcrontab("0 0 8-20/4 * * *").hours).toEqual([8, 12, 16, 20]);
    expect(parseNcrontab("5/20 * * * * *").seconds).toEqual([5, 25, 45]);
  });

  it("accepts month and weekday names", () => {
    const schedule = parseNcrontab("0 30 9 * Jan,jul Mon-Fri");
    expect(schedule.months).toEqual([1, 7]);
    expect(schedule.daysOfWeek).toEqual([1, 2, 3, 4, 5]);
  });

  it("finds the next occurrence strictly after the given time, in UTC", () => {
    expect(next("0 0 3 1 * *", "2030-01-15T12:00:00Z")).toBe("2030-02-01T03:00:00.000Z");
    expect(next("0 0 3 1 * *", "2030-02-01T03:00:00Z")).toBe("2030-03-01T03:00:00.000Z");
    expect(next("0 0 3 1 * *", "2030-02-01T02:59:59.999Z")).toBe("2030-02-01T03:00:00.000Z");
    expect(next("*/10 * * * * *", "2030-01-01T00:00:05Z")).toBe("2030-01-01T00:00:10.000Z");
    expect(next("0 */5 * * * *", "2030-01-01T23:58:00Z")).toBe("2030-01-02T00:00:00.000Z");
    expect(next("0 0 0 1 1 *", "2030-06-01T00:00:00Z")).toBe("2031-01-01T00:00:00.000Z");
  });

  it("skips days a month does not have", () => {
    expect(next("0 0 0 31 * *", "2030-01-31T00:00:00Z")).toBe("2030-03-31T00:00:00.000Z");
    expect(next("0 0 12 29 2 *", "2030-01-01T00:00:00Z")).toBe("2032-02-29T12:00:00.000Z");
    expect(parseNcrontab("0 0 0 30 2 *").next(new Date("2030-01-01T00:00:00Z"))).toBeUndefined();
  });

  it("requires day-of-month AND day-of-week when both are restricted, as NCrontab does", () => {
    // Friday the 13th: the next one after 2030-01-01 is September 2030.
    expect(next("0 0 0 13 * 5", "2030-01-01T00:00:00Z")).toBe("2030-09-13T00:00:00.000Z");
    expect(next("0 0 9 * * Mon", "2030-01-15T12:00:00Z")).toBe("2030-01-21T09:00:00.000Z");
  });

  it("matches exact instants", () => {
    const schedule = parseNcrontab("0 0 3 1 * *");
    expect(schedule.matches(new Date("2030-02-01T03:00:00Z"))).toBe(true);
    expect(schedule.matches(new Date("2030-02-01T03:00:01Z"))).toBe(false);
    expect(schedule.matches(new Date("2030-02-02T03:00:00Z"))).toBe(false);
  });

  it.each([
    ["0 0 3 1 *", /needs 6 fields/],
    ["60 * * * * *", /second 60 is out of range/],
    ["* * 24 * * *", /hour 24 is out of range/],
    ["* * * 0 * *", /day 0 is out of range/],
    ["* * * * 13 *", /month 13 is out of range/],
    ["* * * * * 7", /day-of-week 7 is out of range/],
    ["*/0 * * * * *", /must be ≥ 1/],
    ["5-1 * * * * *", /backwards/],
    ["a * * * * *", /not a valid second value/],
    ["1,,2 * * * * *", /empty list item/],
  ])("rejects %s", (expression, message) => {
    expect(() => parseNcrontab(expression)).toThrow(NcrontabError);
    expect(() => parseNcrontab(expression)).toThrow(message);
  });
});
