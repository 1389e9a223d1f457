/**
 * The Durable Functions HTTP API the local host serves twice: under `rpcBaseUrl` (what
 * `df.getClient(context)` calls in durable-functions 3.5.0, see `DurableClient.js`) and under
 * `/runtime/webhooks/durabletask/` (the management links of `createCheckStatusResponse`). Paths,
 * bodies and status codes follow what the library's client expects:
 *
 * - `POST orchestrators/{name}[/{instanceId}]`, body = JSON text of the input or "" → 202 `{id, …links}`
 * - `GET instances/{id}` → 200 Completed, 202 Pending/Running/Suspended, 400 Failed/Terminated, 404
 * - `GET instances/` (filters `createdTimeFrom`, `createdTimeTo`, `runtimeStatus`) → 200 [statuses]
 * - `POST instances/{id}/raiseEvent/{name}` → 202, 404 unknown, 410 finished
 * - `POST instances/{id}/terminate|suspend|resume?reason=` → 202, 404, 410
 * - `DELETE instances/{id}` → 200 `{instancesDeleted}` or 404; `DELETE instances/?filters` likewise
 * - rewind, restart and entities → 501 (not supported locally)
 */
import {
  InstanceExistsError,
  UnknownFunctionError,
  type DurableEngine,
  type ListFilter,
  type RuntimeStatus,
} from "./replay";

