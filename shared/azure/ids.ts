import { InvalidResourceIdError } from "../errors";
import { parseArmId } from "../rotation/ids";

/** What an SDK call needs from an ARM id: the subscription for the client, the group and name for the path. */
export interface ResourceRef {
  id: string;
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

export interface DatastoreRef extends ResourceRef {
  workspaceName: string;
  workspaceId: string;
}

const ANY = "*";
const GROUP = ["subscriptions", ANY, "resourcegroups", ANY, "providers"];

const SHAPES = {
  "storage account": [...GROUP, "microsoft.storage", "storageaccounts", ANY],
  "classic storage account": [...GROUP, "microsoft.classicstorage", "storageaccounts", ANY],
  workspace: [...GROUP, "microsoft.machinelearningservices", "workspaces", ANY],
  datastore: [...GROUP, "microsoft.machinelearningservices", "workspaces", ANY, "datastores", ANY],
  "Batch account": [...GROUP, "microsoft.batch", "batchaccounts", ANY],
  "container registry": [...GROUP, "microsoft.containerregistry", "registries", ANY],
} as const;

type Kind = keyof typeof SHAPES;

/**
 * Checks the id's shape before any request, so a wrong id (a workspace's where a storage account's
 * belongs) is refused naming the expected shape instead of causing an ARM 404 about a path nobody wrote (I6).
 */
function resolve(id: string, kind: Kind): { ref: ResourceRef; segments: string[] } {
  const segments = id.trim().replace(/\/+$/, "").split("/");
  const shape = SHAPES[kind];
  const matches =
    segments[0] === "" &&
    segments.length === shape.length + 1 &&
    shape.every((want, i) => {
      const got = segments[i + 1] ?? "";
      return want === ANY ? got !== "" : got.toLowerCase() === want;
    });
  const { subscriptionId, resourceGroup, name } = parseArmId(id);
  if (!matches || subscriptionId === undefined || resourceGroup === undefined) {
    throw new InvalidResourceIdError(id, kind);
  }
  return { ref: { id: id.trim(), subscriptionId, resourceGroup, name }, segments };
}

export function storageAccountRef(id: string): ResourceRef {
  return resolve(id, "storage account").ref;
}

export function classicStorageAccountRef(id: string): ResourceRef {
  return resolve(id, "classic storage account").ref;
}

/**
 * Whether an id names a classic storage account (`Microsoft.ClassicStorage/storageAccounts`), whose keys
 * Service Management holds, rather than an ARM one. By namespace only: the shape is checked by the ref.
 */
export function isClassicStorageAccountId(id: string): boolean {
  return /\/providers\/microsoft\.classicstorage\/storageaccounts\//i.test(id);
}

/** Whether an id names a Batch account (`Microsoft.Batch/batchAccounts`): its shared keys, with --batch-keys. */
export function isBatchAccountId(id: string): boolean {
  return /\/providers\/microsoft\.batch\/batchaccounts\//i.test(id);
}

/** Whether an id names a container registry: its admin passwords, with --registry-passwords. */
export function isRegistryId(id: string): boolean {
  return /\/providers\/microsoft\.containerregistry\/registries\//i.test(id);
}

export function workspaceRef(id: string): ResourceRef {
  return resolve(id, "workspace").ref;
}

export function registryRef(id: string): ResourceRef {
  return resolve(id, "container registry").ref;
}

export function batchAccountRef(id: string): ResourceRef {
  return resolve(id, "Batch account").ref;
}

export function datastoreRef(id: string): DatastoreRef {
  const { ref, segments } = resolve(id, "datastore");
  // segments: "", subscriptions, {s}, resourceGroups, {g}, providers, {ns}, workspaces, {ws}, datastores, {ds}
  const workspaceName = segments[8] ?? "";
  return { ...ref, workspaceName, workspaceId: segments.slice(0, 9).join("/") };
}
