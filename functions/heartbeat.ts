import type { InvocationContext, Timer } from "@azure/functions";
import { emitHeartbeat, emitKeyAge, telemetryFromEnv } from "../shared/telemetry";
import { scrubError } from "../shared/errors";
import { activityDeps } from "./deps";
import { unreadSnapshot } from "../shared/azure";

/**
 * Daily: how long since the last successful rotation (log alerts look back at most two days, so the
 * "overdue" alert needs a fresh signal every day) and every account's key age (the key-policy alert).
 * Reads only: account properties and the audit trail, never a key.
 */
export async function heartbeat(_timer: Timer, context: InvocationContext): Promise<void> {
  const deps = activityDeps();
  const telemetry = telemetryFromEnv({ instanceId: `heartbeat-${context.invocationId}` });
  const now = new Date();
  try {
    const last = (await deps.audit.list({ outcome: "rotated", limit: 1 }))[0];
    emitHeartbeat(telemetry, { ...(last ? { lastSuccessAt: last.finishedAt } : {}), now });
    const subscriptions =
      deps.config.subscriptions.length > 0 ? deps.config.subscriptions : await deps.azure.subscriptions();
    for (const subscriptionId of subscriptions) {
      for (const a of await deps.azure.storage.listAccounts(subscriptionId)) {
        emitKeyAge(telemetry, unreadSnapshot(a), now);
      }
    }
  } catch (e) {
    const error = scrubError(e);
    telemetry.trace(`heartbeat incomplete: ${error.message}`, "error");
    context.error(`heartbeat incomplete: ${error.message}`);
  } finally {
    await telemetry.flush();
  }
}
