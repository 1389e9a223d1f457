import {
  checkRegenerations,
  describeOutages,
  estateAccounts,
  extrapolateSequential,
  isWrite,
  keyFingerprints,
  lowerBound,
  markdownTable,
  median,
  minimalWrites,
  niceTicks,
  renderChart,
  sampleAccounts,
  summarizeOutcomes,
  summarizeRequests,
  timeSeries,
  writeEconomy,
  type EstateAccount,
  type EstateResult,
  type RequestLogEntry,
} from "../../../bench/analysis";

const SUB_A = "aaaaaaaa-0000-4000-8000-000000000001";
const SUB_B = "bbbbbbbb-0000-4000-8000-000000000002";

function account(
  name: string,
  datastores: number,
  subscriptionId = SUB_A,
  region = "westeurope",
): EstateAccount {
  return {
    name,
    id: `/subscriptions/${subscriptionId}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${name}`,
    subscriptionId,
    region,
    datastores,
    consumers: datastores + 1,
  };
}

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
function entry(
  offsetMs: number,
  method: string,
  path: string,
  operation: string,
  status = 200,
  throttledBy?: string,
): RequestLogEntry {
  return {
    at: new Date(T0 + offsetMs).toISOString(),
    method,
    path,
    operation,
    status,
    ...(throttledBy ? { throttledBy } : {}),
  };
}

const storagePath = (name: string, action = "") =>
  `/subscriptions/${SUB_A}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${name}${action}`;
const datastorePath = (ws: string, ds: string, action = "") =>
  `/subscriptions/${SUB_A}/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/${ws}/datastores/${ds}${action}`;

describe("bench analysis: the request log", () => {
  const log: RequestLogEntry[] = [
    entry(
      0,
      "GET",
      `/subscriptions/${SUB_A}/providers/Microsoft.Storage/storageAccounts`,
      "storageAccounts.list",
    ),
    entry(100, "POST", storagePath("st1", "/listKeys"), "storageAccounts.listKeys"),
    entry(200, "POST", storagePath("st1", "/regenerateKey"), "storageAccounts.regenerateKey"),
    entry(300, "POST", datastorePath("ws1", "ds1", "/listSecrets"), "datastores.listSecrets"),
    entry(400, "PUT", datastorePath("ws1", "ds1"), "datastores.createOrUpdate"),
    entry(500, "PUT", datastorePath("ws1", "ds1"), "datastores.createOrUpdate", 429, "arm"),
    entry(12_000, "POST", storagePath("st1", "/regenerateKey"), "storageAccounts.regenerateKey"),
    entry(
      12_100,
      "POST",
      storagePath("st1", "/regenerateKey"),
      "storageAccounts.regenerateKey",
      429,
      "storageRp",
    ),
    entry(60_000, "GET", `/subscriptions/${SUB_B}/providers/x`, "unknown", 404),
  ];

  it("counts POST, PUT, PATCH and DELETE as writes, GET as a read", () => {
    expect(["POST", "put", "PATCH", "DELETE"].every(isWrite)).toBe(true);
    expect(isWrite("GET")).toBe(false);
    expect(isWrite("HEAD")).toBe(false);
  });

  it("summarizes calls, accepted writes, 429s by source and regenerations per account", () => {
    const s = summarizeRequests(log);
    expect(s.requests).toBe(9);
    expect(s.reads).toBe(2);
    expect(s.writes).toBe(7);
    expect(s.acceptedWrites).toBe(5);
    expect(s.datastoreWrites).toBe(2);
    expect(s.throttled).toBe(2);
    expect(s.throttledBySource).toEqual({ arm: 1, storageRp: 1 });
    expect(s.regenerations).toEqual({ st1: 2 });
    expect(s.byOperation["storageAccounts.regenerateKey"]).toEqual({
      method: "POST",
      write: true,
      calls: 3,
      throttled: 1,
    });
    expect(s.byOperation["GET (unrouted)"]?.calls).toBe(1);
    expect(Object.keys(s.byOperation)[0]).toBe("storageAccounts.regenerateKey");
    expect(s.bySubscription[SUB_A]).toEqual({ reads: 1, writes: 7, acceptedWrites: 5, throttled: 2 });
    expect(s.bySubscription[SUB_B]).toEqual({ reads: 1, writes: 0, acceptedWrites: 0, throttled: 0 });
  });

  it("keeps only the run's window", () => {
    const s = summarizeRequests(log, { fromMs: T0 + 150, toMs: T0 + 12_050 });
    expect(s.requests).toBe(5);
    expect(s.firstAt).toBe(new Date(T0 + 200).toISOString());
  });

  it("buckets accepted reads and writes and 429s over time", () => {
    const points = timeSeries(log, T0, T0 + 60_000, 10);
    expect(points).toHaveLength(6);
    expect(points[0]).toEqual({ t: 0, reads: 1, writes: 4, throttled: 1 });
    expect(points[1]).toEqual({ t: 10, reads: 0, writes: 1, throttled: 1 });
    expect(points[5]).toEqual({ t: 50, reads: 1, writes: 0, throttled: 0 });
  });
});

