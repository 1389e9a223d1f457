"use strict";
/**
 * The whole-run secret scan (invariant I3): every file a test run wrote is searched for every storage
 * key the emulator issued, in every encoding a key could end up in. The scan never sees a key: the
 * emulator's ledger (emulator/ledger.ts) holds SHA-256 digests of the keys in standard base64 without
 * padding, and the scan hashes candidates normalized to that form and compares digests.
 *
 * Candidates: every run of base64 / base64url characters (`=` padding ends a run, so padding never
 * matters), in the text as written, with JSON escapes undone, and percent-decoded up to three times
 * (URLs, SAS `sig=`, double encoding); base64url's `-` and `_` read as `+` and `/`; and hex runs read
 * as bytes. Inside each run every window of a ledger key's length is hashed, so a key glued to other
 * characters (`key1<key>`) is found too. Connection strings (`AccountKey=`) and SAS URLs (`sig=`) need
 * nothing special: their values are such runs; a hit says which context it was found in.
 */
const crypto = require("node:crypto");
const { existsSync, lstatSync, readdirSync, readFileSync } = require("node:fs");
const { join } = require("node:path");

/** Reads `<sha256-hex> <length>` lines; a missing ledger means no key was issued. */
function readLedger(file) {
  const digests = new Set();
  const lengths = new Set();
  if (file && existsSync(file)) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const [digest, length] = line.trim().split(" ");
      if (!digest || !/^[0-9a-f]{64}$/.test(digest) || !(Number(length) > 0)) continue;
      digests.add(digest);
      lengths.add(Number(length));
    }
  }
  return { digests, lengths: [...lengths].sort((a, b) => a - b) };
}

/** Candidates are ASCII; crypto.hash (Node 20.12+) is about twice as fast as createHash for them. */
const sha256 =
  typeof crypto.hash === "function"
    ? (text) => crypto.hash("sha256", text, "hex")
    : (text) => crypto.createHash("sha256").update(text, "latin1").digest("hex");

