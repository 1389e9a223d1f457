import type { HttpRequest, HttpResponseInit, InvocationContext } from "@azure/functions";

/** Liveness for the portal and probes: no Azure calls, no secrets. */
export async function health(_request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  return { status: 200, jsonBody: { status: "ok", service: "keyturn", invocationId: context.invocationId } };
}
