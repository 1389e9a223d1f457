/**
 * One JSON file per orchestration instance. Writes are synchronous and atomic (temp file + rename):
 * synchronous so two saves of one instance can never land out of order, atomic so a process killed
 * mid-write leaves the previous complete state, which is what resuming needs. No fsync: the goal is
 * surviving a killed process, not a power cut.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const SUFFIX = ".json";

export class InstanceStore<T extends { instanceId: string }> {
  readonly dir: string;
  #tempCounter = 0;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  #file(instanceId: string): string {
    // Instance ids may hold characters that are not safe in file names on every OS (":" for
    // sub-orchestrations); encodeURIComponent keeps them reversible.
    return join(this.dir, encodeURIComponent(instanceId) + SUFFIX);
  }

  save(record: T): void {
    const file = this.#file(record.instanceId);
    const temp = `${file}.${process.pid}.${this.#tempCounter++}.tmp`;
    writeFileSync(temp, JSON.stringify(record));
    renameSync(temp, file);
  }

  load(instanceId: string): T | undefined {
    try {
      return JSON.parse(readFileSync(this.#file(instanceId), "utf8")) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  loadAll(): T[] {
    return readdirSync(this.dir)
      .filter((name) => name.endsWith(SUFFIX))
      .map((name) => JSON.parse(readFileSync(join(this.dir, name), "utf8")) as T);
  }

  delete(instanceId: string): void {
    rmSync(this.#file(instanceId), { force: true });
  }
}
