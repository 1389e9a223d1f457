import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KeyLedger, ledgerDigest } from "../../../emulator/ledger";
import { findKeys, readLedger, scanFiles } from "../../support/secret-scan";
import SecretScanReporter, { type Totals } from "../../support/secret-scan-reporter";

// The whole-run secret scan must be able to fail: a key planted in each encoding a key could be written
// in is found, through the same ledger the emulator writes, and a hit fails the run as a failed test.

/** A storage-key-shaped value (64 random bytes) whose base64 has `+` and `/`, so every encoding differs. */
function plantedKey(): string {
  return Buffer.concat([Buffer.from([0xfb, 0xff, 0xbf]), randomBytes(61)]).toString("base64");
}

const KEY = plantedKey();
const OTHER = plantedKey();
let dir: string;
let ledgerFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "keyturn-secret-scan-"));
  ledgerFile = join(dir, "ledger", "issued-keys.sha256");
  // Written the way the emulator writes it; OTHER is issued too but never written anywhere.
  new KeyLedger([KEY, OTHER], ledgerFile);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bytesOf = (key: string) => Buffer.from(key, "base64");
interface Planted {
  what: string;
  text: string;
  encoding: string;
  where?: string;
}
const PLANTED: Planted[] = [
  { what: "raw base64 in JSON", text: `{"storageKey":"${KEY}"}`, encoding: "base64" },
  {
    what: "URL-encoded in a query",
    text: `GET /x?key=${encodeURIComponent(KEY)}&a=1`,
    encoding: "URL-encoded",
  },
  {
    what: "base64url without padding",
    text: `token ${bytesOf(KEY).toString("base64url")}.`,
    encoding: "base64url",
  },
  {
    what: "a SAS URL's sig=",
    text: `https://stml.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&sig=${encodeURIComponent(KEY)}&se=2030`,
    encoding: "URL-encoded",
    where: "SAS sig=",
  },
  {
    what: "a connection string's AccountKey=",
    text: `DefaultEndpointsProtocol=https;AccountName=stml;AccountKey=${KEY};EndpointSuffix=core.windows.net`,
    encoding: "base64",
    where: "AccountKey= connection string",
  },
  {
    what: "JSON with escaped slashes",
    text: JSON.stringify({ k: KEY }).replace(/\//g, "\\/"),
    encoding: "JSON-escaped",
  },
  {
    what: "JSON with \\u escapes",
    text: JSON.stringify({ k: KEY }).replace(/\+/g, "\\u002b"),
    encoding: "JSON-escaped",
  },
  {
    what: "URL-encoded twice",
    text: `next=${encodeURIComponent(encodeURIComponent(KEY))}`,
    encoding: "2x URL-encoded",
  },
  { what: "hex bytes", text: `bytes=${bytesOf(KEY).toString("hex")}`, encoding: "hex" },
  { what: "glued to other characters", text: `key1${KEY}tail`, encoding: "base64" },
  {
    what: "base64url, URL-encoded",
    text: `u=${encodeURIComponent(`=${bytesOf(KEY).toString("base64url")}`)}`,
    encoding: "base64url",
  },
];

describe("the whole-run secret scan", () => {
  const ledger = () => readLedger(ledgerFile);

  it("reads the emulator's ledger: digests of the unpadded keys, never the keys", () => {
    const text = readFileSync(ledgerFile, "utf8");
    expect(text).not.toContain(KEY.replace(/=+$/, ""));
    expect(ledger().digests).toEqual(new Set([ledgerDigest(KEY), ledgerDigest(OTHER)]));
    expect(ledger().lengths).toEqual([86]);
  });

  it.each(PLANTED)("finds a key written as $what", ({ text, encoding, where }) => {
    const found = findKeys(text, ledger());
    expect(found).toHaveLength(1);
    expect(found[0]!.key).toBe(ledgerDigest(KEY).slice(0, 12));
    expect(found[0]!.encodings).toContain(encoding);
    if (where) expect(found[0]!.contexts).toContain(where);
  });

  it("finds nothing in text without the keys: other keys, fingerprints, a key one character off", () => {
    const almost = `${KEY[0] === "A" ? "B" : "A"}${KEY.slice(1)}`;
    const clean = [
      plantedKey(),
      almost,
      ledgerDigest(KEY),
      "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
      `fingerprint ${KEY.slice(0, 10)}`,
      KEY.slice(0, 85),
    ].join("\n");
    expect(findKeys(clean, ledger())).toEqual([]);
  });

  it("walks files and reports each hit with its file, the number of files and bytes scanned", () => {
    const files = join(dir, "files");
    mkdirSync(join(files, "nested"), { recursive: true });
    PLANTED.forEach(({ text }, i) =>
      writeFileSync(join(files, i % 2 ? "nested" : "", `planted-${i}.txt`), text),
    );
    const clean = `{"fingerprint":"${ledgerDigest(OTHER).slice(0, 16)}"}\n`;
    writeFileSync(join(files, "clean.jsonl"), clean);
    const scan = scanFiles({ ledger: ledger(), roots: [files] });
    expect(scan.files).toBe(PLANTED.length + 1);
    expect(scan.bytes).toBe(PLANTED.reduce((n, { text }) => n + Buffer.byteLength(text), clean.length));
    expect(scan.keys).toBe(2);
    expect(scan.hits.map((h) => h.file).sort()).toEqual(
      PLANTED.map((_, i) => join(files, i % 2 ? "nested" : "", `planted-${i}.txt`)).sort(),
    );
  });

  it("counts a hit as a failed test, so the run fails and the CI's closing line counts it", () => {
    const results: Totals = {
      numTotalTests: 3,
      numTotalTestSuites: 1,
      numPassedTests: 3,
      numPassedTestSuites: 1,
      numFailedTests: 0,
      numFailedTestSuites: 0,
      success: true,
      testResults: [],
    };
    const scan = scanFiles({ ledger: ledger(), roots: [join(dir, "files")] });
    SecretScanReporter.recordScan(results, scan, dir);
    expect(results).toMatchObject({ numTotalTests: 4, numFailedTests: 1, numPassedTests: 3, success: false });
    const message = results.testResults[0]!.failureMessage!;
    expect(message).toMatch(/planted-0\.txt: key [0-9a-f]{12}… as base64/);
    expect(message).not.toContain(KEY.slice(0, 20));

    const clean = { ...results, testResults: [], numFailedTests: 0, success: true };
    SecretScanReporter.recordScan(clean, { ...scan, hits: [] }, dir);
    expect(clean).toMatchObject({ numTotalTests: 5, numPassedTests: 4, numFailedTests: 0, success: true });
  });

  it("as a reporter, scans a run's files (removed ones and captured output included) and fails on a hit", () => {
    const root = join(dir, "run");
    mkdirSync(join(root, "tmp"), { recursive: true });
    // A child process under the run's preload: what it removes is kept, what it prints is copied.
    const script = [
      "const fs = require('node:fs'); const p = require('node:path');",
      "const d = p.join(process.env.TMPDIR, 'keyturn-rig-x'); fs.mkdirSync(p.join(d, 'state'), { recursive: true });",
      `fs.writeFileSync(p.join(d, 'state', 'history.json'), JSON.stringify({ v: ${JSON.stringify(OTHER)} }));`,
      "fs.rmSync(d, { recursive: true, force: true });",
      "if (fs.existsSync(d)) throw new Error('still there');",
      `console.log('connection: AccountKey=${KEY};');`,
    ].join("\n");
    execFileSync(process.execPath, ["-r", join(__dirname, "../../support/run-files.js"), "-e", script], {
      env: { ...process.env, KEYTURN_TEST_RUN_DIR: root, TMPDIR: join(root, "tmp") },
    });
    expect(readdirSync(join(root, "removed"))).toHaveLength(1);
    writeFileSync(join(root, "issued-keys.sha256"), readFileSync(ledgerFile));
    const results: Totals = {
      numTotalTests: 0,
      numTotalTestSuites: 0,
      numPassedTests: 0,
      numPassedTestSuites: 0,
      numFailedTests: 0,
      numFailedTestSuites: 0,
      success: true,
      testResults: [],
    };
    const stderr = jest.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const env = { KEYTURN_TEST_RUN_DIR: root, KEYTURN_TEST_RUN_STARTED: String(Date.now() + 3_600_000) };
      new SecretScanReporter({ rootDir: dir }, { env }).onRunComplete([], results);
    } finally {
      stderr.mockRestore();
    }
    expect(results).toMatchObject({ numFailedTests: 1, success: false });
    const report = JSON.parse(readFileSync(join(dir, ".keyturn", "secret-scan.json"), "utf8")) as {
      hits: { file: string; encodings: string[] }[];
    };
    expect(
      report.hits.map((h) => [h.file.replace(root, "<run>").replace(/\/\d+-/, "/<pid>-"), h.encodings]),
    ).toEqual(
      expect.arrayContaining([
        [
          expect.stringMatching(/^<run>\/removed\/<pid>-\d+-keyturn-rig-x\/state\/history\.json$/),
          ["base64"],
        ],
        [expect.stringMatching(/^<run>\/output\/<pid>-.*\.log$/), ["base64"]],
      ]),
    );
    expect(existsSync(root)).toBe(true); // kept on a hit, for a person to look at
  });
});
