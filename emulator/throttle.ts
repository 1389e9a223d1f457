/**
 * Azure's request limits, as pure limiters over an injected clock (milliseconds), so tests can drain
 * and refill them without waiting. Two layers, as in Azure (DESIGN §10):
 * - ARM: token buckets per security principal and subscription (or tenant, for calls without a
 *   subscription): reads 250 burst / +25 per second, writes 200 / +10 per second.
 * - The Storage resource provider, behind ARM, per subscription and region of the account: writes
 *   10 per second and 1,200 per hour, reads 800 and lists 100 per 5 minutes.
 */

export type Clock = () => number;

/** Taken: how many calls the limiter still admits now. Refused: whole seconds (>= 1) until it admits one. */
export type Admission = { ok: true; remaining: number } | { ok: false; retryAfterSeconds: number };

/** One limit. Checking and committing are apart so a call refused by one limit uses none of the others. */
export interface Limiter {
  /** Milliseconds until the limiter admits one call; 0 when it admits one now. */
  waitMs(): number;
  /** Counts one admitted call. */
  commit(): void;
  /** Calls admitted now before the limit is reached. */
  remaining(): number;
}

/** Seconds for a Retry-After header: whole, and at least 1 (a 0 would invite an immediate retry). */
export function retryAfterSeconds(waitMs: number): number {
  return Math.max(1, Math.ceil(waitMs / 1000));
}

export interface BucketLimits {
  capacity: number;
  refillPerSecond: number;
}

export const ARM_READ_LIMITS: BucketLimits = { capacity: 250, refillPerSecond: 25 };
export const ARM_WRITE_LIMITS: BucketLimits = { capacity: 200, refillPerSecond: 10 };

export class TokenBucket implements Limiter {
  private tokens: number;
  private last: number;

  constructor(
    private readonly limits: BucketLimits,
    private readonly now: Clock,
  ) {
    this.tokens = limits.capacity;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(
      this.limits.capacity,
      this.tokens + ((t - this.last) / 1000) * this.limits.refillPerSecond,
    );
    this.last = t;
  }

  waitMs(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : ((1 - this.tokens) / this.limits.refillPerSecond) * 1000;
  }

  commit(): void {
    this.refill();
    this.tokens -= 1;
  }

  remaining(): number {
    this.refill();
    return Math.max(0, Math.floor(this.tokens));
  }

  /** Takes one token, or says how many whole seconds until one is back. */
  take(): Admission {
    return admit([this]);
  }

  /** Empties the bucket (fault injection: make the next call throttled). */
  drain(): void {
    this.refill();
    this.tokens = 0;
  }
}

export interface WindowLimits {
  limit: number;
  windowMs: number;
}

/**
 * At most `limit` calls in any `windowMs`: a call is admitted when fewer than `limit` were admitted
 * in the window ending now. Holds the admitted calls' times (at most `limit` of them).
 */
export class SlidingWindow implements Limiter {
  private readonly times: number[] = [];
  private head = 0;

  constructor(
    private readonly limits: WindowLimits,
    private readonly now: Clock,
  ) {}

  private prune(): number {
    const t = this.now();
    while (this.head < this.times.length && this.times[this.head]! <= t - this.limits.windowMs) this.head++;
    // Compact now and then, so the array does not grow with every call ever admitted.
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times.splice(0, this.head);
      this.head = 0;
    }
    return t;
  }

  private count(): number {
    return this.times.length - this.head;
  }

  waitMs(): number {
    const t = this.prune();
    if (this.count() < this.limits.limit) return 0;
    // The window admits one more when the call `limit` places back leaves it.
    const leaving = this.times[this.times.length - this.limits.limit]!;
    return leaving + this.limits.windowMs - t;
  }

  commit(): void {
    this.times.push(this.prune());
  }

  remaining(): number {
    this.prune();
    return Math.max(0, this.limits.limit - this.count());
  }

  take(): Admission {
    return admit([this]);
  }
}

/**
 * Admits a call only if every limiter does, and then counts it in all of them. Refused, the wait
 * is the longest any of them needs; `remaining` is the tightest after the call.
 */
export function admit(limiters: Limiter[]): Admission {
  const wait = Math.max(0, ...limiters.map((l) => l.waitMs()));
  if (wait > 0) return { ok: false, retryAfterSeconds: retryAfterSeconds(wait) };
  for (const l of limiters) l.commit();
  return { ok: true, remaining: Math.min(...limiters.map((l) => l.remaining())) };
}

export type ArmKind = "read" | "write";

/** ARM's scope for calls that name no subscription (e.g. `GET /subscriptions`): the tenant's buckets. */
export const TENANT_SCOPE = "tenant";

