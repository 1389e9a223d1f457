// Jest resolves modules itself, so the worker-injected module is provided here; outside Jest,
// LocalHost.load installs it through Node's resolver.
jest.mock(
  "@azure/functions-core",
  () => jest.requireActual<typeof import("../../../local/functions-core")>("../../../local/functions-core"),
  { virtual: true },
);

import { join } from "node:path";
import { app } from "@azure/functions";
import * as df from "durable-functions";
import { LocalHost, ManualClock, type InvocationInfo } from "../../../local";
import { compileRoute } from "../../../local/http-routes";
import { resetFixture, timerRuns } from "./fixtures/app";

const FIXTURE = join(__dirname, "fixtures", "app.ts");
const KEYS = { function: "fn-key", master: "master-key", system: "system-key" };

function newHost(options: ConstructorParameters<typeof LocalHost>[0] = {}): LocalHost {
  const host = new LocalHost({
    keys: KEYS,
    settings: { FIXTURE_SCHEDULE: "0 0 0 1 * *" },
    logger: () => undefined,
    ...options,
  });
  host.load(FIXTURE);
  return host;
}

describe("LocalHost registrations and HTTP", () => {
  let host: LocalHost;

  beforeEach(async () => {
    resetFixture();
    host = newHost();
    await host.start({ timers: false });
  });

  afterEach(async () => {
    await host.stop();
  });

  it("captures every registration with its trigger", () => {
    const byName = Object.fromEntries(host.functions.map((f) => [f.name, f]));
    expect(byName.double?.triggerType).toBe("activityTrigger");
    expect(byName.main?.triggerType).toBe("orchestrationTrigger");
    expect(byName.monthly?.timer).toEqual({ schedule: "%FIXTURE_SCHEDULE%", runOnStartup: false });
    expect(byName.startOrchestration?.http).toEqual({
      route: "orchestrators/{name}",
      methods: ["POST"],
      authLevel: "function",
    });
    const clientBinding = Object.values(byName.startOrchestration?.bindings ?? {}).find(
      (b) => b.type === "durableClient",
    );
    expect(clientBinding?.direction).toBe("in");
  });

  it("serves an anonymous route with an optional parameter", async () => {
    const named = await fetch(`${host.url}/api/hello/keyturn`);
    expect(named.status).toBe(200);
    expect(named.headers.get("x-fixture")).toBe("yes");
    expect(await named.text()).toBe("hello keyturn");
    expect(await (await fetch(`${host.url}/api/hello`)).text()).toBe("hello anonymous");
    expect((await fetch(`${host.url}/api/hello/a`, { method: "POST" })).status).toBe(404);
    expect((await fetch(`${host.url}/api/nowhere`)).status).toBe(404);
  });

  it("answers 500 when a function throws", async () => {
    expect((await fetch(`${host.url}/api/boom`)).status).toBe(500);
  });

  it("runs the app's invocation hooks around a function, as the worker does", async () => {
    const seen: string[] = [];
    const pre = app.hook.preInvocation((context) => {
      seen.push(`pre ${context.invocationContext.functionName}`);
    });
    const post = app.hook.postInvocation((context) => {
      seen.push(context.error === undefined ? "post ok" : "post failed");
      context.result = { body: "replaced by a hook" };
    });
    try {
      expect(await (await fetch(`${host.url}/api/hello/x`)).text()).toBe("replaced by a hook");
      expect(seen).toEqual(["pre hello", "post ok"]);
    } finally {
      pre.dispose();
      post.dispose();
    }
    expect(await (await fetch(`${host.url}/api/hello/x`)).text()).toBe("hello x");
  });

  it("requires the function key on function-level routes", async () => {
    const url = `${host.url}/api/orchestrators/sequence`;
    expect((await fetch(url, { method: "POST" })).status).toBe(401);
    expect((await fetch(`${url}?code=wrong`, { method: "POST" })).status).toBe(401);
    const withHeader = await fetch(url, { method: "POST", headers: { "x-functions-key": KEYS.function } });
    expect(withHeader.status).toBe(202);
    const withMaster = await fetch(`${url}?code=${KEYS.master}`, { method: "POST" });
    expect(withMaster.status).toBe(202);
  });

  it("starts an orchestration over HTTP and answers its status links", async () => {
    const started = await fetch(`${host.url}/api/orchestrators/sequence?code=${KEYS.function}`, {
      method: "POST",
    });
    expect(started.status).toBe(202);
    const links = (await started.json()) as {
      id: string;
      statusQueryGetUri: string;
      sendEventPostUri: string;
    };
    expect(
      links.statusQueryGetUri.startsWith(`${host.url}/runtime/webhooks/durabletask/instances/${links.id}`),
    ).toBe(true);
    expect(started.headers.get("location")).toBe(links.statusQueryGetUri);

    await host.waitForCompletion(links.id);
    const status = await fetch(links.statusQueryGetUri);
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({
      runtimeStatus: "Completed",
      output: ["step-1", "step-2", "step-3", "step-4"],
    });
    const withoutKey = links.statusQueryGetUri.replace(/code=[^&]+/, "code=nope");
    expect((await fetch(withoutKey)).status).toBe(401);
  });

  it("makes getStatus of an unknown instance throw (v3), as the design's singleton check expects", async () => {
    const response = await fetch(`${host.url}/api/status/no-such-instance`);
    expect(response.status).toBe(404);
    const body = (await response.json()) as { error: string };
    expect(body.error).toMatch(/replied with HTTP 404 response/);
    expect(body.error).toMatch(/no-such-instance/);
  });

  it("implements the durable client operations against the rpc endpoint", async () => {
    const client = await host.durableClient();
    const id = await client.startNew("approval", { instanceId: "approval-1", input: { who: "ops" } });
    expect(id).toBe("approval-1");
    await host.idle();
    const running = await client.getStatus(id);
    expect(running.runtimeStatus).toBe("Running");
    expect(running.input).toEqual({ who: "ops" });

    await expect(client.startNew("approval", { instanceId: id })).rejects.toThrow(/409/);
    await client.raiseEvent(id, "approve", { ok: true });
    const done = await host.waitForCompletion(id);
    expect(done.output).toEqual({ ok: true });
    await expect(client.raiseEvent("nobody", "approve", {})).rejects.toThrow(/No instance with ID 'nobody'/);

    const second = await client.startNew("approval");
    await host.idle();
    await client.suspend(second, "pause");
    expect((await client.getStatus(second)).runtimeStatus).toBe("Suspended");
    await client.resume(second, "go on");
    await client.terminate(second, "no longer needed");
    const terminated = await client.getStatus(second);
    expect(terminated.runtimeStatus).toBe("Terminated");
    expect(terminated.output).toBe("no longer needed");

    const all = await client.getStatusAll();
    expect(all.map((s) => s.instanceId).sort()).toEqual([id, second].sort());
    const completedOnly = await client.getStatusBy({
      runtimeStatus: [df.OrchestrationRuntimeStatus.Completed],
    });
    expect(completedOnly.map((s) => s.instanceId)).toEqual([id]);

    expect((await client.purgeInstanceHistory(id)).instancesDeleted).toBe(1);
    expect((await client.purgeInstanceHistory(id)).instancesDeleted).toBe(0);
    await expect(client.getStatus(id)).rejects.toThrow(/404/);
  });
});

