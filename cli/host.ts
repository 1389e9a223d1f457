import { join } from "node:path";
import { LocalHost, type LogEntry } from "../local";
import type { Io } from "./io";

/**
 * The Functions app the CLI runs: the compiled entry next to this file's own directory
 * (dist/functions/index.js beside dist/cli/), or the TypeScript source under Jest.
 */
export function functionsEntry(): string {
  return join(__dirname, "..", "functions", "index");
}

export interface CliHostOptions {
  /** Persisted state (rotate, resume, serve); in memory when omitted (plan, demo). */
  stateDir?: string;
  /** Print every warning and error the functions log; otherwise the report says what went wrong. */
  verbose?: boolean;
  /** Information-level logs too (serve shows requests and timer runs). */
  info?: boolean;
}

/**
 * A local host running keyturn's real registered functions. Retried activity failures are routine
 * (throttling, a resync still running) and end up in the report; printing each one would bury the
 * progress view, so they are shown only with --verbose.
 */
export function createHost(io: Io, options: CliHostOptions = {}): LocalHost {
  const logger = (entry: LogEntry) => {
    const shown =
      entry.level === "error" || entry.level === "critical" || entry.level === "warning"
        ? options.verbose === true
        : entry.level === "information" && options.info === true;
    if (shown) io.err(`[${entry.functionName}] ${entry.message}\n`);
  };
  const host = new LocalHost({ ...(options.stateDir ? { stateDir: options.stateDir } : {}), logger });
  host.load(functionsEntry());
  return host;
}
