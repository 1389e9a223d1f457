import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { join, resolve } from "node:path";
import { discoverSubscriptions, loadCloudProfile } from "../shared/azure";
import { SETTING } from "../shared/config";
import { KeyturnError } from "../shared/errors";
import type { RotationScope } from "../shared/rotation";
import { CliError, EXIT_USAGE, usageError } from "./errors";

/** Where keyturn's calls go: the emulator of a connection file, or Azure with DefaultAzureCredential. */
export type Target = { kind: "emulator"; connectionFile: string; armEndpoint: string } | { kind: "azure" };

interface ConnectionFileShape {
  armEndpoint: string;
  subscriptionIds: string[];
  vaults?: Record<string, string>;
}

const START_HINT = (file: string) =>
  `start the emulator with \`npx keyturn emulator --connection-file ${file}\``;

/**
 * Points this process at the emulator of `connectionFile` (or at Azure without one), the same way
 * the Functions app reads it: KEYTURN_CONNECTION_FILE, and KEYTURN_KEY_VAULT_URL for the vaults whose
 * secrets keyturn keeps current (unless set already). Checked here, before anything runs, so a wrong
 * path is one clear message instead of a failed activity.
 */
export function useTarget(connectionFile: string | undefined, env: NodeJS.ProcessEnv = process.env): Target {
  const given = connectionFile ?? (env[SETTING.connectionFile]?.trim() || undefined);
  if (given === undefined) return { kind: "azure" };
  const file = resolve(given);
  if (!existsSync(file)) {
    throw usageError(`connection file ${file} does not exist: ${START_HINT(given)}`);
  }
  let parsed: Partial<ConnectionFileShape>;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8")) as Partial<ConnectionFileShape>;
  } catch (e) {
    const why =
      e instanceof SyntaxError ? "is not JSON" : `cannot be read (${(e as NodeJS.ErrnoException).code})`;
    throw usageError(`connection file ${file} ${why}: ${START_HINT(given)} to write it`);
  }
  if (typeof parsed !== "object" || parsed === null || typeof parsed.armEndpoint !== "string") {
    throw usageError(`connection file ${file} has no armEndpoint: ${START_HINT(given)} to write it`);
  }
  env[SETTING.connectionFile] = file;
  if (!env[SETTING.keyVaultUrls]?.trim()) {
    const vaults = Object.values(parsed.vaults ?? {}).filter((v): v is string => typeof v === "string");
    if (vaults.length > 0) env[SETTING.keyVaultUrls] = vaults.join(",");
  }
  try {
    // The full check (fields, CA certificate) lives with the profile; run it now, not mid-rotation.
    loadCloudProfile({ connectionFile: file, env });
  } catch (e) {
    if (e instanceof KeyturnError) throw new CliError(e.message, EXIT_USAGE);
    throw e;
  }
  return { kind: "emulator", connectionFile: file, armEndpoint: parsed.armEndpoint };
}

/**
 * Fails fast on what would otherwise fail only after an activity's retries (half a minute later):
 * a connection file outliving its emulator, or no usable Azure sign-in.
 */
export async function preflight(target: Target): Promise<void> {
  if (target.kind === "azure") {
    const profile = loadCloudProfile({});
    try {
      await profile.credential.getToken(profile.armScope);
    } catch (e) {
      const first = ((e as Error).message ?? String(e)).split("\n")[0] ?? "";
      throw new CliError(
        `cannot sign in to Azure with DefaultAzureCredential (${first}): run \`az login\`, set ` +
          `AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, or use a managed identity; for the emulator pass --connection-file`,
      );
    }
    return;
  }
  const profile = loadCloudProfile({ connectionFile: target.connectionFile });
  const reachable = await new Promise<boolean>((done) => {
    const req = request(
      `${profile.armEndpoint}/metadata/endpoints?api-version=2022-09-01`,
      { ca: profile.tlsCa, timeout: 5000 },
      (res) => {
        res.resume();
        done(true);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => done(false));
    req.end();
  });
  if (!reachable) {
    throw new CliError(
      `the emulator of ${target.connectionFile} is not answering at ${profile.armEndpoint}: ${START_HINT(target.connectionFile)}`,
    );
  }
}

/** No scope option: every subscription the connection file lists, or every one the identity sees. */
export async function defaultScope(target: Target): Promise<RotationScope> {
  const profile = loadCloudProfile(
    target.kind === "emulator" ? { connectionFile: target.connectionFile } : {},
  );
  let subscriptions: string[];
  try {
    subscriptions = await discoverSubscriptions(profile);
  } catch (e) {
    throw new CliError(
      `cannot list the subscriptions your identity sees (${(e as Error).message}): sign in (az login, or ` +
        `AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET) or name the scope with --subscription`,
    );
  }
  if (subscriptions.length === 0) {
    throw new CliError(
      "the signed-in identity sees no enabled subscription: give it keyturn's role (infra/keyturn-role.json) " +
        "on the subscriptions to rotate, or name the scope with --subscription",
    );
  }
  return { subscriptions };
}

// ---------------------------------------------------------------------------------------------
// What a state directory was run against

// Not `.json`: the instance store reads every *.json file in the directory as an instance.
const TARGET_FILE = "keyturn-target";

interface RecordedTarget {
  connectionFile?: string;
}

/**
 * `resume` must talk to what the rotation started against: a rotation of the emulator resumed
 * against Azure (or the other way round) would find none of the resources it planned with.
 */
export function recordTarget(stateDir: string, target: Target): void {
  mkdirSync(stateDir, { recursive: true });
  const recorded: RecordedTarget =
    target.kind === "emulator" ? { connectionFile: target.connectionFile } : {};
  writeFileSync(join(stateDir, TARGET_FILE), JSON.stringify(recorded) + "\n");
}

/** undefined when the directory holds no record (state written by something other than the CLI). */
export function recordedTarget(stateDir: string): RecordedTarget | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir, TARGET_FILE), "utf8")) as RecordedTarget;
  } catch {
    return undefined;
  }
}
