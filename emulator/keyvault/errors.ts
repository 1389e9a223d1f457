import { AzureError } from "../http";

/** An error answered with Key Vault's body, which may carry an `innererror`. */
export class VaultError extends AzureError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly innerCode?: string,
    headers: Record<string, string> = {},
  ) {
    super(status, code, message, headers);
  }
}

export function secretNotFound(nameOrId: string): VaultError {
  return new VaultError(
    404,
    "SecretNotFound",
    `A secret with (name/id) ${nameOrId} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
  );
}

export function deletedSecretNotFound(name: string): VaultError {
  return new VaultError(404, "SecretNotFound", `Deleted Secret not found: ${name}`);
}

export function methodNotAllowed(): never {
  throw new VaultError(
    405,
    "MethodNotAllowed",
    "The requested HTTP method is not allowed for this resource.",
  );
}