describe("bench analysis: writes and regenerations", () => {
  it("checks writes against 3 per datastore + 10 per account", () => {
    const accounts = [account("st1", 12), account("st2", 12)];
    const arm = summarizeRequests([]);
    arm.acceptedWrites = 92;
    arm.datastoreWrites = 72;
    const e = writeEconomy(arm, accounts);
    expect(e.target).toBe(3 * 24 + 10 * 2);
    expect(e.withinTarget).toBe(true);
    expect(e.perDatastore).toBe(3);
    expect(e.perAccount).toBe(10);
    arm.acceptedWrites = 93;
    expect(writeEconomy(arm, accounts).withinTarget).toBe(false);
  });

  const before = new Map([
    ["st1", { key1: "a1", key2: "a2" }],
    ["st2", { key1: "b1", key2: "b2" }],
    ["st3", { key1: "c1", key2: "c2" }],
  ]);
  const accounts = [account("st1", 1), account("st2", 1), account("st3", 1)];

  it("without a per-key record: two calls and both fingerprints changed is each key once", () => {
    const after = new Map([
      ["st1", { key1: "x1", key2: "x2" }],
      ["st2", { key1: "y1", key2: "y2" }],
      ["st3", { key1: "c1", key2: "z2" }],
    ]);
    const r = checkRegenerations(accounts, before, after, { st1: 2, st2: 3, st3: 1 });
    expect(r.method).toBe("calls+fingerprints");
    expect(r.bothKeysOnce).toBe(1);
    expect(r.overTwice).toEqual(["st2"]);
    expect(r.incomplete).toEqual(["st3"]);
    expect(r.ok).toBe(false);
  });

  it("with the emulator's per-key record: a key regenerated twice is named, out-of-band ones ignored", () => {
    const r = checkRegenerations(accounts, before, before, {}, [
      { account: "st1", key: "key2" },
      { account: "st1", key: "key1" },
      { account: "st2", key: "key2" },
      { account: "st2", key: "key2" },
      { account: "st3", key: "key1" },
      { account: "st3", key: "key2" },
      { account: "st3", key: "key2", outOfBand: true },
    ]);
    expect(r.method).toBe("per-key");
    expect(r.bothKeysOnce).toBe(2);
    expect(r.keyTwice).toEqual(["st2"]);
    expect(r.ok).toBe(false);
  });

  it("is ok when every account's keys were regenerated once each", () => {
    const after = new Map([...before].map(([k, v]) => [k, { key1: v.key1 + "'", key2: v.key2 + "'" }]));
    expect(checkRegenerations(accounts, before, after, { st1: 2, st2: 2, st3: 2 }).ok).toBe(true);
  });
});

