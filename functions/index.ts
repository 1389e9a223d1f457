import { app, type InvocationContext } from "@azure/functions";
import * as df from "durable-functions";
import { health } from "./health";
import { heartbeat } from "./heartbeat";
import { getPlan, getRotation, listRotations, monthlyRotation, startRotation } from "./http";
import { rotateAll } from "./orchestrators/rotateAll";
import { rotateStorageAccount } from "./orchestrators/rotateStorageAccount";
import { rotateLane } from "./orchestrators/rotateLane";
import { ACTIVITY, ORCHESTRATOR } from "../shared/activities/contracts";
import * as activities from "../shared/activities";
import { activityDeps } from "./deps";
import { recordRotation } from "../shared/activities/record";
import { DEFAULT_SCHEDULE, SETTING } from "../shared/config";
import { scrubError } from "../shared/errors";
import "./eventgrid"; // Key Vault SecretNearExpiry → a rotation of that account (df.app.client.eventGrid)

// The entry point only wires functions to triggers; the work lives in shared/.

app.http("health", { methods: ["GET"], authLevel: "anonymous", route: "health", handler: health });

df.app.orchestration(ORCHESTRATOR.rotateAll, rotateAll);
df.app.orchestration(ORCHESTRATOR.rotateStorageAccount, rotateStorageAccount);
df.app.orchestration(ORCHESTRATOR.rotateLane, rotateLane);

type Work<I, O> = (deps: activities.ActivityDeps, input: I) => Promise<O>;

function activity<I, O extends { armCalls: number }>(name: string, work: Work<I, O>): void {
  df.app.activity(name, {
    handler: async (input: unknown, context: InvocationContext) => {
      try {
        const output = await work(activityDeps(), input as I);
        context.log(`${name}: done, ${output.armCalls} ARM calls`);
        return output;
      } catch (e) {
        // The message is already free of key material (adapters scrub); scrub again at the boundary.
        const error = scrubError(e);
        context.error(`${name} failed: ${error.message}`);
        throw error;
      }
    },
  });
}

activity(ACTIVITY.listSubscriptions, activities.listSubscriptions);
activity(ACTIVITY.discoverSubscription, activities.discoverSubscription);
activity(ACTIVITY.discoverWorkspace, activities.discoverWorkspace);
activity(ACTIVITY.discoverSecrets, activities.discoverSecrets);
activity(ACTIVITY.snapshotAccount, activities.snapshotAccount);
activity(ACTIVITY.regenerateKey, activities.regenerateKey);
activity(ACTIVITY.moveAndVerify, activities.moveAndVerify);
activity(ACTIVITY.recordRotation, recordRotation);
activity(ACTIVITY.findLateDatastores, activities.findLateDatastores);
activity(ACTIVITY.lockAccount, activities.lockAccount);
activity(ACTIVITY.unlockAccount, activities.unlockAccount);

df.app.client.http("startRotation", {
  route: "rotations",
  methods: ["POST"],
  authLevel: "function",
  handler: startRotation,
});
app.http("listRotations", {
  route: "rotations",
  methods: ["GET"],
  authLevel: "function",
  handler: listRotations,
});
df.app.client.http("getRotation", {
  route: "rotations/{id}",
  methods: ["GET"],
  authLevel: "function",
  handler: getRotation,
});
df.app.client.http("getPlan", { route: "plan", methods: ["GET"], authLevel: "function", handler: getPlan });

df.app.client.timer("monthlyRotation", {
  // Registration time is the one place settings may be read outside an activity: the host needs the schedule.
  schedule: process.env[SETTING.schedule]?.trim() || DEFAULT_SCHEDULE,
  handler: monthlyRotation,
});

// Daily, so the "no successful rotation" and key-policy alerts always have a fresh signal.
app.timer("heartbeat", { schedule: "0 0 6 * * *", handler: heartbeat });
