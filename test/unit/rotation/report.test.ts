import {
  EXIT_FAILED,
  EXIT_OK,
  EXIT_STALLED,
  accountReport,
  buildConsumerGraph,
  exitCode,
  formatDuration,
  inProgressReport,
  planAccount,
  renderReport,
  summarize,
  unattachedReports,
  type AccountReport,
  type RotationReport,
} from "../../../shared/rotation";
import {
  DEFAULT_PLAN_OPTIONS,
  account,
  datastore,
  fp,
  keyValues,
  node,
  untouchedSasDatastore,
  storageAccountId,
  workspace,
} from "./builders";

const st = account("stdata01");
const n = node(
  st,
  workspace(st),
  datastore(st, "ds1"),
  datastore(st, "broken", "dead"),
  untouchedSasDatastore(st, "sas"),
);
const planned = planAccount(n, DEFAULT_PLAN_OPTIONS);
const optedOut = account("stskip", { tags: { "keyturn:skip": "true" } });
const skipped = planAccount(node(optedOut, datastore(optedOut, "x")), DEFAULT_PLAN_OPTIONS);
const after = { key: "key2" as const, fingerprint: fp("fake-new-key2") };

function report(accounts: AccountReport[], dryRun = false): RotationReport {
  return { rotationId: "r1", dryRun, startedAt: "2025-06-01T03:00:00Z", accounts, unattached: [] };
}

describe("accountReport", () => {
  it("describes a dry run as planned, with what would happen to each consumer", () => {
    const r = accountReport(planned);
    expect(r).toMatchObject({
      name: "stdata01",
      outcome: "planned",
      activeKeyBefore: { key: "key1", fingerprint: st.keys.key1.fingerprint },
      graceSeconds: 3600,
      durationMs: 0,
      armCalls: 0,
      outages: [],
    });
    expect(r.consumers.map((c) => [c.name, c.action])).toEqual([
      ["mlw-one", "updated"],
      ["ds1", "updated"],
      ["broken", "healed"],
      ["sas", "skipped"],
    ]);
    expect(r.notes).toEqual(["1 voting consumer holds key1"]);
  });

  it("reports a rotated account with the new active key and what the run measured", () => {
    const r = accountReport(planned, {
      outcome: "rotated",
      activeKeyAfter: after,
      durationMs: 3_720_000,
      armCalls: 42,
      outages: [
        {
          consumerId: "w",
          name: "mlw-one",
          kind: "workspace",
          durationMs: 4000,
          reason: "resync after key1",
        },
      ],
      consumerActions: { [datastore(st, "ds1").id]: { action: "verified", reason: "already on key2" } },
    });
    expect(r).toMatchObject({
      outcome: "rotated",
      activeKeyAfter: after,
      durationMs: 3_720_000,
      armCalls: 42,
    });
    expect(r.consumers.map((c) => c.action)).toEqual(["updated", "verified", "healed", "skipped"]);
  });

  it("marks consumers not handled by a stalled rotation as skipped, with the reason", () => {
    const r = accountReport(planned, {
      outcome: "stalled",
      reason: "datastore ds1: holds key1",
      durationMs: 1,
      armCalls: 5,
    });
    expect(r.reason).toBe("datastore ds1: holds key1");
    expect(r.consumers[0]).toMatchObject({
      action: "skipped",
      reason: "the rotation stalled before this consumer was handled",
    });
  });

  it("reports a skipped account with the policy's reason and its consumers", () => {
    expect(accountReport(skipped)).toMatchObject({
      name: "stskip",
      outcome: "skipped",
      skipCode: "opted-out",
      reason: "tagged keyturn:skip=true",
      consumers: [{ name: "x", action: "skipped" }],
    });
  });

  it("reports an account that could not be planned as failed", () => {
    const same = { ...st, keys: { key1: st.keys.key1, key2: st.keys.key1 } };
    expect(accountReport(planAccount(node(same, datastore(same, "d")), DEFAULT_PLAN_OPTIONS))).toMatchObject({
      outcome: "failed",
    });
  });

  it("contains fingerprints only, never a key value", () => {
    const json = JSON.stringify([
      accountReport(planned),
      accountReport(planned, { outcome: "rotated", durationMs: 0, armCalls: 0 }),
    ]);
    for (const value of Object.values(keyValues.get(st.id) ?? {})) expect(json).not.toContain(value);
  });
});

