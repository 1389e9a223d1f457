import { closest, distance } from "fastest-levenshtein";
import type { AccountNode } from "./graph";
import { isArmId, normalizeId, parseArmId } from "./ids";
import { stableDigest } from "./fingerprint";

/** What a rotation covers: every dimension named must match (see `isAccountInScope`). */
export interface RotationScope {
  /** Subscription ids (GUIDs). */
  subscriptions?: string[];
  /** Resource group names, or ARM ids to pin the subscription. */
  resourceGroups?: string[];
  /** Workspace names or ARM ids. */
  workspaces?: string[];
  /** Storage account names or ARM ids (a Batch account's name, with `batchKeys`). */
  storageAccounts?: string[];
  /**
   * Opt-in (seed 004): rotate the shared keys of the Batch accounts in scope too, whose consumers are
   * Key Vault secrets tagged `keyturn-batch-account`. `--batch-keys`, KEYTURN_BATCH_KEYS.
   */
  batchKeys?: boolean;
  /**
   * Opt-in (seed 003): rotate the admin passwords of the container registries of the workspaces in
   * scope too, whose consumers are those workspaces. `--registry-passwords`, KEYTURN_ROTATE_REGISTRIES.
   */
  registryPasswords?: boolean;
}

const SCOPE_KEYS = ["subscriptions", "resourceGroups", "workspaces", "storageAccounts"] as const;

/** Trimmed, deduplicated case-insensitively, empty lists dropped, so equal scopes compare equal. */
export function normalizeScope(scope: RotationScope): RotationScope {
  const result: RotationScope = {};
  for (const key of SCOPE_KEYS) {
    const list = scope[key];
    if (!list) continue;
    const seen = new Set<string>();
    const unique: string[] = [];
    for (const raw of list) {
      const value = raw.trim();
      if (value === "" || seen.has(normalizeId(value))) continue;
      seen.add(normalizeId(value));
      unique.push(value);
    }
    if (unique.length > 0) result[key] = unique;
  }
  if (scope.batchKeys === true) result.batchKeys = true;
  if (scope.registryPasswords === true) result.registryPasswords = true;
  return result;
}

/** How many entries the scope names, across every dimension. */
export function scopeSize(scope: RotationScope): number {
  return SCOPE_KEYS.reduce((n, key) => n + (scope[key]?.length ?? 0), 0);
}

/** A stable, character-safe instance id for `rotateAll` over this scope (invariant I5). */
export function scopeInstanceId(scope: RotationScope): string {
  const canonical: unknown[] = SCOPE_KEYS.map((key) => [
    key,
    [...(normalizeScope(scope)[key] ?? [])].map(normalizeId).sort(),
  ]);
  // Batch keys are more work on the same scope: another instance (absent, the ids stay as they were).
  if (scope.batchKeys === true) canonical.push(["batchKeys", true]);
  if (scope.registryPasswords === true) canonical.push(["registryPasswords", true]);
  return `keyturn-scope-${stableDigest(JSON.stringify(canonical))}`;
}

export interface ResourceRef {
  id: string;
  name?: string;
  subscriptionId?: string;
  resourceGroup?: string;
}

/**
 * A storage account is in scope when it matches every dimension the scope names: its subscription,
 * its resource group, its name or id, and, for `workspaces`, being used by one of those workspaces
 * (as the workspace's own storage or by a datastore). Consumers are not filtered by scope: every
 * consumer of a rotated account must move, wherever it lives, or it breaks.
 */
export function isAccountInScope(scope: RotationScope, node: AccountNode): boolean {
  const { account } = node;
  if (account.keyHolder === "batch" && scope.batchKeys !== true) return false;
  if (account.keyHolder === "registry" && scope.registryPasswords !== true) return false;
  if (!matchesSubscription(scope, account) || !matchesResourceGroup(scope, account)) return false;
  if (!matchesNames(scope.storageAccounts, account)) return false;
  const workspaces = scope.workspaces;
  if (!workspaces || workspaces.length === 0) return true;
  return node.consumers.some((consumer) => {
    const workspaceId = consumer.kind === "workspace" ? consumer.id : consumer.workspaceId;
    return workspaceId !== undefined && matchesNames(workspaces, { id: workspaceId });
  });
}