function percentDecode(text) {
  return text.replace(/%([0-9a-fA-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

function jsonUnescape(text) {
  return text
    .replace(/\\\//g, "/")
    .replace(/\\u00([0-9a-fA-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

/** The forms of a text in which an encoded key reads as plain base64 or base64url. */
function variants(text) {
  const forms = [{ encoding: "as written", text }];
  if (/\\(\/|u00)/.test(text)) forms.push({ encoding: "JSON-escaped", text: jsonUnescape(text) });
  for (const base of [...forms]) {
    let t = base.text;
    for (let depth = 1; depth <= 3 && /%[0-9a-fA-F]{2}/.test(t); depth++) {
      t = percentDecode(t);
      const encoding = `${depth > 1 ? `${depth}x ` : ""}URL-encoded${base.encoding === "as written" ? "" : `, ${base.encoding}`}`;
      forms.push({ encoding, text: t });
    }
  }
  return forms;
}

const charTable = (chars) => {
  const table = new Uint8Array(65536);
  for (const c of chars) table[c.charCodeAt(0)] = 1;
  return table;
};
const BASE64_CHARS = charTable("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-");
const HEX_CHARS = charTable("0123456789abcdefABCDEF");

/**
 * The maximal runs of `table`'s characters at least `min` long, as `{ 0: text, index }` like a regex
 * match. A loop, not a regex: `[…]{86,}` backtracks on every shorter run and took most of the time.
 */
function* runsOf(text, table, min) {
  let start = -1;
  for (let i = 0; i <= text.length; i++) {
    const inRun = i < text.length && table[text.charCodeAt(i)] === 1;
    if (inRun && start < 0) start = i;
    else if (!inRun && start >= 0) {
      if (i - start >= min) yield { 0: text.slice(start, i), index: start };
      start = -1;
    }
  }
}

/**
 * Where a key of `length` may start in a run: anywhere in a run of ordinary size; in a longer one (a
 * base64 blob, where a glued key is implausible and hashing every window costs seconds per megabyte)
 * at its ends and after each `+` or `/`, which is where path segments and joined values meet.
 */
const ANY_WINDOW_UP_TO = 64 * 1024;
function* windows(run, length) {
  const last = run.length - length;
  if (last < 0) return;
  if (run.length <= ANY_WINDOW_UP_TO) {
    for (let i = 0; i <= last; i++) yield i;
    return;
  }
  yield 0;
  for (let i = 0; i < last; i++) if (run[i] === "+" || run[i] === "/") yield i + 1;
  yield last;
}

/** What precedes a hit, for the report: a connection string's AccountKey= or a SAS sig=. */
function context(text, at) {
  const before = text.slice(Math.max(0, at - 16), at).toLowerCase();
  if (/accountkey=$/.test(before)) return "AccountKey= connection string";
  if (/[?&]sig=$/.test(before) || /sig=$/.test(before)) return "SAS sig=";
  return undefined;
}

/**
 * The ledger keys found in `text`: one entry per key, `{ key, encodings, contexts }`, where `key` is the
 * first 12 hex characters of the key's ledger digest (never the key) and `encodings` says how it was
 * written (base64, base64url, URL-encoded, JSON-escaped, hex, or combinations).
 */
function findKeys(text, ledger) {
  const found = new Map();
  if (ledger.digests.size === 0) return [];
  const hexLengths = ledger.lengths.map((length) => 2 * Math.floor((length * 3) / 4));
  const shortest = Math.min(ledger.lengths[0], ...hexLengths);
  const record = (digest, encoding, where) => {
    const entry = found.get(digest) ?? { key: digest.slice(0, 12), encodings: [], contexts: [] };
    if (!entry.encodings.includes(encoding)) entry.encodings.push(encoding);
    if (where && !entry.contexts.includes(where)) entry.contexts.push(where);
    found.set(digest, entry);
  };
  for (const form of variants(text)) {
    const derived = form.encoding === "as written" ? "" : `, ${form.encoding}`;
    for (const run of runsOf(form.text, BASE64_CHARS, shortest)) {
      const raw = run[0];
      const normalized = raw.replace(/-/g, "+").replace(/_/g, "/");
      for (const length of ledger.lengths) {
        for (const i of windows(normalized, length)) {
          const digest = sha256(normalized.slice(i, i + length));
          if (!ledger.digests.has(digest)) continue;
          const url = /[-_]/.test(raw.slice(i, i + length));
          const encoding = url ? `base64url${derived}` : derived ? form.encoding : "base64";
          record(digest, encoding, context(form.text, run.index + i));
        }
      }
      // Hex of the key's bytes (hex digits are base64 characters, so hex runs lie inside these runs).
      for (const hex of runsOf(raw, HEX_CHARS, Math.min(...hexLengths))) {
        ledger.lengths.forEach((length, n) => {
          for (const i of windows(hex[0], hexLengths[n])) {
            const bytes = Buffer.from(hex[0].slice(i, i + hexLengths[n]), "hex");
            const digest = sha256(bytes.toString("base64").replace(/=+$/, ""));
            if (ledger.digests.has(digest)) record(digest, `hex${derived}`);
          }
        });
      }
    }
  }
  return [...found.values()];
}

/** Regular files under `dir` (symbolic links are not followed), skipping directories named in `skip`. */
function* walk(dir, skip = new Set()) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!skip.has(entry.name)) yield* walk(path, skip);
    } else if (entry.isFile()) yield path;
  }
}

/**
 * Scans every file under each root, and the files under each `changedUnder` directory modified since
 * `since` (what the tests wrote outside the run's root, e.g. the repo's .keyturn/), `skip` aside there.
 */
function scanFiles({ ledger, roots = [], changedUnder = [], since = 0, skip = ["node_modules", ".git"] }) {
  const started = Date.now();
  const skipped = new Set(skip);
  const result = { files: 0, bytes: 0, keys: ledger.digests.size, hits: [], ms: 0 };
  const seen = new Set();
  const scan = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    let buffer;
    try {
      buffer = readFileSync(file);
    } catch {
      return; // removed meanwhile
    }
    result.files++;
    result.bytes += buffer.length;
    for (const hit of findKeys(buffer.toString("latin1"), ledger)) result.hits.push({ file, ...hit });
  };
  for (const root of roots) for (const file of walk(root)) scan(file);
  for (const dir of changedUnder) {
    for (const file of walk(dir, skipped)) {
      try {
        if (lstatSync(file).mtimeMs >= since) scan(file);
      } catch {
        // removed meanwhile
      }
    }
  }
  result.ms = Date.now() - started;
  return result;
}

module.exports = { readLedger, findKeys, scanFiles };
