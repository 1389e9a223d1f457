/**
 * The one redaction engine (invariant I3): errors, CLI output and telemetry all pass through it.
 * Telemetry items pass through `redactProperties` before any sink sees them, so a sink cannot leak
 * what it never receives; errors and output pass through `redact`, which first removes the secrets
 * the caller knows in every encoding they travel in.
 *
 * Two kinds of rules:
 * - by property name: a property called like a secret (`clientSecret`, `accountKey`, a Key Vault
 *   secret's `value`, Batch's `primary`/`secondary`, ...) is replaced whatever its value;
 * - by value: anything in a string that looks like key material is replaced where it stands, so an
 *   error message keeps the words around it (`AccountKey=[redacted];EndpointSuffix=...`).
 *
 * Redaction errs on the side of removing: a false positive costs a less useful log line, a false
 * negative is a leaked key.
 */

export const REDACTED = "[redacted]";

/** Names compared after lower-casing and dropping everything but letters and digits. */
const SECRET_NAMES = new Set([
  "key",
  "keys",
  "value",
  "primary",
  "secondary",
  "primarykey",
  "secondarykey",
  "key1",
  "key2",
  "sig",
  "signature",
  "sas",
  "authorization",
  "cookie",
  "secret",
  "password",
  "pwd",
  "token",
  "credential",
  "credentials",
  "userstoragekey",
  "storagekey",
  "apikey",
  "privatekey",
  "clientassertion",
  "assertion",
]);

const SECRET_SUFFIXES = [
  "secret",
  "password",
  "token",
  "accountkey",
  "accesskey",
  "sharedkey",
  "connectionstring",
  "signature",
];

/** True when a property with this name must not be sent, whatever it holds. */
export function isSecretName(name: string): boolean {
  const n = name.toLowerCase().replace(/[^a-z0-9]/g, "");
  return SECRET_NAMES.has(n) || SECRET_SUFFIXES.some((s) => n.endsWith(s));
}

type Rule = [pattern: RegExp, replacement: string];

/** JSON fields that hold keys or secrets in the responses keyturn handles (ARM, Batch, ML, Key Vault, Entra). */
const JSON_SECRET_FIELDS =
  "value|primary|secondary|userStorageKey|accountKey|clientSecret|client_secret|password|secret|" +
  "access_token|refresh_token|id_token|accessToken|refreshToken|sasToken|connectionString|signature";

