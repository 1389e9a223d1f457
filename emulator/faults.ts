import { randomUUID } from "node:crypto";

/** Fault injection rules, set through the admin API. Each rule fires `count` times, then is gone. */
export type FaultAction =
  | { type: "status"; status: number; code?: string; message?: string; retryAfterSeconds?: number }
  /** Accept the request and never answer (the socket is closed after `seconds`, default 120). */
  | { type: "timeout"; seconds?: number }
  /** Close the connection without an answer. */
  | { type: "drop" }
  /** The next long-running operation of this name ends Failed. */
  | { type: "failLro" };

export interface FaultRule {
  id: string;
  /** Case-insensitive regular expression on the request path, e.g. "/datastores/workspaceblobstore$". */
  path?: string;
  method?: string;
  /** Operation name as in the request log (e.g. "datastores.createOrUpdate", "resyncKeys"). */
  operation?: string;
  action: FaultAction;
  count: number;
}

export interface FaultRequestInfo {
  method: string;
  path: string;
  operation?: string;
}

export class Faults {
  readonly rules: FaultRule[] = [];

  add(rule: Omit<FaultRule, "id" | "count"> & { count?: number }): FaultRule {
    if (rule.path !== undefined) new RegExp(rule.path, "i"); // reject a bad pattern now, not per request
    const full: FaultRule = { ...rule, id: randomUUID(), count: rule.count ?? 1 };
    this.rules.push(full);
    return full;
  }

  clear(): void {
    this.rules.length = 0;
  }

  /** The first matching request fault (not LRO failures), consumed once. */
  take(info: FaultRequestInfo): FaultAction | undefined {
    return this.consume((r) => r.action.type !== "failLro" && matches(r, info));
  }

  takeLroFailure(operation: string): boolean {
    return (
      this.consume(
        (r) => r.action.type === "failLro" && r.operation?.toLowerCase() === operation.toLowerCase(),
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

function matches(rule: FaultRule, info: FaultRequestInfo): boolean {
  if (rule.method && rule.method.toUpperCase() !== info.method) return false;
  if (rule.operation && rule.operation.toLowerCase() !== info.operation?.toLowerCase()) return false;
  if (rule.path && !new RegExp(rule.path, "i").test(info.path)) return false;
  return true;
}
