import { closest, distance } from "fastest-levenshtein";
import { z } from "zod";
import type { AccountNode } from "./graph";
import { isArmId, normalizeId, parseArmId } from "./ids";
import { stableDigest } from "./fingerprint";
import type { KeyName, StorageAccountSnapshot } from "./model";
import { parseTime } from "./decide";

/** Bad input or configuration, with every reason at once so one round trip fixes it (invariant I6). */
export class InvalidInputError extends Error {
  readonly reasons: readonly string[];
  constructor(reasons: readonly string[]) {
    super(reasons.join("; "));
    this.name = "InvalidInputError";
    this.reasons = reasons;
  }
}

export type Validation<T> = { ok: true; value: T } | { ok: false; reasons: string[] };

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

export function isOptedOut(account: Pick<StorageAccountSnapshot, "tags">): boolean {
  return optOutTagValue(account.tags) !== undefined;
}

// ---------------------------------------------------------------------------------------------
// Durations, grace, parallelism, minimum age

export const DEFAULT_GRACE_SECONDS = 60 * 60; // the workspace's own key cache, per the ML how-to
/** Longer graces hold the account's rotation, and its singleton lock, open for no known cache. */
export const MAX_GRACE_SECONDS = 24 * 60 * 60;
/**
 * Accounts doing ARM work at once. The ARM pacer holds the estate to Azure's budget whatever this is;
 * the window only has to be wide enough that every account's first calls start early, so that the
 * graces overlap the budget-bound work instead of following it (DESIGN §10).
 */
export const DEFAULT_PARALLELISM = 32;
export const MIN_PARALLELISM = 1;
/** ARM's per-subscription write bucket refills at 10/s; more accounts at once only buys 429s. */
export const MAX_PARALLELISM = 64;
/**
 * A monthly schedule sees the active key at 28-31 days; 20 leaves room for February and for a late
 * finish of last month's run, while still stopping a second rotation right after a manual one.
 */
export const DEFAULT_MIN_KEY_AGE_DAYS = 20;
export const MAX_MIN_KEY_AGE_DAYS = 3650;

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * Parses "0", "90s", "60m", "2h", "1d" or combinations like "1h30m" into seconds. A bare number other
 * than 0 is refused: "90" could mean seconds or minutes, and guessing wrong is a 60x error in a grace.
 */
export function parseDuration(text: string, what = "duration"): number {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === "0") return 0;
  if (/^\d+$/.test(trimmed)) {
    throw new InvalidInputError([
      `${what} "${text}" has no unit: write it as ${trimmed}s, ${trimmed}m or ${trimmed}h`,
    ]);
  }
  if (!/^(\d+[smhd])+$/.test(trimmed)) {
    throw new InvalidInputError([
      `${what} "${text}" is not a duration: use a number with a unit s, m, h or d, such as 90s, 60m, 2h or 1h30m`,
    ]);
  }
  let seconds = 0;
  for (const match of trimmed.matchAll(/(\d+)([smhd])/g)) {
    seconds += Number(match[1]) * (UNIT_SECONDS[match[2] ?? "s"] ?? 1);
  }
  return seconds;
}

/** A grace period from configuration or the command line, in seconds; undefined or "" gives the default. */
export function parseGraceSeconds(text: string | undefined): number {
  if (text === undefined || text.trim() === "") return DEFAULT_GRACE_SECONDS;
  const seconds = parseDuration(text, "grace period");
  if (seconds > MAX_GRACE_SECONDS) {
    throw new InvalidInputError([`grace period "${text}" is longer than the maximum of 24h`]);
  }
  return seconds;
}

export function parseParallelism(value: string | number | undefined): number {
  return parseBoundedInteger(value, "parallelism", DEFAULT_PARALLELISM, MIN_PARALLELISM, MAX_PARALLELISM);
}

