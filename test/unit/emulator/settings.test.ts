import { InvalidArgumentError } from "commander";
import { emulatorSettingsOf, settingOption, type EmulatorCommandOptions } from "../../../cli/emulator";
import { CliError, EXIT_USAGE } from "../../../cli/errors";
import { startEmulator } from "../../../emulator";

/**
 * The emulator's settings outside the admin API (test/contract/undocumented.test.ts covers that):
 * `startEmulator({settings})` and `keyturn emulator`'s options, checked by the same rules.
 */

describe("startEmulator settings", () => {
  it("refuses bad settings before starting anything, naming each", async () => {
    await expect(
      startEmulator({ settings: { keyPropagationSeconds: -1, resyncPolicy: "newest" as "key1" } }),
    ).rejects.toThrow(
      "Invalid emulator settings: keyPropagationSeconds must be a number of seconds from 0 to 31536000; resyncPolicy must be 'key1', 'consumers' or 'keepIfLive'.",
    );
  });
});

const base: EmulatorCommandOptions = { estate: "demo", port: 0, resyncPolicy: "key1", latency: "off" };

function usageMessage(opts: EmulatorCommandOptions): string {
  try {
    emulatorSettingsOf(opts);
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    expect((e as CliError).exitCode).toBe(EXIT_USAGE);
    return (e as Error).message;
  }
  throw new Error("the options were accepted");
}

describe("keyturn emulator settings options", () => {
  it("takes keepIfLive for --resync-policy and --batch-sync-policy", () => {
    expect(
      emulatorSettingsOf({ ...base, resyncPolicy: "keepIfLive", batchSyncPolicy: "keepIfLive" }),
    ).toEqual({
      resyncPolicy: "keepIfLive",
      batchSyncPolicy: "keepIfLive",
      latency: "off",
    });
  });

  it("leaves Batch's policy to the emulator's default when --batch-sync-policy is not given", () => {
    expect(emulatorSettingsOf(base)).not.toHaveProperty("batchSyncPolicy");
  });

  it("passes any setting with --setting name=value, as booleans, numbers or text", () => {
    const setting = [
      "resyncRewritesDefaultDatastores=true",
      "keyPropagationSeconds=10",
      "consumerKeyCacheSeconds=0.5",
      "keyCreationTimeKnown=false",
      "batchSyncPolicy=key1",
    ].reduce<string[]>((all, pair) => settingOption(pair, all), []);
    expect(emulatorSettingsOf({ ...base, setting })).toMatchObject({
      resyncRewritesDefaultDatastores: true,
      keyPropagationSeconds: 10,
      consumerKeyCacheSeconds: 0.5,
      keyCreationTimeKnown: false,
      batchSyncPolicy: "key1",
    });
  });

  it("refuses a --setting that is not name=value", () => {
    expect(() => settingOption("keyPropagationSeconds", [])).toThrow(InvalidArgumentError);
    expect(() => settingOption("=10", [])).toThrow(/is not name=value/);
  });

  it("names every bad value, and the option that set it, before anything starts", () => {
    const message = usageMessage({
      ...base,
      resyncPolicy: "newest",
      batchSyncPolicy: "key2",
      setting: ["keyPropagationSeconds=-1", "workspaceAutoSync=5", "resyncRewritesDefaultDatastores=yes"],
    });
    expect(message).toContain("--resync-policy: resyncPolicy must be 'key1', 'consumers' or 'keepIfLive'");
    expect(message).toContain(
      "--batch-sync-policy: batchSyncPolicy must be 'key1', 'consumers' or 'keepIfLive'",
    );
    expect(message).toContain(
      "--setting: keyPropagationSeconds must be a number of seconds from 0 to 31536000",
    );
    expect(message).toContain("--setting: unknown setting 'workspaceAutoSync'");
    expect(message).toContain("--setting: resyncRewritesDefaultDatastores must be a boolean");
  });

  it("still refuses a bad --latency", () => {
    expect(usageMessage({ ...base, latency: "slow" })).toContain(
      "--latency: latency must be 'off' or 'realistic'",
    );
  });
});
