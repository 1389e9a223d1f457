import {
  DEFAULT_GRACE_SECONDS,
  DEFAULT_MIN_KEY_AGE_DAYS,
  evaluateAccountPolicy,
  isAccountInScope,
  keyAgeDays,
  normalizeScope,
  optOutTagValue,
  parseDuration,
  parseMinKeyAgeDays,
  parseParallelism,
  scopeInstanceId,
  toGraceSeconds,
  unmatchedScope,
  validateRotationRequest,
  type RotationRequest,
} from "../../../shared/rotation";
import { InvalidInputError } from "../../../shared/errors";
import {
  NOW,
  SUBSCRIPTION,
  account,
  datastore,
  identityDatastore,
  node,
  untouchedSasDatastore,
  storageAccountId,
  workspace,
  workspaceId,
} from "./builders";

function graceOf(input: unknown, defaults?: { graceSeconds: number }): number {
  const result = validateRotationRequest(input, defaults);
  if (!result.ok) throw new Error(`expected the request to be accepted: ${result.reasons.join("; ")}`);
  return result.value.graceSeconds;
}

function reasonsOf(input: unknown): string[] {
  const result = validateRotationRequest(input);
  if (result.ok) throw new Error("expected the request to be rejected");
  return result.reasons;
}

describe("opt-out tag", () => {
  it("skips an account tagged keyturn:skip with any value", () => {
    for (const value of ["true", "yes", "", "legacy app, ask Dana"]) {
      expect(optOutTagValue({ "keyturn:skip": value })).toBe(value);
    }
  });

  it("matches the tag name in any case, as Azure does", () => {
    expect(optOutTagValue({ "KeyTurn:Skip": "true" })).toBe("true");
  });

  it("rotates an account whose tag says false", () => {
    expect(optOutTagValue({ "keyturn:skip": "False" })).toBeUndefined();
    expect(optOutTagValue({})).toBeUndefined();
  });
});

