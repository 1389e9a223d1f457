import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload } from "jose";

/**
 * Who called the HTTP API, proven by an Entra ID bearer token that keyturn validates itself.
 *
 * App Service Authentication ("Easy Auth") is not enforced on the Flex Consumption plan: unauthenticated
 * callers are not blocked when it is turned on there, and a caller can send `x-ms-client-principal-*`
 * headers of its own. So keyturn never reads those headers. With `KEYTURN_API_AUDIENCE` set, every
 * function-key route also needs `Authorization: Bearer <token>`, and the token is checked here: its
 * signature against the tenant's published signing keys (OIDC discovery → `jwks_uri`), its issuer
 * (the tenant's, from the same discovery documents), its audience, `exp` and `nbf`. Without the setting
 * the API is protected by function keys alone and a start is recorded as started by "function key".
 */

export const API_AUTH_SETTINGS = {
  audience: "KEYTURN_API_AUDIENCE",
  tenantId: "KEYTURN_API_TENANT_ID",
} as const;

export const PUBLIC_AUTHORITY_HOST = "https://login.microsoftonline.com";
/** Clock skew allowed on `exp` and `nbf`. */
export const CLOCK_TOLERANCE_SECONDS = 60;
/** Signing keys and issuers are fetched again after this long, or sooner when a token names an unknown key. */
const METADATA_TTL_MS = 12 * 60 * 60 * 1000;
/** A token with an unknown key id refetches the keys at most this often (key rollover, not a lookup per forgery). */
const REFETCH_AFTER_MS = 5 * 60 * 1000;
const FETCH_TIMEOUT_MS = 10_000;

export interface ApiAuthConfig {
  /** Accepted `aud` values: the API's application ID URI (v1 tokens) and/or its client id (v2 tokens). */
  audiences: string[];
  tenantId: string;
  /** Sign-in endpoint of the cloud, without a trailing slash. */
  authorityHost: string;
  /** PEM of a CA to trust for the authority (the local emulator's). */
  tlsCa?: string;
}

