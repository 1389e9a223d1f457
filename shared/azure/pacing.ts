import { setTimeout as sleepMs } from "node:timers/promises";
import type { PipelinePolicy, PipelineRequest, PipelineResponse } from "@azure/core-rest-pipeline";

/**
 * ARM throttling as a pace signal, never a failure (DESIGN §10).
 *
 * ARM gives each principal and subscription a token bucket of reads (250, +25/s) and writes (200,
 * +10/s; every POST counts), and the Storage resource provider has limits of its own. Every ARM answer
 * says how many calls are left (`x-ms-ratelimit-remaining-subscription-reads|writes`); a 429 says how
 * long to wait (`Retry-After`). The pacer keeps a local estimate of each bucket, corrected by those
 * headers, and holds a call back while the bucket is nearly empty, so keyturn spends the budget at its
 * refill rate instead of draining it and collecting 429s. The headers count every caller of the
 * subscription, so instances of keyturn on several workers see each other's spending and slow down
 * together; a 429 that still comes (another worker, the Storage RP's hourly limit) pauses the whole
 * lane for the time Azure asks, and the call is tried again until the patience deadline.
 */
export interface PacerOptions {
  /** How long one call may wait out throttling in total before its 429 is returned. */
  patienceMs: number;
  /** Calls left in a bucket that the pacer does not spend: room for other callers and calls in flight. */
  reserve: number;
  /** Wait after a 429 without Retry-After: first, growth factor, cap. */
  backoff: { firstMs: number; factor: number; maxMs: number };
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /**
   * How long one attempt of an ARM call may go unanswered (KEYTURN_ARM_TIMEOUT_SECONDS, read per call
   * when not given). Past it the attempt is abandoned as a network timeout, which the SDK retries.
   */
  callTimeoutMs?: number;
}

export const ARM_LIMITS = {
  read: { capacity: 250, refillPerSecond: 25 },
  write: { capacity: 200, refillPerSecond: 10 },
} as const;

export const DEFAULT_PATIENCE_MS = 30 * 60_000;

/** A request ARM has not answered in this long is given up and tried again (DESIGN §10: every call has a deadline). */
export const DEFAULT_ARM_TIMEOUT_SECONDS = 60;
export const ARM_TIMEOUT_SETTING = "KEYTURN_ARM_TIMEOUT_SECONDS";

type Kind = keyof typeof ARM_LIMITS;

class Lane {
  tokens: number;
  last: number;
  pausedUntil = 0;
  /** Calls wait their turn in order, so a burst of activities does not stampede a refilled bucket. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly limits: { capacity: number; refillPerSecond: number },
    private readonly options: PacerOptions,
  ) {
    this.tokens = limits.capacity;
    this.last = options.now();
  }

  private refill(): void {
    const t = this.options.now();
    this.tokens = Math.min(
      this.limits.capacity,
      this.tokens + ((t - this.last) / 1000) * this.limits.refillPerSecond,
    );
    this.last = t;
  }

  acquire(): Promise<void> {
    const turn = this.queue.then(() => this.wait());
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async wait(): Promise<void> {
    for (;;) {
      const now = this.options.now();
      if (now < this.pausedUntil) {
        await this.options.sleep(this.pausedUntil - now);
        continue;
      }
      this.refill();
      if (this.tokens >= this.options.reserve + 1) {
        this.tokens -= 1;
        return;
      }
      const missing = this.options.reserve + 1 - this.tokens;
      await this.options.sleep(Math.max(1, Math.ceil((missing / this.limits.refillPerSecond) * 1000)));
    }
  }

  observeRemaining(remaining: number): void {
    this.refill();
    this.tokens = Math.min(this.tokens, remaining);
  }

  pause(ms: number): void {
    this.refill();
    this.tokens = 0;
    this.pausedUntil = Math.max(this.pausedUntil, this.options.now() + ms);
  }
}

export class ArmPacer {
  readonly options: PacerOptions;
  private readonly lanes = new Map<string, Lane>();
  /** 429s this process received, for reports. */
  throttled = 0;

  constructor(options: Partial<PacerOptions> = {}) {
    this.options = {
      patienceMs: DEFAULT_PATIENCE_MS,
      reserve: 5,
      backoff: { firstMs: 1000, factor: 2, maxMs: 30_000 },
      now: () => Date.now(),
      sleep: (ms) => sleepMs(ms).then(() => undefined),
      ...options,
    };
  }

  private lane(name: string, kind: Kind): Lane {
    let lane = this.lanes.get(name);
    if (!lane) {
      lane = new Lane(ARM_LIMITS[kind], this.options);
      this.lanes.set(name, lane);
    }
    return lane;
  }

  /** The buckets a request draws from: ARM's per subscription, plus the Storage RP's for its calls. */
  private lanesOf(request: Pick<PipelineRequest, "method" | "url">): Lane[] {
    const kind = kindOf(request.method);
    const { subscription, storage } = routeOf(request.url);
    if (subscription === undefined) return [];
    const lanes = [this.lane(`arm/${subscription}/${kind}`, kind)];
    if (storage) lanes.push(this.lane(`storage/${subscription}/${kind}`, kind));
    return lanes;
  }

  /** perRetry: waits for a token before every attempt and learns from every answer. */
  readonly pacePolicy: PipelinePolicy = {
    name: "keyturnArmPace",
    sendRequest: async (request, next) => {
      const lanes = this.lanesOf(request);
      for (const lane of lanes) await lane.acquire();
      const response = await next(request);
      this.observe(request, response, lanes);
      return response;
    },
  };

