/**
 * What a vault keeps beyond the shared model: lookups by name (Key Vault names are case-insensitive),
 * the `nbf`/`exp` of each version, and the soft-deleted secrets.
 */
import type { KeyVault, SecretVersion } from "../model";

export const RECOVERABLE_DAYS = 90;

/** `nbf`/`exp` of a version (the shared model has no fields for them; they are informational in Key Vault). */
export interface Validity {
  notBefore?: number;
  expires?: number;
}
const validity = new WeakMap<SecretVersion, Validity>();

export interface DeletedSecret {
  name: string;
  versions: SecretVersion[];
  deletedDate: number;
  scheduledPurgeDate: number;
}
/** Soft-deleted secrets per vault, by lower-cased name (Key Vault names are case-insensitive). */
const deletedSecrets = new WeakMap<KeyVault, Map<string, DeletedSecret>>();

/** The stored entry for a name, matched exactly first, then case-insensitively as Key Vault does. */
export function findSecret(
  vault: KeyVault,
  name: string,
): { name: string; versions: SecretVersion[] } | undefined {
  const exact = vault.secrets.get(name);
  if (exact) return { name, versions: exact };
  const lower = name.toLowerCase();
  for (const [stored, versions] of vault.secrets) {
    if (stored.toLowerCase() === lower) return { name: stored, versions };
  }
  return undefined;
}

export function findVersion(versions: SecretVersion[], id: string): SecretVersion | undefined {
  const lower = id.toLowerCase();
  return versions.find((v) => v.version.toLowerCase() === lower);
}

export function validityOf(v: SecretVersion): Validity | undefined {
  return validity.get(v);
}

/** Sets (a number), clears (null) or keeps (undefined) each of a version's `nbf` and `exp`. */
export function setValidity(
  v: SecretVersion,
  attrs: { notBefore?: number | null; expires?: number | null },
): void {
  const current: Validity = { ...validity.get(v) };
  if (attrs.notBefore === null) delete current.notBefore;
  else if (attrs.notBefore !== undefined) current.notBefore = attrs.notBefore;
  if (attrs.expires === null) delete current.expires;
  else if (attrs.expires !== undefined) current.expires = attrs.expires;
  validity.set(v, current);
}

/** The vault's soft-deleted secrets, if it ever had one. */
export function deletedSecretsOf(vault: KeyVault): Map<string, DeletedSecret> | undefined {
  return deletedSecrets.get(vault);
}

/** The vault's soft-deleted secrets, created empty on first use. */
export function deletedStore(vault: KeyVault): Map<string, DeletedSecret> {
  let store = deletedSecrets.get(vault);
  if (!store) {
    store = new Map();
    deletedSecrets.set(vault, store);
  }
  return store;
}
