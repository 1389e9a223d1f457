import {
  REGISTRY_KEY_NAMES,
  consumerHoldings,
  emulatorFingerprint,
  heldKeyName,
  type ConsumerHolding,
} from "./consumers";
import type { Emulator } from "./index";
import { livePasswordName, registryOf } from "./arm/registry";
import { ARM_READ_LIMITS, ARM_WRITE_LIMITS, STORAGE_RP_LIMITS } from "./throttle";

const DAY_MS = 86_400_000;

/** A plain-text account of what the emulator holds: fingerprints and key names, never key values. */
export function describeEmulator(emulator: Emulator): string {
  const { estate } = emulator.ctx;
  const now = emulator.ctx.now().getTime();
  const lines: string[] = [];
  const c = emulator.connection;
  lines.push(`keyturn emulator  ARM ${c.armEndpoint}  tenant ${c.tenantId}`);
  lines.push(`  subscriptions: ${c.subscriptionIds.join(", ")}`);
  lines.push(`  sign in as keyturn: client id ${c.clientId} (secret in the connection file)`);
  const { settings } = emulator.ctx;
  const onOff = (on: boolean) => (on ? "on" : "off");
  const rp = STORAGE_RP_LIMITS;
  lines.push(
    `  limits: ARM throttling ${onOff(settings.throttling)} (per principal and subscription: reads ${ARM_READ_LIMITS.capacity} +${ARM_READ_LIMITS.refillPerSecond}/s, writes ${ARM_WRITE_LIMITS.capacity} +${ARM_WRITE_LIMITS.refillPerSecond}/s), ` +
      `Storage RP limits ${onOff(settings.storageRpLimits)} (per subscription and region: writes ${rp.writesPerSecond.refillPerSecond}/s and ${rp.writesPerHour.limit}/h, reads ${rp.reads.limit} and lists ${rp.lists.limit} per 5 min)`,
  );
  lines.push("");
  const holdings = consumerHoldings(estate);
  const holds = (h: ConsumerHolding) => heldKeyName(estate, h) ?? "a dead key";
  lines.push(`Storage accounts (${estate.storageAccounts.size})`);
  for (const a of estate.storageAccounts.values()) {
    const age = (k: "key1" | "key2") => Math.floor((now - a.keys[k].creationTime.getTime()) / DAY_MS);
    const consumers = holdings.filter((h) => h.storageAccountId === a.id);
    lines.push(
      `  ${a.name.padEnd(16)} ${a.resourceGroup.padEnd(16)} ${a.location.padEnd(11)} key1 ${emulatorFingerprint(a.keys.key1.value)} (${age("key1")}d)  key2 ${emulatorFingerprint(a.keys.key2.value)} (${age("key2")}d)${a.isHnsEnabled ? "  ADLS Gen2" : ""}${a.classic ? "  classic" : ""}${a.keyExpirationPeriodInDays ? `  key policy ${a.keyExpirationPeriodInDays}d` : ""}  ${consumers.length} consumers`,
    );
  }
  lines.push("");
  lines.push(`Workspaces (${estate.workspaces.size})`);
  for (const ws of estate.workspaces.values()) {
    const own = holdings.find((h) => h.id === ws.id);
    lines.push(
      `  ${ws.name}  (${ws.resourceGroup}, storage ${ws.storageAccountId.split("/").pop()}, holds ${own ? holds(own) : "-"})`,
    );
    for (const ds of ws.datastores.values()) {
      const holding = holdings.find((h) => h.id === ds.id);
      const held = holding ? `holds ${holds(holding)}` : "";
      lines.push(
        `    ${ds.name.padEnd(22)} ${ds.datastoreType.padEnd(18)} ${ds.credentials.credentialsType.padEnd(10)} ${ds.accountName}/${ds.containerName}${ds.isDefault ? " (default)" : ""} ${held}`.trimEnd(),
      );
    }
  }
  lines.push("");
  for (const b of estate.batchAccounts.values()) {
    const holding = holdings.find((h) => h.id === b.id);
    // Who holds its shared keys (Primary = key1, Secondary = key2).
    const readers = holdings
      .filter((h) => h.resource === "batchAccount" && h.storageAccountId === b.id)
      .map((h) => `${h.name} holds ${holds(h)}`);
    const sharedKey = b.allowedAuthenticationModes.includes("SharedKey") ? "" : " (Entra ID only)";
    lines.push(
      `Batch account ${b.name}: auto-storage ${b.autoStorage?.storageAccountId.split("/").pop() ?? "none"} (${b.autoStorage?.authenticationMode ?? "-"}), holds ${holding ? holds(holding) : "-"}; shared keys key1 ${emulatorFingerprint(b.keys.primary)} key2 ${emulatorFingerprint(b.keys.secondary)}${sharedKey}${readers.length > 0 ? `; ${readers.join(", ")}` : ""}`,
    );
  }
  for (const v of estate.vaults.values()) {
    lines.push(`Key Vault ${v.name} at ${v.vaultUri}: secrets ${[...v.secrets.keys()].join(", ")}`);
  }
  for (const r of estate.registries.values()) {
    const holders = [...estate.workspaces.values()].filter((ws) => registryOf(estate, ws) === r);
    const held = holders.map((ws) => {
      const name = ws.registryPassword && livePasswordName(r, ws.registryPassword.value);
      // password = key1, password2 = key2, as the outage log and /_admin/state name them.
      return `${ws.name} holds ${name ? `${name} (${REGISTRY_KEY_NAMES[name]})` : ws.registryPassword ? "a dead password" : "none"}`;
    });
    lines.push(
      `Container registry ${r.name} at ${r.loginServer}: admin user ${r.adminUserEnabled ? "on" : "off"}, password ${emulatorFingerprint(r.passwords.password)}, password2 ${emulatorFingerprint(r.passwords.password2)}${held.length > 0 ? `; ${held.join(", ")}` : ""}`,
    );
  }
  for (const r of estate.keyVaultReaders) {
    const holding = holdings.find(
      (h) => (h.kind === "keyVaultReader" || h.kind === "batchKeyReader") && h.name === r.name,
    );
    lines.push(
      `Key Vault reader ${r.name}: reads ${r.vaultName}/${r.secretName}${holding ? ` (${holding.resource === "batchAccount" ? "Batch account" : "storage"} ${holding.storageAccountName}), holds ${holds(holding)}` : ""}`,
    );
  }
  const outages = emulator.outages.all();
  lines.push("");
  lines.push(`Outages so far: ${outages.length}`);
  return lines.join("\n");
}