  /** perCall: a 429 that outlived the SDK's own retries is waited out again, until the deadline. */
  readonly patiencePolicy: PipelinePolicy = {
    name: "keyturnArmPatience",
    sendRequest: async (request, next) => {
      const deadline = this.options.now() + this.options.patienceMs;
      let backoff = this.options.backoff.firstMs;
      for (;;) {
        // core-client's deserialization runs inside this policy and throws a 429 as a RestError.
        let response: PipelineResponse;
        try {
          response = await next(request);
        } catch (e) {
          const thrown = throttledResponseOf(e);
          if (!thrown) throw e;
          const wait = retryAfterMs(thrown) ?? backoff;
          if (retryAfterMs(thrown) === undefined)
            backoff = Math.min(this.options.backoff.maxMs, backoff * this.options.backoff.factor);
          if (this.options.now() + wait > deadline) throw e;
          await this.options.sleep(wait);
          continue;
        }
        if (response.status !== 429) return response;
        const asked = retryAfterMs(response);
        const wait = asked ?? backoff;
        if (asked === undefined)
          backoff = Math.min(this.options.backoff.maxMs, backoff * this.options.backoff.factor);
        if (this.options.now() + wait > deadline) return response;
        await this.options.sleep(wait);
      }
    },
  };

  /**
   * perRetry: each attempt gets a deadline. An attempt that outlives it is abandoned as ETIMEDOUT, a
   * network error the SDK's retry policy retries with backoff, so a request that is never answered
   * costs a deadline, not the socket's idle timeout (minutes) or forever.
   */
  readonly deadlinePolicy: PipelinePolicy = {
    name: "keyturnArmDeadline",
    sendRequest: async (request, next) => {
      const ms = this.options.callTimeoutMs ?? armTimeoutMs();
      // A caller's own shorter timeout stands; the request object is reused by every retry.
      if (!(request.timeout > 0) || request.timeout > ms) request.timeout = ms;
      try {
        return await next(request);
      } catch (e) {
        if ((e as { name?: unknown }).name !== "AbortError" || request.abortSignal?.aborted === true) throw e;
        throw Object.assign(
          new Error(`no answer within ${Math.round(request.timeout / 100) / 10} s (${ARM_TIMEOUT_SETTING})`),
          { name: "RestError", code: "ETIMEDOUT", request },
        );
      }
    },
  };

  private observe(request: PipelineRequest, response: PipelineResponse, lanes: Lane[]): void {
    const kind = kindOf(request.method);
    const header = response.headers.get(`x-ms-ratelimit-remaining-subscription-${kind}s`);
    const remaining = header === undefined ? NaN : Number(header);
    if (Number.isFinite(remaining)) lanes[0]?.observeRemaining(remaining);
    if (response.status === 429) {
      this.throttled++;
      const ms = retryAfterMs(response) ?? this.options.backoff.firstMs;
      // ARM's own 429 shows its bucket empty; a 429 with ARM calls left is the Storage RP's limit,
      // which pauses storage calls only, not the subscription's other writes.
      const storageLane = lanes[1];
      if (storageLane && remaining > 0) storageLane.pause(ms);
      else for (const lane of lanes) lane.pause(ms);
    }
  }
}

/** The 429 response inside an error thrown by a deserializing pipeline, if that is what it is. */
function throttledResponseOf(e: unknown): Pick<PipelineResponse, "headers"> | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const error = e as { statusCode?: number; response?: { headers?: PipelineResponse["headers"] } };
  if (error.statusCode !== 429 || !error.response?.headers) return undefined;
  return { headers: error.response.headers };
}

function kindOf(method: string): Kind {
  return method.toUpperCase() === "GET" || method.toUpperCase() === "HEAD" ? "read" : "write";
}

function routeOf(url: string): { subscription?: string; storage: boolean } {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    path = url;
  }
  const m = /\/subscriptions\/([^/?]+)/i.exec(path);
  return {
    ...(m?.[1] ? { subscription: m[1].toLowerCase() } : {}),
    storage: /\/providers\/microsoft\.storage\//i.test(path),
  };
}

export function retryAfterMs(response: Pick<PipelineResponse, "headers">): number | undefined {
  const ms = response.headers.get("retry-after-ms") ?? response.headers.get("x-ms-retry-after-ms");
  if (ms !== undefined && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const value = response.headers.get("retry-after");
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The process's pacer: every ARM client of every profile shares it, as they share ARM's buckets. */
export const armPacer = new ArmPacer({ patienceMs: patienceFromEnv() });

/** KEYTURN_ARM_TIMEOUT_SECONDS, when a number > 0; otherwise DEFAULT_ARM_TIMEOUT_SECONDS. */
export function armTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const seconds = Number(env[ARM_TIMEOUT_SETTING]);
  return (Number.isFinite(seconds) && seconds > 0 ? seconds : DEFAULT_ARM_TIMEOUT_SECONDS) * 1000;
}

function patienceFromEnv(): number {
  const minutes = Number(process.env.KEYTURN_THROTTLE_PATIENCE_MINUTES);
  return Number.isFinite(minutes) && minutes > 0 ? minutes * 60_000 : DEFAULT_PATIENCE_MS;
}
