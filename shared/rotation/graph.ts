import type { Consumer, StorageAccountSnapshot } from "./model";
import { CONSUMER_KINDS } from "./kinds";
import { isArmId, normalizeId, resourceNameOf } from "./ids";

/** One storage account and everything found depending on it. */
export interface AccountNode {
  account: StorageAccountSnapshot;
  consumers: Consumer[];
}

export type UnattachedCode = "out-of-scope" | "not-found" | "ambiguous";

/** A consumer whose storage account keyturn will not rotate, and why. */
export interface UnattachedConsumer {
  consumer: Consumer;
  code: UnattachedCode;
  reason: string;
}

export interface ConsumerGraph {
  /** The accounts to consider for rotation, each with all its consumers. */
  accounts: AccountNode[];
  unattached: UnattachedConsumer[];
}

export interface GraphOptions {
  /**
   * Which accounts the rotation covers (see `isAccountInScope`). An account outside it is left out
   * and its consumers are reported as out of scope, not as pointing at an account that was not found.
   */
  inScope?: (node: AccountNode) => boolean;
}

/**
 * Groups consumers under the storage account they depend on. Consumers are matched by ARM id, then by
 * account name: storage account names are unique within a cloud, and datastores only record the
 * account's name (their subscription and resource group may be stale after a move), so a name is as
 * good an identity as the id. The output is sorted so the same discovery always yields the same graph,
 * which orchestration replay depends on.
 */
export function buildConsumerGraph(
  accounts: readonly StorageAccountSnapshot[],
  consumers: readonly Consumer[],
  options: GraphOptions = {},
): ConsumerGraph {
  const byId = new Map<string, AccountNode>();
  for (const account of accounts) {
    const key = normalizeId(account.id);
    // Fan-out discovery can see an account twice (a subscription and a workspace both in scope).
    if (!byId.has(key)) byId.set(key, { account, consumers: [] });
  }
  const byName = new Map<string, AccountNode[]>();
  for (const node of byId.values()) {
    const name = node.account.name.toLowerCase();
    byName.set(name, [...(byName.get(name) ?? []), node]);
  }
  const seen = new Set<string>();
  const unattached: UnattachedConsumer[] = [];
  for (const consumer of consumers) {
    const identity = `${consumer.kind}|${normalizeId(consumer.id)}`;
    if (seen.has(identity)) continue;
    seen.add(identity);

    const accountRef = consumer.storageAccountId;
    const name = resourceNameOf(accountRef).toLowerCase();
    const direct = byId.get(normalizeId(accountRef));
    const candidates = direct ? [direct] : (byName.get(name) ?? []);
    const [match] = candidates;
    if (match !== undefined && candidates.length === 1) {
      match.consumers.push(consumer);
      continue;
    }
    const shown = isArmId(accountRef) ? resourceNameOf(accountRef) : accountRef;
    unattached.push(
      candidates.length > 1
        ? {
            consumer,
            code: "ambiguous",
            reason: `storage account name "${shown}" matches ${candidates.length} discovered accounts; record the account's ARM id`,
          }
        : {
            consumer,
            code: "not-found",
            reason: `storage account "${shown}" was not found (deleted, or not readable by keyturn's identity)`,
          },
    );
  }

  const nodes: AccountNode[] = [];
  for (const node of [...byId.values()].sort((a, b) =>
    compare(normalizeId(a.account.id), normalizeId(b.account.id)),
  )) {
    const sorted = { account: node.account, consumers: sortConsumers(node.consumers) };
    if (!options.inScope || options.inScope(sorted)) {
      nodes.push(sorted);
      continue;
    }
    for (const consumer of sorted.consumers) {
      unattached.push({
        consumer,
        code: "out-of-scope",
        reason: `storage account "${node.account.name}" is out of scope`,
      });
    }
  }
  unattached.sort((a, b) => compareConsumers(a.consumer, b.consumer));
  return { accounts: nodes, unattached };
}

export function sortConsumers(consumers: readonly Consumer[]): Consumer[] {
  return [...consumers].sort(compareConsumers);
}

function compareConsumers(a: Consumer, b: Consumer): number {
  const byKind = CONSUMER_KINDS[a.kind].order - CONSUMER_KINDS[b.kind].order;
  return byKind !== 0 ? byKind : compare(normalizeId(a.id), normalizeId(b.id));
}

// Not localeCompare: the order must not depend on the host's locale.
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
