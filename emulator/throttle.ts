/**
 * ARM's per-subscription token buckets (reads 250 burst / +25 per second, writes 200 / +10 per second).
 * The clock is injected so tests can drain and refill a bucket without waiting.
 */
export interface BucketLimits {
  capacity: number;
  refillPerSecond: number;
}

export const ARM_READ_LIMITS: BucketLimits = { capacity: 250, refillPerSecond: 25 };
export const ARM_WRITE_LIMITS: BucketLimits = { capacity: 200, refillPerSecond: 10 };

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly limits: BucketLimits,
    private readonly now: () => number,
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

  /** Takes one token, or returns the whole seconds to wait until one is available. */
  take(): { ok: true; remaining: number } | { ok: false; retryAfterSeconds: number } {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true, remaining: Math.floor(this.tokens) };
    }
    return {
      ok: false,
      retryAfterSeconds: Math.max(1, Math.ceil((1 - this.tokens) / this.limits.refillPerSecond)),
    };
  }

  /** Empties the bucket (fault injection: make the next call throttled). */
  drain(): void {
    this.refill();
    this.tokens = 0;
  }
}

export class SubscriptionThrottle {
  private readonly buckets = new Map<string, TokenBucket>();
  enabled = true;

  constructor(
    private readonly now: () => number = () => Date.now(),
    private readonly reads: BucketLimits = ARM_READ_LIMITS,
    private readonly writes: BucketLimits = ARM_WRITE_LIMITS,
  ) {}

  bucket(subscriptionId: string, kind: "read" | "write"): TokenBucket {
    const key = `${subscriptionId.toLowerCase()}|${kind}`;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(kind === "read" ? this.reads : this.writes, this.now);
      this.buckets.set(key, bucket);
    }
    return bucket;
  }

  take(subscriptionId: string, kind: "read" | "write"): ReturnType<TokenBucket["take"]> {
    if (!this.enabled) return { ok: true, remaining: Number.MAX_SAFE_INTEGER };
    return this.bucket(subscriptionId, kind).take();
  }
}
