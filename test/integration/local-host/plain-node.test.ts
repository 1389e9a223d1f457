import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

const ROOT = join(__dirname, "..", "..", "..");

// Outside Jest nothing mocks "@azure/functions-core": LocalHost.load must make Node's own resolver
// find the stand-in before the app's first registration. The child transpiles the TypeScript
// sources on the fly (no build needed) and runs the same fixture app.
const SCRIPT = `
const ts = require("typescript");
const fs = require("node:fs");
require.extensions[".ts"] = (module, filename) => {
  const source = fs.readFileSync(filename, "utf8");
  const { outputText } = ts.transpileModule(source, {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  });
  module._compile(outputText, filename);
};
const { LocalHost, ManualClock } = require(${JSON.stringify(join(ROOT, "local", "index.ts"))});
(async () => {
  const host = new LocalHost({
    clock: new ManualClock(),
    logger: () => undefined,
    settings: { FIXTURE_SCHEDULE: "0 0 0 1 * *" },
  });
  const functions = host.load(${JSON.stringify(join(__dirname, "fixtures", "app.ts"))});
  await host.start({ timers: false });
  const hello = await (await fetch(host.url + "/api/hello/node")).text();
  const id = host.startNew("main");
  const status = await host.waitForCompletion(id);
  await host.stop();
  console.log(JSON.stringify({ functions: functions.map((f) => f.name), hello, runtimeStatus: status.runtimeStatus, output: status.output }));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
`;

describe("LocalHost in plain Node", () => {
  it("provides @azure/functions-core through Node's resolver and runs the app", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["-e", SCRIPT], {
      cwd: ROOT,
      timeout: 20_000,
    });
    expect(JSON.parse(stdout.trim())).toEqual({
      functions: expect.arrayContaining(["main", "double", "hello", "monthly"]) as unknown,
      hello: "hello node",
      runtimeStatus: "Completed",
      output: { doubled: [2, 4, 6], child: 21, retried: { recovered: "x" }, greeting: "hello world" },
    });
  });
});
