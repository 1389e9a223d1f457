import { redact } from "../shared/errors";

/** Where a command writes: stdout for results (a report, JSON), stderr for progress and messages. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Whether stderr is a terminal: then progress redraws in place instead of appending lines. */
  errIsTTY: boolean;
}

/**
 * Everything keyturn prints passes through `redact`: reports hold fingerprints only, but a key that
 * reached a message some other way must still not reach a terminal or a CI log (I3).
 */
export function redactingIo(out: (text: string) => void, err: (text: string) => void, errIsTTY: boolean): Io {
  return {
    out: (text) => out(redact(text)),
    err: (text) => err(redact(text)),
    errIsTTY,
  };
}

/** Resolves on the first SIGINT or SIGTERM; `dispose` removes the listeners when it is no longer wanted. */
export function onSignal(): { signal: Promise<NodeJS.Signals>; dispose(): void } {
  let dispose = () => undefined as void;
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    const stop = (s: NodeJS.Signals) => resolve(s);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    dispose = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    };
  });
  return { signal, dispose: () => dispose() };
}