describe("exitCode", () => {
  const rotated = accountReport(planned, { outcome: "rotated", durationMs: 0, armCalls: 0 });
  const stalled = accountReport(planned, { outcome: "stalled", durationMs: 0, armCalls: 0 });
  const failed = accountReport(planned, { outcome: "failed", durationMs: 0, armCalls: 0 });
  const policySkip = accountReport(skipped);
  const busy = inProgressReport(
    { id: st.id, name: st.name, subscriptionId: "s", resourceGroup: "rg" },
    "keyturn-account-x",
  );

  it("is 0 when every account was rotated or skipped by policy", () => {
    expect(exitCode(report([rotated, policySkip]))).toBe(EXIT_OK);
  });

  it("is 0 for a scope with nothing in it", () => {
    expect(exitCode(report([]))).toBe(EXIT_OK);
  });

  it("is 2 when the scope names something that does not exist, even if the rest rotated", () => {
    const misspelled = {
      ...report([rotated]),
      unmatchedScope: [{ field: "storageAccounts" as const, value: "stdata1", closest: "stdata01" }],
    };
    expect(exitCode(misspelled)).toBe(EXIT_STALLED);
    expect(renderReport(misspelled)).toContain(
      "Scope: no storage account 'stdata1' in any subscription keyturn can see (did you mean 'stdata01'?).",
    );
  });

  it("is 2 when accounts stalled and nothing failed, since resuming is safe", () => {
    expect(exitCode(report([rotated, stalled]))).toBe(EXIT_STALLED);
  });

  it("is 1 when any account failed", () => {
    expect(exitCode(report([stalled, failed]))).toBe(EXIT_FAILED);
  });

  it("is not 0 when an account was skipped because another rotation holds it", () => {
    expect(exitCode(report([rotated, busy]))).toBe(EXIT_FAILED);
  });

  it("counts planned accounts as done only in a dry run", () => {
    const plannedOnly = accountReport(planned);
    expect(exitCode(report([plannedOnly], true))).toBe(EXIT_OK);
    expect(exitCode(report([plannedOnly], false))).toBe(EXIT_FAILED);
  });

  it("summarizes outcomes", () => {
    expect(summarize(report([rotated, stalled, policySkip, busy]))).toEqual({
      rotated: 1,
      skipped: 2,
      stalled: 1,
      failed: 0,
      planned: 0,
    });
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [45, "45s"],
    [90, "1m30s"],
    [3600, "1h"],
    [3720, "1h02m"],
    [86400, "24h"],
  ])("formats %d seconds as %s", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe("renderReport", () => {
  it("prints a table of accounts, the details of each and the exit code", () => {
    const rotated = accountReport(planned, {
      outcome: "rotated",
      activeKeyAfter: after,
      durationMs: 3_725_000,
      armCalls: 17,
    });
    const text = renderReport({
      ...report([rotated, accountReport(skipped)]),
      finishedAt: "2025-06-01T04:02:05Z",
    });
    expect(text).toBe(
      [
        "keyturn rotation r1: started 2025-06-01T03:00:00Z, finished 2025-06-01T04:02:05Z",
        "",
        "ACCOUNT   OUTCOME  ACTIVE BEFORE      ACTIVE AFTER       CONSUMERS  GRACE  TIME   ARM CALLS  OUTAGES",
        `stdata01  rotated  key1 ${st.keys.key1.fingerprint}  key2 ${after.fingerprint}  4          1h     1h02m  17         0`,
        `stskip    skipped  key1 ${optedOut.keys.key1.fingerprint}  -                  1          0s     0s     0          0`,
        "",
        `stdata01 (rotated)  ${st.id}`,
        "  note: 1 voting consumer holds key1",
        "  workspace              mlw-one  updated",
        "  datastore              ds1      updated",
        "  datastore              broken   healed   held a key the account no longer has",
        "  untouchedSasDatastore  sas      skipped  a user delegation SAS: signed with an Entra ID delegation key",
        "",
        `stskip (skipped)  ${storageAccountId("stskip")}`,
        "  reason: tagged keyturn:skip=true",
        "  datastore  x  skipped",
        "",
        "2 accounts: 1 rotated, 1 skipped; exit code 0",
        "",
      ].join("\n"),
    );
  });

  it("says so when nothing is in scope, and labels a dry run", () => {
    const text = renderReport(report([], true));
    expect(text).toContain("keyturn plan r1");
    expect(text).toContain("No storage accounts in scope.");
    expect(text).toContain("0 accounts; exit code 0");
  });

  it("lists consumers whose account was not found, and counts those out of scope", () => {
    const other = account("stother");
    const withOther = buildConsumerGraph(
      [st, other],
      [
        { ...datastore(st, "orphan"), storageAccountId: storageAccountId("stgone") },
        datastore(other, "elsewhere"),
      ],
      { inScope: (x) => x.account.name !== "stother" },
    );
    const text = renderReport({ ...report([]), unattached: unattachedReports(withOther.unattached) });
    expect(text).toContain(
      'Consumers whose storage account was not found (not rotated):\n  datastore  orphan  storage account "stgone" was not found',
    );
    expect(text).toContain("1 consumer of storage accounts out of scope (not rotated).");
  });
});
