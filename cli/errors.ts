import { ConfigurationError, InvalidInputError, KeyturnError, redact } from "../shared/errors";

/** Bad options, input or configuration: nothing was started (invariant I6). */
export const EXIT_USAGE = 2;
export const EXIT_FAILURE = 1;
/** What shells report for a process stopped by Ctrl+C. */
export const EXIT_INTERRUPTED = 130;

/** An expected failure: its message is for the user as it is, and it carries the exit code. */
export class CliError extends KeyturnError {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
  ) {
    super(message);
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, EXIT_USAGE);
}

/** Every reason on its own line, so one run shows everything to fix. */
export function listReasons(headline: string, reasons: readonly string[]): string {
  return reasons.length === 1 ? `${headline}: ${reasons[0]}` : `${headline}:\n- ${reasons.join("\n- ")}`;
}

/**
 * The message and exit code for anything a command throws. keyturn's own error types are expected
 * and need no stack; anything else is a bug, and its stack only helps with KEYTURN_DEBUG set. Every
 * message is redacted once more: error text from SDKs is the likeliest way for a key to leak (I3).
 */
export function describeFailure(e: unknown, debug = false): { message: string; exitCode: number } {
  if (e instanceof CliError) return { message: redact(e.message), exitCode: e.exitCode };
  if (e instanceof InvalidInputError) {
    const message = e instanceof ConfigurationError ? e.message : listReasons("invalid input", e.reasons);
    return { message: redact(message), exitCode: EXIT_USAGE };
  }
  if (e instanceof KeyturnError) return { message: redact(e.message), exitCode: EXIT_FAILURE };
  const error = e instanceof Error ? e : new Error(String(e));
  const text = debug && error.stack ? error.stack : `${error.message} (set KEYTURN_DEBUG=1 for details)`;
  return { message: redact(text), exitCode: EXIT_FAILURE };
}
