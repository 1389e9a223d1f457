import { HttpRequest, InvocationContext } from "@azure/functions";
import { health } from "../../../functions/health";

describe("health", () => {
  it("answers 200 with the invocation id and no secrets", async () => {
    const context = new InvocationContext({ invocationId: "inv-1", functionName: "health" });
    const response = await health(
      new HttpRequest({ method: "GET", url: "http://localhost/api/health" }),
      context,
    );
    expect(response.status).toBe(200);
    expect(response.jsonBody).toEqual({ status: "ok", service: "keyturn", invocationId: "inv-1" });
  });
});
