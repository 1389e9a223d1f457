import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineFromOptions,
  createPipelineRequest,
  type PipelineResponse,
} from "@azure/core-rest-pipeline";
import { ArmPacer, armTimeoutMs } from "../../../shared/azure/pacing";
import { ARM_WRITE_LIMITS, TokenBucket } from "../../../emulator/throttle";

const SUB = "/subscriptions/00000000-0000-0000-0000-000000000001";

/** A clock that only moves when the pacer sleeps: tests run instantly and see every wait. */
function fakeTime() {
  let now = 0;
  const sleeps: number[] = [];
  return {
    now: () => now,
    sleep: (ms: number) => {
      sleeps.push(ms);
      now += ms;
      return Promise.resolve();
    },
    sleeps,
  };
}

function response(status: number, headers: Record<string, string> = {}): PipelineResponse {
  const request = createPipelineRequest({ url: "https://arm.example" });
  return { status, headers: createHttpHeaders(headers), request };
}

function post(
  path = `${SUB}/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w/listKeys`,
) {
  return createPipelineRequest({ url: `https://arm.example${path}?api-version=1`, method: "POST" });
}

describe("the ARM pacer", () => {
  it("sends at the bucket's refill rate once the remaining-writes header says the bucket is nearly empty", async () => {
    const time = fakeTime();
    const pacer = new ArmPacer({ ...time, reserve: 5 });
    const sent: number[] = [];
    const next = () => {
      sent.push(time.now());
      return Promise.resolve(response(200, { "x-ms-ratelimit-remaining-subscription-writes": "5" }));
    };
    for (let i = 0; i < 5; i++) await pacer.pacePolicy.sendRequest(post(), next);
    // The first call learns that 5 remain (the reserve); every later one waits for a refilled token: 10/s.
    expect(sent[0]).toBe(0);
    const gaps = sent.slice(1).map((t, i) => t - sent[i]!);
    for (const gap of gaps.slice(1)) expect(gap).toBeGreaterThanOrEqual(100);
    expect(pacer.throttled).toBe(0);
  });

  it("pauses the subscription's writes for the Retry-After of a 429, then goes on", async () => {
    const time = fakeTime();
    const pacer = new ArmPacer({ ...time });
    let calls = 0;
    const next = () => {
      calls++;
      return Promise.resolve(
        calls === 1
          ? response(429, { "retry-after": "7", "x-ms-ratelimit-remaining-subscription-writes": "0" })
          : response(200),
      );
    };
    const result = await pacer.patiencePolicy.sendRequest(post(), (req) =>
      pacer.pacePolicy.sendRequest(req, next),
    );
    expect(result.status).toBe(200);
    expect(calls).toBe(2);
    expect(time.now()).toBeGreaterThanOrEqual(7000);
    expect(pacer.throttled).toBe(1);
  });

  it("retries a 429 without Retry-After with a growing backoff, never failing before the deadline", async () => {
    const time = fakeTime();
    const pacer = new ArmPacer({ ...time, backoff: { firstMs: 1000, factor: 2, maxMs: 4000 } });
    let calls = 0;
    const next = () => Promise.resolve(++calls <= 4 ? response(429) : response(200));
    const result = await pacer.patiencePolicy.sendRequest(post(), next);
    expect(result.status).toBe(200);
    expect(time.sleeps).toEqual([1000, 2000, 4000, 4000]);
  });

  it("returns the 429 once waiting longer would pass the patience deadline", async () => {
    const time = fakeTime();
    const pacer = new ArmPacer({ ...time, patienceMs: 60_000 });
    const next = () => Promise.resolve(response(429, { "retry-after": "25" }));
    const result = await pacer.patiencePolicy.sendRequest(post(), next);
    expect(result.status).toBe(429);
    expect(time.now()).toBeLessThanOrEqual(60_000);
    expect(time.sleeps).toEqual([25_000, 25_000]);
  });

  it("lets a Storage resource provider 429 pause only storage calls, not the subscription's other writes", async () => {
    const time = fakeTime();
    const pacer = new ArmPacer({ ...time });
    const storage = post(`${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st/listKeys`);
    await pacer.pacePolicy.sendRequest(storage, () =>
      Promise.resolve(
        response(429, { "retry-after": "30", "x-ms-ratelimit-remaining-subscription-writes": "150" }),
      ),
    );
    const before = time.now();
    await pacer.pacePolicy.sendRequest(post(), () => Promise.resolve(response(200)));
    expect(time.now()).toBe(before);
    await pacer.pacePolicy.sendRequest(storage, () => Promise.resolve(response(200)));
    expect(time.now()).toBeGreaterThanOrEqual(before + 30_000);
  });
});

/** Virtual time for several concurrent callers: a sleep resolves when the driver reaches its moment. */
class VirtualTime {
  now = 0;
  private timers: { at: number; resolve: () => void }[] = [];
  readonly sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => this.timers.push({ at: this.now + Math.max(0, ms), resolve }));

  async run<T>(work: Promise<T>): Promise<T> {
    let done = false;
    const result = work.finally(() => (done = true));
    for (;;) {
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      if (done) return result;
      this.timers.sort((a, b) => a.at - b.at);
      const timer = this.timers.shift();
      if (!timer) throw new Error("stuck: no timer and the work is not done");
      this.now = Math.max(this.now, timer.at);
      timer.resolve();
    }
  }
}

