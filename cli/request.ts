import { userInfo, hostname } from "node:os";
import { loadConfig, type KeyturnConfig } from "../shared/config";
import { rotateAllInput, type RotateAllInput } from "../shared/activities/contracts";
import { toGraceSeconds, validateRotationRequest, type RotationScope } from "../shared/rotation";
import { InvalidInputError } from "../shared/errors";
import { listReasons, usageError } from "./errors";
import { defaultScope, type Target } from "./target";

/** The scope options of `plan` and `rotate`, each repeatable and comma-separated. */
export interface ScopeOptions {
  subscription?: string[];
  resourceGroup?: string[];
  workspace?: string[];
  storageAccount?: string[];
  /** `--batch-keys`: Batch account shared keys too (seed 004). */
  batchKeys?: boolean;
  /** `--registry-passwords`: workspaces' container registry admin passwords too (seed 003). */
  registryPasswords?: boolean;
}

export interface RequestOptions extends ScopeOptions {
  /** From `parseGrace`; the KEYTURN_GRACE_MINUTES setting (or 60 minutes) when undefined. */
  graceSeconds?: number;
  force?: boolean;
}

/** commander's collector for a repeatable option that also takes comma-separated lists. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(",").map((v) => v.trim())];
}

const OPTION_OF: Record<keyof RotationScope, string> = {
  subscriptions: "--subscription",
  resourceGroups: "--resource-group",
  workspaces: "--workspace",
  storageAccounts: "--storage-account",
  batchKeys: "--batch-keys",
  registryPasswords: "--registry-passwords",
};

export function scopeFromOptions(options: ScopeOptions): RotationScope | undefined {
  const scope: RotationScope = {};
  if (options.subscription) scope.subscriptions = options.subscription;
  if (options.resourceGroup) scope.resourceGroups = options.resourceGroup;
  if (options.workspace) scope.workspaces = options.workspace;
  if (options.storageAccount) scope.storageAccounts = options.storageAccount;
  return Object.keys(scope).length > 0 ? scope : undefined;
}

/** The opt-ins of the scope options (`--batch-keys`, `--registry-passwords`) added to a scope. */
export function withOptIns(scope: RotationScope, options: ScopeOptions): RotationScope {
  return {
    ...scope,
    ...(options.batchKeys === true ? { batchKeys: true } : {}),
    ...(options.registryPasswords === true ? { registryPasswords: true } : {}),
  };
}

/** `--grace 0 | 90s | 60m | 1h30m`; a bad value is a usage error that names it. */
export function parseGrace(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    return toGraceSeconds(text, "duration", "--grace");
  } catch (e) {
    if (e instanceof InvalidInputError) throw usageError(e.reasons.join("; "));
    throw e;
  }
}

/** The request API speaks of its own fields; the CLI user typed options. */
/** A validation reason in the CLI's terms: `scope.storageAccounts[0]` becomes `--storage-account`. */
export function inOptionTerms(reason: string): string {
  return reason.replace(
    /^scope\.(subscriptions|resourceGroups|workspaces|storageAccounts|batchKeys|registryPasswords)(\[\d+\])?/,
    (_m, key: keyof RotationScope) => OPTION_OF[key],
  );
}

/**
 * Builds rotateAll's input and checks all of it before anything starts (I6): the settings first (no
 * I/O; the caller has parsed --grace before even reading the connection file), then the scope (listing subscriptions when none was named), then the whole
 * request through the same validation the HTTP API uses.
 */
export async function buildRotateInput(
  options: RequestOptions,
  target: Target,
  dryRun: boolean,
): Promise<RotateAllInput> {
  const config: KeyturnConfig = loadConfig();
  const graceSeconds = options.graceSeconds ?? config.graceSeconds;
  const named = scopeFromOptions(options);
  if (named) {
    // Syntax first: a typo in a name should not cost a subscription listing.
    const early = validateRotationRequest({ scope: named });
    if (!early.ok)
      throw usageError(listReasons("invalid scope; nothing was started", early.reasons.map(inOptionTerms)));
  }
  const scope = named ?? (await defaultScope(target));
  const validation = validateRotationRequest({
    scope: withOptIns(scope, options),
    dryRun,
    force: options.force === true,
    graceMinutes: graceSeconds / 60,
  });
  if (!validation.ok) {
    throw usageError(
      listReasons("invalid rotation request; nothing was started", validation.reasons.map(inOptionTerms)),
    );
  }
  const valid = validation.value;
  return rotateAllInput({ ...valid, graceSeconds }, config, { trigger: "cli", startedBy: whoAmI() });
}

function whoAmI(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `cli@${hostname()}`;
  }
}