// Order matters: specific shapes first, so that the generic base64 rule finds nothing left to do and
// the surrounding words (`AccountKey=`, `sig=`) survive to tell the reader what was there.
const RULES: Rule[] = [
  // PEM blocks (certificates' private keys).
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g, REDACTED],
  // Connection-string segments: storage, Service Bus/Event Hubs, SQL-style.
  [
    /\b(AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|ClientSecret)=("[^"]*"|[^;\s"'<>]*)/gi,
    `$1=${REDACTED}`,
  ],
  // SAS signatures in query strings (`sig=` is the HMAC; the other SAS fields are not secret).
  [/([?&;\s"'(]|^)(sig|signature)=[^&\s"';)<>]*/gi, `$1$2=${REDACTED}`],
  // Secrets in query strings or form bodies (OAuth token requests).
  [
    /([?&;\s"'(]|^)(client_secret|clientSecret|client_assertion|access_token|refresh_token|id_token|password)=[^&\s"';)<>]*/gi,
    `$1$2=${REDACTED}`,
  ],
  // HTTP auth headers, whatever the scheme, then bare bearer tokens and Storage shared-key signatures.
  [/\b(Authorization["']?\s*[:=]\s*["']?)([A-Za-z]+)\s+[^\s"',;]+/gi, `$1$2 ${REDACTED}`],
  [/\bBearer\s+[A-Za-z0-9\-._~+/]{20,}=*/gi, `Bearer ${REDACTED}`],
  [/\bSharedKey(Lite)?\s+[^\s:]+:[A-Za-z0-9+/=%]+/g, `SharedKey$1 ${REDACTED}`],
  // JWTs (Entra tokens): header.payload.signature, the header always starting with `{"` = `eyJ`.
  [/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, REDACTED],
  // JSON fields that hold secrets, e.g. `{"keyName":"key1","value":"..."}` in an SDK error body.
  [
    new RegExp(`(["'](?:${JSON_SECRET_FIELDS})["']\\s*:\\s*)("(?:[^"\\\\]|\\\\.)*"|'[^']*')`, "gi"),
    `$1"${REDACTED}"`,
  ],
  // `key` holds a key in SDK bodies and a key's name in keyturn's reports (`"key": "key1"`): only a
  // value long enough to be key material goes.
  [/(["']keys?["']\s*:\s*)("(?:[^"\\]|\\.){16,}"|'[^']{16,}')/gi, `$1"${REDACTED}"`],
];

/** Runs of base64 (standard or URL-safe, possibly %-encoded) long enough to be a key or a signature. */
const BASE64_RUN = /[A-Za-z0-9+/_%-]{40,}(?:=|%3[Dd]){0,2}/g;

/**
 * The words of identifiers that are long but not secret: hex digests and GUID parts, lower-case
 * names with digits (storage account names), camelCase/PascalCase words (`storageAccounts`,
 * `MachineLearningServices`, `HTTPError`) with digits only at the end, upper-case constants.
 * Random base64 almost never splits into only such words: a digit inside a word, or two capitals in
 * a row after its start, rules a word out.
 */
const IDENTIFIER_WORDS = [
  /^(?:[0-9a-f]+|[0-9A-F]+)$/,
  /^[a-z0-9]{1,24}$/,
  /^[a-z]+[0-9]*$/,
  /^[A-Z]{0,6}[a-z]+(?:[A-Z][a-z]+)*[0-9]*$/,
  /^[A-Z]+[0-9]*$/,
];

/**
 * Whether a run of base64 characters is key material rather than an ARM path, an instance id or a
 * GUID: `+`, `=` or `%` never occur in those, and their `/`, `-`, `_`-separated words read as
 * identifiers.
 */
function looksLikeKeyMaterial(run: string): boolean {
  if (/[+=%]/.test(run)) return true;
  return !run
    .split(/[/_-]+/)
    .every((word) => word === "" || IDENTIFIER_WORDS.some((pattern) => pattern.test(word)));
}

/** Replaces every piece of `text` that looks like key material with `[redacted]`. */
export function redactText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of RULES) out = out.replace(pattern, replacement);
  return out.replace(BASE64_RUN, (run) => (looksLikeKeyMaterial(run) ? REDACTED : run));
}

/** Application Insights keeps 8,192 characters of a property value; sending more only costs. */
export const MAX_PROPERTY_LENGTH = 8192;

export type PropertyInput = string | number | boolean | null | undefined;

/**
 * Properties as every sink receives them: strings (as Application Insights stores them), no
 * undefined values, each one redacted by name and by value.
 */
export function redactProperties(
  properties: Readonly<Record<string, PropertyInput>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, raw] of Object.entries(properties)) {
    if (raw === undefined || raw === null) continue;
    const safeName = redactText(name);
    if (isSecretName(name)) {
      out[safeName] = REDACTED;
      continue;
    }
    const text = redactText(String(raw));
    out[safeName] = text.length > MAX_PROPERTY_LENGTH ? text.slice(0, MAX_PROPERTY_LENGTH) : text;
  }
  return out;
}

/** Measurements are numbers, so only their names could carry anything; non-finite values are dropped. */
export function redactMeasurements(
  measurements: Readonly<Record<string, number | undefined>>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(measurements)) {
    if (typeof value !== "number" || !Number.isFinite(value) || isSecretName(name)) continue;
    out[redactText(name)] = value;
  }
  return out;
}

/**
 * Every form a known secret travels in: as is, without its base64 padding, URL-encoded (once or twice,
 * as a SAS inside a URL inside a query is), as base64url and JSON-escaped. Longest first, so a form
 * is replaced whole before a shorter one inside it.
 */
export function encodingsOf(secret: string): string[] {
  const bare = secret.replace(/=+$/, "");
  const url = (s: string) => s.replace(/\+/g, "-").replace(/\//g, "_");
  const forms = [
    secret,
    bare,
    encodeURIComponent(secret),
    encodeURIComponent(encodeURIComponent(secret)),
    url(secret),
    url(bare),
    secret.replace(/\//g, "\\/"),
  ];
  return [...new Set(forms)].sort((a, b) => b.length - a.length);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * `text` without the given secrets, in any encoding (percent-escapes in either case), then without
 * anything else that looks like key material.
 */
export function redact(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const secret of secrets) {
    // Very short values would redact ordinary words; keys and secrets keyturn handles are long.
    if (secret === undefined || secret.length < 8) continue;
    for (const form of encodingsOf(secret)) {
      out = out.replace(new RegExp(escapeRegExp(form), form.includes("%") ? "gi" : "g"), REDACTED);
    }
  }
  return redactText(out);
}
