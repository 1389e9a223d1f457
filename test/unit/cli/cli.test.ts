import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { InstanceStatus } from "../../../local";
import { ConfigurationError, AzureCallError, InvalidInputError } from "../../../shared/errors";
import { CliError, describeFailure } from "../../../cli/errors";
import { progressLines } from "../../../cli/progress";
import { collect, parseGrace, scopeFromOptions } from "../../../cli/request";
import { useTarget } from "../../../cli/target";
import { stateDirOf } from "../../../cli/rotation";
import { main } from "../../../cli";

function instance(overrides: Partial<InstanceStatus>): InstanceStatus {
  return {
    name: "rotateAll",
    instanceId: "keyturn-scope-1",
    runtimeStatus: "Running",
    input: null,
    output: null,
    customStatus: null,
    createdTime: "2026-01-01T00:00:00.000Z",
    lastUpdatedTime: "2026-01-01T00:00:00.000Z",
    ...overrides,
  };
}

describe("--grace", () => {
  it("reads 0, seconds, minutes and combinations", () => {
    expect(parseGrace("0")).toBe(0);
    expect(parseGrace("90s")).toBe(90);
    expect(parseGrace("60m")).toBe(3600);
    expect(parseGrace("1h30m")).toBe(5400);
    expect(parseGrace(undefined)).toBeUndefined();
  });

  it("refuses a bare number or a typo as a usage error (exit 2) that names the value", () => {
    for (const bad of ["90", "ninety", "5x"]) {
      let error: unknown;
      try {
        parseGrace(bad);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CliError);
      expect((error as CliError).exitCode).toBe(2);
      expect((error as CliError).message).toContain(`"${bad}"`);
    }
  });

  it("refuses more than the 24h maximum", () => {
    expect(() => parseGrace("25h")).toThrow(/maximum/);
  });
});

describe("scope options", () => {
  it("are repeatable and comma-separated", () => {
    const accounts = collect("c", collect("a, b", undefined));
    expect(accounts).toEqual(["a", "b", "c"]);
    expect(scopeFromOptions({ storageAccount: accounts, workspace: ["w"] })).toEqual({
      storageAccounts: ["a", "b", "c"],
      workspaces: ["w"],
    });
  });

  it("give no scope when none is named (then every subscription is the scope)", () => {
    expect(scopeFromOptions({})).toBeUndefined();
  });
});

describe("failures", () => {
  it("give usage errors exit 2 and every reason, without a stack", () => {
    const invalid = describeFailure(new InvalidInputError(["first", "second"]));
    expect(invalid.exitCode).toBe(2);
    expect(invalid.message).toContain("- first\n- second");
    expect(describeFailure(new ConfigurationError("X", "X is wrong")).exitCode).toBe(2);
  });

  it("give Azure failures exit 1 with their message", () => {
    const failure = describeFailure(
      new AzureCallError({
        operation: "storageAccounts.listKeys",
        resourceId: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a",
        retryable: false,
        message: "listKeys on a: 403 AuthorizationFailed: grant keyturn's role",
      }),
    );
    expect(failure).toEqual({
      exitCode: 1,
      message: "listKeys on a: 403 AuthorizationFailed: grant keyturn's role",
    });
  });

  it("never show a key, even in an unexpected error", () => {
    const key = randomBytes(64).toString("base64");
    const failure = describeFailure(new Error(`boom with ${key}`));
    expect(failure.exitCode).toBe(1);
    expect(failure.message).not.toContain(key);
    expect(failure.message).not.toMatch(/\n\s+at /);
  });
});