describe("parseDuration", () => {
  it.each([
    ["0", 0],
    ["90s", 90],
    ["60m", 3600],
    ["2h", 7200],
    ["1d", 86400],
    ["1h30m", 5400],
    [" 5M ", 300],
  ])("reads %j as %d seconds", (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it("refuses a bare number, naming the value and the fix", () => {
    expect(() => parseDuration("90", "grace period")).toThrow(
      'grace period "90" has no unit: write it as 90s, 90m or 90h',
    );
  });

  it.each(["", "ten minutes", "-5m", "1.5h", "5w", "m5"])("refuses %j with a message naming it", (text) => {
    expect(() => parseDuration(text)).toThrow(InvalidInputError);
    expect(() => parseDuration(text)).toThrow(`"${text}"`);
  });
});

describe("toGraceSeconds", () => {
  it("defaults to an hour, the workspace's key cache", () => {
    expect(graceOf({ scope: { storageAccounts: ["stdata01"] } })).toBe(DEFAULT_GRACE_SECONDS);
    expect(DEFAULT_GRACE_SECONDS).toBe(3600);
  });

  it("accepts no grace at all, as a duration or in minutes", () => {
    expect(toGraceSeconds("0", "duration", "grace period")).toBe(0);
    expect(toGraceSeconds("0", "minutes", "KEYTURN_GRACE_MINUTES")).toBe(0);
    expect(toGraceSeconds(0, "minutes")).toBe(0);
  });

  it("reads minutes as a number or as decimal text", () => {
    expect(toGraceSeconds(1.5, "minutes")).toBe(90);
    expect(toGraceSeconds("1440", "minutes", "KEYTURN_GRACE_MINUTES")).toBe(86400);
    expect(() => toGraceSeconds("0x10", "minutes", "KEYTURN_GRACE_MINUTES")).toThrow(
      'KEYTURN_GRACE_MINUTES "0x10" must be a number of minutes from 0 to 1440',
    );
  });

  it("refuses a grace longer than a day, whatever its unit", () => {
    expect(() => toGraceSeconds("25h", "duration", "grace period")).toThrow(
      'grace period "25h" must be a duration from 0 to 24h (the maximum)',
    );
    expect(() => toGraceSeconds(1441, "minutes")).toThrow("must be a number of minutes from 0 to 1440");
  });
});

describe("parseParallelism", () => {
  it("defaults to 8", () => {
    expect(parseParallelism(undefined)).toBe(32);
    expect(parseParallelism(" ")).toBe(32);
  });

  it("accepts 1 to 64 from a setting or a number", () => {
    expect(parseParallelism("1")).toBe(1);
    expect(parseParallelism(64)).toBe(64);
  });

  it.each(["0", "65", "eight", "4.5", "-1"])("refuses %j, naming it", (value) => {
    expect(() => parseParallelism(value)).toThrow(
      `parallelism "${value}" must be a whole number from 1 to 64`,
    );
  });
});

describe("parseMinKeyAgeDays", () => {
  it("defaults and validates", () => {
    expect(parseMinKeyAgeDays(undefined)).toBe(DEFAULT_MIN_KEY_AGE_DAYS);
    expect(parseMinKeyAgeDays("0")).toBe(0);
    expect(() => parseMinKeyAgeDays("soon")).toThrow(/minimum key age in days "soon"/);
  });
});

describe("validateRotationRequest", () => {
  it("fills in defaults", () => {
    expect(validateRotationRequest({ scope: { subscriptions: [SUBSCRIPTION] } })).toEqual({
      ok: true,
      value: { scope: { subscriptions: [SUBSCRIPTION] }, dryRun: false, force: false, graceSeconds: 3600 },
    });
  });

  it("turns grace minutes into seconds and honours a configured default", () => {
    const request: RotationRequest = {
      scope: { storageAccounts: ["stdata01"] },
      graceMinutes: 1.5,
      dryRun: true,
    };
    expect(graceOf(request)).toBe(90);
    expect(graceOf({ scope: { storageAccounts: ["stdata01"] } }, { graceSeconds: 60 })).toBe(60);
    expect(graceOf({ scope: { storageAccounts: ["stdata01"] }, graceMinutes: 0 })).toBe(0);
  });

  it("accepts names and ARM ids in every scope dimension", () => {
    const result = validateRotationRequest({
      scope: {
        subscriptions: [SUBSCRIPTION.toUpperCase()],
        resourceGroups: ["rg-ml", `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-data`],
        workspaces: ["mlw-one", workspaceId("mlw-two")],
        storageAccounts: ["stdata01", storageAccountId("stdata02")],
      },
    });
    expect(result.ok).toBe(true);
  });

  it("returns every reason at once, each naming the field and the value", () => {
    const reasons = reasonsOf({
      scope: { subscriptions: ["not-a-guid"], storageAccounts: ["My Account!", 7], workspaces: "mlw" },
      graceMinutes: 5000,
      dryRun: "yes",
      extra: 1,
    });
    expect(reasons).toEqual([
      'scope.subscriptions[0]: "not-a-guid" is not a subscription id (a GUID)',
      "scope.workspaces: must be a list of workspace names or ids",
      'scope.storageAccounts[0]: "My Account!" is not a storage account name (3-24 letters and digits) or ARM id',
      "scope.storageAccounts[1]: each entry must be a string naming a storage account",
      "dryRun: must be true or false",
      "graceMinutes: must be a number of minutes from 0 to 1440",
      'unknown field "extra" (expected scope, dryRun, graceMinutes, force)',
    ]);
  });

  it("takes batchKeys in the scope as an opt-in, not as a scope of its own", () => {
    const valid = validateRotationRequest({ scope: { resourceGroups: ["rg-ml-prod"], batchKeys: true } });
    expect(valid).toMatchObject({
      ok: true,
      value: { scope: { resourceGroups: ["rg-ml-prod"], batchKeys: true } },
    });
    expect(reasonsOf({ scope: { batchKeys: true } })).toEqual([
      "scope: is empty: name at least one of subscriptions, resourceGroups, workspaces, storageAccounts",
    ]);
    expect(reasonsOf({ scope: { storageAccounts: ["batchmltrain"], batchKeys: "yes" } })).toEqual([
      "scope.batchKeys: must be true or false",
    ]);
  });

  it("rejects a request without a scope", () => {
    expect(reasonsOf({ dryRun: true })).toEqual([
      "scope: is required: name at least one of subscriptions, resourceGroups, workspaces, storageAccounts",
    ]);
  });

  it("rejects an empty scope rather than rotating everything", () => {
    expect(reasonsOf({ scope: { storageAccounts: [], workspaces: [] } })).toEqual([
      "scope: is empty: name at least one of subscriptions, resourceGroups, workspaces, storageAccounts",
    ]);
  });

  it("rejects a blank scope entry", () => {
    expect(reasonsOf({ scope: { storageAccounts: [" "] } })).toEqual([
      "scope.storageAccounts[0]: an empty entry names no storage account",
    ]);
  });

  it("rejects unknown scope fields and non-objects", () => {
    expect(reasonsOf({ scope: { accounts: ["st"] } })).toEqual([
      'scope: unknown field "accounts" (expected subscriptions, resourceGroups, workspaces, storageAccounts, batchKeys or registryPasswords)',
    ]);
    expect(reasonsOf("rotate please")).toEqual([
      "a rotation request must be a JSON object with scope, dryRun, graceMinutes, force",
    ]);
  });

  it("rejects ids of the wrong resource type", () => {
    expect(reasonsOf({ scope: { storageAccounts: [workspaceId("mlw")] } })[0]).toMatch(
      /is not a storage account id/,
    );
    expect(reasonsOf({ scope: { workspaces: [storageAccountId("st")] } })[0]).toMatch(
      /is not a workspace id/,
    );
  });

  it("names a field of the wrong type before it looks at an empty scope", () => {
    expect(reasonsOf({ scope: {}, force: 1 })).toEqual(["force: must be true or false"]);
  });
});

describe("scope", () => {
  it("deduplicates entries case-insensitively and drops empty lists", () => {
    expect(normalizeScope({ storageAccounts: ["StData01", "stdata01 ", "st2"], workspaces: [] })).toEqual({
      storageAccounts: ["StData01", "st2"],
    });
  });

  it("gives equal scopes the same instance id whatever the order or case", () => {
    const a = scopeInstanceId({ storageAccounts: ["st1", "st2"], subscriptions: [SUBSCRIPTION] });
    const b = scopeInstanceId({
      subscriptions: [SUBSCRIPTION.toUpperCase()],
      storageAccounts: ["ST2", "st1"],
    });
    expect(a).toBe(b);
    expect(a).not.toBe(scopeInstanceId({ storageAccounts: ["st1"] }));
    expect(a).toMatch(/^keyturn-scope-[0-9a-f]{16}$/);
  });

  it("names the scope entries that match nothing keyturn can see, with the closest name when a typo is likely", () => {
    const accounts = [account("stmlresearch"), account("stmlshared")];
    const workspaces = [{ id: workspaceId("mlw-research"), name: "mlw-research" }];
    expect(
      unmatchedScope(
        {
          storageAccounts: ["stmlreserch", "STMLSHARED", "zzz"],
          workspaces: ["mlw-reserch"],
          resourceGroups: ["rg-nope"],
        },
        { accounts, workspaces },
      ),
    ).toEqual([
      { field: "storageAccounts", value: "stmlreserch", closest: "stmlresearch" },
      { field: "storageAccounts", value: "zzz" },
      { field: "workspaces", value: "mlw-reserch", closest: "mlw-research" },
      { field: "resourceGroups", value: "rg-nope" },
    ]);
    expect(
      unmatchedScope({ storageAccounts: [storageAccountId("stmlshared")] }, { accounts, workspaces }),
    ).toEqual([]);
  });

  it("selects storage accounts by name or id in any case", () => {
    const st = node(account("stdata01"), datastore(account("stdata01"), "ds"));
    expect(isAccountInScope({ storageAccounts: ["STDATA01"] }, st)).toBe(true);
    expect(isAccountInScope({ storageAccounts: [st.account.id.toUpperCase()] }, st)).toBe(true);
    expect(isAccountInScope({ storageAccounts: ["stother"] }, st)).toBe(false);
  });

  it("requires every named dimension to match", () => {
    const st = node(account("stdata01", { resourceGroup: "rg-data" }));
    expect(isAccountInScope({ subscriptions: [SUBSCRIPTION], resourceGroups: ["RG-DATA"] }, st)).toBe(true);
    expect(isAccountInScope({ subscriptions: [SUBSCRIPTION], resourceGroups: ["rg-ml"] }, st)).toBe(false);
    expect(
      isAccountInScope({ resourceGroups: [`/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-data`] }, st),
    ).toBe(true);
    expect(
      isAccountInScope(
        { resourceGroups: ["/subscriptions/00000000-0000-0000-0000-00000000000f/resourceGroups/rg-data"] },
        st,
      ),
    ).toBe(false);
  });

  it("selects the accounts a workspace in scope uses, as its own storage or through a datastore", () => {
    const own = account("stown");
    const data = account("stdata");
    expect(isAccountInScope({ workspaces: ["mlw-one"] }, node(own, workspace(own, "mlw-one")))).toBe(true);
    expect(
      isAccountInScope(
        { workspaces: [workspaceId("mlw-one")] },
        node(data, datastore(data, "ds", "key1", "mlw-one")),
      ),
    ).toBe(true);
    expect(
      isAccountInScope({ workspaces: ["mlw-two"] }, node(data, datastore(data, "ds", "key1", "mlw-one"))),
    ).toBe(false);
  });

  it("matches workspace entries by name in any case or by id, and resource groups through the workspaces found", () => {
    const found = { accounts: [], workspaces: [{ id: workspaceId("mlw-one") }] };
    expect(unmatchedScope({ workspaces: ["MLW-ONE", workspaceId("mlw-one")] }, found)).toEqual([]);
    expect(unmatchedScope({ resourceGroups: ["rg-other"] }, found).map((e) => e.value)).toEqual(["rg-other"]);
  });
});

describe("evaluateAccountPolicy", () => {
  const young = () => account("styoung", { key1Created: "2025-05-30T03:00:00Z" });

  it("rotates an account whose active key is older than the minimum age", () => {
    const st = account();
    expect(evaluateAccountPolicy(node(st, datastore(st, "ds")), "key1", { now: NOW })).toEqual({
      rotate: true,
      notes: [],
    });
  });

  it("skips an account tagged keyturn:skip, even when forced", () => {
    const st = account("st", { tags: { "keyturn:skip": "true" } });
    expect(evaluateAccountPolicy(node(st, datastore(st, "ds")), "key1", { now: NOW, force: true })).toEqual({
      rotate: false,
      code: "opted-out",
      reason: "tagged keyturn:skip=true",
    });
  });

  it("skips a key younger than the minimum age", () => {
    const st = young();
    expect(evaluateAccountPolicy(node(st, datastore(st, "ds")), "key1", { now: NOW })).toEqual({
      rotate: false,
      code: "too-young",
      reason: "the active key key1 is 2 days old (minimum 20); force to rotate anyway",
    });
  });

  it("rotates a young key when forced, and says so", () => {
    const st = young();
    expect(
      evaluateAccountPolicy(node(st, datastore(st, "ds")), "key1", { now: new Date(NOW), force: true }),
    ).toEqual({
      rotate: true,
      notes: ["forced: the active key key1 is 2 days old (minimum 20)"],
    });
  });

  it("judges age by the active key, not the newer one", () => {
    const st = young();
    expect(evaluateAccountPolicy(node(st, datastore(st, "ds", "key2")), "key2", { now: NOW }).rotate).toBe(
      true,
    );
  });

  it("treats an unknown creation time as old", () => {
    const st = account("st", { key1Created: undefined });
    expect(
      evaluateAccountPolicy(node(st, datastore(st, "ds")), "key1", { now: NOW, minKeyAgeDays: 3650 }).rotate,
    ).toBe(true);
  });

  it("skips an account with no consumers", () => {
    expect(evaluateAccountPolicy(node(account()), "key1", { now: NOW })).toMatchObject({
      rotate: false,
      code: "no-consumers",
    });
  });

  it("skips an account used only through SAS it leaves as they are and identity-based datastores", () => {
    const st = account();
    const verdict = evaluateAccountPolicy(
      node(st, untouchedSasDatastore(st, "sas"), identityDatastore(st, "mi")),
      "key1",
      {
        now: NOW,
      },
    );
    expect(verdict).toMatchObject({
      rotate: false,
      code: "no-consumers",
      reason: expect.stringContaining("SAS") as string,
    });
  });
});

describe("keyAgeDays", () => {
  it("counts whole days and clamps a creation time in the future to 0", () => {
    expect(keyAgeDays(account("st", { key1Created: "2025-05-01T03:00:00Z" }), "key1", NOW)).toBe(31);
    expect(keyAgeDays(account("st", { key1Created: "2025-06-01T03:05:00Z" }), "key1", NOW)).toBe(0);
    expect(keyAgeDays(account("st", { key1Created: undefined }), "key1", NOW)).toBeUndefined();
  });
});
