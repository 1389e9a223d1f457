import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

/** The package root, from source (ts-jest) or from dist/ alike. */
export function projectRoot(from: string = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`No package.json above ${from}.`);
  }
}

export const KEYTURN_ROLE_FILE = join(projectRoot(), "infra", "keyturn-role.json");
/** The opt-in role for Batch shared keys, which infra assigns only with `batchKeys` on. */
export const KEYTURN_BATCH_ROLE_FILE = join(projectRoot(), "infra", "keyturn-batch-role.json");
/** The opt-in role for registry admin passwords, which infra assigns only with `registryPasswords` on. */
export const KEYTURN_REGISTRY_ROLE_FILE = join(projectRoot(), "infra", "keyturn-registry-role.json");
