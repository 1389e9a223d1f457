import type { RouteModule } from "../context";
import { SUBSCRIPTION_READ } from "../rbac";
import { page } from "./common";

/**
 * Subscriptions - List shows only the subscriptions the caller has a role assignment in; Subscriptions -
 * Get refuses one it has none in. Both check Microsoft.Resources/subscriptions/read, which ARM grants
 * through any assignment rather than through the role's actions (see SUBSCRIPTION_READ).
 */
export const subscriptionRoutes: RouteModule = (ctx) => [
  {
    method: "GET",
    pattern: "/subscriptions",
    provider: "subscriptions",
    action: SUBSCRIPTION_READ,
    kind: "read",
    operation: "subscriptions.list",
    handler: (req, _p, call) => {
      const all = [...ctx.estate.subscriptions.values()];
      const visible = new Set(
        ctx.rbac.visibleSubscriptions(
          call.principal,
          all.map((s) => s.subscriptionId),
        ),
      );
      const value = all
        .filter((s) => visible.has(s.subscriptionId))
        .map((s) => ({
          id: `/subscriptions/${s.subscriptionId}`,
          subscriptionId: s.subscriptionId,
          tenantId: ctx.estate.tenantId,
          displayName: s.displayName,
          state: "Enabled",
          subscriptionPolicies: {
            locationPlacementId: "Public_2014-09-01",
            quotaId: "EnterpriseAgreement_2014-09-01",
            spendingLimit: "Off",
          },
          authorizationSource: "RoleBased",
          managedByTenants: [],
        }));
      return { status: 200, body: page(value, req, 100) };
    },
  },
  {
    method: "GET",
    pattern: "/subscriptions/{subscriptionId}",
    provider: "subscriptions",
    action: SUBSCRIPTION_READ,
    kind: "read",
    operation: "subscriptions.get",
    handler: (_req, p) => {
      const s = ctx.estate.subscriptions.get(p.subscriptionId!.toLowerCase())!;
      return {
        status: 200,
        body: {
          id: `/subscriptions/${s.subscriptionId}`,
          subscriptionId: s.subscriptionId,
          tenantId: ctx.estate.tenantId,
          displayName: s.displayName,
          state: "Enabled",
          authorizationSource: "RoleBased",
        },
      };
    },
  },
];
