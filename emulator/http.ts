import type { IncomingMessage, ServerResponse } from "node:http";
import type { Server } from "node:net";

/** An error that the emulator answers with Azure's error body `{error:{code,message}}`. */
export class AzureError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "AzureError";
  }
}

export interface Request {
  method: string;
  url: URL;
  /** Path without query, as sent (percent-decoded per segment). */
  segments: string[];
  /** Query parameters with percent-decoded, lower-cased keys (Key Vault sends `api%2Dversion`). */
  query: Map<string, string>;
  headers: IncomingMessage["headers"];
  rawBody: string;
}

export interface Response {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Handler<P = Record<string, string>> = (req: Request, params: P) => Promise<Response> | Response;

const MAX_BODY_BYTES = 4 * 1024 * 1024;

export async function readRequest(incoming: IncomingMessage): Promise<Request> {
  // Collapse leading slashes: ARM accepts `//metadata/endpoints`, which URL would read as a host.
  const url = new URL((incoming.url ?? "/").replace(/^\/+/, "/"), "https://emulator.invalid");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of incoming as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES)
      throw new AzureError(413, "RequestEntityTooLarge", "The request body is too large.");
    chunks.push(chunk);
  }
  const query = new Map<string, string>();
  for (const pair of (url.search.startsWith("?") ? url.search.slice(1) : url.search).split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const rawKey = eq < 0 ? pair : pair.slice(0, eq);
    const rawValue = eq < 0 ? "" : pair.slice(eq + 1);
    query.set(safeDecode(rawKey).toLowerCase(), safeDecode(rawValue.replace(/\+/g, " ")));
  }
  return {
    method: (incoming.method ?? "GET").toUpperCase(),
    url,
    segments: url.pathname
      .split("/")
      .filter((s) => s !== "")
      .map(safeDecode),
    query,
    headers: incoming.headers,
    rawBody: Buffer.concat(chunks).toString("utf8"),
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Parses a JSON request body the way ARM does: malformed JSON is a 400 InvalidRequestContent. */
export function jsonBody(req: Request): unknown {
  if (req.rawBody.trim() === "") {
    throw new AzureError(
      400,
      "InvalidRequestContent",
      "The request content was invalid and could not be deserialized: the body is empty.",
    );
  }
  try {
    return JSON.parse(req.rawBody) as unknown;
  } catch (e) {
    throw new AzureError(
      400,
      "InvalidRequestContent",
      `The request content was invalid and could not be deserialized: '${(e as Error).message}'.`,
    );
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function send(res: ServerResponse, response: Response, requestId: string): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string> = {
    "x-ms-request-id": requestId,
    "x-ms-correlation-request-id": requestId,
    ...response.headers,
  };
  if (response.body === undefined) {
    res.writeHead(response.status, headers);
    res.end();
    return;
  }
  const text = typeof response.body === "string" ? response.body : JSON.stringify(response.body);
  headers["content-type"] ??= "application/json; charset=utf-8";
  res.writeHead(response.status, headers);
  res.end(text);
}

export function errorResponse(error: AzureError): Response {
  return {
    status: error.status,
    headers: error.headers,
    body: { error: { code: error.code, message: error.message } },
  };
}

/** A route pattern like `/subscriptions/{subscriptionId}/providers/Microsoft.Storage/storageAccounts`. */
export interface Route<P = Record<string, string>> {
  method: string;
  pattern: string;
  handler: Handler<P>;
}

interface CompiledRoute {
  method: string;
  parts: { literal?: string; param?: string }[];
  route: Route;
}

/**
 * Matches method + path case-insensitively on literals, as ARM does; parameters keep their case.
 * A path that matches no pattern at all answers `notFound`; a known path with another method answers 405.
 */
export class Router {
  private readonly routes: CompiledRoute[] = [];

  add<P extends Record<string, string>>(method: string, pattern: string, handler: Handler<P>): this {
    const parts = pattern
      .split("/")
      .filter((s) => s !== "")
      .map((s) =>
        s.startsWith("{") && s.endsWith("}") ? { param: s.slice(1, -1) } : { literal: s.toLowerCase() },
      );
    this.routes.push({
      method: method.toUpperCase(),
      parts,
      route: { method, pattern, handler: handler as Handler },
    });
    return this;
  }

  match(
    method: string,
    segments: string[],
  ): { route: Route; params: Record<string, string> } | "method" | undefined {
    let pathMatched = false;
    for (const compiled of this.routes) {
      const params = matchParts(compiled.parts, segments);
      if (!params) continue;
      if (compiled.method !== method) {
        pathMatched = true;
        continue;
      }
      return { route: compiled.route, params };
    }
    return pathMatched ? "method" : undefined;
  }
}

function matchParts(parts: CompiledRoute["parts"], segments: string[]): Record<string, string> | undefined {
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const segment = segments[i]!;
    if (part.literal !== undefined) {
      if (part.literal !== segment.toLowerCase()) return undefined;
    } else if (part.param !== undefined) {
      params[part.param] = segment;
    }
  }
  return params;
}

/** Listens on 127.0.0.1 (port 0: a free one) and resolves once listening, or rejects on an error. */
export function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
}
