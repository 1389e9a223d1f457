import { setTimeout as sleepMs } from "node:timers/promises";

export interface RetryOptions {
  /** Attempts after the first one. */
  retries: number;
  /** Milliseconds to wait before retry n (0-based); the last entry repeats. */
  delays: readonly number[];
  isRetryable: (error: unknown) => boolean;
  /** Injected so tests run without waiting (as actions/checkout's RetryHelper does). */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * For what the SDK pipelines do not retry: the data-plane probe runs with `maxTries: 1` so a 403 is
 * answered at once, yet a dropped connection should not stall a rotation on its own.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const sleep = options.sleep ?? ((ms: number) => sleepMs(ms).then(() => undefined));
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (attempt >= options.retries || !options.isRetryable(e)) throw e;
      await sleep(options.delays[Math.min(attempt, options.delays.length - 1)] ?? 0);
    }
  }
}
