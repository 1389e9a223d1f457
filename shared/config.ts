import {
  DEFAULT_GRACE_SECONDS,
  DEFAULT_MIN_KEY_AGE_DAYS,
  DEFAULT_PARALLELISM,
  parseMinKeyAgeDays,
  parseParallelism,
  parseWholeNumber,
  toGraceSeconds,
} from "./rotation";
import { ConfigurationError, InvalidInputError } from "./errors";
import { parseNcrontab } from "./ncrontab";

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
  /**
   * How long a regenerated key may take to work everywhere (reports say up to about 30 s): nobody is
   * moved to it before the data plane accepts it, and past this the account stops safely.
   */
  keyPropagationSeconds: number;
  /**
   * Days added to the schedule's interval for the expiry of each Key Vault secret version keyturn
   * publishes (shared/published-secret.ts).
   */
  secretExpiryMarginDays: number;
  /** Subscriptions the timer rotates; empty means every subscription the identity can see. */
  subscriptions: string[];
  /** Key Vaults whose secrets tagged `keyturn-storage-account` keyturn keeps current. */
  keyVaultUrls: string[];
  /** Opt-in: Batch account shared keys are rotated too, in every scope (seed 004; `--batch-keys`). */
  batchKeys: boolean;
  /** Opt-in: workspaces' container registry admin passwords are rotated too (seed 003; `--registry-passwords`). */
  registryPasswords: boolean;
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
  keyPropagationSeconds: "KEYTURN_KEY_PROPAGATION_SECONDS",
  secretExpiryMarginDays: "KEYTURN_KEY_VAULT_EXPIRY_MARGIN_DAYS",
  subscriptions: "KEYTURN_SUBSCRIPTIONS",
  keyVaultUrls: "KEYTURN_KEY_VAULT_URL",
  batchKeys: "KEYTURN_BATCH_KEYS",
  registryPasswords: "KEYTURN_ROTATE_REGISTRIES",
  connectionFile: "KEYTURN_CONNECTION_FILE",
  auditTableUrl: "KEYTURN_AUDIT_TABLE_URL",
  auditFile: "KEYTURN_AUDIT_FILE",
  /** Read by the ARM pacer (shared/azure/pacing.ts) at start; validated here with the rest. */
  throttlePatienceMinutes: "KEYTURN_THROTTLE_PATIENCE_MINUTES",
} as const;

export const DEFAULT_AUDIT_FILE = ".keyturn/audit.jsonl";

export const DEFAULT_SCHEDULE = "0 0 3 1 * *";

export const DEFAULT_KEY_PROPAGATION_SECONDS = 300;
const MAX_KEY_PROPAGATION_SECONDS = 3_600;

/**
 * Above 30: Key Vault's SecretNearExpiry event comes 30 days before the expiry, so with a larger margin
 * it comes only after the next scheduled rotation failed to replace the version.
 */
