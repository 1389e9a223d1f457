import { app } from "@azure/functions";
import { health } from "./health";

// The entry point only wires functions to triggers; the work lives in shared/.
app.http("health", { methods: ["GET"], authLevel: "anonymous", route: "health", handler: health });
