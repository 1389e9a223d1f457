import type { EventGridEvent, InvocationContext } from "@azure/functions";
import * as df from "durable-functions";
import type { DurableClient } from "durable-functions";
import { isIP } from "node:net";
import { loadConfig } from "../shared/config";
import { scopeInstanceId, validateRotationRequest } from "../shared/rotation";
import { ORCHESTRATOR, rotateAllInput } from "../shared/activities/contracts";
import { scrubError } from "../shared/errors";
import { activityDeps } from "./deps";
import { runningStatus } from "./http";

/**
 * Key Vault's `Microsoft.KeyVault.SecretNearExpiry` (30 days before a secret's current version
 * expires), delivered by the Event Grid subscription infra/modules/keyvault-events.bicep makes: for a
 * secret keyturn keeps current (tagged `keyturn-storage-account`, in a vault of KEYTURN_KEY_VAULT_URL)
 * it starts a rotation of that one storage account, as `POST /api/rotations` would, with the same
 * policy as the timer (an account whose keys are too young is skipped). Every other event is ignored
 * with a log line.
 */
export const SECRET_NEAR_EXPIRY = "Microsoft.KeyVault.SecretNearExpiry";
export const EVENT_GRID_FUNCTION = "secretNearExpiry";

/** What a SecretNearExpiry event says (Event Grid schema; `data` is Key Vault's). */
export interface NearExpiry {
  vaultName: string;
  secretName: string;
  version: string;
}

/** The event's vault, secret and version, or why it is not a SecretNearExpiry of a secret. */
export function readNearExpiry(event: Partial<EventGridEvent>): NearExpiry | { ignored: string } {
  if (event.eventType !== SECRET_NEAR_EXPIRY)
    return { ignored: `event type ${JSON.stringify(event.eventType)} is not ${SECRET_NEAR_EXPIRY}` };
  const data: Record<string, unknown> = event.data ?? {};
  const text = (v: unknown) => (typeof v === "string" ? v.trim() : "");
  const objectType = text(data.ObjectType);
  if (objectType !== "" && objectType.toLowerCase() !== "secret")
    return { ignored: `object type ${JSON.stringify(objectType)} is not a secret` };
  const vaultName = text(data.VaultName);
  const secretName = text(data.ObjectName) || text(event.subject);
  if (vaultName === "" || secretName === "")
    return { ignored: "the event names no vault (data.VaultName) or no secret (data.ObjectName)" };
  return { vaultName, secretName, version: text(data.Version) };
}

/**
 * The configured vaults the event's vault can be: those whose host names it
 * (`https://<vault>.vault.azure.net/`, any cloud), and those whose host is an address that names no
 * vault (the emulator's `https://127.0.0.1:<port>/`).
 */
export function vaultsNamed(vaultUrls: readonly string[], vaultName: string): string[] {
  const hostOf = (url: string) => {
    try {
      return new URL(url).hostname.replace(/^\[|\]$/g, "");
    } catch {
      return "";
    }
  };
  const byName = vaultUrls.filter(
    (url) => hostOf(url).split(".")[0]?.toLowerCase() === vaultName.toLowerCase(),
  );
  const unnamed = vaultUrls.filter((url) => {
    const host = hostOf(url);
    return host !== "" && (isIP(host) !== 0 || host === "localhost");
  });
  return [...new Set([...byName, ...unnamed])];
}

export async function secretNearExpiry(
  event: EventGridEvent,
  client: DurableClient,
  context: InvocationContext,
): Promise<void> {
  const read = readNearExpiry(event);
  if ("ignored" in read) {
    context.log(`keyturn: Event Grid event ${event.id} ignored: ${read.ignored}`);
    return;
  }
  const { vaultName, secretName, version } = read;
  const what = `${vaultName}/${secretName}${version ? ` (version ${version})` : ""}`;
  const settings = loadConfig();
  const accounts = new Set<string>();
  try {
    const secrets = activityDeps().azure.secrets;
    for (const vaultUrl of vaultsNamed(settings.keyVaultUrls, vaultName)) {
      for (const published of await secrets.listPublished(vaultUrl)) {
        if (published.name.toLowerCase() === secretName.toLowerCase())
          accounts.add(published.storageAccountId);
      }
    }
  } catch (e) {
    // Event Grid delivers again after a failure: a vault that did not answer is tried again.
    const error = scrubError(e);
    context.error(`keyturn: SecretNearExpiry for ${what}: the vault could not be read: ${error.message}`);
    throw error;
  }
  if (accounts.size !== 1) {
    context.log(
      accounts.size === 0
        ? `keyturn: SecretNearExpiry for ${what} ignored: not a secret keyturn publishes (no secret of that name tagged keyturn-storage-account in the vaults of KEYTURN_KEY_VAULT_URL)`
        : `keyturn: SecretNearExpiry for ${what} ignored: secrets of that name in several vaults name different storage accounts (${[...accounts].join(", ")}); rotate them with POST /api/rotations`,
    );
    return;
  }
  const [storageAccountId = ""] = accounts;
  const validation = validateRotationRequest(
    { scope: { storageAccounts: [storageAccountId] } },
    { graceSeconds: settings.graceSeconds },
  );
  if (!validation.ok) {
    context.warn(
      `keyturn: SecretNearExpiry for ${what} ignored: its keyturn-storage-account tag is not a storage account: ${validation.reasons.join("; ")}`,
    );
    return;
  }
  // The HTTP API's instance id for the same scope: one rotation of the account at a time, whoever asks.
  const instanceId = scopeInstanceId(validation.value.scope);
  const busy = (status: string) =>
    context.log(
      `keyturn: SecretNearExpiry for ${what}: a rotation of ${storageAccountId} is already ${status} (${instanceId}); nothing more started`,
    );
  const running = await runningStatus(client, instanceId);
  if (running) return busy(running);
  const input = rotateAllInput(validation.value, settings, {
    trigger: "event",
    startedBy: `SecretNearExpiry ${vaultName}/${secretName}`,
  });
  try {
    await client.startNew(ORCHESTRATOR.rotateAll, { instanceId, input });
  } catch (e) {
    // Two deliveries of one event (Event Grid is at-least-once) can both pass the check: one wins.
    const now = await runningStatus(client, instanceId);
    if (now) return busy(now);
    throw e;
  }
  context.log(`keyturn: SecretNearExpiry for ${what}: started ${instanceId} for ${storageAccountId}`);
}

df.app.client.eventGrid(EVENT_GRID_FUNCTION, { handler: secretNearExpiry });
