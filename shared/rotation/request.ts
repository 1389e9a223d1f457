import { z } from "zod";
import { InvalidInputError } from "../errors";
import { isArmId } from "./ids";
import { DEFAULT_GRACE_SECONDS, GRACE_MINUTES_RULE, toGraceSeconds } from "./limits";
import { normalizeScope, scopeSize, type RotationScope } from "./scope";

export type Validation<T> = { ok: true; value: T } | { ok: false; reasons: string[] };

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
/**
 * ARM and classic storage accounts, Batch accounts (their shared keys, with `batchKeys`) and container
 * registries (their admin passwords, with `registryPasswords`; names up to 50 characters).
 */
const STORAGE_ACCOUNT_ID = armIdPattern(
  `/providers/(microsoft\\.storage/storageaccounts|microsoft\\.classicstorage/storageaccounts|microsoft\\.batch/batchaccounts|microsoft\\.containerregistry/registries)/[a-z0-9]{3,50}`,
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
    batchKeys: z.boolean({ error: "must be true or false" }).optional(),
    registryPasswords: z.boolean({ error: "must be true or false" }).optional(),
  },
  {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? `unknown field ${issue.keys.map((k) => `"${k}"`).join(", ")} (expected ${SCOPE_FIELDS}, batchKeys or registryPasswords)`
        : issue.input === undefined
          ? `is required: name at least one of ${SCOPE_FIELDS}`
          : `must be an object with ${SCOPE_FIELDS}`,
  },
);

/** `graceMinutes`, checked and turned into seconds by the one grace check (./limits). */
const GraceMinutes = z.number({ error: GRACE_MINUTES_RULE }).transform((minutes, ctx) => {
  try {
    return toGraceSeconds(minutes, "minutes");
  } catch (e) {
    if (!(e instanceof InvalidInputError)) throw e;
    for (const message of e.reasons) ctx.issues.push({ code: "custom", message, input: minutes });
    return z.NEVER;
  }
});

export const RotationRequestSchema = z.strictObject(
  {
    scope: ScopeSchema,
    dryRun: z.boolean({ error: "must be true or false" }).optional(),
    graceMinutes: GraceMinutes.optional(),
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
  const graceSeconds = parsed.data.graceMinutes; // seconds once parsed: see GraceMinutes
  return {
    ok: true,
    value: {
      scope,
      dryRun: parsed.data.dryRun ?? false,
      force: parsed.data.force ?? false,
      graceSeconds: graceSeconds ?? defaults.graceSeconds ?? DEFAULT_GRACE_SECONDS,
    },
  };
}

function formatIssue(path: readonly PropertyKey[], message: string): string {
  let where = "";
  for (const part of path) {
    where += typeof part === "number" ? `[${part}]` : `${where === "" ? "" : "."}${String(part)}`;
  }
  return where === "" ? message : `${where}: ${message}`;
}
