/**
 * keyturn's own error types. They carry only what a person needs to act (which call, on which
 * resource, what to do) and never a key value (invariant I3): errors end up in Durable Functions
 * history, Application Insights and CLI output. SDK errors are never wrapped as `cause`, because a
 * RestError keeps the request, and a request can carry a key in its body.
 */
export class KeyturnError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A configuration or input problem found before anything was written (invariant I6). */
export class ConfigurationError extends KeyturnError {
  constructor(
    /** The setting, option or field to fix, e.g. `KEYTURN_ARM_ENDPOINT`. */
    readonly setting: string,
    message: string,
  ) {
    super(message);
  }
}

/** An id that does not name the kind of resource a call needs; raised before any request. */
export class InvalidResourceIdError extends KeyturnError {
  constructor(
    readonly resourceId: string,
    readonly expected: string,
  ) {
    super(`'${resourceId}' is not the ARM id of a ${expected}: expected ${expectedShape(expected)}`);
  }
}

function expectedShape(expected: string): string {
  switch (expected) {
    case "storage account":
      return "/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/{name}";
    case "workspace":
      return "/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.MachineLearningServices/workspaces/{name}";
    case "datastore":
      return "/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.MachineLearningServices/workspaces/{workspace}/datastores/{name}";
    case "Batch account":
      return "/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.Batch/batchAccounts/{name}";
    default:
      return expected;
  }
}

export interface AzureCallErrorDetails {
  /** keyturn's name for the call, e.g. `storageAccounts.listKeys`. */
  operation: string;
  /** The resource the call was about: an ARM id, a subscription, or a Key Vault secret URL. */
  resourceId: string;
  /** HTTP status; undefined when no response came (network, credential). */
  statusCode?: number;
  /** Azure's error code (`AuthorizationFailed`, `ResourceNotFound`, …) or a network error code. */
  code?: string;
  /** Whether trying again later can help (throttling, 5xx, network); activities retry those. */
  retryable: boolean;
  message: string;
}

/** A failed Azure call, rewritten without the SDK error (see the class comment above). */
export class AzureCallError extends KeyturnError {
  readonly operation: string;
  readonly resourceId: string;
  readonly statusCode?: number;
  readonly code?: string;
  readonly retryable: boolean;

  constructor(details: AzureCallErrorDetails) {
    super(details.message);
    this.operation = details.operation;
    this.resourceId = details.resourceId;
    this.statusCode = details.statusCode;
    this.code = details.code;
    this.retryable = details.retryable;
  }
}

export const REDACTED = "[redacted]";

/**
 * Runs of standard base64 as long as a storage key: a second line of defence behind removing the values
 * a call knows. ARM ids and URLs break such runs at `-` and `.`, and `looksSecret` keeps words out.
 */
const SECRET_SHAPED = /[A-Za-z0-9+/]{40,}={0,2}/g;

function charClass(c: string): number {
  return /[A-Z]/.test(c) ? 0 : /[a-z]/.test(c) ? 1 : /[0-9]/.test(c) ? 2 : 3;
}

/**
 * Random base64 changes character class (upper, lower, digit, symbol) at about two thirds of its
 * positions; words and paths rarely do. A third is several standard deviations below random even for
 * a 40-character run.
 */
function looksSecret(run: string): boolean {
  if (!/[A-Z]/.test(run) || !/[a-z]/.test(run) || !/[0-9]/.test(run)) return false;
  let changes = 0;
  for (let i = 1; i < run.length; i++) if (charClass(run[i]!) !== charClass(run[i - 1]!)) changes++;
  return changes / run.length >= 0.35;
}

/** `text` with every known secret and anything shaped like a key replaced by `[redacted]`. */
export function redact(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const secret of secrets) {
    // Very short values would redact ordinary words; keys and secrets keyturn handles are long.
    if (secret !== undefined && secret.length >= 8) out = out.split(secret).join(REDACTED);
  }
  return out.replace(SECRET_SHAPED, (run) => (looksSecret(run) ? REDACTED : run));
}

/**
 * An error safe to throw past an adapter: keyturn's own errors with clean messages pass through; anything
 * else becomes a KeyturnError with a redacted message and no reference to the original.
 */
export function scrubError(e: unknown, secrets: readonly (string | undefined)[] = []): Error {
  if (e instanceof KeyturnError && redact(e.message, secrets) === e.message) return e;
  if (e instanceof AzureCallError) {
    return new AzureCallError({
      operation: e.operation,
      resourceId: e.resourceId,
      statusCode: e.statusCode,
      code: e.code,
      retryable: e.retryable,
      message: redact(e.message, secrets),
    });
  }
  const name = e instanceof Error ? e.name : "Error";
  const message = e instanceof Error ? e.message : String(e);
  const scrubbed = new KeyturnError(redact(message, secrets));
  scrubbed.name = name === "Error" || name === "KeyturnError" ? "KeyturnError" : `KeyturnError(${name})`;
  return scrubbed;
}
