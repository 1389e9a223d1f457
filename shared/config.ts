import {
  DEFAULT_GRACE_SECONDS,
  DEFAULT_MIN_KEY_AGE_DAYS,
  DEFAULT_PARALLELISM,
  InvalidInputError,
  MAX_GRACE_SECONDS,
  parseMinKeyAgeDays,
  parseParallelism,
} from "./rotation";

/**
 * keyturn's app settings, read once and validated as a whole (I6): a bad setting stops keyturn
 * before it writes anything, with every problem named and how to fix it.
 */
export interface KeyturnConfig {
  /** NCRONTAB (6 fields, seconds first) for the monthly rotation. */
  schedule: string;
  graceSeconds: number;
  minKeyAgeDays: number;
  parallelism: number;
  /** Subscriptions the timer rotates; empty means every subscription the identity can see. */
  subscriptions: string[];
  /** Key Vaults whose secrets tagged `keyturn-storage-account` keyturn keeps current. */
  keyVaultUrls: string[];
  /** The emulator's connection file, when keyturn runs against it instead of Azure. */
  connectionFile?: string;
  /** Where the audit trail goes: an Azure Table URL, else a local JSON-lines file. */
  audit: { tableUrl: string } | { file: string };
}

export const SETTING = {
  schedule: "KEYTURN_SCHEDULE",
  graceMinutes: "KEYTURN_GRACE_MINUTES",
  minKeyAgeDays: "KEYTURN_MIN_KEY_AGE_DAYS",
  parallelism: "KEYTURN_PARALLELISM",
  subscriptions: "KEYTURN_SUBSCRIPTIONS",
  keyVaultUrls: "KEYTURN_KEY_VAULT_URL",
  connectionFile: "KEYTURN_CONNECTION_FILE",
  auditTableUrl: "KEYTURN_AUDIT_TABLE_URL",
  auditFile: "KEYTURN_AUDIT_FILE",
} as const;

export const DEFAULT_AUDIT_FILE = ".keyturn/audit.jsonl";

export const DEFAULT_SCHEDULE = "0 0 3 1 * *";

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class ConfigError extends InvalidInputError {
  constructor(reasons: string[]) {
    super(reasons);
    this.name = "ConfigError";
    this.message = `keyturn's settings are invalid:\n- ${reasons.join("\n- ")}`;
  }
}

function list(value: string | undefined): string[] {
  return (value ?? "")
    .split(/[,;\s]+/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): KeyturnConfig {
  const problems: string[] = [];
  const attempt = <T>(fn: () => T, fallback: T): T => {
    try {
      return fn();
    } catch (e) {
      problems.push(...(e instanceof InvalidInputError ? e.reasons : [(e as Error).message]));
      return fallback;
    }
  };

  const schedule = (env[SETTING.schedule] ?? "").trim() || DEFAULT_SCHEDULE;
  if (schedule.split(/\s+/).length !== 6) {
    problems.push(
      `${SETTING.schedule} "${schedule}" must be an NCRONTAB expression with 6 fields (second minute hour day month weekday), e.g. "${DEFAULT_SCHEDULE}"`,
    );
  }

  let graceSeconds = DEFAULT_GRACE_SECONDS;
  const graceText = env[SETTING.graceMinutes]?.trim();
  if (graceText) {
    const minutes = Number(graceText);
    if (!Number.isFinite(minutes) || minutes < 0 || minutes * 60 > MAX_GRACE_SECONDS) {
      problems.push(
        `${SETTING.graceMinutes} "${graceText}" must be a number of minutes from 0 to ${MAX_GRACE_SECONDS / 60}`,
      );
    } else {
      graceSeconds = Math.round(minutes * 60);
    }
  }

  const minKeyAgeDays = attempt(
    () => parseMinKeyAgeDays(env[SETTING.minKeyAgeDays]?.trim() || undefined),
    DEFAULT_MIN_KEY_AGE_DAYS,
  );
  const parallelism = attempt(
    () => parseParallelism(env[SETTING.parallelism]?.trim() || undefined),
    DEFAULT_PARALLELISM,
  );

  const subscriptions = list(env[SETTING.subscriptions]);
  for (const s of subscriptions) {
    if (!GUID.test(s)) problems.push(`${SETTING.subscriptions}: "${s}" is not a subscription id (a GUID)`);
  }

  const keyVaultUrls = list(env[SETTING.keyVaultUrls]);
  for (const url of keyVaultUrls) {
    if (!/^https:\/\/[^/]+\/?$/.test(url)) {
      problems.push(
        `${SETTING.keyVaultUrls}: "${url}" is not a vault URL like https://myvault.vault.azure.net/`,
      );
    }
  }

  const auditTableUrl = env[SETTING.auditTableUrl]?.trim();
  if (auditTableUrl && !/^https?:\/\/[^/]+\/.+/.test(auditTableUrl)) {
    problems.push(
      `${SETTING.auditTableUrl} "${auditTableUrl}" must be a table URL like https://<account>.table.core.windows.net/keyturnaudit`,
    );
  }

  if (problems.length > 0) throw new ConfigError(problems);
  const connectionFile = env[SETTING.connectionFile]?.trim() || undefined;
  return {
    schedule,
    graceSeconds,
    minKeyAgeDays,
    parallelism,
    subscriptions,
    keyVaultUrls,
    ...(connectionFile ? { connectionFile } : {}),
    audit: auditTableUrl
      ? { tableUrl: auditTableUrl }
      : { file: env[SETTING.auditFile]?.trim() || DEFAULT_AUDIT_FILE },
  };
}