export function parseMinKeyAgeDays(value: string | number | undefined): number {
  return parseBoundedInteger(
    value,
    "minimum key age in days",
    DEFAULT_MIN_KEY_AGE_DAYS,
    0,
    MAX_MIN_KEY_AGE_DAYS,
  );
}

function parseBoundedInteger(
  value: string | number | undefined,
  what: string,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined || (typeof value === "string" && value.trim() === "")) return fallback;
  const text = String(value).trim();
  const n = typeof value === "number" ? value : /^-?\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new InvalidInputError([`${what} "${text}" must be a whole number from ${min} to ${max}`]);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Rotation requests

export interface RotationScope {
  /** Subscription ids (GUIDs). */
  subscriptions?: string[];
  /** Resource group names, or ARM ids to pin the subscription. */
  resourceGroups?: string[];
  /** Workspace names or ARM ids. */
  workspaces?: string[];
  /** Storage account names or ARM ids. */
  storageAccounts?: string[];
}

/** What the HTTP API, the CLI and the timer hand to `rotateAll`. */
export interface RotationRequest {
  scope: RotationScope;
  dryRun?: boolean;
  graceMinutes?: number;
  force?: boolean;
}

/** A request that passed validation, with defaults filled in and scope entries trimmed and deduplicated. */
export interface ValidRotationRequest {
  scope: RotationScope;
  dryRun: boolean;
  force: boolean;
  graceSeconds: number;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RESOURCE_GROUP_NAME = /^[-\w.()]{1,89}[-\w()]$/;
const WORKSPACE_NAME = /^[a-zA-Z0-9][\w-]{2,32}$/;
const STORAGE_ACCOUNT_NAME = /^[a-z0-9]{3,24}$/i;
const MAX_SCOPE_ENTRIES = 1000;
/**
 * An ARM id is matched whole, from `/subscriptions/{GUID}/resourceGroups/{name}` on: a check of the tail
 * alone let `/subscriptions/../resourceGroups/..` or a nested provider through as a valid scope.
 */
const GROUP_ID = `/subscriptions/${GUID.source.slice(1, -1)}/resourcegroups/${RESOURCE_GROUP_NAME.source.slice(1, -1)}`;
const armIdPattern = (tail: string) => new RegExp(`^${GROUP_ID}${tail}$`, "i");
const RESOURCE_GROUP_ID = armIdPattern("");
const WORKSPACE_ID = armIdPattern(
  `/providers/microsoft\\.machinelearningservices/workspaces/${WORKSPACE_NAME.source.slice(1, -1)}`,
);
const STORAGE_ACCOUNT_ID = armIdPattern(
  `/providers/microsoft\\.storage/storageaccounts/${STORAGE_ACCOUNT_NAME.source.slice(1, -1)}`,
);

function subscriptionProblem(v: string): string | undefined {
  return GUID.test(v) ? undefined : `"${v}" is not a subscription id (a GUID)`;
}

function resourceGroupProblem(v: string): string | undefined {
  if (isArmId(v)) {
    return RESOURCE_GROUP_ID.test(v)
      ? undefined
      : `"${v}" is not a resource group id (/subscriptions/{id}/resourceGroups/{name})`;
  }
  return RESOURCE_GROUP_NAME.test(v) ? undefined : `"${v}" is not a resource group name`;
}

function workspaceProblem(v: string): string | undefined {
  if (isArmId(v)) {
    return WORKSPACE_ID.test(v)
      ? undefined
      : `"${v}" is not a workspace id (…/providers/Microsoft.MachineLearningServices/workspaces/{name})`;
  }
  return WORKSPACE_NAME.test(v)
    ? undefined
    : `"${v}" is not a workspace name (3-33 letters, digits, hyphens or underscores) or ARM id`;
}

function storageAccountProblem(v: string): string | undefined {
  if (isArmId(v)) {
    return STORAGE_ACCOUNT_ID.test(v)
      ? undefined
      : `"${v}" is not a storage account id (…/providers/Microsoft.Storage/storageAccounts/{name})`;
  }
  return STORAGE_ACCOUNT_NAME.test(v)
    ? undefined
    : `"${v}" is not a storage account name (3-24 letters and digits) or ARM id`;
}

function scopeList(what: string, problem: (v: string) => string | undefined) {
  const entry = z
    .string({ error: `each entry must be a string naming a ${what}` })
    .trim()
    .superRefine((value, ctx) => {
      const message = value === "" ? `an empty entry names no ${what}` : problem(value);
      if (message) ctx.addIssue({ code: "custom", message });
    });
  return z
    .array(entry, { error: `must be a list of ${what} names or ids` })
    .max(MAX_SCOPE_ENTRIES, { error: `lists at most ${MAX_SCOPE_ENTRIES} entries` })
    .optional();
}

const REQUEST_FIELDS = "scope, dryRun, graceMinutes, force";
const SCOPE_FIELDS = "subscriptions, resourceGroups, workspaces, storageAccounts";

const ScopeSchema = z.strictObject(
  {
    subscriptions: scopeList("subscription", subscriptionProblem),
    resourceGroups: scopeList("resource group", resourceGroupProblem),
    workspaces: scopeList("workspace", workspaceProblem),
    storageAccounts: scopeList("storage account", storageAccountProblem),
  },
  {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? `unknown field ${issue.keys.map((k) => `"${k}"`).join(", ")} (expected ${SCOPE_FIELDS})`
        : issue.input === undefined
          ? `is required: name at least one of ${SCOPE_FIELDS}`
          : `must be an object with ${SCOPE_FIELDS}`,
  },
);

export const RotationRequestSchema = z.strictObject(
  {
    scope: ScopeSchema,
    dryRun: z.boolean({ error: "must be true or false" }).optional(),
    graceMinutes: z
      .number({ error: `must be a number of minutes from 0 to ${MAX_GRACE_SECONDS / 60}` })
      .min(0, { error: `must be a number of minutes from 0 to ${MAX_GRACE_SECONDS / 60}` })
      .max(MAX_GRACE_SECONDS / 60, {
        error: `must be a number of minutes from 0 to ${MAX_GRACE_SECONDS / 60}`,
      })
      .optional(),
    force: z.boolean({ error: "must be true or false" }).optional(),
  },
  {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? `unknown field ${issue.keys.map((k) => `"${k}"`).join(", ")} (expected ${REQUEST_FIELDS})`
        : `a rotation request must be a JSON object with ${REQUEST_FIELDS}`,
  },
);

export interface RequestDefaults {
  graceSeconds?: number;
}

/** Validates everything before anything is written, and returns every problem, not the first. */
export function validateRotationRequest(
  input: unknown,
  defaults: RequestDefaults = {},
): Validation<ValidRotationRequest> {
  const parsed = RotationRequestSchema.safeParse(input);
  if (!parsed.success) {
    return { ok: false, reasons: parsed.error.issues.map((i) => formatIssue(i.path, i.message)) };
  }
  const scope = normalizeScope(parsed.data.scope);
  if (scopeSize(scope) === 0) {
    return { ok: false, reasons: [`scope: is empty: name at least one of ${SCOPE_FIELDS}`] };
  }
  const { graceMinutes } = parsed.data;
  return {
    ok: true,
    value: {
      scope,
      dryRun: parsed.data.dryRun ?? false,
      force: parsed.data.force ?? false,
      graceSeconds:
        graceMinutes === undefined
          ? (defaults.graceSeconds ?? DEFAULT_GRACE_SECONDS)
          : Math.round(graceMinutes * 60),
    },
  };
}

/** Like `validateRotationRequest`, for callers that prefer an exception. */
export function parseRotationRequest(input: unknown, defaults: RequestDefaults = {}): ValidRotationRequest {
  const result = validateRotationRequest(input, defaults);
  if (!result.ok) throw new InvalidInputError(result.reasons);
  return result.value;
}

function formatIssue(path: readonly PropertyKey[], message: string): string {
  let where = "";
  for (const part of path) {
    where += typeof part === "number" ? `[${part}]` : `${where === "" ? "" : "."}${String(part)}`;
  }
  return where === "" ? message : `${where}: ${message}`;
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
  return result;
}

function scopeSize(scope: RotationScope): number {
  return SCOPE_KEYS.reduce((n, key) => n + (scope[key]?.length ?? 0), 0);
}

/** A stable, character-safe instance id for `rotateAll` over this scope (invariant I5). */
export function scopeInstanceId(scope: RotationScope): string {
  const canonical = SCOPE_KEYS.map((key) => [
    key,
    [...(normalizeScope(scope)[key] ?? [])].map(normalizeId).sort(),
  ]);
  return `keyturn-scope-${stableDigest(JSON.stringify(canonical))}`;
}

// ---------------------------------------------------------------------------------------------
// Scope matching

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
  if (!matchesSubscription(scope, account) || !matchesResourceGroup(scope, account)) return false;
  if (!matchesNames(scope.storageAccounts, account)) return false;
  const workspaces = scope.workspaces;
  if (!workspaces || workspaces.length === 0) return true;
  return node.consumers.some((consumer) => {
    const workspaceId = consumer.kind === "workspace" ? consumer.id : consumer.workspaceId;
    return workspaceId !== undefined && matchesNames(workspaces, { id: workspaceId });
  });
}

