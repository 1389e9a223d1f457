import fc from "fast-check";
import { REDACTED, encodingsOf, redact, redactText } from "../../../shared/redact";
import { redact as errorsRedact, scrubError } from "../../../shared/errors";

/**
 * One engine redacts errors, output and telemetry (I3). Property-based: a random 64-byte storage key,
 * in every encoding it travels in, inside arbitrary text, never comes out, whether or not the caller
 * knew the key; and ordinary identifiers around it survive.
 */
const key = fc.uint8Array({ minLength: 64, maxLength: 64 }).map((b) => Buffer.from(b).toString("base64"));

/** How a key can be carried in an error or a line of output. */
const carriers: [string, (k: string) => string][] = [
  ["raw", (k) => k],
  ["URL-encoded", (k) => encodeURIComponent(k)],
  ["URL-encoded twice", (k) => encodeURIComponent(encodeURIComponent(k))],
  [
    "URL-encoded, lower-case escapes",
    (k) => encodeURIComponent(k).replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()),
  ],
  ["base64url", (k) => k.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")],
  ["JSON-escaped", (k) => JSON.stringify({ value: k }).slice(1, -1).replace(/\//g, "\\/")],
  ["in a SAS token", (k) => `?sv=2022-11-02&ss=b&srt=sco&sp=rl&se=2026-12-31&sig=${encodeURIComponent(k)}`],
  [
    "in a connection string",
    (k) => `DefaultEndpointsProtocol=https;AccountName=stml;AccountKey=${k};EndpointSuffix=core.windows.net`,
  ],
];

/** Text that is not a secret: words, ARM paths, GUIDs, punctuation, separated as in a message. */
const prose = fc
  .array(
    fc.constantFrom(
      "storageAccounts.regenerateKey failed:",
      "/subscriptions/6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b/resourceGroups/rg-ml-prod/providers/Microsoft.Storage/storageAccounts/stmlshared",
      "(403 AuthenticationFailed)",
      " ",
      "\n",
      '"',
      "key1",
      "keyturn-scope-a145c342829d8d25",
    ),
    { maxLength: 6 },
  )
  .map((parts) => parts.join(" "));

function leaks(out: string, k: string): string[] {
  const bare = k.replace(/=+$/, "");
  // What would let someone rebuild the key: its first 24 characters in any of its encodings.
  const head = bare.slice(0, 24);
  const forms = [head, encodeURIComponent(head), head.replace(/\+/g, "-").replace(/\//g, "_")];
  return forms.filter((f) => out.toLowerCase().includes(f.toLowerCase()));
}

describe("redaction: one engine for errors, output and telemetry", () => {
  it.each(carriers)("removes a key carried %s, whether or not the caller names it", (_, carry) => {
    fc.assert(
      fc.property(key, prose, prose, fc.boolean(), (k, before, after, known) => {
        const out = redact(`${before}${carry(k)}${after}`, known ? [k] : []);
        expect(leaks(out, k)).toEqual([]);
        expect(out).toContain(REDACTED);
      }),
      { numRuns: 150, seed: 20261201 },
    );
  });

  it("leaves ARM ids, GUIDs, instance ids and fingerprints as they are", () => {
    fc.assert(
      fc.property(prose, (text) => {
        expect(redact(text)).toBe(text);
      }),
      { numRuns: 200, seed: 20261201 },
    );
  });

  it("is the engine errors use: scrubError and the errors module's redact give the same text", () => {
    fc.assert(
      fc.property(key, prose, (k, text) => {
        const message = `${text} AccountKey=${k}; sig=${encodeURIComponent(k)}`;
        expect(errorsRedact(message)).toBe(redact(message));
        expect(scrubError(new Error(message)).message).toBe(redact(message));
        expect(redactText(message)).toBe(redact(message));
      }),
      { numRuns: 100, seed: 20261201 },
    );
  });

  it("knows every form a key travels in, longest first", () => {
    const k = "ab+cd/ef".repeat(8) + "==";
    const forms = encodingsOf(k);
    expect(forms).toEqual(expect.arrayContaining([k, k.replace(/=+$/, ""), encodeURIComponent(k)]));
    expect(forms.map((f) => f.length)).toEqual([...forms.map((f) => f.length)].sort((a, b) => b - a));
  });
});
