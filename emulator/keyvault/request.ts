/** Request checks and body parsing. Errors never echo a body: it may hold a secret value. */
import { isObject, type Request } from "../http";
import { VaultError } from "./errors";

/** API versions Key Vault accepts for secrets (the SDK sends the newest). */
const API_VERSIONS = new Set(["7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01"]);
const LATEST_API_VERSION = "2025-07-01";

const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;
export const VERSION = /^[0-9a-zA-Z]{1,64}$/;
/** Key Vault's cap on a secret value (25 KiB). */
export const MAX_VALUE_BYTES = 25 * 1024;
const MAX_TAGS = 15;

export function checkApiVersion(req: Request): string {
  const v = req.query.get("api-version");
  if (v === undefined || v === "") {
    throw new VaultError(
      400,
      "BadParameter",
      "The request URI contains an invalid API version, or the api-version query parameter is missing.",
    );
  }
  if (!API_VERSIONS.has(v)) {
    throw new VaultError(
      400,
      "BadParameter",
      `The specified version (${v}) is not recognized. Consider using the latest supported version (${LATEST_API_VERSION}).`,
    );
  }
  return v;
}

export function checkName(name: string): string {
  if (!SECRET_NAME.test(name)) {
    throw new VaultError(
      400,
      "BadParameter",
      `The secret name '${name.slice(0, 127)}' is invalid. A secret name must be 1-127 characters long and contain only 0-9, a-z, A-Z and -.`,
    );
  }
  return name;
}

/** Parses a JSON object body. Parse errors are reported without echoing the body (it may hold a secret). */
export function parseBody(req: Request): Record<string, unknown> {
  if (req.rawBody.trim() === "") {
    throw new VaultError(400, "BadParameter", "The request body is missing or empty.");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(req.rawBody);
  } catch {
    throw new VaultError(400, "BadParameter", "The request body is not valid JSON.");
  }
  if (!isObject(parsed)) throw new VaultError(400, "BadParameter", "The request body must be a JSON object.");
  return parsed;
}

export function parseContentType(raw: unknown): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== "string" || raw.length > 255) {
    throw new VaultError(
      400,
      "BadParameter",
      "Property 'contentType' must be a string of at most 255 characters.",
    );
  }
  return raw;
}

export function parseTags(raw: unknown): Record<string, string> | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObject(raw))
    throw new VaultError(400, "BadParameter", "Property 'tags' must be an object of strings.");
  const entries = Object.entries(raw);
  if (entries.length > MAX_TAGS) {
    throw new VaultError(400, "BadParameter", `A secret can have at most ${MAX_TAGS} tags.`);
  }
  const tags: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (typeof v !== "string" || k.length > 512 || v.length > 256) {
      throw new VaultError(
        400,
        "BadParameter",
        "Tag names must be at most 512 characters and tag values strings of at most 256 characters.",
      );
    }
    tags[k] = v;
  }
  return tags;
}

export interface ParsedAttributes {
  enabled?: boolean;
  /** null clears the attribute; undefined leaves it as it is. */
  notBefore?: number | null;
  expires?: number | null;
}

export function parseAttributes(raw: unknown): ParsedAttributes {
  if (raw === undefined || raw === null) return {};
  if (!isObject(raw)) throw new VaultError(400, "BadParameter", "Property 'attributes' must be an object.");
  const out: ParsedAttributes = {};
  if (raw.enabled !== undefined && raw.enabled !== null) {
    if (typeof raw.enabled !== "boolean") {
      throw new VaultError(400, "BadParameter", "Attribute 'enabled' must be a boolean.");
    }
    out.enabled = raw.enabled;
  }
  for (const [wire, key] of [
    ["nbf", "notBefore"],
    ["exp", "expires"],
  ] as const) {
    const v = raw[wire];
    if (v === undefined) continue;
    if (v === null) {
      out[key] = null;
      continue;
    }
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw new VaultError(400, "BadParameter", `Attribute '${wire}' must be a Unix time in seconds.`);
    }
    out[key] = v;
  }
  if (typeof out.notBefore === "number" && typeof out.expires === "number" && out.expires <= out.notBefore) {
    throw new VaultError(400, "BadParameter", "Attribute 'exp' must be later than 'nbf'.");
  }
  return out;
}
