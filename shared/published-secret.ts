import { isBatchAccountId } from "./azure/ids";
import { parseNcrontab } from "./ncrontab";
import type { KeyName } from "./rotation/model";

/**
 * What keyturn writes beside a storage key it publishes to Key Vault (issue 11, secrets hygiene): an
 * expiry, a content type, and the tags of Microsoft's rotation sample
 * (Azure-Samples/KeyVault-Rotation-StorageAccountKey-PowerShell) beside keyturn's own. Pure: the
 * activity passes the time and the settings in.
 *
 * The expiry is the schedule's interval plus a margin (KEYTURN_KEY_VAULT_EXPIRY_MARGIN_DAYS): the next
 * scheduled rotation replaces the version well before it expires, and Key Vault's
 * `Microsoft.KeyVault.SecretNearExpiry` event (30 days before the expiry) is the safety net that starts
 * a rotation of the account when that did not happen. Key Vault does not refuse to read an expired
 * secret, so an expiry is a signal for people and policy, never an outage.
 */

/**
 * The content type of every version keyturn publishes: the value is a storage account key as plain
 * text (base64 characters), in MIME syntax with a parameter saying what it is.
 */
export const SECRET_CONTENT_TYPE = "text/plain; keyturn=storage-account-key";

/** The tags of Microsoft's rotation sample, whose rotation functions and portal views read them. */
export const SAMPLE_TAG_NAMES = {
  /** The key the version holds: `key1` or `key2`. */
  credentialId: "CredentialId",
  /** The storage account's resource id. */
  providerAddress: "ProviderAddress",
  /** Days from the version's creation to its expiry. */
  validityPeriodDays: "ValidityPeriodDays",
} as const;

const DAY_MS = 86_400_000;

/**
 * The schedule's interval as seen from `now`: the longer of the time until the next run and the gap
 * between the next two runs. A version published by a scheduled run waits a whole gap for its
 * replacement (a monthly schedule published on 1 January waits 31 days, though February's gap is 28);
 * one published on demand between runs still gets at least a whole gap. Undefined when the schedule
 * never fires again.
 */
export function scheduleIntervalMs(schedule: string, now: Date): number | undefined {
  const cron = parseNcrontab(schedule);
  const next = cron.next(now);
  if (!next) return undefined;
  const after = cron.next(next);
  const untilNext = next.getTime() - now.getTime();
  return after ? Math.max(untilNext, after.getTime() - next.getTime()) : untilNext;
}

/** A schedule that never fires again (e.g. `0 0 0 30 2 *`) counts as yearly. */
const NO_SCHEDULE_INTERVAL_DAYS = 365;

export interface SecretValidity {
  /** Whole days from publishing to expiry: the interval rounded up to whole days, plus the margin. */
  validityPeriodDays: number;
  expiresOn: Date;
}

export function secretValidity(schedule: string, marginDays: number, now: Date): SecretValidity {
  const interval = scheduleIntervalMs(schedule, now);
  const intervalDays = interval === undefined ? NO_SCHEDULE_INTERVAL_DAYS : Math.ceil(interval / DAY_MS);
  const validityPeriodDays = intervalDays + marginDays;
  // Whole seconds: Key Vault keeps `exp` as Unix seconds.
  const expiresOn = new Date(Math.floor((now.getTime() + validityPeriodDays * DAY_MS) / 1000) * 1000);
  return { validityPeriodDays, expiresOn };
}

export interface PublishedVersion {
  tags: {
    /** The key holder: a storage account, or (seed 004) a Batch account under its own tag. */
    "keyturn-storage-account"?: string;
    "keyturn-batch-account"?: string;
    "keyturn-key-name": KeyName;
    "keyturn-rotation-id": string;
    CredentialId: KeyName;
    ProviderAddress: string;
    ValidityPeriodDays: string;
  };
  contentType: string;
  expiresOn: Date;
}

/** Everything a new version carries besides its value. */
export function publishedVersion(
  published: { storageAccountId: string; keyName: KeyName; rotationId: string },
  settings: { schedule: string; secretExpiryMarginDays: number },
  now: Date,
): PublishedVersion {
  const { validityPeriodDays, expiresOn } = secretValidity(
    settings.schedule,
    settings.secretExpiryMarginDays,
    now,
  );
  const holderTag = isBatchAccountId(published.storageAccountId)
    ? "keyturn-batch-account"
    : "keyturn-storage-account";
  return {
    tags: {
      [holderTag]: published.storageAccountId,
      "keyturn-key-name": published.keyName,
      "keyturn-rotation-id": published.rotationId,
      [SAMPLE_TAG_NAMES.credentialId]: published.keyName,
      [SAMPLE_TAG_NAMES.providerAddress]: published.storageAccountId,
      [SAMPLE_TAG_NAMES.validityPeriodDays]: String(validityPeriodDays),
    },
    contentType: SECRET_CONTENT_TYPE,
    expiresOn,
  };
}