describe("the ARM pacer on several workers", () => {
  it("shares one subscription's write bucket between two processes without failing a call, near the refill rate", async () => {
    const time = new VirtualTime();
    // Azure's side: the one bucket every caller of the subscription draws from (the emulator's own).
    const bucket = new TokenBucket(ARM_WRITE_LIMITS, () => time.now);
    let throttled = 0;
    const azure = (): Promise<PipelineResponse> => {
      const taken = bucket.take();
      if (taken.ok)
        return Promise.resolve(
          response(200, { "x-ms-ratelimit-remaining-subscription-writes": String(taken.remaining) }),
        );
      throttled++;
      return Promise.resolve(
        response(429, {
          "retry-after": String(taken.retryAfterSeconds),
          "x-ms-ratelimit-remaining-subscription-writes": "0",
        }),
      );
    };
    // Two workers, each with its own pacer (as two Functions instances would have), 300 writes each.
    const worker = async (): Promise<number[]> => {
      const pacer = new ArmPacer({ now: () => time.now, sleep: time.sleep });
      const statuses: number[] = [];
      const one = async () => {
        const res = await pacer.patiencePolicy.sendRequest(post(), (req) =>
          pacer.pacePolicy.sendRequest(req, azure),
        );
        statuses.push(res.status);
      };
      for (let i = 0; i < 30; i++) await Promise.all(Array.from({ length: 10 }, one));
      return statuses;
    };
    const [a, b] = await time.run(Promise.all([worker(), worker()]));
    expect([...a, ...b].filter((s) => s !== 200)).toEqual([]);
    expect(a.length + b.length).toBe(600);
    // The budget allows 200 at once and 10/s after: 40 s is the floor for 600 writes.
    expect(time.now).toBeGreaterThanOrEqual(40_000);
    expect(time.now).toBeLessThanOrEqual(1.25 * 40_000);
    // The headers keep the two from hammering the bucket: 429s stay a small share of the calls.
    expect(throttled).toBeLessThan(0.15 * 600);
  });
});

describe("the ARM call deadline (KEYTURN_ARM_TIMEOUT_SECONDS)", () => {
  /** A server that never answers its first `hold` requests and answers 200 after. */
  async function server(
    hold: number,
  ): Promise<{ url: string; seen: () => number; close: () => Promise<void> }> {
    let seen = 0;
    const srv: Server = createServer((_req, res) => {
      seen++;
      if (seen > hold) res.end("{}");
    });
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
    return {
      url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}${SUB}/providers/Microsoft.Storage/storageAccounts?api-version=1`,
      seen: () => seen,
      close: () =>
        new Promise<void>((resolve) => {
          srv.closeAllConnections();
          srv.close(() => resolve());
        }),
    };
  }

  /** An SDK-shaped pipeline (its retry policy included) with the deadline next to the wire. */
  function send(pacer: ArmPacer, url: string, maxRetries: number) {
    const pipeline = createPipelineFromOptions({ retryOptions: { maxRetries, retryDelayInMs: 10 } });
    pipeline.addPolicy(pacer.deadlinePolicy, { afterPhase: "Retry" });
    const request = createPipelineRequest({ url, method: "GET", allowInsecureConnection: true });
    return pipeline.sendRequest(createDefaultHttpClient(), request);
  }

  it("reads the setting, and falls back to 60 s for a missing or unusable one", () => {
    expect(armTimeoutMs({ KEYTURN_ARM_TIMEOUT_SECONDS: "2.5" })).toBe(2500);
    expect(armTimeoutMs({})).toBe(60_000);
    expect(armTimeoutMs({ KEYTURN_ARM_TIMEOUT_SECONDS: "0" })).toBe(60_000);
    expect(armTimeoutMs({ KEYTURN_ARM_TIMEOUT_SECONDS: "soon" })).toBe(60_000);
  });

  it("abandons an attempt ARM never answers and lets the SDK retry it", async () => {
    const arm = await server(1);
    try {
      const started = Date.now();
      const res = await send(new ArmPacer({ callTimeoutMs: 300 }), arm.url, 2);
      expect(res.status).toBe(200);
      expect(arm.seen()).toBe(2);
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await arm.close();
    }
  });

  it("fails as a network timeout (ETIMEDOUT) once every attempt ran out of time", async () => {
    const arm = await server(Infinity);
    try {
      const error = await send(new ArmPacer({ callTimeoutMs: 200 }), arm.url, 1).then(
        () => undefined,
        (e: unknown) => e as { code?: string; message?: string },
      );
      expect(error?.code).toBe("ETIMEDOUT");
      expect(error?.message).toMatch(/no answer within 0\.2 s \(KEYTURN_ARM_TIMEOUT_SECONDS\)/);
      expect(arm.seen()).toBe(2);
    } finally {
      await arm.close();
    }
  });

  it("keeps a caller's own shorter timeout", async () => {
    const pacer = new ArmPacer({ callTimeoutMs: 5_000 });
    const request = post();
    request.timeout = 1_000;
    await pacer.deadlinePolicy.sendRequest(request, () => Promise.resolve(response(200)));
    expect(request.timeout).toBe(1_000);
    const unset = post();
    await pacer.deadlinePolicy.sendRequest(unset, () => Promise.resolve(response(200)));
    expect(unset.timeout).toBe(5_000);
  });
});