export interface DurableApiResponse {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface ManagementLinks {
  id: string;
  statusQueryGetUri: string;
  sendEventPostUri: string;
  terminatePostUri: string;
  rewindPostUri: string;
  purgeHistoryDeleteUri: string;
  restartPostUri: string;
  suspendPostUri: string;
  resumePostUri: string;
}

/** The `durableClient` input binding's value (OrchestrationClientInputData in the library). */
export interface DurableClientInput {
  taskHubName: string;
  creationUrls: { createNewInstancePostUri: string; createAndWaitOnNewInstancePostUri: string };
  managementUrls: ManagementLinks;
  baseUrl: string;
  requiredQueryStringParameters: string;
  rpcBaseUrl: string;
}

export const INSTANCE_ID_PLACEHOLDER = "INSTANCEID";
export const RPC_PREFIX = "/durabletask/";
export const WEBHOOK_PREFIX = "/runtime/webhooks/durabletask/";

export function durableClientInput(origin: string, taskHub: string, systemKey: string): DurableClientInput {
  const webhooks = `${origin}${WEBHOOK_PREFIX.replace(/\/$/, "")}`;
  const common = `taskHub=${encodeURIComponent(taskHub)}&connection=Storage&code=${encodeURIComponent(systemKey)}`;
  const instance = `${webhooks}/instances/${INSTANCE_ID_PLACEHOLDER}`;
  return {
    taskHubName: taskHub,
    creationUrls: {
      createNewInstancePostUri: `${webhooks}/orchestrators/{functionName}[/{instanceId}]?code=${systemKey}`,
      createAndWaitOnNewInstancePostUri:
        `${webhooks}/orchestrators/{functionName}[/{instanceId}]` +
        `?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&code=${systemKey}`,
    },
    managementUrls: {
      id: INSTANCE_ID_PLACEHOLDER,
      statusQueryGetUri: `${instance}?${common}`,
      sendEventPostUri: `${instance}/raiseEvent/{eventName}?${common}`,
      terminatePostUri: `${instance}/terminate?reason={text}&${common}`,
      rewindPostUri: `${instance}/rewind?reason={text}&${common}`,
      purgeHistoryDeleteUri: `${instance}?${common}`,
      restartPostUri: `${instance}/restart?${common}`,
      suspendPostUri: `${instance}/suspend?reason={text}&${common}`,
      resumePostUri: `${instance}/resume?reason={text}&${common}`,
    },
    baseUrl: webhooks,
    requiredQueryStringParameters: `code=${systemKey}`,
    rpcBaseUrl: `${origin}${RPC_PREFIX}`,
  };
}

export function managementLinks(client: DurableClientInput, instanceId: string): ManagementLinks {
  const links = { ...client.managementUrls };
  for (const key of Object.keys(links) as (keyof ManagementLinks)[]) {
    links[key] = links[key].replace(INSTANCE_ID_PLACEHOLDER, encodeURIComponent(instanceId));
  }
  links.id = instanceId;
  return links;
}

const STATUSES: RuntimeStatus[] = [
  "Pending",
  "Running",
  "Completed",
  "ContinuedAsNew",
  "Failed",
  "Terminated",
  "Suspended",
];

function parseFilter(query: URLSearchParams): ListFilter | { error: string } {
  const filter: ListFilter = {};
  for (const key of ["createdTimeFrom", "createdTimeTo"] as const) {
    const value = query.get(key);
    if (value) {
      const date = new Date(value);
      if (Number.isNaN(date.getTime())) return { error: `${key} is not a date: ${value}` };
      filter[key] = date;
    }
  }
  const statuses = query.get("runtimeStatus");
  if (statuses) {
    const list = statuses.split(",").map((s) => s.trim());
    const unknown = list.filter((s) => !STATUSES.includes(s as RuntimeStatus));
    if (unknown.length > 0) return { error: `Unknown runtimeStatus: ${unknown.join(", ")}` };
    filter.runtimeStatus = list as RuntimeStatus[];
  }
  const prefix = query.get("instanceIdPrefix");
  if (prefix) filter.instanceIdPrefix = prefix;
  return filter;
}

function isJsonText(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function statusCodeFor(status: RuntimeStatus): number {
  if (status === "Completed") return 200;
  if (status === "Failed" || status === "Terminated") return 400;
  return 202;
}

const ACCEPTED = { status: 202 };
const NOT_FOUND = (id: string): DurableApiResponse => ({
  status: 404,
  body: { message: `No instance with ID '${id}' found.` },
});
const GONE = (id: string): DurableApiResponse => ({
  status: 410,
  body: { message: `Instance '${id}' has already finished.` },
});

/**
 * Serves one request of the durable HTTP API. `segments` is the path below the API's prefix, split
 * on "/" and URL-decoded.
 */
export function handleDurableApi(
  engine: DurableEngine,
  client: DurableClientInput,
  method: string,
  segments: string[],
  query: URLSearchParams,
  body: string,
): DurableApiResponse {
  const [resource, id, action, eventName] = segments;
  const verb = method.toUpperCase();
  const bool = (name: string) => query.get(name)?.toLowerCase() === "true";

  if (resource === "orchestrators" && id && segments.length <= 3 && verb === "POST") {
    if (body !== "" && !isJsonText(body))
      return { status: 400, body: { message: "The input is not valid JSON." } };
    try {
      const instanceId = engine.startNew(id, { instanceId: action, input: body === "" ? undefined : body });
      const links = managementLinks(client, instanceId);
      return { status: 202, headers: { Location: links.statusQueryGetUri }, body: links };
    } catch (err) {
      if (err instanceof UnknownFunctionError) return { status: 400, body: { message: err.message } };
      if (err instanceof InstanceExistsError) return { status: 409, body: { message: err.message } };
      throw err;
    }
  }

  if (resource === "instances" && !id) {
    const filter = parseFilter(query);
    if ("error" in filter) return { status: 400, body: { message: filter.error } };
    if (verb === "GET") return { status: 200, body: engine.list(filter) };
    if (verb === "DELETE") {
      const deleted = engine.purgeBy(filter);
      return deleted > 0 ? { status: 200, body: { instancesDeleted: deleted } } : { status: 404 };
    }
    return { status: 405 };
  }

  if (resource === "instances" && id && !action) {
    if (verb === "GET") {
      const status = engine.getStatus(id, {
        showHistory: bool("showHistory"),
        showInput: query.get("showInput") !== "false",
      });
      return status ? { status: statusCodeFor(status.runtimeStatus), body: status } : NOT_FOUND(id);
    }
    if (verb === "DELETE") {
      const deleted = engine.purge(id);
      return deleted > 0 ? { status: 200, body: { instancesDeleted: deleted } } : NOT_FOUND(id);
    }
    return { status: 405 };
  }

  if (resource === "instances" && id && verb === "POST") {
    let outcome: "ok" | "notFound" | "gone";
    const reason = query.get("reason") ?? "";
    if (action === "raiseEvent" && eventName) {
      if (body !== "" && !isJsonText(body))
        return { status: 400, body: { message: "The event data is not valid JSON." } };
      outcome = engine.raiseEvent(id, eventName, body === "" ? undefined : body);
    } else if (action === "terminate") {
      outcome = engine.terminate(id, reason);
    } else if (action === "suspend") {
      outcome = engine.suspendInstance(id);
    } else if (action === "resume") {
      outcome = engine.resumeInstance(id);
    } else if (action === "rewind" || action === "restart") {
      return { status: 501, body: { message: `${action} is not supported by the local host.` } };
    } else {
      return { status: 404 };
    }
    return outcome === "ok" ? ACCEPTED : outcome === "notFound" ? NOT_FOUND(id) : GONE(id);
  }

  if (resource === "entities") {
    return { status: 501, body: { message: "Durable entities are not supported by the local host." } };
  }
  return { status: 404 };
}