/** The settings, parsed; `undefined` when no audience is set (function keys only); problems name the setting. */
export function loadApiAuthConfig(
  env: NodeJS.ProcessEnv = process.env,
): { ok: true; config: ApiAuthConfig | undefined } | { ok: false; setting: string; problems: string[] } {
  const audienceText = env[API_AUTH_SETTINGS.audience]?.trim() ?? "";
  if (audienceText === "") return { ok: true, config: undefined };
  const problems: string[] = [];
  const audiences = audienceText.split(",").map((a) => a.trim());
  if (audiences.some((a) => a === "" || /\s/.test(a)))
    problems.push(
      `${API_AUTH_SETTINGS.audience}: ${JSON.stringify(audienceText)} must be a comma-separated list of audiences without blanks, e.g. api://<appId>,<appId>`,
    );
  const emulator = emulatorAuthority(env);
  if ("problem" in emulator) problems.push(emulator.problem);
  const tenantId = (env[API_AUTH_SETTINGS.tenantId] ?? "").trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/.test(tenantId))
    problems.push(
      `${API_AUTH_SETTINGS.tenantId}: ${tenantId === "" ? "is not set" : JSON.stringify(tenantId) + " is not a tenant id"}; ${API_AUTH_SETTINGS.audience} needs the tenant whose Entra ID issues the tokens (its id, a GUID)`,
    );
  const host =
    "authorityHost" in emulator && emulator.authorityHost
      ? emulator.authorityHost
      : env.KEYTURN_AUTHORITY_HOST?.trim() || env.AZURE_AUTHORITY_HOST?.trim() || PUBLIC_AUTHORITY_HOST;
  const setting = env.KEYTURN_AUTHORITY_HOST?.trim() ? "KEYTURN_AUTHORITY_HOST" : "AZURE_AUTHORITY_HOST";
  if (!/^https:\/\/[^\s/?#]+(?:\/[^\s?#]*)?$/.test(host))
    problems.push(`${setting}: ${JSON.stringify(host)} must be an https URL (the cloud's sign-in endpoint)`);
  if (problems.length > 0) {
    const first = problems[0] ?? "";
    return { ok: false, setting: first.slice(0, first.indexOf(":")), problems };
  }
  return {
    ok: true,
    config: {
      audiences,
      tenantId,
      authorityHost: host.replace(/\/+$/, ""),
      ...("tlsCa" in emulator && emulator.tlsCa ? { tlsCa: emulator.tlsCa } : {}),
    },
  };
}

/** With the local emulator (KEYTURN_CONNECTION_FILE), tokens come from its sign-in endpoint, over its CA. */
function emulatorAuthority(
  env: NodeJS.ProcessEnv,
): { authorityHost?: string; tlsCa?: string } | { problem: string } {
  const file = env.KEYTURN_CONNECTION_FILE?.trim();
  if (!file) return {};
  try {
    const c = JSON.parse(readFileSync(file, "utf8")) as { authorityHost?: unknown; caCertFile?: unknown };
    if (typeof c.authorityHost !== "string" || typeof c.caCertFile !== "string")
      return { problem: `KEYTURN_CONNECTION_FILE: ${file} names no authorityHost and caCertFile` };
    return { authorityHost: c.authorityHost, tlsCa: readFileSync(c.caCertFile, "utf8") };
  } catch (e) {
    return {
      problem: `KEYTURN_CONNECTION_FILE: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? "invalid JSON"})`,
    };
  }
}

export type Caller =
  | { ok: true; startedBy: string; claims: JWTPayload }
  /** 401: the caller's token; 503: the tenant's keys could not be fetched (nothing about the caller). */
  | { ok: false; status: 401 | 503; reason: string };

interface Metadata {
  issuers: string[];
  jwks: ReturnType<typeof createLocalJWKSet>;
  fetchedAt: number;
}

type FetchJson = (url: string, ca?: string) => Promise<unknown>;

/** Validates bearer tokens for one configuration; keeps the tenant's issuers and keys between calls. */
export class EntraTokenValidator {
  private metadata: Promise<Metadata> | undefined;

  constructor(
    readonly config: ApiAuthConfig,
    private readonly fetchJson: FetchJson = httpsGetJson,
    private readonly now: () => number = () => Date.now(),
  ) {}

  async validate(authorization: string | null | undefined): Promise<Caller> {
    const expected = `Authorization: Bearer <an Entra ID access token for ${this.config.audiences.join(" or ")}>`;
    const match = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)\s*$/i.exec(authorization ?? "");
    if (!authorization) return this.refuse(`no bearer token: send ${expected} as well as the function key`);
    if (!match?.[1]) return this.refuse(`the Authorization header is not a bearer JWT: send ${expected}`);
    const token = match[1];
    let metadata: Metadata;
    try {
      metadata = await this.load(false);
    } catch (e) {
      return { ok: false, status: 503, reason: (e as Error).message };
    }
    try {
      return this.accept(await this.verify(token, metadata));
    } catch (e) {
      if (e instanceof errors.JWKSNoMatchingKey && this.now() - metadata.fetchedAt > REFETCH_AFTER_MS) {
        // The tenant may have rolled its keys since they were fetched.
        try {
          return this.accept(await this.verify(token, await this.load(true)));
        } catch (again) {
          return this.refuse(this.explain(again, token));
        }
      }
      return this.refuse(this.explain(e, token));
    }
  }

  private verify(token: string, metadata: Metadata) {
    return jwtVerify(token, metadata.jwks, {
      issuer: metadata.issuers,
      audience: this.config.audiences,
      algorithms: ["RS256"],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ["exp", "nbf", "iat"],
      currentDate: new Date(this.now()),
    });
  }

  private refuse(reason: string): Caller {
    return { ok: false, status: 401, reason };
  }

  private accept({ payload }: { payload: JWTPayload }): Caller {
    const claims = payload as JWTPayload & Record<string, unknown>;
    const text = (name: string) => (typeof claims[name] === "string" ? claims[name] : undefined);
    const oid = text("oid");
    const who = text("upn") ?? text("preferred_username") ?? text("unique_name");
    const app = text("appid") ?? text("azp");
    if (!oid || (!who && !app))
      return this.refuse(
        "the bearer token names no caller (it has no oid, or neither upn nor appid/azp): request a user or application access token",
      );
    return { ok: true, startedBy: who ? `${who} (oid ${oid})` : `app ${app} (oid ${oid})`, claims: payload };
  }

  /** What is wrong with the token, in words that say what to fix; never the token itself. */
  private explain(e: unknown, token: string): string {
    const claims = unverifiedClaims(token);
    const tenant = `tenant ${this.config.tenantId}`;
    if (e instanceof errors.JWTExpired)
      return `the bearer token expired${typeof claims.exp === "number" ? ` at ${new Date(claims.exp * 1000).toISOString()}` : ""}: get a new one`;
    if (e instanceof errors.JWTClaimValidationFailed) {
      switch (e.claim) {
        case "aud":
          return `the bearer token's audience ${JSON.stringify(claims.aud)} is not this API (${API_AUTH_SETTINGS.audience}: ${this.config.audiences.join(", ")}): request a token for it`;
        case "iss":
          return `the bearer token's issuer ${JSON.stringify(claims.iss)} is not ${tenant}'s Entra ID (${API_AUTH_SETTINGS.tenantId})`;
        case "nbf":
          return `the bearer token is not valid yet (nbf ${typeof claims.nbf === "number" ? new Date(claims.nbf * 1000).toISOString() : "?"})`;
        default:
          return `the bearer token's ${e.claim} claim is invalid (${e.reason})`;
      }
    }
    if (e instanceof errors.JWKSNoMatchingKey)
      return `the bearer token is signed with a key ${tenant} does not publish (kid ${JSON.stringify(unverifiedHeader(token).kid)}): its signature cannot be verified`;
    if (e instanceof errors.JWSSignatureVerificationFailed)
      return `the bearer token's signature does not verify against ${tenant}'s signing keys`;
    if (e instanceof errors.JOSEAlgNotAllowed)
      return `the bearer token is signed with ${JSON.stringify(unverifiedHeader(token).alg)}; only RS256 Entra ID tokens are accepted`;
    if (e instanceof errors.JOSEError) return `the bearer token is invalid (${e.code})`;
    return `the bearer token could not be validated (${(e as Error)?.message ?? String(e)})`;
  }

  private load(force: boolean): Promise<Metadata> {
    const cached = this.metadata;
    if (!force && cached) {
      return cached.then((m) => (this.now() - m.fetchedAt > METADATA_TTL_MS ? this.load(true) : m));
    }
    const fresh = this.fetchMetadata();
    this.metadata = fresh;
    // A failed fetch is not cached: the next call tries again.
    fresh.catch(() => {
      if (this.metadata === fresh) this.metadata = undefined;
    });
    return fresh;
  }

  /**
   * The tenant's v2.0 and v1 discovery documents: an access token's issuer depends on the API's
   * accepted token version (`https://sts.windows.net/{tid}/` for v1, `…/{tid}/v2.0` for v2), and both
   * documents name the same signing keys.
   */
  private async fetchMetadata(): Promise<Metadata> {
    const base = `${this.config.authorityHost}/${encodeURIComponent(this.config.tenantId)}`;
    const urls = [
      `${base}/v2.0/.well-known/openid-configuration`,
      `${base}/.well-known/openid-configuration`,
    ];
    const docs = await Promise.allSettled(urls.map((u) => this.fetchJson(u, this.config.tlsCa)));
    const found = docs.flatMap((d) => (d.status === "fulfilled" && isObject(d.value) ? [d.value] : []));
    const issuers = [
      ...new Set(
        found.flatMap((d) =>
          [d.issuer, d.access_token_issuer].filter((v): v is string => typeof v === "string"),
        ),
      ),
    ];
    const jwksUri = found.map((d) => d.jwks_uri).find((v): v is string => typeof v === "string");
    if (issuers.length === 0 || !jwksUri) {
      const why = docs.map((d, i) =>
        d.status === "rejected"
          ? `${urls[i]}: ${(d.reason as Error).message}`
          : `${urls[i]}: no issuer or jwks_uri`,
      );
      throw new Error(
        `the API's token validation could not read tenant ${this.config.tenantId}'s OpenID configuration (${why.join("; ")}): check ${API_AUTH_SETTINGS.tenantId} and the authority host`,
      );
    }
    let keys: unknown;
    try {
      keys = await this.fetchJson(jwksUri, this.config.tlsCa);
    } catch (e) {
      throw new Error(
        `the API's token validation could not read the signing keys at ${jwksUri}: ${(e as Error).message}`,
      );
    }
    if (!isObject(keys) || !Array.isArray(keys.keys))
      throw new Error(`the signing keys at ${jwksUri} are not a JSON Web Key Set`);
    return { issuers, jwks: createLocalJWKSet(keys as unknown as JSONWebKeySet), fetchedAt: this.now() };
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function decodePart(token: string, index: number): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(
      Buffer.from(token.split(".")[index] ?? "", "base64url").toString("utf8"),
    );
    return isObject(value) ? value : {};
  } catch {
    return {};
  }
}

