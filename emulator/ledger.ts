import { createHash } from "node:crypto";
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";

/** Names a file to which the emulator appends the digest of every storage key it issues. */
export const KEY_LEDGER_SETTING = "KEYTURN_KEY_LEDGER";

/**
 * The digest a ledger line starts with: SHA-256 (hex) of the key in standard base64 without its `=`
 * padding, so a key found with or without padding, or in base64url, hashes the same once normalized.
 * A 512-bit random key cannot be recovered from it, so the ledger holds no key material (I3).
 */
export function ledgerDigest(key: string): string {
  return createHash("sha256").update(key.replace(/=+$/, "")).digest("hex");
}

/**
 * The set of issued keys, which also writes each new key's digest and unpadded length to the ledger
 * when one is named: one `<sha256-hex> <length>` line per key, appended (several emulators, in several
 * processes, share one ledger during a test run). The whole-run secret scan hashes what the tests
 * wrote and looks for these digests.
 */
export class KeyLedger extends Set<string> {
  readonly #file: string | undefined;

  constructor(keys: Iterable<string> = [], file: string | undefined = process.env[KEY_LEDGER_SETTING]) {
    super();
    this.#file = file?.trim() || undefined;
    if (this.#file) mkdirSync(dirname(this.#file), { recursive: true });
    for (const key of keys) this.add(key);
  }

  override add(key: string): this {
    if (this.#file && !this.has(key)) {
      appendFileSync(this.#file, `${ledgerDigest(key)} ${key.replace(/=+$/, "").length}\n`);
    }
    return super.add(key);
  }
}
