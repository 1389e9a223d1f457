/**
 * The host's notion of time. Durable timers, retry delays, timer triggers and every history
 * timestamp go through it, so a test can replace wall-clock time with a ManualClock and jump an hour
 * ahead in no time.
 */
export interface Clock {
  now(): Date;
  /** Calls `callback` once the clock reaches `at` (at once, asynchronously, if it already has). */
  schedule(at: Date, callback: () => void): Cancel;
}

export type Cancel = () => void;

// setTimeout overflows past 2^31-1 ms (~24.8 days) and fires at once; longer waits are chained.
const MAX_TIMEOUT_MS = 2_147_483_647;

export class RealClock implements Clock {
  now(): Date {
    return new Date();
  }

  schedule(at: Date, callback: () => void): Cancel {
    let handle: NodeJS.Timeout | undefined;
    let cancelled = false;
    const arm = () => {
      const wait = at.getTime() - Date.now();
      if (wait <= 0) {
        handle = setTimeout(() => {
          if (!cancelled) callback();
        }, 0);
      } else {
        handle = setTimeout(arm, Math.min(wait, MAX_TIMEOUT_MS));
      }
      // A pending durable timer must not keep a CLI process alive on its own.
      handle.unref();
    };
    arm();
    return () => {
      cancelled = true;
      if (handle) clearTimeout(handle);
    };
  }
}

interface Scheduled {
  at: number;
  seq: number;
  callback: () => void;
}

/**
 * A clock that moves only when told to. `advanceTo`/`advanceBy` run every callback that falls due,
 * in time order, with `now()` set to each callback's due time while it runs.
 */
export class ManualClock implements Clock {
  #now: number;
  #queue: Scheduled[] = [];
  #seq = 0;

  constructor(start: Date | string = "2030-01-15T12:00:00.000Z") {
    this.#now = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.#now);
  }

  schedule(at: Date, callback: () => void): Cancel {
    const entry: Scheduled = { at: at.getTime(), seq: this.#seq++, callback };
    if (entry.at <= this.#now) {
      // Never re-enter the caller synchronously: a real timer would not either.
      let cancelled = false;
      setImmediate(() => {
        if (!cancelled) callback();
      });
      return () => {
        cancelled = true;
      };
    }
    this.#queue.push(entry);
    this.#queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
    return () => {
      const index = this.#queue.indexOf(entry);
      if (index >= 0) this.#queue.splice(index, 1);
    };
  }

  /** When the earliest pending callback is due, if any. */
  nextDue(): Date | undefined {
    const first = this.#queue[0];
    return first ? new Date(first.at) : undefined;
  }

  pending(): number {
    return this.#queue.length;
  }

  advanceBy(ms: number): void {
    this.advanceTo(new Date(this.#now + ms));
  }

  advanceTo(target: Date | string): void {
    const until = new Date(target).getTime();
    if (until < this.#now) throw new Error("ManualClock cannot go back in time.");
    for (;;) {
      const first = this.#queue[0];
      if (!first || first.at > until) break;
      this.#queue.shift();
      this.#now = Math.max(this.#now, first.at);
      first.callback();
    }
    this.#now = until;
  }
}

export function isManualClock(clock: Clock): clock is ManualClock {
  return clock instanceof ManualClock;
}
