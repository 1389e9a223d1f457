import { randomUUID } from "node:crypto";

/**
 * Where a request fault strikes: `before` (default) answers in place of the service, so nothing is
 * written; `after` lets the service do its work (a key regenerated, a datastore written) and then
 * loses the answer: the caller cannot tell whether its write happened.
 */
export type FaultWhen = "before" | "after";

/** Fault injection rules, set through the admin API. Each rule fires `count` times, then is gone. */
export type FaultAction =
  | {
      type: "status";
      status: number;
      code?: string;
      message?: string;
      retryAfterSeconds?: number;
      when?: FaultWhen;
    }
  /** Accept the request and never answer (the socket is closed after `seconds`, default 120). */
  | { type: "timeout"; seconds?: number; when?: FaultWhen }
  /** Close the connection without an answer. */
  | { type: "drop"; when?: FaultWhen }
  /** The next long-running operation of this name ends Failed. */
  | { type: "failLro" }
  /**
   * Keep the request waiting, unanswered, until it is released (`POST /_admin/holds/release`); then
   * serve it as if nothing had struck. Its work is done even when its caller is long gone: the request
   * of a killed process that lands after the process died.
   */
  | { type: "hold" };

/** A request kept waiting by a `hold` fault. */
export interface HeldRequest {
  id: string;
  method: string;
  path: string;
  operation?: string;
  since: string;
}

export interface FaultRule {
  id: string;
  /** Case-insensitive regular expression on the request path, e.g. "/datastores/workspaceblobstore$". */
  path?: string;
  method?: string;
  /**
   * Operation name as in the request log (e.g. "datastores.createOrUpdate", "resyncKeys"), or a family
   * of them ("datastores" matches every "datastores.*"). Key Vault data-plane calls are
   * "keyVault.getSecret", "keyVault.setSecret", "keyVault.listSecrets" and "keyVault.other"; only rules
   * naming a "keyVault" operation reach the vaults, so an ARM rule never strikes them.
   */
  operation?: string;
  action: FaultAction;
  count: number;
}

export interface FaultRequestInfo {
  method: string;
  path: string;
  operation?: string;
}

const VAULT_FAMILY = "keyvault";

export class Faults {
  readonly rules: FaultRule[] = [];
  private readonly waiting = new Map<string, { request: HeldRequest; release: () => void }>();

  /** Requests held now, oldest first. */
  get held(): HeldRequest[] {
    return [...this.waiting.values()].map((w) => w.request);
  }

  /** Waits until the request is released. */
  hold(info: FaultRequestInfo): Promise<void> {
    const request: HeldRequest = {
      id: randomUUID(),
      method: info.method,
      path: info.path,
      ...(info.operation !== undefined ? { operation: info.operation } : {}),
      since: new Date().toISOString(),
    };
    return new Promise((resolve) => this.waiting.set(request.id, { request, release: resolve }));
  }

  /** Lets one held request (or every one) go on to be served; returns those released. */
  release(id?: string): HeldRequest[] {
    const released: HeldRequest[] = [];
    for (const [key, w] of this.waiting) {
      if (id !== undefined && key !== id) continue;
      this.waiting.delete(key);
      w.release();
      released.push(w.request);
    }
    return released;
  }

  add(rule: Omit<FaultRule, "id" | "count"> & { count?: number }): FaultRule {
    if (rule.path !== undefined) new RegExp(rule.path, "i"); // reject a bad pattern now, not per request
    const problem = actionProblem(rule.action);
    if (problem) throw new Error(problem);
    if (rule.count !== undefined && !(Number.isInteger(rule.count) && rule.count >= 1))
      throw new Error("count must be an integer >= 1");
    const full: FaultRule = { ...rule, id: randomUUID(), count: rule.count ?? 1 };
    this.rules.push(full);
    return full;
  }

  clear(): void {
    this.rules.length = 0;
  }

  /** The first matching ARM request fault (not LRO failures, not Key Vault rules), consumed once. */
  take(info: FaultRequestInfo): FaultAction | undefined {
    return this.consume(
      (r) =>
        r.action.type !== "failLro" && !isVaultRule(r) && !isServiceManagementRule(r) && matches(r, info),
    );
  }

