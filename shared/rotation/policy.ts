import type { AccountNode } from "./graph";
import type { KeyName, StorageAccountSnapshot } from "./model";
import { parseTime } from "./decide";
import { DEFAULT_MIN_KEY_AGE_DAYS } from "./limits";
import { isReportOnly } from "./kinds";

/**
 * Whether an account is rotated at all: its owner's opt-out, shared-key access, consumers keyturn can
 * move, and the active key's age. Requests are in ./request, scopes in ./scope, limits in ./limits.
 */

// ---------------------------------------------------------------------------------------------
// Opt-out tag

export const OPT_OUT_TAG = "keyturn:skip";

/**
 * Any value opts out except "false" (any case). The tag is an owner's deliberate signal and people
 * write "true", "yes", "1" or a reason; reading all of those as "skip" fails safe (a skipped rotation
 * is recoverable, a broken application is not), and "false" lets the tag stay while re-enabling.
 * Azure tag names are case-insensitive, so the name is matched that way.
 */
export function optOutTagValue(tags: Readonly<Record<string, string>>): string | undefined {
  for (const [name, value] of Object.entries(tags)) {
    if (name.toLowerCase() === OPT_OUT_TAG && value.trim().toLowerCase() !== "false") return value;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Per-account policy

export type PolicySkipCode = "opted-out" | "shared-key-disabled" | "no-consumers" | "too-young";

export interface PolicyOptions {
  /** The orchestration's current time (`context.df.currentUtcDateTime`), never the wall clock. */
  now: Date | string;
  minKeyAgeDays?: number;
  /** Rotates keys younger than the minimum age. Does not override the opt-out tag: that is the owner's call. */
  force?: boolean;
}

export type PolicyVerdict =
  { rotate: true; notes: string[] } | { rotate: false; code: PolicySkipCode; reason: string };

/** Whole days since the key was created; undefined when Azure did not record it. */
export function keyAgeDays(
  account: StorageAccountSnapshot,
  key: KeyName,
  now: Date | string,
): number | undefined {
  // keyturn's own record when Azure keeps none: the key was regenerated no later than then.
  const created = parseTime(account.keys[key].creationTime ?? account.lastRotatedAt);
  const at = typeof now === "string" ? parseTime(now) : now.getTime();
  if (created === undefined || at === undefined) return undefined;
  // Clock skew can put a fresh key slightly in the future; it is still a fresh key.
  return Math.max(0, Math.floor((at - created) / 86_400_000));
}

/**
 * Decides whether the account is rotated at all. The age that counts is the active key's: the point of
 * a rotation is to retire it. An unknown creation time counts as old, since Azure records it for every
 * key regenerated since 2019; missing means older than that.
 */
export function evaluateAccountPolicy(
  node: AccountNode,
  activeKey: KeyName,
  options: PolicyOptions,
): PolicyVerdict {
  const { account } = node;
  if (account.sharedKeyAccessDisabled) {
    return {
      rotate: false,
      code: "shared-key-disabled",
      reason:
        account.keyHolder === "batch"
          ? "Entra ID only: nothing to rotate (allowedAuthenticationModes lack SharedKey, so Batch refuses both keys)"
          : account.keyHolder === "registry"
            ? "the registry's admin user is disabled: it has no admin password to rotate"
            : "needs no rotation: shared-key access is disabled (allowSharedKeyAccess: false), so Azure refuses both keys and nothing can use them",
    };
  }
  const tag = optOutTagValue(account.tags);
  if (tag !== undefined) {
    return { rotate: false, code: "opted-out", reason: `tagged ${OPT_OUT_TAG}=${tag}` };
  }
  if (node.consumers.every((c) => isReportOnly(c.kind))) {
    return {
      rotate: false,
      code: "no-consumers",
      reason:
        node.consumers.length === 0
          ? "no consumers found: keyturn only rotates keys it can hand over to their users"
          : "no consumer holds an account key keyturn can move (only SAS or identity-based datastores)",
    };
  }
  const minimum = options.minKeyAgeDays ?? DEFAULT_MIN_KEY_AGE_DAYS;
  const age = keyAgeDays(account, activeKey, options.now);
  if (age !== undefined && age < minimum) {
    const facts = `the active key ${activeKey} is ${age} day${age === 1 ? "" : "s"} old (minimum ${minimum})`;
    if (!options.force)
      return { rotate: false, code: "too-young", reason: `${facts}; force to rotate anyway` };
    return { rotate: true, notes: [`forced: ${facts}`, ...holderNotes(account)] };
  }
  return { rotate: true, notes: holderNotes(account) };
}

/** Seed 004's advice, repeated in the report of every Batch account whose shared keys are rotated. */
export const BATCH_ENTRA_ADVICE =
  "It's highly recommended to avoid using shared key authentication with Batch accounts. The preferred authentication mechanism is through Microsoft Entra ID (Microsoft's Batch key rotation guide): move the applications to Entra ID, then remove SharedKey from allowedAuthenticationModes";

/** Why the minimum key age cannot hold back a key holder whose keys' age nobody records. */
export const UNKNOWN_KEY_AGE_NOTE =
  "no key creation time is recorded for these keys (and there is no account lock to keep keyturn's own record), so the minimum key age cannot apply: every run that includes them rotates them";

function holderNotes(account: StorageAccountSnapshot): string[] {
  const unknownAge = account.keyHolder !== undefined ? [UNKNOWN_KEY_AGE_NOTE] : [];
  return [...(account.keyHolder === "batch" ? [BATCH_ENTRA_ADVICE] : []), ...unknownAge];
}
