import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

export interface RawRequest {
  method: string;
  /** Sent exactly as given: no normalization of `..`, no re-encoding. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * One HTTP(S) request as a hostile client would send it (fetch normalizes paths and refuses some
 * methods). The `ca` option trusts the emulator's certificate for https origins.
 */
export function rawRequest(origin: string, req: RawRequest, ca?: string): Promise<RawResponse> {
  const url = new URL(origin);
  const body = req.body === undefined ? undefined : Buffer.from(req.body);
  const headers = { ...req.headers, ...(body ? { "content-length": String(body.length) } : {}) };
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const r = send(
      {
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: req.path,
        headers,
        ...(ca ? { ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", reject);
      },
    );
    r.on("error", reject);
    r.end(body);
  });
}