describe("LocalHost timer triggers", () => {
  it("fires a timer on its NCRONTAB schedule from an app setting, on the injected clock", async () => {
    resetFixture();
    const clock = new ManualClock("2030-01-31T23:59:00Z");
    const invocations: InvocationInfo[] = [];
    const host = newHost({ clock, hooks: { onInvocation: (info) => void invocations.push(info) } });
    await host.start();
    try {
      clock.advanceTo("2030-01-31T23:59:59Z");
      await host.idle();
      expect(timerRuns).toHaveLength(0);

      clock.advanceTo("2030-02-01T00:00:00Z");
      await host.idle();
      expect(timerRuns).toHaveLength(1);
      expect(timerRuns[0]).toMatchObject({
        isPastDue: false,
        schedule: { adjustForDST: true },
        scheduleStatus: { next: "2030-03-01T00:00:00.000Z" },
      });
      expect(invocations).toEqual([{ functionName: "monthly", triggerType: "timerTrigger", ok: true }]);
      // The timer started an orchestration through its durable client.
      expect((await host.waitForCompletion("monthly-run")).runtimeStatus).toBe("Completed");

      clock.advanceTo("2030-02-28T23:59:59Z");
      await host.idle();
      expect(timerRuns).toHaveLength(1);
    } finally {
      await host.stop();
    }
  });

  it("names the missing app setting of a timer schedule", async () => {
    const host = newHost({ settings: {} });
    try {
      await expect(host.start()).rejects.toThrow(/FIXTURE_SCHEDULE/);
    } finally {
      await host.stop();
    }
  });
});

describe("HTTP route templates", () => {
  it("matches literals case-insensitively and decodes parameters", () => {
    expect(compileRoute("rotations/{id}").match("Rotations/a%20b")).toEqual({ id: "a b" });
    expect(compileRoute("rotations/{id}").match("rotations")).toBeUndefined();
    expect(compileRoute("rotations/{id}").match("rotations/a/b")).toBeUndefined();
  });

  it("supports optional parameters, constraints and catch-alls", () => {
    expect(compileRoute("items/{n:int?}").match("items")).toEqual({});
    expect(compileRoute("items/{n:int?}").match("items/42")).toEqual({ n: "42" });
    expect(compileRoute("items/{n:int?}").match("items/x")).toBeUndefined();
    expect(compileRoute("files/{*path}").match("files/a/b/c.txt")).toEqual({ path: "a/b/c.txt" });
    expect(compileRoute("files/{name}.json").match("files/report.json")).toEqual({ name: "report" });
  });

  it("ranks literal routes before parameterised ones and catch-alls last", () => {
    const ranks = ["plan", "{id}", "{*rest}"].map((t) => compileRoute(`rotations/${t}`).precedence);
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
  });
});