  /**
   * The first matching fault for a Service Management call (classic accounts' keys): only rules naming
   * a "storageServices" operation reach it, so an ARM rule never strikes it.
   */
  takeServiceManagement(info: FaultRequestInfo): FaultAction | undefined {
    return this.consume((r) => r.action.type !== "failLro" && isServiceManagementRule(r) && matches(r, info));
  }

  /** The first matching fault for a Key Vault data-plane call (`info.operation` "keyVault.*"), consumed once. */
  takeVault(info: FaultRequestInfo): FaultAction | undefined {
    return this.consume((r) => r.action.type !== "failLro" && isVaultRule(r) && matches(r, info));
  }

  takeLroFailure(operation: string): boolean {
    return (
      this.consume(
        (r) =>
          r.action.type === "failLro" &&
          r.operation !== undefined &&
          // The LRO is named "resyncKeys"; a rule may name its request, "workspaces.resyncKeys".
          (sameOperation(r.operation, operation) ||
            r.operation.toLowerCase().endsWith(`.${operation.toLowerCase()}`)),
      ) !== undefined
    );
  }

  private consume(predicate: (r: FaultRule) => boolean): FaultAction | undefined {
    const index = this.rules.findIndex(predicate);
    if (index < 0) return undefined;
    const rule = this.rules[index]!;
    rule.count--;
    if (rule.count <= 0) this.rules.splice(index, 1);
    return rule.action;
  }
}

/** Whether a fault lets the service do its work first and loses the answer afterwards. */
export function strikesAfter(action: FaultAction): boolean {
  return action.type !== "failLro" && action.type !== "hold" && action.when === "after";
}

/** The Key Vault operation name of a secrets data-plane call, for fault rules. */
export function vaultOperationOf(method: string, segments: string[]): string {
  if (segments[0]?.toLowerCase() !== "secrets") return "keyVault.other";
  if (method === "PUT") return "keyVault.setSecret";
  if (method === "GET")
    return segments.length === 1 || segments[2]?.toLowerCase() === "versions"
      ? "keyVault.listSecrets"
      : "keyVault.getSecret";
  return "keyVault.other";
}

/** Service Management's operations: "storageServices.getKeys", "storageServices.regenerateKeys". */
const SERVICE_MANAGEMENT_FAMILY = "storageservices";

function isServiceManagementRule(rule: FaultRule): boolean {
  const operation = rule.operation?.toLowerCase();
  return (
    operation === SERVICE_MANAGEMENT_FAMILY || operation?.startsWith(`${SERVICE_MANAGEMENT_FAMILY}.`) === true
  );
}

function isVaultRule(rule: FaultRule): boolean {
  const operation = rule.operation?.toLowerCase();
  return operation === VAULT_FAMILY || operation?.startsWith(`${VAULT_FAMILY}.`) === true;
}

/** A rule's operation names one operation, or with a family name ("datastores") every "datastores.*". */
function sameOperation(rule: string, actual: string): boolean {
  const r = rule.toLowerCase();
  const a = actual.toLowerCase();
  return a === r || a.startsWith(`${r}.`);
}

function matches(rule: FaultRule, info: FaultRequestInfo): boolean {
  if (rule.method && rule.method.toUpperCase() !== info.method) return false;
  if (rule.operation && (info.operation === undefined || !sameOperation(rule.operation, info.operation)))
    return false;
  if (rule.path && !new RegExp(rule.path, "i").test(info.path)) return false;
  return true;
}

/** What is wrong with an action sent to the admin API, or undefined. */
function actionProblem(action: FaultAction): string | undefined {
  const when = (action as { when?: unknown }).when;
  if (when !== undefined && when !== "before" && when !== "after")
    return "action.when must be 'before' or 'after'";
  switch (action.type) {
    case "status":
      return Number.isInteger(action.status) && action.status >= 400 && action.status <= 599
        ? undefined
        : "action.status must be an HTTP error status (400-599)";
    case "timeout":
      return action.seconds === undefined || (typeof action.seconds === "number" && action.seconds > 0)
        ? undefined
        : "action.seconds must be a number > 0";
    case "drop":
    case "failLro":
    case "hold":
      return undefined;
    default:
      return `unknown action.type '${String((action as { type?: unknown }).type)}': use status, timeout, drop, hold or failLro`;
  }
}