describe("bench analysis: the lower bound of DESIGN §10", () => {
  it("uses W = Σ (3·D + 8) per subscription and (W − 200)/10 s", () => {
    expect(minimalWrites(12)).toBe(44);
    // large:100x10: 100 accounts with 12 key-holding datastores each (10 + the two defaults).
    const accounts = Array.from({ length: 100 }, (_, i) => account(`st${i}`, 12));
    const b = lowerBound({ graceSeconds: 60, criticalPathSeconds: 8, accounts });
    expect(b.perSubscription).toEqual([
      { subscriptionId: SUB_A, accounts: 100, datastores: 1200, minimalWrites: 4400, armWriteSeconds: 420 },
    ]);
    expect(b.terms).toEqual({ accountCriticalPath: 68, armWriteBudget: 420, storageRpHourly: 0 });
    expect(b.bound).toBe(420);
    expect(b.binding).toBe("armWriteBudget");
  });

  it("takes the worst subscription, and the grace when the estate is small", () => {
    const accounts = [
      ...Array.from({ length: 30 }, (_, i) => account(`a${i}`, 12, SUB_A)),
      ...Array.from({ length: 10 }, (_, i) => account(`b${i}`, 12, SUB_B)),
    ];
    const b = lowerBound({ graceSeconds: 60, criticalPathSeconds: null, accounts });
    expect(b.terms.armWriteBudget).toBeCloseTo((30 * 44 - 200) / 10);
    expect(b.bound).toBeCloseTo(112);
    const small = lowerBound({ graceSeconds: 60, criticalPathSeconds: 5, accounts: [account("s", 3)] });
    expect(small.terms.armWriteBudget).toBe(0);
    expect(small.bound).toBe(65);
    expect(small.binding).toBe("accountCriticalPath");
  });

  it("adds an hour for every 1,200 Storage RP writes in one subscription and region", () => {
    const many = (n: number, region: string) =>
      Array.from({ length: n }, (_, i) => account(`${region}${i}`, 0, SUB_A, region));
    expect(
      lowerBound({ graceSeconds: 0, criticalPathSeconds: 0, accounts: many(400, "r") }).terms.storageRpHourly,
    ).toBe(0);
    expect(
      lowerBound({ graceSeconds: 0, criticalPathSeconds: 0, accounts: many(401, "r") }).terms.storageRpHourly,
    ).toBe(3600);
    // Two regions: each has its own 1,200 per hour.
    const split = [...many(300, "r1"), ...many(300, "r2")];
    const b = lowerBound({ graceSeconds: 0, criticalPathSeconds: 0, accounts: split });
    expect(b.terms.storageRpHourly).toBe(0);
    expect(b.terms.armWriteBudget).toBe((600 * 8 - 200) / 10);
  });
});

describe("bench analysis: the sequential procedure", () => {
  it("samples accounts spread over subscriptions, evenly within each", () => {
    const accounts = [
      ...Array.from({ length: 10 }, (_, i) => account(`a${i}`, 1, SUB_A)),
      ...Array.from({ length: 10 }, (_, i) => account(`b${i}`, 1, SUB_B)),
    ];
    const picked = sampleAccounts(accounts, 5).map((a) => a.name);
    expect(picked).toHaveLength(5);
    expect(picked.filter((n) => n.startsWith("a"))).toHaveLength(3);
    expect(picked.filter((n) => n.startsWith("b"))).toHaveLength(2);
    expect(new Set(picked).size).toBe(5);
    expect(sampleAccounts(accounts, 1).map((a) => a.name)).toEqual(["a5"]);
    expect(sampleAccounts(accounts, 50)).toHaveLength(20);
  });

  it("fills from the larger subscriptions when a small one runs out", () => {
    const accounts = [
      account("a0", 1, SUB_A),
      ...Array.from({ length: 6 }, (_, i) => account(`b${i}`, 1, SUB_B)),
    ];
    const picked = sampleAccounts(accounts, 4).map((a) => a.name);
    expect(picked).toHaveLength(4);
    expect(picked).toContain("a0");
    expect(new Set(picked).size).toBe(4);
  });

  it("extrapolates linearly and takes the critical path as the median account minus the grace", () => {
    const e = extrapolateSequential({
      discoverySeconds: 2,
      perAccountSeconds: [70, 66, 68],
      totalAccounts: 100,
      graceSeconds: 60,
    });
    expect(e.whole).toBe(false);
    expect(e.measuredSeconds).toBe(2 + 204);
    expect(e.perAccountMedianSeconds).toBe(68);
    expect(e.estimatedSeconds).toBe(2 + 68 * 100);
    expect(e.criticalPathSeconds).toBe(8);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNull();
    const none = extrapolateSequential({
      discoverySeconds: 1,
      perAccountSeconds: [],
      totalAccounts: 3,
      graceSeconds: 5,
    });
    expect(none.estimatedSeconds).toBeNull();
  });
});

