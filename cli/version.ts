import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * keyturn's version, read from its package.json at run time: the nearest one above this file named
 * "keyturn". That is the repository's from cli/ (ts-jest) and dist/cli/ alike, and the staged one
 * (name and version copied, `scripts/package.mjs`) beside an esbuild bundle, whose __dirname is the
 * bundle's own directory. Never throws: `--version` must work even from a damaged install.
 */
export function packageVersion(from: string = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === "keyturn" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // No package.json here (or not JSON): keep looking upwards.
    }
    if (dirname(dir) === dir) return "unknown";
  }
}
