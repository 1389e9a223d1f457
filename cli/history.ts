import { loadConfig } from "../shared/config";
import { FileAuditStore, TableAuditStore, type AuditRecord, type AuditStore } from "../shared/audit";
import { loadCloudProfile } from "../shared/azure";
import type { Io } from "./io";
import { formatTable } from "./format";

/** `keyturn status --history`: the audit trail, one line per account rotation, newest first. */
export async function history(
  io: Io,
  options: { json?: boolean; storageAccount?: string; limit?: number },
): Promise<number> {
  const config = loadConfig();
  const store: AuditStore =
    "tableUrl" in config.audit
      ? TableAuditStore.fromUrl(
          config.audit.tableUrl,
          loadCloudProfile(config.connectionFile ? { connectionFile: config.connectionFile } : {}).credential,
        )
      : new FileAuditStore(config.audit.file);
  const records = await store.list({
    limit: options.limit ?? 50,
    ...(options.storageAccount ? { storageAccount: options.storageAccount } : {}),
  });
  return showHistory(
    io,
    records,
    options,
    "tableUrl" in config.audit ? config.audit.tableUrl : config.audit.file,
  );
}

/** The audit trail as `status --history` prints it, read locally or from a deployed API (`--api`). */
export function showHistory(
  io: Io,
  records: readonly AuditRecord[],
  options: { json?: boolean },
  where: string,
): number {
  if (options.json) {
    io.out(JSON.stringify(records, null, 2) + "\n");
    return 0;
  }
  if (records.length === 0) {
    io.out(`No rotations recorded yet (${where}).\n`);
    return 0;
  }
  const rows = [
    ["FINISHED", "ACCOUNT", "OUTCOME", "REGENERATED", "ACTIVE", "MOVED", "TRIGGER", "BY", "ROTATION"],
    ...records.map((r) => [
      r.finishedAt,
      r.storageAccount,
      r.skipCode ? `${r.outcome} (${r.skipCode})` : r.outcome,
      r.keysRegenerated || "-",
      r.activeKeyBefore && r.activeKeyAfter
        ? `${r.activeKeyBefore}->${r.activeKeyAfter}`
        : (r.activeKeyBefore ?? "-"),
      String(r.consumersMoved.length),
      r.trigger,
      r.startedBy,
      r.rotationId,
    ]),
  ];
  io.out(formatTable(rows).join("\n") + "\n");
  return 0;
}
