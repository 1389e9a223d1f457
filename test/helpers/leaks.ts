import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { RotationRig } from "./rotation";

/** Every file below `dir`. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/**
 * Where any key the rig's emulator ever issued appears (I3): the files keyturn wrote (state, history,
 * telemetry, audit), every durable instance (history, status, output) and the logs. Empty: nowhere.
 */
export function placesHoldingKeys(rig: RotationRig): string[] {
  const keys = [...rig.emulator.ctx.issuedKeys];
  const haystacks: [string, string][] = filesUnder(rig.dir).map((f) => [f, readFileSync(f, "utf8")]);
  for (const instance of rig.host.durable.list())
    haystacks.push([instance.instanceId, JSON.stringify(instance)]);
  haystacks.push(["logs", rig.logs.join("\n")]);
  return haystacks.filter(([, text]) => keys.some((key) => text.includes(key))).map(([where]) => where);
}
