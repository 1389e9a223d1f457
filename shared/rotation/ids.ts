import { stableDigest } from "./fingerprint";

/**
 * ARM treats resource ids case-insensitively and different APIs return different casings of the
 * same id (`resourceGroups` vs `resourcegroups`, `Microsoft.Storage` vs `microsoft.storage`), so every
 * comparison goes through this.
 */
export function normalizeId(id: string): string {
  return id.trim().replace(/\/+$/, "").toLowerCase();
}

export function sameId(a: string, b: string): boolean {
  return normalizeId(a) === normalizeId(b);
}

/** The last segment of an ARM id (the resource's name); a bare name is returned as is. */
export function resourceNameOf(id: string): string {
  const segments = id.trim().replace(/\/+$/, "").split("/");
  return segments[segments.length - 1] ?? "";
}

export function isArmId(value: string): boolean {
  return /^\/subscriptions\/[^/]+(\/.*)?$/i.test(value.trim());
}

export interface ArmIdParts {
  subscriptionId?: string;
  resourceGroup?: string;
  name: string;
}

/** Subscription and resource group as written in the id (not lower-cased): they are shown to people. */
export function parseArmId(id: string): ArmIdParts {
  const segments = id.trim().replace(/\/+$/, "").split("/");
  const parts: ArmIdParts = { name: segments[segments.length - 1] ?? "" };
  for (let i = 0; i + 1 < segments.length; i++) {
    const segment = segments[i]?.toLowerCase();
    const next = segments[i + 1];
    if (segment === "subscriptions" && parts.subscriptionId === undefined) parts.subscriptionId = next;
    if (segment === "resourcegroups" && parts.resourceGroup === undefined) parts.resourceGroup = next;
  }
  return parts;
}

/**
 * Durable Functions instance ids must be stable (invariant I5: one rotation per account at a time) and
 * may not contain `/`, `\`, `#` or `?`; the readable name helps in the portal, the digest of the
 * normalized ARM id keeps two accounts with one name in different clouds or casings apart.
 */
export function accountInstanceId(storageAccountId: string): string {
  const name = resourceNameOf(storageAccountId)
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "");
  return `keyturn-account-${name}-${stableDigest(normalizeId(storageAccountId))}`;
}