export const DEFAULT_SECRET_EXPIRY_MARGIN_DAYS = 35;
const MAX_SECRET_EXPIRY_MARGIN_DAYS = 365;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function list(value: string | undefined): string[] {
  return (value ?? "")
    .split(/[,;\s]+/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): KeyturnConfig {
  const problems: string[] = [];
  const attempt = <T>(setting: string, fn: () => T, fallback: T): T => {
    try {
      return fn();
    } catch (e) {
      const reasons = e instanceof InvalidInputError ? e.reasons : [(e as Error).message];
      // A reason that already names the setting (`KEYTURN_X "value" must be …`) stands as it is.
      problems.push(...reasons.map((r) => (r.startsWith(`${setting} `) ? r : `${setting}: ${r}`)));
      return fallback;
    }
  };

  const schedule = (env[SETTING.schedule] ?? "").trim() || DEFAULT_SCHEDULE;
  try {
    // The parser the local host runs timers with, so a schedule accepted here is one the host can run.
    parseNcrontab(schedule);
  } catch (e) {
    problems.push(
      `${SETTING.schedule} "${schedule}" must be an NCRONTAB expression with 6 fields (second minute hour day month weekday), e.g. "${DEFAULT_SCHEDULE}": ${(e as Error).message}`,
    );
  }

  const graceSeconds = attempt(
    SETTING.graceMinutes,
    () => {
      const text = env[SETTING.graceMinutes]?.trim();
      return text ? toGraceSeconds(text, "minutes", SETTING.graceMinutes) : DEFAULT_GRACE_SECONDS;
    },
    DEFAULT_GRACE_SECONDS,
  );

  const minKeyAgeDays = attempt(
    SETTING.minKeyAgeDays,
    () => parseMinKeyAgeDays(env[SETTING.minKeyAgeDays]?.trim() || undefined),
    DEFAULT_MIN_KEY_AGE_DAYS,
  );
  const parallelism = attempt(
    SETTING.parallelism,
    () => parseParallelism(env[SETTING.parallelism]?.trim() || undefined),
    DEFAULT_PARALLELISM,
  );

  const keyPropagationSeconds = attempt(
    SETTING.keyPropagationSeconds,
    () =>
      parseWholeNumber(env[SETTING.keyPropagationSeconds], {
        what: SETTING.keyPropagationSeconds,
        unit: "seconds",
        fallback: DEFAULT_KEY_PROPAGATION_SECONDS,
        min: 0,
        max: MAX_KEY_PROPAGATION_SECONDS,
        note: `default ${DEFAULT_KEY_PROPAGATION_SECONDS}`,
      }),
    DEFAULT_KEY_PROPAGATION_SECONDS,
  );
  const secretExpiryMarginDays = attempt(
    SETTING.secretExpiryMarginDays,
    () =>
      parseWholeNumber(env[SETTING.secretExpiryMarginDays], {
        what: SETTING.secretExpiryMarginDays,
        unit: "days",
        fallback: DEFAULT_SECRET_EXPIRY_MARGIN_DAYS,
        min: 1,
        max: MAX_SECRET_EXPIRY_MARGIN_DAYS,
        note: `added to the schedule's interval for the expiry of the Key Vault secrets keyturn publishes; default ${DEFAULT_SECRET_EXPIRY_MARGIN_DAYS}`,
      }),
    DEFAULT_SECRET_EXPIRY_MARGIN_DAYS,
  );

  const patienceText = env[SETTING.throttlePatienceMinutes]?.trim();
  if (
    patienceText &&
    !(/^\d+(\.\d+)?$/.test(patienceText) && Number(patienceText) > 0 && Number(patienceText) <= 1440)
  ) {
    problems.push(
      `${SETTING.throttlePatienceMinutes} "${patienceText}" must be a number of minutes above 0 and at most 1440 (how long keyturn waits out ARM throttling before giving up; default 30)`,
    );
  }

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

  const flag = (setting: string): boolean => {
    const text = (env[setting] ?? "").trim().toLowerCase();
    if (!["", "true", "false"].includes(text))
      problems.push(`${setting} "${env[setting]}" must be true or false`);
    return text === "true";
  };
  const batchKeys = flag(SETTING.batchKeys);
  const registryPasswords = flag(SETTING.registryPasswords);

  const auditTableUrl = env[SETTING.auditTableUrl]?.trim();
  if (auditTableUrl && !/^https?:\/\/[^/]+\/.+/.test(auditTableUrl)) {
    problems.push(
      `${SETTING.auditTableUrl} "${auditTableUrl}" must be a table URL like https://<account>.table.core.windows.net/keyturnaudit`,
    );
  }

  if (problems.length > 0) throw new ConfigurationError(problems);
  const connectionFile = env[SETTING.connectionFile]?.trim() || undefined;
  return {
    schedule,
    graceSeconds,
    minKeyAgeDays,
    parallelism,
    keyPropagationSeconds,
    secretExpiryMarginDays,
    subscriptions,
    keyVaultUrls,
    batchKeys,
    registryPasswords,
    ...(connectionFile ? { connectionFile } : {}),
    audit: auditTableUrl
      ? { tableUrl: auditTableUrl }
      : { file: env[SETTING.auditFile]?.trim() || DEFAULT_AUDIT_FILE },
  };
}