describe("--connection-file", () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), "keyturn-cli-unit-"))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("that does not exist names the path and how to write it", () => {
    expect(() => useTarget(join(dir, "missing.json"), {})).toThrow(
      /missing\.json does not exist: start the emulator with `npx keyturn emulator --connection-file/,
    );
  });

  it("that is not JSON says so", () => {
    const file = join(dir, "bad.json");
    writeFileSync(file, "{nope");
    expect(() => useTarget(file, {})).toThrow(/bad\.json is not JSON/);
  });

  it("sets the app's settings, the vaults included unless already set", () => {
    const ca = join(dir, "ca.pem");
    writeFileSync(ca, "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n");
    const file = join(dir, "f.json");
    writeFileSync(
      file,
      JSON.stringify({
        armEndpoint: "https://127.0.0.1:1",
        authorityHost: "https://127.0.0.1:1",
        tenantId: "t",
        clientId: "c",
        clientSecret: "s",
        subscriptionIds: ["00000000-0000-0000-0000-000000000000"],
        caCertFile: ca,
        vaults: { a: "https://127.0.0.1:2/", b: "https://127.0.0.1:3/" },
      }),
    );
    const env: NodeJS.ProcessEnv = {};
    expect(useTarget(file, env)).toMatchObject({ kind: "emulator", connectionFile: file });
    expect(env.KEYTURN_CONNECTION_FILE).toBe(file);
    expect(env.KEYTURN_KEY_VAULT_URL).toBe("https://127.0.0.1:2/,https://127.0.0.1:3/");
    const preset: NodeJS.ProcessEnv = { KEYTURN_KEY_VAULT_URL: "https://kv.vault.azure.net/" };
    useTarget(file, preset);
    expect(preset.KEYTURN_KEY_VAULT_URL).toBe("https://kv.vault.azure.net/");
  });

  it("absent means Azure", () => {
    expect(useTarget(undefined, {})).toEqual({ kind: "azure" });
  });
});

describe("progress", () => {
  const root = instance({
    customStatus: {
      phase: "rotating",
      accounts: { stmlshared: "running", stmlbatch: "rotated", stmllake: "queued" },
    },
  });
  const child = instance({
    name: "rotateStorageAccount",
    instanceId: "keyturn-account-stmlshared-1",
    customStatus: {
      account: "stmlshared",
      step: "grace",
      kind: "grace",
      index: 4,
      of: 7,
      graceUntil: "2026-01-01T00:01:00.000Z",
    },
  });

  it("shows the phase, each account's state and the running account's step", () => {
    const lines = progressLines(root, [child], "keyturn-scope-1").map((l) => l.text);
    expect(lines).toEqual([
      "rotation keyturn-scope-1: rotating",
      "  stmlshared  running  step 4/7 grace, grace until 00:01:00Z",
      "  stmlbatch   rotated",
      "  stmllake    queued",
    ]);
  });

  it("counts the grace down only in a live view, so a log gets one line per change", () => {
    const live = progressLines(root, [child], "keyturn-scope-1", Date.parse("2026-01-01T00:00:15.000Z"));
    expect(live[1]!.text).toContain("(45s left)");
  });

  it("says how the rotation ended", () => {
    expect(progressLines(instance({ runtimeStatus: "Failed" }), [], "keyturn-scope-1")[0]!.text).toBe(
      "rotation keyturn-scope-1: Failed",
    );
  });
});

describe("keyturn (in process)", () => {
  it("plan refuses an unknown --format with exit 2 before reading anything", async () => {
    const err: string[] = [];
    const code = await main(
      ["node", "keyturn", "plan", "--format", "svg", "--connection-file", "/nonexistent/f.json"],
      () => undefined,
      (t) => err.push(t),
      false,
    );
    expect(code).toBe(2);
    expect(err.join("")).toContain('--format "svg"');
  });

  it("status of an empty state dir says so and exits 0", async () => {
    const out: string[] = [];
    const dir = join(tmpdir(), `keyturn-none-${process.pid}`);
    const code = await main(
      ["node", "keyturn", "status", "--state-dir", dir],
      (t) => out.push(t),
      () => undefined,
      false,
    );
    expect(code).toBe(0);
    expect(out.join("")).toContain("No rotations in");
  });
});

describe("the state directory", () => {
  it("holds the local audit trail when one is chosen, unless KEYTURN_AUDIT_FILE names another", () => {
    const env: NodeJS.ProcessEnv = {};
    const dir = stateDirOf("/tmp/keyturn-elsewhere", env);
    expect(dir).toBe("/tmp/keyturn-elsewhere");
    expect(env.KEYTURN_AUDIT_FILE).toBe("/tmp/keyturn-elsewhere/audit.jsonl");

    const named: NodeJS.ProcessEnv = { KEYTURN_AUDIT_FILE: "/var/audit.jsonl" };
    stateDirOf("/tmp/keyturn-elsewhere", named);
    expect(named.KEYTURN_AUDIT_FILE).toBe("/var/audit.jsonl");

    const defaults: NodeJS.ProcessEnv = {};
    expect(stateDirOf(undefined, defaults)).toMatch(/\.keyturn\/state$/);
    expect(defaults.KEYTURN_AUDIT_FILE).toBeUndefined();
  });
});
