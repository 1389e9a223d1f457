import { readFileSync } from "node:fs";
import { AzureError } from "./http";
import type { Principal } from "./identity";

/** A role definition in the shape `az role definition create` takes (and infra/keyturn-role.json uses). */
export interface RoleDefinition {
  Name: string;
  Actions: string[];
  NotActions?: string[];
  DataActions?: string[];
  NotDataActions?: string[];
}

export interface RoleAssignment {
  principalObjectId: string;
  role: string;
  /** An ARM scope: `/`, `/subscriptions/{id}`, a resource group or a resource id. */
  scope: string;
}

export const BUILT_IN_ROLES: RoleDefinition[] = [
  { Name: "Owner", Actions: ["*"], DataActions: ["*"] },
  { Name: "Reader", Actions: ["*/read"] },
];

export function loadRoleDefinition(path: string): RoleDefinition {
  const parsed = JSON.parse(readFileSync(path, "utf8")) as RoleDefinition;
  if (typeof parsed.Name !== "string" || !Array.isArray(parsed.Actions)) {
    throw new Error(`Role definition ${path} needs "Name" and "Actions".`);
  }
  return parsed;
}

/** Azure matches actions case-insensitively, with `*` as a wildcard for any characters. */
export function actionMatches(pattern: string, action: string): boolean {
  const regex = new RegExp(
    "^" +
      pattern
        .split("*")
        .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
        .join(".*") +
      "$",
    "i",
  );
  return regex.test(action);
}

/**
 * Subscriptions - List and Subscriptions - Get. Microsoft lists the operation ("Microsoft.Resources/
 * subscriptions/read: Gets the list of subscriptions", Azure resource provider operations), but the list
 * is not refused by it: ARM answers every signed-in caller with the subscriptions it holds any role
 * assignment in, whatever that role grants (keyturn relies on this: shared/azure/call.ts,
 * listSubscriptions). The emulator models both routes that way: the action is checked against the
 * caller's assignments, never against role definitions, so a role file need not (and keyturn's does
 * not) name it. Assumed, not documented: a Get by a caller with no assignment in the subscription is
 * refused with AuthorizationFailed naming this action.
 */
export const SUBSCRIPTION_READ = "Microsoft.Resources/subscriptions/read";

/** Actions ARM grants through any role assignment rather than through a role's `Actions`. */
export const ASSIGNMENT_GRANTED_ACTIONS: readonly string[] = [SUBSCRIPTION_READ];

/** The tenant-level collection `/subscriptions` (Subscriptions - List), where ARM filters instead of refusing. */
function isTenantLevel(resourceId: string): boolean {
  const s = resourceId.replace(/\/+$/, "").toLowerCase();
  return s === "" || s === "/subscriptions";
}

function scopeCovers(scope: string, resourceId: string): boolean {
  const s = scope.replace(/\/+$/, "").toLowerCase();
  const r = resourceId.toLowerCase();
  return s === "" || r === s || r.startsWith(s + "/");
}

export class Rbac {
  readonly roles = new Map<string, RoleDefinition>();
  readonly assignments: RoleAssignment[] = [];

  constructor(roles: RoleDefinition[] = BUILT_IN_ROLES) {
    for (const role of roles) this.addRole(role);
  }

  addRole(role: RoleDefinition): void {
    this.roles.set(role.Name.toLowerCase(), role);
  }

  assign(assignment: RoleAssignment): void {
    if (!this.roles.has(assignment.role.toLowerCase())) {
      throw new Error(`Unknown role '${assignment.role}'; add its definition first.`);
    }
    this.assignments.push(assignment);
  }

  isAllowed(principal: Principal, action: string, resourceId: string, dataAction = false): boolean {
    if (!dataAction && actionMatches(SUBSCRIPTION_READ, action)) {
      return isTenantLevel(resourceId) || this.holdsAssignmentIn(principal, resourceId);
    }
    return this.assignments.some((a) => {
      if (a.principalObjectId !== principal.objectId || !scopeCovers(a.scope, resourceId)) return false;
      const role = this.roles.get(a.role.toLowerCase());
      if (!role) return false;
      const allow = dataAction ? (role.DataActions ?? []) : role.Actions;
      const deny = dataAction ? (role.NotDataActions ?? []) : (role.NotActions ?? []);
      return allow.some((p) => actionMatches(p, action)) && !deny.some((p) => actionMatches(p, action));
    });
  }

  /** Subscriptions a principal holds any assignment in (Subscriptions - List shows only those). */
  visibleSubscriptions(principal: Principal, all: string[]): string[] {
    return all.filter((sub) => this.isAllowed(principal, SUBSCRIPTION_READ, `/subscriptions/${sub}`));
  }

  /** Whether the principal holds an assignment at, above or anywhere inside the subscription of `resourceId`. */
  private holdsAssignmentIn(principal: Principal, resourceId: string): boolean {
    const sub = /^\/subscriptions\/[^/]+/i.exec(resourceId)?.[0];
    if (!sub) return false;
    return this.assignments.some(
      (a) =>
        a.principalObjectId === principal.objectId &&
        (scopeCovers(a.scope, sub) || scopeCovers(sub, a.scope)),
    );
  }

  /** Throws the 403 ARM gives when a principal lacks an action. */
  authorize(principal: Principal, action: string, resourceId: string): void {
    if (this.isAllowed(principal, action, resourceId)) return;
    throw new AzureError(
      403,
      "AuthorizationFailed",
      `The client '${principal.clientId}' with object id '${principal.objectId}' does not have authorization to perform action '${action}' over scope '${resourceId}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
    );
  }
}
