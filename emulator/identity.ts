import {
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";
import { AzureError, type Request, type Response } from "./http";

/**
 * An Entra-style sign-in: OIDC metadata and a client-credentials token endpoint that issue
 * RS256 JWTs shaped like Entra's v1 access tokens, which ARM and Key Vault routes verify.
 */

export interface Principal {
  clientId: string;
  clientSecret: string;
  objectId: string;
  displayName: string;
}

export interface TokenClaims {
  aud: string;
  iss: string;
  tid: string;
  oid: string;
  appid: string;
  sub: string;
  iat: number;
  nbf: number;
  exp: number;
}

const TOKEN_LIFETIME_SECONDS = 3600;

export const ARM_AUDIENCES = ["https://management.azure.com", "https://management.core.windows.net"];
export const VAULT_AUDIENCE = "https://vault.azure.net";

function b64url(input: Buffer | string): string {
  return Buffer.from(input).toString("base64url");
}

export class Identity {
  readonly principals = new Map<string, Principal>();
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  private readonly kid = randomUUID();

  constructor(
    readonly tenantId: string,
    private readonly issuerBase: () => string,
    private readonly now: () => number = () => Date.now(),
  ) {
    const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
    this.privateKey = pair.privateKey;
    this.publicKey = createPublicKey(pair.privateKey);
  }

  addPrincipal(displayName: string, clientId: string = randomUUID()): Principal {
    const principal: Principal = {
      clientId,
      clientSecret: randomBytes(24).toString("base64url"),
      objectId: randomUUID(),
      displayName,
    };
    this.principals.set(clientId.toLowerCase(), principal);
    return principal;
  }

  issue(principal: Principal, audience: string): { token: string; expiresIn: number } {
    const iat = Math.floor(this.now() / 1000);
    const claims: TokenClaims = {
      aud: audience,
      iss: `https://sts.windows.net/${this.tenantId}/`,
      tid: this.tenantId,
      oid: principal.objectId,
      appid: principal.clientId,
      sub: principal.objectId,
      iat,
      nbf: iat - 300,
      exp: iat + TOKEN_LIFETIME_SECONDS,
    };
    const header = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid: this.kid }));
    const payload = b64url(JSON.stringify(claims));
    const signature = sign("sha256", Buffer.from(`${header}.${payload}`), this.privateKey).toString(
      "base64url",
    );
    return { token: `${header}.${payload}.${signature}`, expiresIn: TOKEN_LIFETIME_SECONDS };
  }

  /** Verifies a bearer token for one of the audiences; throws 401 AzureErrors as the service would. */
  authenticate(
    authorization: string | undefined,
    audiences: string[],
  ): { principal: Principal; claims: TokenClaims } {
    if (!authorization || !/^bearer /i.test(authorization)) {
      throw new AzureError(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is missing.",
      );
    }
    const parts = authorization.slice(7).trim().split(".");
    const [header, payload, signature] = parts;
    if (parts.length !== 3 || !header || !payload || !signature) {
      throw new AzureError(401, "InvalidAuthenticationToken", "The access token is invalid.");
    }
    const valid = verify(
      "sha256",
      Buffer.from(`${header}.${payload}`),
      this.publicKey,
      Buffer.from(signature, "base64url"),
    );
    if (!valid)
      throw new AzureError(401, "InvalidAuthenticationToken", "The access token has an invalid signature.");
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as TokenClaims;
    if (claims.exp * 1000 < this.now()) {
      throw new AzureError(
        401,
        "ExpiredAuthenticationToken",
        "The access token expiry UTC time is earlier than current UTC time.",
      );
    }
    const aud = claims.aud.replace(/\/$/, "").toLowerCase();
    if (!audiences.some((a) => a.toLowerCase() === aud)) {
      throw new AzureError(
        401,
        "InvalidAuthenticationTokenAudience",
        `The access token has been obtained for wrong audience or resource '${claims.aud}'.`,
      );
    }
    const principal = this.principals.get(claims.appid.toLowerCase());
    if (!principal)
      throw new AzureError(401, "InvalidAuthenticationToken", "The access token's principal is unknown.");
    return { principal, claims };
  }

  /**
   * OIDC discovery document for an authority path (`{tenant}`, `{tenant}/v2.0` or `adfs`). The ADFS-style
   * authority is the one the Azure CLI signs in through (MSAL Python skips instance discovery for it,
   * see cloud.ts); it issues the same tokens, so it names their issuer in `access_token_issuer`, as ADFS does.
   */
  openIdConfiguration(authorityPath: string): Response {
    const base = `${this.issuerBase()}/${authorityPath}`;
    const v2 = authorityPath.endsWith("/v2.0");
    const root = v2 ? base.slice(0, -"/v2.0".length) : base;
    const adfs = authorityPath.toLowerCase() === "adfs";
    const tokenEndpoint = adfs
      ? `${root}/oauth2/token`
      : v2
        ? `${root}/oauth2/v2.0/token`
        : `${root}/oauth2/token`;
    return {
      status: 200,
      body: {
        issuer: adfs
          ? `${root}`
          : v2
            ? `${this.issuerBase()}/${this.tenantId}/v2.0`
            : `https://sts.windows.net/${this.tenantId}/`,
        token_endpoint: tokenEndpoint,
        authorization_endpoint: v2 ? `${root}/oauth2/v2.0/authorize` : `${root}/oauth2/authorize`,
        device_authorization_endpoint: v2 ? `${root}/oauth2/v2.0/devicecode` : `${root}/oauth2/devicecode`,
        end_session_endpoint: v2 ? `${root}/oauth2/v2.0/logout` : `${root}/oauth2/logout`,
        jwks_uri: `${root}/discovery/keys`,
        token_endpoint_auth_methods_supported: [
          "client_secret_post",
          "private_key_jwt",
          "client_secret_basic",
        ],
        response_types_supported: ["code", "id_token", "code id_token", "token id_token", "token"],
        response_modes_supported: ["query", "fragment", "form_post"],
        subject_types_supported: ["pairwise"],
        scopes_supported: ["openid", "profile", "email", "offline_access"],
        id_token_signing_alg_values_supported: ["RS256"],
        claims_supported: ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid"],
        tenant_region_scope: "WW",
        cloud_instance_name: "emulator.local",
        cloud_graph_host_name: "graph.emulator.local",
        msgraph_host: "graph.emulator.local",
        request_uri_parameter_supported: false,
        http_logout_supported: true,
        frontchannel_logout_supported: true,
        ...(adfs
          ? {
              access_token_issuer: `https://sts.windows.net/${this.tenantId}/`,
              grant_types_supported: ["client_credentials"],
            }
          : {}),
      },
    };
  }

  jwks(): Response {
    const jwk = this.publicKey.export({ format: "jwk" });
    return { status: 200, body: { keys: [{ ...jwk, kid: this.kid, use: "sig", alg: "RS256" }] } };
  }

  /** Client-credentials grant (v1 `resource`, v2 `scope`); errors are OAuth error bodies as Entra sends them. */
  token(req: Request): Response {
    const form = new URLSearchParams(req.rawBody);
    const basic = parseBasic(req.headers.authorization);
    const clientId = form.get("client_id") ?? basic?.id;
    const clientSecret = form.get("client_secret") ?? basic?.secret;
    const grantType = form.get("grant_type");
    if (grantType !== "client_credentials") {
      return oauthError(
        400,
        "unsupported_grant_type",
        `AADSTS70003: The grant type '${grantType ?? ""}' is not supported by the emulator; use client_credentials.`,
      );
    }
    const principal = clientId ? this.principals.get(clientId.toLowerCase()) : undefined;
    if (!principal) {
      return oauthError(
        400,
        "unauthorized_client",
        `AADSTS700016: Application with identifier '${clientId ?? ""}' was not found in the directory '${this.tenantId}'.`,
      );
    }
    if (clientSecret !== principal.clientSecret) {
      return oauthError(
        401,
        "invalid_client",
        `AADSTS7000215: Invalid client secret provided for application '${principal.clientId}'.`,
      );
    }
    const resource = form.get("resource") ?? scopeToResource(form.get("scope"));
    if (!resource)
      return oauthError(
        400,
        "invalid_request",
        "AADSTS900144: The request body must contain the 'scope' or 'resource' parameter.",
      );
    const { token, expiresIn } = this.issue(principal, resource.replace(/\/$/, ""));
    const now = Math.floor(this.now() / 1000);
    return {
      status: 200,
      headers: { "cache-control": "no-store", pragma: "no-cache" },
      body: {
        token_type: "Bearer",
        expires_in: expiresIn,
        ext_expires_in: expiresIn,
        expires_on: String(now + expiresIn),
        not_before: String(now),
        resource,
        access_token: token,
      },
    };
  }
}

function scopeToResource(scope: string | null): string | undefined {
  const first = scope?.split(" ").find((s) => s.endsWith("/.default"));
  return first?.slice(0, -"/.default".length);
}

function parseBasic(header: string | undefined): { id: string; secret: string } | undefined {
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return {
    id: decodeURIComponent(decoded.slice(0, colon)),
    secret: decodeURIComponent(decoded.slice(colon + 1)),
  };
}

function oauthError(status: number, error: string, description: string): Response {
  return {
    status,
    body: {
      error,
      error_description: description,
      error_codes: [Number(/AADSTS(\d+)/.exec(description)?.[1] ?? 0)],
      timestamp: new Date().toISOString(),
      trace_id: randomUUID(),
      correlation_id: randomUUID(),
    },
  };
}