/** ARM's token buckets, one per security principal, scope (subscription id or the tenant) and kind. */
export class ArmThrottle {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly now: Clock = () => Date.now(),
    private readonly reads: BucketLimits = ARM_READ_LIMITS,
    private readonly writes: BucketLimits = ARM_WRITE_LIMITS,
  ) {}

  private static key(principalId: string, scope: string, kind: ArmKind): string {
    return `${principalId.toLowerCase()}|${scope.toLowerCase()}|${kind}`;
  }

  bucket(principalId: string, scope: string, kind: ArmKind): TokenBucket {
    const key = ArmThrottle.key(principalId, scope, kind);
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(kind === "read" ? this.reads : this.writes, this.now);
      this.buckets.set(key, bucket);
    }
    return bucket;
  }

  take(principalId: string, scope: string, kind: ArmKind): Admission {
    return this.bucket(principalId, scope, kind).take();
  }

  /**
   * Empties the scope's buckets of this kind: those of the given principals (made if they have
   * made no call yet, so a test can drain before the first call) and every other that exists.
   */
  drain(scope: string, kind: ArmKind, principalIds: Iterable<string> = []): void {
    for (const id of principalIds) this.bucket(id, scope, kind);
    const suffix = `|${scope.toLowerCase()}|${kind}`;
    for (const [key, bucket] of this.buckets) if (key.endsWith(suffix)) bucket.drain();
  }
}

export type StorageRpKind = "read" | "write" | "list";

export const STORAGE_RP_LIMITS = {
  writesPerSecond: { capacity: 10, refillPerSecond: 10 } satisfies BucketLimits,
  writesPerHour: { limit: 1200, windowMs: 3_600_000 } satisfies WindowLimits,
  reads: { limit: 800, windowMs: 300_000 } satisfies WindowLimits,
  lists: { limit: 100, windowMs: 300_000 } satisfies WindowLimits,
};

/** A refusal names the limit, as Azure's message does (`Write_ObservationWindow_01:00:00`). */
export type StorageRpAdmission =
  { ok: true } | { ok: false; retryAfterSeconds: number; observationWindow: string };

interface RpLimiter {
  limiter: Limiter;
  observationWindow: string;
}

/**
 * The Storage resource provider's own limits, per subscription and region. Writes must pass both
 * the per-second bucket and the hourly window; a refused call counts in neither.
 */
export class StorageRpThrottle {
  private readonly limiters = new Map<string, RpLimiter[]>();

  constructor(
    private readonly now: Clock = () => Date.now(),
    private readonly limits: typeof STORAGE_RP_LIMITS = STORAGE_RP_LIMITS,
  ) {}

  private limitersFor(subscriptionId: string, region: string, kind: StorageRpKind): RpLimiter[] {
    const key = `${subscriptionId.toLowerCase()}|${region.toLowerCase()}|${kind}`;
    let found = this.limiters.get(key);
    if (!found) {
      found =
        kind === "write"
          ? [
              {
                limiter: new TokenBucket(this.limits.writesPerSecond, this.now),
                observationWindow: "Write_ObservationWindow_00:00:01",
              },
              {
                limiter: new SlidingWindow(this.limits.writesPerHour, this.now),
                observationWindow: "Write_ObservationWindow_01:00:00",
              },
            ]
          : kind === "read"
            ? [
                {
                  limiter: new SlidingWindow(this.limits.reads, this.now),
                  observationWindow: "Read_ObservationWindow_00:05:00",
                },
              ]
            : [
                {
                  limiter: new SlidingWindow(this.limits.lists, this.now),
                  observationWindow: "List_ObservationWindow_00:05:00",
                },
              ];
      this.limiters.set(key, found);
    }
    return found;
  }

  take(subscriptionId: string, region: string, kind: StorageRpKind): StorageRpAdmission {
    const limiters = this.limitersFor(subscriptionId, region, kind);
    const waits = limiters.map((l) => ({ ...l, wait: l.limiter.waitMs() }));
    const longest = waits.reduce((a, b) => (b.wait > a.wait ? b : a));
    if (longest.wait > 0) {
      return {
        ok: false,
        retryAfterSeconds: retryAfterSeconds(longest.wait),
        observationWindow: longest.observationWindow,
      };
    }
    for (const l of limiters) l.limiter.commit();
    return { ok: true };
  }
}

/** What answered a 429: ARM's token buckets, the Storage RP's limits, or an injected fault. */
export type ThrottleSource = "arm" | "storageRp" | "fault";

export interface ThrottleCounts {
  /** ARM calls answered, 429s included (not trimmed like the log). */
  requests: number;
  total: number;
  bySource: Record<ThrottleSource, number>;
  byOperation: Record<string, number>;
}

export function emptyThrottleCounts(): ThrottleCounts {
  return { requests: 0, total: 0, bySource: { arm: 0, storageRp: 0, fault: 0 }, byOperation: {} };
}
