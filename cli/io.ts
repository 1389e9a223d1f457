import { createInterface } from "node:readline";
import { isatty } from "node:tty";
import { redact } from "../shared/errors";

/** Where a command writes: stdout for results (a report, JSON), stderr for progress and messages. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Whether stderr is a terminal: then progress redraws in place instead of appending lines. */
  errIsTTY: boolean;
  /** The person at the terminal, for the questions a command may ask (rotate without a scope). */
  prompt: Prompt;
}

/** A question to the user and the line they answer with. */
export interface Prompt {
  /**
   * Whether stdin and stdout are both terminals: someone is there to answer. When not (a pipe, a
   * script, CI) keyturn never asks, so unattended runs keep working as they did.
   */
  interactive: boolean;
  /** Shows the question and resolves to the line typed; undefined at end of input or on Ctrl+C. */
  ask(question: string): Promise<string | undefined>;
}

/** For code that never asks: not interactive, and any question gets no answer. */
export const NO_PROMPT: Prompt = { interactive: false, ask: () => Promise.resolve(undefined) };

/**
 * The prompt on the process's own terminal: the question on stdout (a terminal whenever a question is
 * asked), the answer from stdin. The streams and `interactive` can be injected, for tests; the real
 * stdin is only touched when a question is asked, so nothing waits on it otherwise.
 */
export function terminalPrompt(
  options: {
    input?: () => NodeJS.ReadableStream;
    output?: () => NodeJS.WritableStream;
    interactive?: boolean;
  } = {},
): Prompt {
  const input = options.input ?? (() => process.stdin);
  const output = options.output ?? (() => process.stdout);
  return {
    interactive: options.interactive ?? (isatty(0) && isatty(1)),
    ask: (question) =>
      new Promise((resolve) => {
        const out = output();
        const rl = createInterface({ input: input(), output: out });
        let answer: string | undefined;
        // Ctrl+C at the question is a "no", not a stray signal the rotation would see later.
        rl.once("SIGINT", () => {
          out.write("\n");
          rl.close();
        });
        rl.once("close", () => resolve(answer));
        rl.question(question, (line) => {
          answer = line;
          rl.close();
        });
      }),
  };
}

/**
 * Everything keyturn prints passes through `redact`: reports hold fingerprints only, but a key that
 * reached a message some other way must still not reach a terminal or a CI log (I3).
 */
export function redactingIo(
  out: (text: string) => void,
  err: (text: string) => void,
  errIsTTY: boolean,
  prompt: Prompt = NO_PROMPT,
): Io {
  return {
    out: (text) => out(redact(text)),
    err: (text) => err(redact(text)),
    errIsTTY,
    prompt: { interactive: prompt.interactive, ask: (question) => prompt.ask(redact(question)) },
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