/**
 * Where discovery looks for workspaces to start from. Narrowing by `workspaces` here is only for the
 * starting point; consumers of the accounts found still have to be discovered everywhere.
 */
export function isWorkspaceInScope(scope: RotationScope, workspace: ResourceRef): boolean {
  return (
    matchesSubscription(scope, workspace) &&
    matchesResourceGroup(scope, workspace) &&
    matchesNames(scope.workspaces, workspace)
  );
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
    entries: readonly string[] | undefined,
    refs: readonly ResourceRef[],
    matches: (entry: string, ref: ResourceRef) => boolean,
    nameOf: (ref: ResourceRef) => string | undefined,
  ) => {
    for (const entry of entries ?? []) {
      if (refs.some((ref) => matches(entry, ref))) continue;
      const names = [...new Set(refs.map(nameOf).filter((n): n is string => n !== undefined))];
      const wanted = (isArmId(entry) ? (parseArmId(entry).name ?? entry) : entry).trim().toLowerCase();
      const candidate = names.length > 0 ? closest(wanted, names) : undefined;
      const near =
        candidate !== undefined && distance(wanted, candidate) <= Math.max(1, Math.floor(wanted.length / 3));
      unmatched.push({ field, value: entry, ...(near ? { closest: candidate } : {}) });
    }
  };
  check(
    "storageAccounts",
    scope.storageAccounts,
    found.accounts,
    (entry, ref) => matchesNames([entry], ref),
    (ref) => partsOf(ref).name,
  );
  check(
    "workspaces",
    scope.workspaces,
    found.workspaces,
    (entry, ref) => matchesNames([entry], ref),
    (ref) => partsOf(ref).name,
  );
  check(
    "resourceGroups",
    scope.resourceGroups,
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
  const created = parseTime(account.keys[key].creationTime);
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
        "needs no rotation: shared-key access is disabled (allowSharedKeyAccess: false), so Azure refuses both keys and nothing can use them",
    };
  }
  const tag = optOutTagValue(account.tags);
  if (tag !== undefined) {
    return { rotate: false, code: "opted-out", reason: `tagged ${OPT_OUT_TAG}=${tag}` };
  }
  if (!node.consumers.some((c) => c.kind !== "sasDatastore" && c.kind !== "identityDatastore")) {
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
    return { rotate: true, notes: [`forced: ${facts}`] };
  }
  return { rotate: true, notes: [] };
}
