import {
  CONSUMER_KIND_ORDER,
  CONSUMER_KINDS,
  MOVE_OPERATIONS,
  isReportOnly,
  isServiceChosen,
  isVoting,
  type ConsumerKind,
  type ConsumerKindSpec,
} from "../../../shared/rotation";

const kinds = Object.keys(CONSUMER_KINDS) as ConsumerKind[];

describe("CONSUMER_KINDS", () => {
  it.each(kinds)("%s: a kind that votes has a move operation that writes the key", (kind) => {
    const spec = CONSUMER_KINDS[kind];
    if (!spec.votes) return;
    expect(spec.handling).toBe("move");
    if (spec.handling === "move") expect(MOVE_OPERATIONS[spec.operation].writesKey).toBe(true);
  });

  it.each(kinds)(
    "%s: a service-chosen kind does not vote and is moved by an operation that writes no key",
    (kind) => {
      const spec = CONSUMER_KINDS[kind];
      if (!spec.serviceChosen) return;
      expect(spec.votes).toBe(false);
      expect(spec.handling).toBe("move");
      if (spec.handling === "move") expect(MOVE_OPERATIONS[spec.operation].writesKey).toBe(false);
    },
  );

  it.each(kinds)("%s: a moved kind either votes or is service-chosen, never both", (kind) => {
    const spec = CONSUMER_KINDS[kind];
    if (spec.handling !== "move") return;
    expect([spec.votes, spec.serviceChosen].filter(Boolean)).toHaveLength(1);
  });

  it.each(kinds)("%s: a report-only kind has a reason, neither votes nor follows", (kind) => {
    const spec = CONSUMER_KINDS[kind];
    if (spec.handling !== "reportOnly") return;
    expect(spec.reason.trim()).not.toBe("");
    expect(spec.votes).toBe(false);
    expect(spec.serviceChosen).toBe(false);
  });

  it.each(kinds)("%s: only a holdsKey check asks for a data-plane probe", (kind) => {
    const spec = CONSUMER_KINDS[kind];
    if (spec.handling === "move" && spec.probeRequired) expect(spec.check).toBe("holdsKey");
  });

  it("names every kind once in reports, and orders them without ties", () => {
    const names = kinds.map((k) => CONSUMER_KINDS[k].reportName);
    expect(new Set(names).size).toBe(kinds.length);
    expect(names.every((n) => n.trim() !== "")).toBe(true);
    expect(new Set(kinds.map((k) => CONSUMER_KINDS[k].order)).size).toBe(kinds.length);
    expect([...CONSUMER_KIND_ORDER].sort()).toEqual([...kinds].sort());
  });

  it("answers isVoting, isServiceChosen and isReportOnly from the table", () => {
    expect(kinds.filter(isVoting)).toEqual(kinds.filter((k) => CONSUMER_KINDS[k].votes));
    expect(kinds.filter(isServiceChosen)).toEqual(kinds.filter((k) => CONSUMER_KINDS[k].serviceChosen));
    expect(kinds.filter(isReportOnly)).toEqual(
      kinds.filter((k) => CONSUMER_KINDS[k].handling === "reportOnly"),
    );
  });

  it("is a compile error with a kind left out or a piece of an entry missing", () => {
    const { workspace, ...rest } = CONSUMER_KINDS;
    // @ts-expect-error a kind left out of the table
    const partial: Record<ConsumerKind, ConsumerKindSpec> = rest;
    // @ts-expect-error a moved kind without its check
    const missing: ConsumerKindSpec = {
      reportName: "x",
      discovery: "x",
      votes: true,
      serviceChosen: false,
      knownKeyCache: undefined,
      order: 9,
      handling: "move",
      operation: "putDatastore",
      probeRequired: true,
    };
    // @ts-expect-error a report-only kind without its reason
    const noReason: ConsumerKindSpec = {
      reportName: "x",
      discovery: "x",
      votes: false,
      serviceChosen: false,
      knownKeyCache: undefined,
      order: 9,
      handling: "reportOnly",
    };
    expect([workspace, partial, missing, noReason]).toHaveLength(4);
  });
});
