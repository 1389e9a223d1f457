import {
  publishedVersion,
  scheduleIntervalMs,
  secretValidity,
  SECRET_CONTENT_TYPE,
} from "../../../shared/published-secret";
import { DEFAULT_SCHEDULE, DEFAULT_SECRET_EXPIRY_MARGIN_DAYS, loadConfig } from "../../../shared/config";
import { ConfigurationError } from "../../../shared/errors";

const DAY = 86_400_000;
const at = (iso: string) => new Date(iso);

describe("scheduleIntervalMs: the schedule's interval as seen when a version is published", () => {
  it("monthly, published by the 1 January run: the 31 days until February's run (longer than February's 28)", () => {
    expect(scheduleIntervalMs(DEFAULT_SCHEDULE, at("2025-01-01T03:05:00Z"))).toBe(31 * DAY - 5 * 60_000);
  });

  it("monthly, published on demand on 31 January: still a whole gap (February 1 → March 1)", () => {
    expect(scheduleIntervalMs(DEFAULT_SCHEDULE, at("2025-01-31T12:00:00Z"))).toBe(28 * DAY);
  });

  it("weekly and daily schedules", () => {
    expect(scheduleIntervalMs("0 0 2 * * 0", at("2025-03-05T00:00:00Z"))).toBe(7 * DAY);
    expect(scheduleIntervalMs("0 30 1 * * *", at("2025-03-05T00:00:00Z"))).toBe(DAY);
  });

  it("a schedule that never fires again has no interval", () => {
    expect(scheduleIntervalMs("0 0 0 30 2 *", at("2025-03-05T00:00:00Z"))).toBeUndefined();
  });
});

describe("secretValidity: interval (whole days, rounded up) + margin, from the moment of publishing", () => {
  it("monthly + 35 days, published by the January run", () => {
    const now = at("2025-01-01T03:05:07.250Z");
    const v = secretValidity(DEFAULT_SCHEDULE, 35, now);
    expect(v.validityPeriodDays).toBe(31 + 35);
    expect(v.expiresOn.toISOString()).toBe("2025-03-08T03:05:07.000Z"); // whole seconds, as Key Vault keeps exp
  });

  it("the expiry is always after the next scheduled run plus the margin", () => {
    for (const iso of ["2024-02-29T23:59:59Z", "2025-06-30T00:00:00Z", "2025-12-31T03:00:00Z"]) {
      for (const schedule of [DEFAULT_SCHEDULE, "0 0 2 * * 0", "0 */15 * * * *"]) {
        const now = at(iso);
        const v = secretValidity(schedule, 3, now);
        const interval = scheduleIntervalMs(schedule, now)!;
        expect(v.expiresOn.getTime()).toBeGreaterThanOrEqual(now.getTime() - 1000 + interval + 3 * DAY);
        expect(v.expiresOn.getTime()).toBe(
          Math.floor((now.getTime() + v.validityPeriodDays * DAY) / 1000) * 1000,
        );
      }
    }
  });

  it("a sub-day interval counts as one day; a schedule that never fires counts as a year", () => {
    expect(secretValidity("0 */15 * * * *", 7, at("2025-01-01T00:00:00Z")).validityPeriodDays).toBe(8);
    expect(secretValidity("0 0 0 30 2 *", 7, at("2025-01-01T00:00:00Z")).validityPeriodDays).toBe(372);
  });
});

describe("publishedVersion: tags, content type and expiry of a version keyturn publishes", () => {
  const account =
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/stml";

  it("carries keyturn's tags and the rotation sample's, a content type and the expiry", () => {
    const now = at("2025-01-01T03:05:00Z");
    const v = publishedVersion(
      { storageAccountId: account, keyName: "key2", rotationId: "r-1" },
      { schedule: DEFAULT_SCHEDULE, secretExpiryMarginDays: DEFAULT_SECRET_EXPIRY_MARGIN_DAYS },
      now,
    );
    expect(v).toEqual({
      tags: {
        "keyturn-storage-account": account,
        "keyturn-key-name": "key2",
        "keyturn-rotation-id": "r-1",
        CredentialId: "key2",
        ProviderAddress: account,
        ValidityPeriodDays: "66",
      },
      contentType: SECRET_CONTENT_TYPE,
      expiresOn: new Date(now.getTime() + 66 * DAY),
    });
    expect(SECRET_CONTENT_TYPE).toMatch(/^text\/plain; [a-z]+=[a-z-]+$/);
  });

  it("stays within Key Vault's limits: at most 15 tags, values of at most 256 characters", () => {
    const v = publishedVersion(
      { storageAccountId: account, keyName: "key1", rotationId: "x".repeat(80) },
      { schedule: DEFAULT_SCHEDULE, secretExpiryMarginDays: 365 },
      at("2025-01-01T00:00:00Z"),
    );
    // The adapter adds keyturn-time.
    expect(Object.keys(v.tags).length + 1).toBeLessThanOrEqual(15);
    for (const value of Object.values(v.tags)) expect(value.length).toBeLessThanOrEqual(256);
  });
});

describe("KEYTURN_KEY_VAULT_EXPIRY_MARGIN_DAYS", () => {
  it("defaults to 35 days and takes whole days from 1 to 365", () => {
    expect(loadConfig({}).secretExpiryMarginDays).toBe(35);
    expect(loadConfig({ KEYTURN_KEY_VAULT_EXPIRY_MARGIN_DAYS: " 7 " }).secretExpiryMarginDays).toBe(7);
    expect(loadConfig({ KEYTURN_KEY_VAULT_EXPIRY_MARGIN_DAYS: "365" }).secretExpiryMarginDays).toBe(365);
  });

  it.each(["0", "366", "-1", "1.5", "0x10", "1e2", "thirty"])("refuses %p, naming the setting", (value) => {
    let error: unknown;
    try {
      loadConfig({ KEYTURN_KEY_VAULT_EXPIRY_MARGIN_DAYS: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).reasons).toEqual([
      expect.stringMatching(
        /^KEYTURN_KEY_VAULT_EXPIRY_MARGIN_DAYS ".*" must be a whole number of days from 1 to 365/,
      ),
    ]);
  });
});
