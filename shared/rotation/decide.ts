import type { Fingerprint } from "./fingerprint";
import {
  otherKey,
  type Consumer,
  type ConsumerRef,
  type KeyName,
  type StorageAccountSnapshot,
} from "./model";
import { isServiceChosen, isVoting } from "./kinds";

/** Which of the account's keys a consumer holds: `neither` is a dead key, `unknown` is nothing recorded. */
export type Holding = KeyName | "neither" | "unknown";

export interface ConsumerHolding extends ConsumerRef {
  holds: Holding;
  votes: boolean;
}

export type DecisionBasis =
  "unanimous" | "majority" | "tie-newer-key" | "tie-key1" | "service-chosen" | "older-key" | "default-key1";

export interface KeyDecision {
  activeKey: KeyName;
  standbyKey: KeyName;
  basis: DecisionBasis;
  /** One sentence for the report and the dry run: why this key is the active one. */
  why: string;
  votes: Record<KeyName, number>;
  holdings: ConsumerHolding[];
  /** Voting consumers on the standby key: moved to the active key before the standby is regenerated. */
  normalize: string[];
  /** Consumers holding a key the account no longer has: already broken, healed by the rotation. */
  broken: string[];
}

export function classifyHolding(
  held: Fingerprint | undefined,
  keys: StorageAccountSnapshot["keys"],
): Holding {
  if (held === undefined) return "unknown";
  if (held === keys.key1.fingerprint) return "key1";
  if (held === keys.key2.fingerprint) return "key2";
  return "neither";
}

/**
 * Decides the active key (DESIGN §2 step 2). The rules, in order, and why:
 *
 * 1. Voting consumers (datastores, Key Vault secrets: the ones keyturn writes) hold the active key.
 *    They are what breaks when the wrong key is regenerated, and the only ones keyturn can move.
 * 2. If they are split, the key most of them hold wins, so normalizing moves the fewest consumers
 *    (each move is a write and a window of risk). A tie goes to the key created more recently: someone
 *    moved consumers to it on purpose, and its older sibling, exposed longer, is retired first. With
 *    no usable creation times the tie goes to key1, the key the portal shows first.
 * 3. With no voters, consumers the service keys (workspace, Batch auto-storage) show what is in use;
 *    they cannot be moved, but following what they hold avoids regenerating their key first.
 * 4. With no consumer to ask, the older key is the active one: keyturn's own rotation leaves the active
 *    key older than the standby (the standby is regenerated last, in step 7), and users outside the
 *    scope most likely hold the key that has existed longest, so the newer key is regenerated first.
 *    Equal or unknown creation times fall back to key1, as every account starts that way.
 *
 * Consumers holding neither key vote for nothing: they are broken already and are healed by the move.
 */
export function decideActiveKey(
  account: StorageAccountSnapshot,
  consumers: readonly Consumer[],
): KeyDecision {
  const holdings: ConsumerHolding[] = consumers.map((consumer) => ({
    kind: consumer.kind,
    id: consumer.id,
    name: consumer.name,
    holds: classifyHolding(consumer.heldFingerprint, account.keys),
    votes: isVoting(consumer.kind),
  }));
  const voters = holdings.filter((h) => h.votes);
  const votes = countKeys(voters);
  const broken = holdings.filter((h) => h.holds === "neither").map((h) => h.id);

  const choice = chooseActive(account, votes, countKeys(holdings.filter((h) => isServiceChosen(h.kind))));
  const standbyKey = otherKey(choice.activeKey);
  const normalize = voters.filter((h) => h.holds === standbyKey).map((h) => h.id);
  return { ...choice, standbyKey, votes, holdings, normalize, broken };
}

interface Choice {
  activeKey: KeyName;
  basis: DecisionBasis;
  why: string;
}

function chooseActive(
  account: StorageAccountSnapshot,
  votes: Record<KeyName, number>,
  serviceHeld: Record<KeyName, number>,
): Choice {
  const voters = votes.key1 + votes.key2;
  if (voters > 0) {
    if (votes.key1 === 0 || votes.key2 === 0) {
      const activeKey: KeyName = votes.key1 > 0 ? "key1" : "key2";
      return {
        activeKey,
        basis: "unanimous",
        why: `${plural(voters, "voting consumer")} ${voters === 1 ? "holds" : "all hold"} ${activeKey}`,
      };
    }
    const split = `voting consumers are split (${votes.key1} on key1, ${votes.key2} on key2)`;
    if (votes.key1 !== votes.key2) {
      const activeKey: KeyName = votes.key1 > votes.key2 ? "key1" : "key2";
      return {
        activeKey,
        basis: "majority",
        why: `${split}: normalizing to ${activeKey}, the majority's key`,
      };
    }
    const newer = newerKey(account);
    return newer
      ? { activeKey: newer, basis: "tie-newer-key", why: `${split}: normalizing to ${newer}, the newer key` }
      : {
          activeKey: "key1",
          basis: "tie-key1",
          why: `${split} and their creation times do not tell them apart: normalizing to key1`,
        };
  }
  const followers = serviceHeld.key1 + serviceHeld.key2;
  if (followers > 0) {
    const activeKey: KeyName =
      serviceHeld.key1 > serviceHeld.key2
        ? "key1"
        : serviceHeld.key2 > serviceHeld.key1
          ? "key2"
          : (newerKey(account) ?? "key1");
    return {
      activeKey,
      basis: "service-chosen",
      why: `no voting consumer holds a key; the service-chosen consumers hold ${activeKey}`,
    };
  }
  const newer = newerKey(account);
  if (newer) {
    const older = otherKey(newer);
    return {
      activeKey: older,
      basis: "older-key",
      why: `no consumer holds either key: ${older}, the older key, is assumed active`,
    };
  }
  return {
    activeKey: "key1",
    basis: "default-key1",
    why: "no consumer holds either key and the key creation times do not tell them apart: key1 is assumed active",
  };
}

function countKeys(holdings: readonly ConsumerHolding[]): Record<KeyName, number> {
  return {
    key1: holdings.filter((h) => h.holds === "key1").length,
    key2: holdings.filter((h) => h.holds === "key2").length,
  };
}

/** The more recently created key, or undefined when either time is missing, unparsable or equal. */
export function newerKey(account: StorageAccountSnapshot): KeyName | undefined {
  const t1 = parseTime(account.keys.key1.creationTime);
  const t2 = parseTime(account.keys.key2.creationTime);
  if (t1 === undefined || t2 === undefined || t1 === t2) return undefined;
  return t1 > t2 ? "key1" : "key2";
}

export function parseTime(iso: string | undefined): number | undefined {
  if (iso === undefined) return undefined;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