/** A scope entry that names nothing keyturn can see, with the closest name it can see when there is one. */
export interface UnmatchedScopeEntry {
  field: "storageAccounts" | "workspaces" | "resourceGroups";
  value: string;
  closest?: string;
}

/**
 * Scope entries that match no storage account, workspace or resource group discovery found in any
 * subscription keyturn can see. A misspelled name would otherwise rotate nothing and succeed; the
 * starters report it, naming the closest match (a typo is at most a third of the name away).
 */
export function unmatchedScope(
  scope: RotationScope,
  found: { accounts: readonly ResourceRef[]; workspaces: readonly ResourceRef[] },
): UnmatchedScopeEntry[] {
  const unmatched: UnmatchedScopeEntry[] = [];
  const check = (
    field: UnmatchedScopeEntry["field"],
    refs: readonly ResourceRef[],
    matches: (entry: string, ref: ResourceRef) => boolean,
    nameOf: (ref: ResourceRef) => string | undefined,
  ) => {
    for (const entry of scope[field] ?? []) {
      if (refs.some((ref) => matches(entry, ref))) continue;
      const names = [...new Set(refs.map(nameOf).filter((n): n is string => n !== undefined))];
      const wanted = (isArmId(entry) ? (parseArmId(entry).name ?? entry) : entry).trim().toLowerCase();
      const candidate = names.length > 0 ? closest(wanted, names) : undefined;
      const near =
        candidate !== undefined && distance(wanted, candidate) <= Math.max(1, Math.floor(wanted.length / 3));
      unmatched.push({ field, value: entry, ...(near ? { closest: candidate } : {}) });
    }
  };
  const byName = (entry: string, ref: ResourceRef) => matchesNames([entry], ref);
  const nameOf = (ref: ResourceRef) => partsOf(ref).name;
  check("storageAccounts", found.accounts, byName, nameOf);
  check("workspaces", found.workspaces, byName, nameOf);
  check(
    "resourceGroups",
    [...found.accounts, ...found.workspaces],
    (entry, ref) => matchesResourceGroup({ resourceGroups: [entry] }, ref),
    (ref) => partsOf(ref).resourceGroup,
  );
  return unmatched;
}

/** One line per unmatched entry, for the report and the CLI. */
export function describeUnmatched(entry: UnmatchedScopeEntry): string {
  const what = {
    storageAccounts: "storage account",
    workspaces: "workspace",
    resourceGroups: "resource group",
  }[entry.field];
  return `no ${what} '${entry.value}' in any subscription keyturn can see${entry.closest !== undefined ? ` (did you mean '${entry.closest}'?)` : ""}`;
}

function partsOf(ref: ResourceRef): { subscriptionId?: string; resourceGroup?: string; name: string } {
  const parsed = parseArmId(ref.id);
  return {
    subscriptionId: (ref.subscriptionId ?? parsed.subscriptionId)?.toLowerCase(),
    resourceGroup: (ref.resourceGroup ?? parsed.resourceGroup)?.toLowerCase(),
    name: (ref.name ?? parsed.name).toLowerCase(),
  };
}

function matchesSubscription(scope: RotationScope, ref: ResourceRef): boolean {
  const list = scope.subscriptions;
  if (!list || list.length === 0) return true;
  const { subscriptionId } = partsOf(ref);
  return list.some((s) => s.trim().toLowerCase() === subscriptionId);
}

function matchesResourceGroup(scope: RotationScope, ref: ResourceRef): boolean {
  const list = scope.resourceGroups;
  if (!list || list.length === 0) return true;
  const { subscriptionId, resourceGroup } = partsOf(ref);
  return list.some((entry) => {
    if (!isArmId(entry)) return entry.trim().toLowerCase() === resourceGroup;
    const pinned = parseArmId(entry);
    return (
      pinned.subscriptionId?.toLowerCase() === subscriptionId &&
      pinned.resourceGroup?.toLowerCase() === resourceGroup
    );
  });
}

function matchesNames(list: readonly string[] | undefined, ref: ResourceRef): boolean {
  if (!list || list.length === 0) return true;
  const { name } = partsOf(ref);
  return list.some((entry) =>
    isArmId(entry) ? normalizeId(entry) === normalizeId(ref.id) : entry.trim().toLowerCase() === name,
  );
}
