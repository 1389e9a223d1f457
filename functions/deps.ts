import { loadConfig } from "../shared/config";
import { createAzure, loadCloudProfile } from "../shared/azure";
import type { ActivityDeps } from "../shared/activities";
import { FileAuditStore, TableAuditStore } from "../shared/audit";

let cached: ActivityDeps | undefined;

/**
 * One set of adapters per worker process, made on first use so a bad setting fails the first activity
 * with a message naming it, not the host's start.
 */
export function activityDeps(): ActivityDeps {
  if (!cached) {
    const config = loadConfig();
    const profile = loadCloudProfile(config.connectionFile ? { connectionFile: config.connectionFile } : {});
    // The emulator finishes a resync in one poll; Azure takes seconds to minutes.
    const azure = createAzure(profile, profile.name === "emulator" ? { lroPollIntervalMs: 100 } : {});
    const audit =
      "tableUrl" in config.audit
        ? TableAuditStore.fromUrl(config.audit.tableUrl, profile.credential)
        : new FileAuditStore(config.audit.file);
    cached = { azure, config, audit };
  }
  return cached;
}

/** For the local host and tests: settings changed, build the adapters again. */
export function resetActivityDeps(): void {
  cached = undefined;
}
