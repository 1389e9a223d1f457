import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:https";
import { listen, readRequest, send, type Request, type Response } from "./http";
import type { EmulatorContext } from "./context";
import type { BatchAccount } from "./model";

/**
 * A minimal Batch data plane (the Batch service API), one HTTPS listener per Batch account, so a
 * shared key is proven by using it: `GET /applications` and `GET /pools` (both empty) answer only a
 * request signed with one of the account's two live keys, so a regenerated key gets 403 at once.
 *
 * The SharedKey scheme, as Microsoft documents it ("Authenticate requests to Azure Batch") and
 * `@azure/batch`'s BatchSharedKeyCredentials signs it: `Authorization: SharedKey <account>:<signature>`,
 * the signature base64(HMAC-SHA256(base64-decoded key, UTF-8 string to sign)), the string to sign
 * the verb, eleven standard headers, the `ocp-` headers and the canonicalized resource (see
 * `batchStringToSign`). The request must be dated (`ocp-date`, else `Date`) within 15 minutes.
 */

/** The Batch service refuses a request dated further than this from its clock. */
export const BATCH_REQUEST_WINDOW_MS = 15 * 60_000;

const STANDARD_HEADERS = [
  "content-encoding",
  "content-language",
  "content-length",
  "content-md5",
  "content-type",
  "date",
  "if-modified-since",
  "if-match",
  "if-none-match",
  "if-unmodified-since",
  "range",
] as const;

function header(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(",") : value;
}

/**
 * The string a SharedKey signature covers, from the request as received: the verb; the standard
 * headers' values (the `Date` line empty when `ocp-date` is set, as Microsoft says); every `ocp-`
 * header as `name:value`, names lower-cased and sorted; then `/{account}{path}` and each query
 * parameter as `\nname:value`, names lower-cased and sorted, values decoded.
 */
export function batchStringToSign(req: Request, accountName: string): string {
  const ocpDate = header(req, "ocp-date") !== undefined;
  const lines = [req.method];
  for (const name of STANDARD_HEADERS) {
    lines.push(name === "date" && ocpDate ? "" : (header(req, name) ?? ""));
  }
  let text = lines.join("\n") + "\n";
  for (const name of Object.keys(req.headers)
    .map((n) => n.toLowerCase())
    .filter((n) => n.startsWith("ocp-"))
    .sort()) {
    text += `${name}:${(header(req, name) ?? "").replace(/\s+/g, " ").trim()}\n`;
  }
  text += `/${accountName}${req.url.pathname}`;
  const query = new Map<string, string[]>();
  for (const pair of req.url.search.replace(/^\?/, "").split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const name = decode(eq < 0 ? pair : pair.slice(0, eq)).toLowerCase();
    const value = decode(eq < 0 ? "" : pair.slice(eq + 1));
    query.set(name, [...(query.get(name) ?? []), value]);
  }
  for (const name of [...query.keys()].sort()) text += `\n${name}:${query.get(name)!.sort().join(",")}`;
  return text;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return s;
  }
}

/** base64(HMAC-SHA256(base64-decoded key, UTF-8 text)): a SharedKey signature. */
export function batchSignature(stringToSign: string, key: string): string {
  return createHmac("sha256", Buffer.from(key, "base64")).update(stringToSign, "utf8").digest("base64");
}

function sameSignature(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A refusal in Batch's own error shape (not ARM's `{error:{code,message}}`). */
class BatchServiceError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly values: { key: string; value: string }[] = [],
  ) {
    super(message);
  }
}

const AUTHENTICATION_FAILED =
  "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.";

function authenticationFailed(status: 401 | 403, detail: string): BatchServiceError {
  return new BatchServiceError(status, "AuthenticationFailed", AUTHENTICATION_FAILED, [
    { key: "AuthenticationErrorDetail", value: detail },
  ]);
}

/**
 * Checks a request's SharedKey signature against the account's live keys. Refusals name the reason
 * but never echo the signature or a key. Without an Authorization header, or with another scheme
 * (Entra ID tokens are not modelled here): 401. A SharedKey request the account refuses (SharedKey
 * not allowed, another account's name, a stale date, a signature no live key makes): 403.
 */
