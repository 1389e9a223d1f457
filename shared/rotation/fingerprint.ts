import { createHash, createHmac } from "node:crypto";

/**
 * A short salted hash of a key value. Everything in this package past the point where an activity
 * reads a key works with fingerprints, so key values never reach orchestration state, logs or
 * reports (invariant I3).
 */
export type Fingerprint = string;

/**
 * 12 hex characters (48 bits): the only thing a fingerprint has to tell apart is the two keys of one
 * account and what its consumers hold, so collisions are negligible, and a short value stays readable
 * in reports.
 */
export const FINGERPRINT_LENGTH = 12;

const FINGERPRINT_PATTERN = /^[0-9a-f]{12}$/;

/**
 * HMAC-SHA256 keyed with a per-deployment salt rather than a plain hash, so a fingerprint cannot be
 * matched against keys leaked elsewhere and the same key does not look the same in two tenants.
 */
export function fingerprint(keyValue: string, salt: string): Fingerprint {
  // Messages name neither value: the caller holds a key, and an error message is not a safe place for it.
  if (salt.length === 0) {
    throw new Error("fingerprint salt is empty: configure a non-empty salt for key fingerprints");
  }
  if (keyValue.length === 0) {
    throw new Error("cannot fingerprint an empty key value");
  }
  return createHmac("sha256", salt).update(keyValue, "utf8").digest("hex").slice(0, FINGERPRINT_LENGTH);
}

export function isFingerprint(value: unknown): value is Fingerprint {
  return typeof value === "string" && FINGERPRINT_PATTERN.test(value);
}

/**
 * An unsalted digest for identifiers that are not secret (ARM ids, scopes), used where a stable,
 * short, character-safe token is needed, such as Durable Functions instance ids.
 */
export function stableDigest(text: string, length = 16): string {
  return createHash("sha256").update(text, "utf8").digest("hex").slice(0, length);
}
