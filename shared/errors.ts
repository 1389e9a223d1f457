import { redact } from "./redact";
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

/**
 * Bad input or settings, what the caller must fix, found before anything was written (invariant I6).
 * It carries every reason at once, so that one round trip fixes them all.
 */
export class InvalidInputError extends KeyturnError {
  readonly reasons: readonly string[];
  constructor(reasons: readonly string[], message = reasons.join("; ")) {
    super(message);
    this.reasons = reasons;
  }
}

/** keyturn's own settings are wrong: one setting (`setting` names it), or every problem `loadConfig` found. */
export class ConfigurationError extends InvalidInputError {
  /** The setting, option or field to fix, e.g. `KEYTURN_ARM_ENDPOINT`; undefined for a list of problems. */
  readonly setting?: string;
  constructor(setting: string, message: string);
  constructor(reasons: readonly string[]);
  constructor(settingOrReasons: string | readonly string[], message?: string) {
    if (typeof settingOrReasons === "string") {
      super([message ?? settingOrReasons], message);
      this.setting = settingOrReasons;
    } else {
      super(settingOrReasons, `keyturn's settings are invalid:\n- ${settingOrReasons.join("\n- ")}`);
    }
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
    case "classic storage account":
      return "/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.ClassicStorage/storageAccounts/{name}";
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

// One redaction engine for errors, output and telemetry (./redact).
export { REDACTED, redact } from "./redact";

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