export function authenticateBatchRequest(batch: BatchAccount, req: Request, now: Date): void {
  const authorization = header(req, "authorization");
  if (authorization === undefined) {
    throw authenticationFailed(401, "The request carries no Authorization header.");
  }
  const shared = /^SharedKey ([^:\s]+):(\S+)$/.exec(authorization);
  if (!shared) {
    throw authenticationFailed(
      401,
      "The Authorization header is not a SharedKey signature (the emulator's Batch data plane models SharedKey only).",
    );
  }
  if (!batch.allowedAuthenticationModes.includes("SharedKey")) {
    throw authenticationFailed(
      403,
      "The specified type of authentication SharedKey is not allowed for this account.",
    );
  }
  if (shared[1]!.toLowerCase() !== batch.name.toLowerCase()) {
    throw authenticationFailed(403, `The account named in the Authorization header is not '${batch.name}'.`);
  }
  const dated = Date.parse(header(req, "ocp-date") ?? header(req, "date") ?? "");
  if (Number.isNaN(dated)) {
    throw authenticationFailed(403, "The request has no valid ocp-date or Date header.");
  }
  if (Math.abs(now.getTime() - dated) > BATCH_REQUEST_WINDOW_MS) {
    throw authenticationFailed(403, "The request's date is more than 15 minutes from the service's clock.");
  }
  const text = batchStringToSign(req, shared[1]!);
  const signature = shared[2]!;
  if (
    ![batch.keys.primary, batch.keys.secondary].some((k) => sameSignature(batchSignature(text, k), signature))
  ) {
    throw authenticationFailed(
      403,
      "The MAC signature found in the HTTP request is not the same as any computed signature.",
    );
  }
}

function metadata(req: Request, fragment: string): string {
  return `https://${req.headers.host ?? "localhost"}/$metadata#${fragment}`;
}

/** Answers one data-plane request for the account: authentication first, as the service does. */
export function batchDataPlaneResponse(batch: BatchAccount, req: Request, now: Date): Response {
  try {
    authenticateBatchRequest(batch, req, now);
    if (!req.url.searchParams.get("api-version")) {
      throw new BatchServiceError(
        400,
        "MissingRequiredQueryParameter",
        "A query parameter that's mandatory for this request is not specified.",
        [{ key: "QueryParameterName", value: "api-version" }],
      );
    }
    const path = req.segments.map((s) => s.toLowerCase()).join("/");
    if (req.method === "GET" && (path === "applications" || path === "pools")) {
      return {
        status: 200,
        headers: { "content-type": "application/json;odata=minimalmetadata" },
        body: { "odata.metadata": metadata(req, path), value: [] },
      };
    }
    throw new BatchServiceError(
      404,
      "InvalidUri",
      `The requested URI does not represent any resource on the emulator's Batch data plane: ${req.method} /${path}.`,
    );
  } catch (e) {
    if (!(e instanceof BatchServiceError)) throw e;
    const requestId = randomUUID();
    return {
      status: e.status,
      headers: { "content-type": "application/json;odata=minimalmetadata", "request-id": requestId },
      body: {
        "odata.metadata": metadata(req, "Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"),
        code: e.code,
        message: {
          lang: "en-US",
          value: `${e.message}\nRequestId:${requestId}\nTime:${now.toISOString()}`,
        },
        ...(e.values.length > 0 ? { values: e.values } : {}),
      },
    };
  }
}

/**
 * Starts the account's data plane on a free loopback port and sets its `accountEndpoint` (`host:port`,
 * as ARM reports a Batch endpoint: no scheme). `track` registers the server's sockets for stop().
 */
/** A Batch data-plane call as the emulator saw it: never the signature or the key. */
export interface BatchLogEntry {
  at: string;
  account: string;
  method: string;
  path: string;
  status: number;
}

export async function startBatchDataPlane(
  ctx: EmulatorContext,
  batch: BatchAccount,
  tls: { key: string; cert: string },
  track: (s: Server) => Server,
  log: BatchLogEntry[] = [],
): Promise<Server> {
  const server = track(
    createServer({ key: tls.key, cert: tls.cert }, (incoming, res) => {
      const requestId = randomUUID();
      void readRequest(incoming)
        .then((req) => {
          const response = batchDataPlaneResponse(batch, req, ctx.now());
          const path = `/${req.segments.join("/")}`;
          log.push({
            at: ctx.now().toISOString(),
            account: batch.name,
            method: req.method,
            path,
            status: response.status,
          });
          return response;
        })
        .catch((): Response => ({ status: 500, body: { code: "InternalError" } }))
        .then((response) => send(res, response, requestId));
    }),
  );
  await listen(server, 0);
  batch.accountEndpoint = `127.0.0.1:${(server.address() as { port: number }).port}`;
  return server;
}
