import { AzureError, type Request } from "../http";
import { resourceKey } from "../model";

/** ARM's 404 for a resource that does not exist in an existing resource group. */
export function resourceNotFound(type: string, name: string, resourceGroup: string): AzureError {
  return new AzureError(
    404,
    "ResourceNotFound",
    `The Resource '${type}/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );
}

/** Finds a resource by the ARM id built from its route, or answers ARM's 404. */
export function getResource<T>(
  map: Map<string, T>,
  id: string,
  type: string,
  name: string,
  resourceGroup: string,
): T {
  const found = map.get(resourceKey(id));
  if (!found) throw resourceNotFound(type, name, resourceGroup);
  return found;
}

/** The absolute base URL of this server as the client addressed it (for nextLink and Location). */
export function baseUrl(req: Request): string {
  return `https://${req.headers.host ?? "localhost"}`;
}

export function page<T>(items: T[], req: Request, defaultSize: number): { value: T[]; nextLink?: string } {
  const size = Math.max(
    1,
    Math.min(1000, Number(req.query.get("$top") ?? req.query.get("count") ?? defaultSize) || defaultSize),
  );
  const skip = Math.max(0, Number(req.query.get("$skiptoken") ?? req.query.get("$skip") ?? 0) || 0);
  const value = items.slice(skip, skip + size);
  if (skip + size >= items.length) return { value };
  const next = new URL(req.url.pathname, baseUrl(req));
  for (const [k, v] of req.query) if (k !== "$skiptoken" && k !== "$skip") next.searchParams.set(k, v);
  next.searchParams.set("$skipToken", String(skip + size));
  return { value, nextLink: next.toString() };
}

export function filterByGroup<T extends { subscriptionId: string; resourceGroup: string }>(
  items: Iterable<T>,
  subscriptionId: string,
  resourceGroup?: string,
): T[] {
  return [...items].filter(
    (i) =>
      i.subscriptionId.toLowerCase() === subscriptionId.toLowerCase() &&
      (resourceGroup === undefined || i.resourceGroup.toLowerCase() === resourceGroup.toLowerCase()),
  );
}
