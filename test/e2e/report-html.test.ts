import { spawn } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium, type Browser } from "playwright-core";
import { projectRoot } from "../../emulator/paths";
import { encodingsOf } from "../../shared/redact";
import type { RotationReport } from "../../shared/rotation";
import { startRotationRig, type RotationRig } from "../helpers/rotation";

/**
 * `keyturn status <id> --html FILE` on a real rotation of the demo estate, opened in headless Chromium
 * with JavaScript disabled and the network cut: the page a security team files as evidence must show
 * every account, its keys by fingerprint and every consumer, draw its graphs, ask for nothing, and hold
 * no key value.
 *
 * Chromium is the system's (Debian: `apt-get install -y chromium`), driven by playwright-core; without
 * it this suite fails, it does not skip.
 */

const CHROMIUM_CANDIDATES = [
  process.env.KEYTURN_CHROMIUM,
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
  "/usr/bin/google-chrome-stable",
];

function findChromium(): string {
  for (const candidate of CHROMIUM_CANDIDATES) {
    if (!candidate) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(
    "Chromium not found (looked for " +
      CHROMIUM_CANDIDATES.filter((c) => c !== undefined).join(", ") +
      "). This test renders the HTML report in headless Chromium: install it with " +
      "`sudo apt-get update && sudo apt-get install -y chromium` (Debian/Ubuntu), or point " +
      "KEYTURN_CHROMIUM at a Chromium or Chrome executable.",
  );
}

function keyturn(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(projectRoot(), "bin", "keyturn.js"), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

let executablePath: string;
let rig: RotationRig;
let browser: Browser | undefined;
let report: RotationReport;
let file: string;
let html: string;

beforeAll(async () => {
  executablePath = findChromium();
  rig = await startRotationRig();
  const { status, report: r } = await rig.rotate();
  expect(status.runtimeStatus).toBe("Completed");
  report = r;
  file = join(rig.dir, "evidence.html");
  const run = await keyturn([
    "status",
    status.instanceId,
    "--state-dir",
    join(rig.dir, "state"),
    "--html",
    file,
  ]);
  // The path is printed through the CLI's redaction, which may mask a random temporary directory name.
  expect(run.stderr).toMatch(/HTML report written to \S+\.html\n/);
  expect(run.code).toBe(0);
  html = readFileSync(file, "utf8");
  browser = await chromium.launch({ executablePath, headless: true });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await rig?.stop();
});

describe("keyturn status <id> --html", () => {
  it("writes a self-contained page: no script, nothing fetched, no key value in any encoding", () => {
    expect(report.accounts.filter((a) => a.outcome === "rotated").length).toBeGreaterThanOrEqual(4);
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/\son[a-z]+\s*=/i); // no event handler attributes
    expect(html).not.toMatch(/<(img|link|iframe|object|embed|use|image)\b/i);
    // The only links are to the page's own sections.
    for (const [, url] of html.matchAll(/\s(?:href|src)\s*=\s*"([^"]*)"/gi)) expect(url).toMatch(/^#/);
    expect(html).not.toMatch(/url\(/i);

    const keys = new Set(rig.emulator.ctx.issuedKeys);
    for (const account of rig.emulator.ctx.estate.storageAccounts.values()) {
      keys.add(account.keys.key1.value);
      keys.add(account.keys.key2.value);
    }
    // The keys issued at the start and the ones this rotation's regenerations issued.
    expect(keys.size).toBeGreaterThan(2 * rig.emulator.ctx.estate.storageAccounts.size);
    const leaked = [...keys].filter((key) => encodingsOf(key).some((form) => html.includes(form)));
    expect(leaked).toEqual([]);
    expect(html).not.toMatch(/[A-Za-z0-9+/]{86}==/);
  });

  it("renders in headless Chromium with JavaScript disabled and the network blocked, without errors", async () => {
    const context = await browser!.newContext({ javaScriptEnabled: false, offline: true });
    const page = await context.newPage();
    const url = pathToFileURL(file).href;
    const problems: string[] = [];
    const requests: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));
    await context.route("**/*", (route) => {
      requests.push(route.request().url());
      return route.request().url() === url ? route.continue() : route.abort("blockedbyclient");
    });
    const response = await page.goto(url, { waitUntil: "load" });
    expect(response?.ok()).toBe(true);

    // What the browser laid out, read in one round trip (the page's own scripts are off, not DevTools').
    interface Box {
      width: number;
      height: number;
    }
    interface Seen {
      name: string | null;
      heading: string;
      text: string;
      keys: string;
      timeline: string;
      graphs: Box[];
      nodes: { consumer: string | null; box: Box }[];
    }
    interface El {
      getAttribute(name: string): string | null;
      querySelector(selector: string): El | null;
      querySelectorAll(selector: string): Iterable<El>;
      getBoundingClientRect(): Box;
      innerText: string;
    }
    const sections = await page.locator("section.account").evaluateAll((elements) =>
      (elements as unknown as El[]).map((section): Seen => ({
        name: section.getAttribute("data-account"),
        heading: section.querySelector("h2")?.innerText ?? "",
        text: section.innerText,
        keys: section.querySelector("table")?.innerText ?? "",
        timeline: section.querySelector("table.timeline")?.innerText ?? "",
        graphs: [...section.querySelectorAll("svg.consumer-graph")].map((svg) => {
          const r = svg.getBoundingClientRect();
          return { width: r.width, height: r.height };
        }),
        nodes: [...section.querySelectorAll("g.consumer-node")].map((node) => {
          const r = node.getBoundingClientRect();
          return { consumer: node.getAttribute("data-consumer"), box: { width: r.width, height: r.height } };
        }),
      })),
    );
    expect(sections.map((s) => s.name)).toEqual(report.accounts.map((a) => a.name));

    for (const account of report.accounts) {
      const seen = sections.find((s) => s.name === account.name)!;
      expect(seen.heading).toContain(account.name);
      expect(seen.text).toContain(account.outcome);
      for (const key of [account.activeKeyBefore, account.activeKeyAfter]) {
        if (key?.fingerprint) expect(seen.text).toContain(`${key.key} ${key.fingerprint}`);
      }
      if (account.outcome === "rotated") {
        // Both keys regenerated: the keys table shows each one's fingerprint before and after.
        expect(seen.keys).toContain(account.activeKeyBefore!.fingerprint);
        expect(seen.keys).toContain(account.activeKeyAfter!.fingerprint);
        expect(seen.keys).toMatch(/key1[\s\S]*yes at[\s\S]*key2[\s\S]*yes at/);
        for (const step of ["snapshot", "regenerate key1", "finished"]) expect(seen.timeline).toContain(step);
      }
      // The graph: drawn with a size, one node for every consumer, each laid out.
      expect(seen.graphs).toHaveLength(1);
      expect(seen.graphs[0]!.width).toBeGreaterThan(0);
      expect(seen.graphs[0]!.height).toBeGreaterThan(0);
      expect(seen.nodes.map((n) => n.consumer)).toEqual(account.consumers.map((c) => c.name));
      for (const node of seen.nodes) expect(node.box.width * node.box.height).toBeGreaterThan(0);
      for (const consumer of account.consumers) expect(seen.text).toContain(consumer.name);
    }

    expect(problems).toEqual([]);
    expect(requests).toEqual([url]);
    await context.close();
  });
});
