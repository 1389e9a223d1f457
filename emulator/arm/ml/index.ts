import type { ArmRoute, EmulatorContext, RouteModule } from "../../context";
import { datastoreRoutes } from "./datastores";
import { resyncRoutes } from "./resync";
import { workspaceRoutes } from "./workspaces";

/**
 * Microsoft.MachineLearningServices as `@azure/arm-machinelearning@2.1.1` (api-version 2022-10-01)
 * sees it: workspaces (list, get, listKeys, resyncKeys as a Location-polled long-running operation)
 * and datastores (list with `$skip` paging, get without secrets, createOrUpdate with key
 * validation, listSecrets, delete). The server has already authenticated, throttled and checked
 * RBAC, the api-version and the subscription/resource group before a handler runs.
 *
 * | resource                                              | file            |
 * | ----------------------------------------------------- | --------------- |
 * | names, actions, lookups, errors, `$skip` tokens       | `common.ts`     |
 * | workspaces: list, get, listKeys                       | `workspaces.ts` |
 * | resyncKeys, its operation status, workspace auto-sync | `resync.ts`     |
 * | datastores                                            | `datastores.ts` |
 * | who created and changed a datastore (systemData)      | `authorship.ts` |
 */

export {
  DATASTORE_TYPE,
  DEFAULT_DATASTORE_PAGE_SIZE,
  LRO_FAILURE_STATUS,
  ML_ACTIONS,
  ML_API_VERSION,
  ML_PROVIDER,
  WORKSPACE_PAGE_SIZE,
  WORKSPACE_TYPE,
  decodeSkipToken,
  encodeSkipToken,
  findDatastore,
  findWorkspace,
  userError,
} from "./common";
export {
  datastoreResource,
  pageOfDatastores,
  parseDatastoreBody,
  publicCredentials,
  type DatastoreOrder,
} from "./datastores";
export { chooseResyncKey, resyncWorkspace, scheduleWorkspaceAutoSync } from "./resync";

/** Workspaces, then resyncKeys and its operation status, then datastores. */
export const mlRoutes: RouteModule = (ctx: EmulatorContext): ArmRoute[] => [
  ...workspaceRoutes(ctx),
  ...resyncRoutes(ctx),
  ...datastoreRoutes(ctx),
];
