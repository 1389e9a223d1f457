import { inspect } from "node:util";

/**
 * Everything an adapter returned or threw, as text, for the check that no key material reached it
 * (invariant I3): `observe` records a value and hands it back; `failure` awaits a call that must
 * fail and records the error every way it could be shown (message, stack, inspect, JSON).
 */
export interface Observer {
  readonly observed: string[];
  observe<T>(value: T): T;
  failure(promise: Promise<unknown>): Promise<Error>;
}

export function observer(): Observer {
  const observed: string[] = [];
  return {
    observed,
    observe(value) {
      observed.push(JSON.stringify(value) ?? String(value));
      return value;
    },
    async failure(promise) {
      try {
        await promise;
      } catch (e) {
        observed.push(String(e), (e as Error).stack ?? "", inspect(e, { depth: 5 }), JSON.stringify(e));
        return e as Error;
      }
      throw new Error("expected the call to fail");
    },
  };
}