describe("bench analysis: inputs from the emulator and keyturn", () => {
  const state = {
    storageAccounts: [
      {
        id: account("st1", 0).id,
        name: "st1",
        keys: { key1: { fingerprint: "f1" }, key2: { fingerprint: "f2" } },
      },
      {
        id: account("st2", 0, SUB_B).id,
        name: "st2",
        keys: { key1: { fingerprint: "g1" }, key2: { fingerprint: "g2" } },
      },
    ],
    consumers: [
      { kind: "workspace", storageAccountName: "st1" },
      { kind: "datastore", storageAccountName: "st1" },
      { kind: "datastore", storageAccountName: "ST1" },
    ],
  };

  it("reads accounts, their datastores and subscriptions from the admin state", () => {
    expect(estateAccounts(state)).toEqual([
      { ...account("st1", 2), region: "default", consumers: 3 },
      { ...account("st2", 0, SUB_B), region: "default", consumers: 0 },
    ]);
    expect(keyFingerprints(state).get("st2")).toEqual({ key1: "g1", key2: "g2" });
  });

  it("counts outcomes and the accounts a report leaves out", () => {
    const accounts = [account("st1", 1), account("st2", 1), account("st3", 1)];
    const s = summarizeOutcomes(
      {
        accounts: [
          { name: "st1", outcome: "rotated" },
          { name: "st2", outcome: "stalled", reason: "429 on listSecrets" },
        ],
      },
      accounts,
    );
    expect(s).toMatchObject({ rotated: 1, stalled: 1, failed: 0, missing: 1 });
    expect(s.problems).toEqual([{ account: "st2", outcome: "stalled", reason: "429 on listSecrets" }]);
    expect(summarizeOutcomes(undefined, accounts).missing).toBe(3);
  });
});

describe("bench analysis: output", () => {
  it("draws a chart with the budget lines and escapes text", () => {
    expect(niceTicks(100, 5)).toEqual([0, 20, 40, 60, 80, 100]);
    const svg = renderChart({
      title: "a <b> & c",
      points: [
        { t: 0, reads: 300, writes: 200, throttled: 0 },
        { t: 10, reads: 100, writes: 100, throttled: 7 },
      ],
      bucketSeconds: 10,
      subscriptions: 3,
    });
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("a &#60;b&#62; &#38; c");
    expect(svg).toContain("write budget 10/s × 3 subscriptions");
    expect(svg.match(/<rect [^>]*fill="#f59e0b"/g)).toHaveLength(2); // one bar and the legend
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
  });

  it("renders one column per estate", () => {
    const accounts = [account("st1", 12)];
    const arm = summarizeRequests([]);
    const result: EstateResult = {
      estate: "large:1x10",
      date: "2026-01-01T00:00:00.000Z",
      graceSeconds: 60,
      shape: { accounts: 1, datastores: 12, subscriptions: 1 },
      keyturn: {
        wallSeconds: 70,
        exitCode: 0,
        timedOut: false,
        peakRssMB: 150,
        outcomes: summarizeOutcomes({ accounts: [{ name: "st1", outcome: "rotated" }] }, accounts),
        arm,
        economy: writeEconomy(arm, accounts),
        regenerations: checkRegenerations(accounts, new Map(), new Map(), {}),
        outages: 0,
        requestLogComplete: true,
      },
      lowerBound: lowerBound({ graceSeconds: 60, criticalPathSeconds: 5, accounts }),
      ratioToBound: 70 / 65,
      speedup: null,
    };
    const md = markdownTable([result, { ...result, estate: "large:2x10" }]);
    expect(md.split("\n")[0]).toBe("| metric | `large:1x10` | `large:2x10` |");
    expect(md).toContain("| keyturn wall time | 70.0 s | 70.0 s |");
    expect(md).toContain("1 / 0 / 0 of 1");
    expect(md).toContain("1.08×");
    expect(md).toContain("no (0 of 1 accounts both keys once, 1 with a key not regenerated)");
    expect(md).toContain("| outage log | empty | empty |");
    expect(
      describeOutages(3, { count: 3, byKind: { workspace: 2, datastore: 1 }, totalSeconds: 1.234 }),
    ).toBe("3 outages (2 workspace, 1 datastore; 1.2 s in all)");
  });
});