/** For error messages only: the claims as sent, before (or after failing) verification. */
function unverifiedClaims(token: string): Record<string, unknown> {
  return decodePart(token, 1);
}

function unverifiedHeader(token: string): Record<string, unknown> {
  return decodePart(token, 0);
}

/** GET a JSON document over https (with the emulator's CA when given). */
export function httpsGetJson(url: string, ca?: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: "GET",
        headers: { accept: "application/json" },
        timeout: FETCH_TIMEOUT_MS,
        ...(ca ? { ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          if ((res.statusCode ?? 0) >= 400) return reject(new Error(`answered ${res.statusCode}`));
          try {
            resolve(JSON.parse(body));
          } catch {
            reject(new Error("answered something that is not JSON"));
          }
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer in ${FETCH_TIMEOUT_MS / 1000} s`)));
    req.on("error", reject);
    req.end();
  });
}

let shared: { key: string; validator: EntraTokenValidator } | undefined;

/**
 * The caller of an HTTP API request. `undefined` config (no KEYTURN_API_AUDIENCE): function keys only,
 * the caller is "function key". The validator, and so the fetched keys, is kept while the settings stay the same.
 */
export async function identifyCaller(
  authorization: string | null,
  config: ApiAuthConfig | undefined,
): Promise<Caller> {
  if (!config) return { ok: true, startedBy: "function key", claims: {} };
  const key = JSON.stringify(config);
  if (shared?.key !== key) shared = { key, validator: new EntraTokenValidator(config) };
  return shared.validator.validate(authorization);
}
